"""Demo and test helpers: a loopback HTTP server (needs the ``demo`` extra: aiohttp)."""
