"""Record the HTTP requests an ASGI application serves: ``app.add_middleware(HarlemMiddleware)``.

Starlette and FastAPI applications need no code change under ``harlem-run`` or a recording
that includes the ``asgi`` recorder; :class:`HarlemMiddleware` is for other ASGI applications
(or to be explicit). It records only while such a recording runs. See ``docs/server.md``.
"""

from __future__ import annotations

from .recorders.asgi import HarlemMiddleware

__all__ = ["HarlemMiddleware"]
