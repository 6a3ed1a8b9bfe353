"""The built-in demo: real requests and aiohttp traffic against a loopback server.

Run it under a recording, no internet needed::

    harlem harlem.demo.app:main demo.har          # the harlem CLI
    harlem-run -o demo.har -- python -m harlem.demo   # the agent
"""

from __future__ import annotations

import asyncio
import sys

import harlem
from harlem.demo.server import LoopbackServer, closed_port


def _with_requests(base: str) -> None:
    import requests

    with requests.Session() as session:
        session.get(f"{base}/json", params={"q": "harlem", "page": "1"})
        session.post(f"{base}/echo", json={"name": "harlem", "secret": "s3cr3t"},
                     headers={"Authorization": "Bearer demo-token"})
        session.post(f"{base}/echo", data={"field": "value"},
                     files={"upload": ("hello.txt", b"hello file", "text/plain")})
        session.get(f"{base}/redirect/2")
        session.get(f"{base}/gzip")
        session.get(f"{base}/cookies/set")
        session.get(f"{base}/image.png")
    try:
        requests.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    except requests.ConnectionError:
        pass  # recorded as a failed entry with _error net::ERR_CONNECTION_REFUSED


async def _with_aiohttp(base: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def fetch(path: str) -> bytes:
            async with session.get(f"{base}{path}") as response:
                return await response.read()

        await asyncio.gather(*(fetch(f"/json?n={n}") for n in range(5)))
        async with session.get(f"{base}/stream?chunks=4&size=1024") as response:
            async for _ in response.content.iter_chunked(512):
                pass


def main() -> int:
    """Serve the demo site on 127.0.0.1 and make a mix of requests with each library."""
    with LoopbackServer() as server:
        with harlem.page("requests"):
            _with_requests(server.url)
        with harlem.page("aiohttp"):
            asyncio.run(_with_aiohttp(server.url))
    print("demo: done; open the HAR with 'harlem show <file>' or your browser's DevTools",
          file=sys.stderr)
    return 0
