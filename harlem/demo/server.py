"""A loopback HTTP(S) server with routes that exercise everything a HAR must describe.

Tests and demos need real traffic (real sockets, real TLS, real timings) with known
contents, without the internet. :class:`LoopbackServer` runs an :mod:`aiohttp.web`
application on 127.0.0.1 in a background thread with its own event loop, so that both
synchronous clients (requests, urllib) and asynchronous ones (aiohttp, httpx) in the main
thread can use it.

Routes (all ``GET`` unless noted):

==========================  ===========================================================
``/json``                   a small JSON object (:data:`JSON_BODY`)
``/text``                   UTF-8 text/plain with non-ASCII characters (:data:`TEXT_BODY`)
``/latin1``                 text/plain; charset=iso-8859-1 (:data:`LATIN1_TEXT`)
``/binary?size=N&seed=S``   N deterministic pseudo-random bytes (default 1024)
``/image.png``              a valid 1x1 PNG (:data:`PNG_BYTES`)
``/gzip`` ``/deflate``      :data:`COMPRESSIBLE_TEXT`, compressed, with Content-Length
``/br``                     the same with brotli (404 when ``brotli`` is not installed)
``/gzip-chunked``           gzip body sent chunked, without Content-Length
``/redirect/{n}``           302 to ``/redirect/{n-1}``, ..., finally to ``/json`` (relative)
``/redirect-absolute``      302 to the absolute URL of ``/json`` (or ``?to=URL``)
``/cookies/set``            two Set-Cookie headers (attributes, Expires); ``?domain=`` adds
                            a Domain attribute to the first
``/cookies``                the cookies the request carried, as JSON
``/dup-headers``            two ``X-Dup`` headers and two Set-Cookie headers
``/echo`` (any method)      JSON describing the request: method, path, query, headers, body
``/stream?chunks&size&delay``  chunked response: N chunks of S bytes, D seconds apart
``/status/{code}``          that status with a short text body (none for 204/304)
``/slow?delay=S``           JSON after S seconds
``/unicode-headers``        response headers with non-ASCII (UTF-8) values
``/empty``                  204 No Content
``/large?size=N``           N bytes streamed in 64 KiB writes, with Content-Length
``/page``                   HTML using /style.css, /app.js, /image.png and fetch('/json')
``/style.css`` ``/app.js``  the page's resources
``/reset?after=...``        TCP reset: before anything (default), after ``headers``, or
                            after part of the ``body``
==========================  ===========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import random
import socket
import ssl
import struct
import threading
import zlib
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from aiohttp import web
from multidict import CIMultiDict

from .._threads import start_daemon

try:
    import brotli
except ImportError:  # brotli is optional: /br answers 404 without it
    brotli = None

__all__ = [
    "LoopbackServer",
    "closed_port",
    "make_app",
    "deterministic_bytes",
    "JSON_BODY",
    "TEXT_BODY",
    "LATIN1_TEXT",
    "COMPRESSIBLE_TEXT",
    "PNG_BYTES",
    "HAS_BROTLI",
]

HAS_BROTLI = brotli is not None

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Body of ``/json`` (as a Python value).
JSON_BODY = {"hello": "world", "number": 42, "list": [1, 2, 3], "unicode": "✓", "nested": {"ok": True}}
#: Body of ``/text``: non-ASCII, so its UTF-8 byte length differs from its length.
TEXT_BODY = "héllo wörld ✓"
#: Body of ``/latin1``, sent encoded as ISO-8859-1.
LATIN1_TEXT = "héllo wörld, ça va? ÿ"
#: Decoded body of ``/gzip``, ``/deflate``, ``/br`` and ``/gzip-chunked``.
COMPRESSIBLE_TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(200))


def _png_1x1() -> bytes:
    """A valid 1x1 opaque red PNG, built here so that no binary file is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


#: Body of ``/image.png``.
PNG_BYTES = _png_1x1()

_PAGE_HTML = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>harlem demo page</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>harlem demo page</h1>
<img src="/image.png" alt="a red pixel" width="16" height="16">
<pre id="out">loading…</pre>
<script src="/app.js"></script>
</body>
</html>
"""
_STYLE_CSS = "body { font-family: sans-serif; margin: 2em; }\nh1 { color: #a00; }\n"
_APP_JS = """fetch('/json')
  .then(function (r) { return r.json(); })
  .then(function (data) { document.getElementById('out').textContent = JSON.stringify(data); });
"""

_MAX_SIZE = 1 << 30
_SHUTDOWN_TIMEOUT = 1.0  # refuse absurd sizes instead of exhausting memory


def deterministic_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, the same for the same ``seed`` (what ``/binary`` sends)."""
    return random.Random(seed).getrandbits(8 * size).to_bytes(size, "little") if size else b""


def _int_arg(request: web.Request, name: str, default: int, low: int = 0, high: int = _MAX_SIZE) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value


def _float_arg(request: web.Request, name: str, default: float) -> float:
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    if not 0 <= value <= 60:
        raise web.HTTPBadRequest(text=f"{name} must be between 0 and 60 seconds")
    return value


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------


async def _json(request: web.Request) -> web.Response:
    return web.json_response(JSON_BODY)


async def _text(request: web.Request) -> web.Response:
    return web.Response(text=TEXT_BODY, content_type="text/plain", charset="utf-8")


async def _latin1(request: web.Request) -> web.Response:
    return web.Response(
        body=LATIN1_TEXT.encode("iso-8859-1"),
        headers={"Content-Type": "text/plain; charset=iso-8859-1"},
    )


async def _binary(request: web.Request) -> web.Response:
    size = _int_arg(request, "size", 1024, high=64 << 20)
    seed = _int_arg(request, "seed", 0, high=2**31)
    return web.Response(body=deterministic_bytes(size, seed), content_type="application/octet-stream")


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=PNG_BYTES, content_type="image/png")


def _compressed(encoding: str, data: bytes) -> web.Response:
    # Setting Content-Encoding by hand (not enable_compression) keeps aiohttp from
    # touching the body, and a bytes body gets an exact Content-Length.
    return web.Response(
        body=data,
        headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": encoding},
    )


async def _gzip(request: web.Request) -> web.Response:
    return _compressed("gzip", gzip.compress(COMPRESSIBLE_TEXT.encode(), mtime=0))


async def _deflate(request: web.Request) -> web.Response:
    # HTTP's "deflate" is the zlib format (RFC 1950), not raw deflate.
    return _compressed("deflate", zlib.compress(COMPRESSIBLE_TEXT.encode()))


async def _br(request: web.Request) -> web.Response:
    if brotli is None:
        raise web.HTTPNotFound(text="brotli is not installed on the server")
    return _compressed("br", brotli.compress(COMPRESSIBLE_TEXT.encode()))


async def _gzip_chunked(request: web.Request) -> web.StreamResponse:
    data = gzip.compress(COMPRESSIBLE_TEXT.encode(), mtime=0)
    response = web.StreamResponse(
        headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(data), 256):
        await response.write(data[start : start + 256])
    await response.write_eof()
    return response


async def _redirect(request: web.Request) -> web.Response:
    try:
        hops = int(request.match_info["n"])
    except ValueError:
        raise web.HTTPBadRequest(text="n must be an integer") from None
    location = "/json" if hops <= 1 else f"/redirect/{hops - 1}"
    return web.Response(status=302, headers={"Location": location}, text=f"redirecting to {location}")


async def _redirect_absolute(request: web.Request) -> web.Response:
    # Built from the Host header by hand: request.url breaks on some aiohttp/yarl pairs.
    location = request.query.get("to") or f"{request.scheme}://{request.host}/json"
    return web.Response(status=302, headers={"Location": location}, text=f"redirecting to {location}")


async def _cookies_set(request: web.Request) -> web.Response:
    # No Domain attribute unless asked: cookie jars treat Domain=<IP address> in
    # different ways, and the point here is attribute parsing, not jar policy.
    domain = request.query.get("domain")
    first = "session=abc123; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
    if domain:
        first += f"; Domain={domain}"
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("Set-Cookie", first)
    headers.add("Set-Cookie", "theme=dark; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
    return web.json_response({"set": ["session", "theme"]}, headers=headers)


async def _cookies(request: web.Request) -> web.Response:
    return web.json_response(dict(request.cookies))


async def _dup_headers(request: web.Request) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("X-Dup", "one")
    headers.add("X-Dup", "two")
    headers.add("Set-Cookie", "a=1; Path=/")
    headers.add("Set-Cookie", "b=2; Path=/")
    return web.Response(text="duplicate headers", headers=headers)


async def _echo(request: web.Request) -> web.Response:
    import base64

    body = await request.read()
    try:
        text: Optional[str] = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": [[name, value] for name, value in request.query.items()],
            "raw_query": request.query_string,
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")] for name, value in request.raw_headers
            ],
            "body_base64": base64.b64encode(body).decode("ascii"),
            "body_text": text,
            "body_size": len(body),
        }
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    chunks = _int_arg(request, "chunks", 5, high=100_000)
    size = _int_arg(request, "size", 1024, high=16 << 20)
    delay = _float_arg(request, "delay", 0.0)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index in range(chunks):
        if index and delay:
            await asyncio.sleep(delay)
        await response.write(bytes([index % 256]) * size)
    await response.write_eof()
    return response


async def _status(request: web.Request) -> web.Response:
    try:
        code = int(request.match_info["code"])
    except ValueError:
        raise web.HTTPBadRequest(text="code must be an integer") from None
    if not 200 <= code <= 599:
        raise web.HTTPBadRequest(text="code must be between 200 and 599")
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}")


async def _slow(request: web.Request) -> web.Response:
    delay = _float_arg(request, "delay", 1.0)
    await asyncio.sleep(delay)
    return web.json_response({"slept": delay})


async def _unicode_headers(request: web.Request) -> web.Response:
    headers = {
        "X-Unicode": "héllo ✓",
        "Content-Disposition": "attachment; filename*=UTF-8''h%C3%A9llo.txt",
    }
    return web.Response(text="unicode headers", headers=headers)


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _large(request: web.Request) -> web.StreamResponse:
    size = _int_arg(request, "size", 1 << 20)
    block = bytes(range(256)) * 256  # 64 KiB
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    remaining = size
    while remaining:
        piece = block if remaining >= len(block) else block[:remaining]
        await response.write(piece)
        remaining -= len(piece)
    await response.write_eof()
    return response


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE_HTML, content_type="text/html", charset="utf-8")


async def _style(request: web.Request) -> web.Response:
    return web.Response(text=_STYLE_CSS, content_type="text/css", charset="utf-8")


async def _app_js(request: web.Request) -> web.Response:
    return web.Response(text=_APP_JS, content_type="application/javascript", charset="utf-8")


def _reset_connection(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0) rather than a clean FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _reset(request: web.Request) -> web.StreamResponse:
    after = request.query.get("after", "none")
    if after not in ("none", "headers", "body"):
        raise web.HTTPBadRequest(text="after must be none, headers or body")
    if after == "none":
        _reset_connection(request)
        raise asyncio.CancelledError  # nothing more to send; aiohttp ends the handler quietly
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = 10_000
    await response.prepare(request)
    if after == "body":
        await response.write(b"x" * 1000)
    await asyncio.sleep(0.05)  # let the loop hand the bytes to the kernel before the reset
    _reset_connection(request)
    raise asyncio.CancelledError


def make_app() -> web.Application:
    """The aiohttp application behind :class:`LoopbackServer` (usable on its own)."""
    app = web.Application(client_max_size=256 << 20)
    app.add_routes(
        [
            web.get("/json", _json),
            web.get("/text", _text),
            web.get("/latin1", _latin1),
            web.get("/binary", _binary),
            web.get("/image.png", _image),
            web.get("/gzip", _gzip),
            web.get("/deflate", _deflate),
            web.get("/br", _br),
            web.get("/gzip-chunked", _gzip_chunked),
            web.get("/redirect/{n}", _redirect),
            web.get("/redirect-absolute", _redirect_absolute),
            web.get("/cookies/set", _cookies_set),
            web.get("/cookies", _cookies),
            web.get("/dup-headers", _dup_headers),
            web.route("*", "/echo", _echo),
            web.get("/stream", _stream),
            web.get("/status/{code}", _status),
            web.get("/slow", _slow),
            web.get("/unicode-headers", _unicode_headers),
            web.get("/empty", _empty),
            web.get("/large", _large),
            web.get("/page", _page),
            web.get("/style.css", _style),
            web.get("/app.js", _app_js),
            web.get("/reset", _reset),
        ]
    )
    return app


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------


class LoopbackServer:
    """:func:`make_app` served on a loopback port from a background thread.

    Usage::

        with LoopbackServer() as server:
            urllib.request.urlopen(server.url + "/json")

    ``port=0`` lets the OS pick a free port; :attr:`port` and :attr:`url` are known once
    :meth:`start` returns. Pass ``ssl_context`` (a server-side :class:`ssl.SSLContext`)
    for HTTPS, and ``host="::1"`` for IPv6. :attr:`requests` lists ``(method, path_qs)``
    of every request received, so tests can see what actually went over the wire.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: Optional[ssl.SSLContext] = None,
        *,
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self.ssl_context = ssl_context
        self.startup_timeout = startup_timeout
        self.requests: List[Tuple[str, str]] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8080`` (IPv6 hosts in brackets), no slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on this server."""
        return self.url + path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "LoopbackServer":
        """Start serving; returns once the port is bound (raises if that failed)."""
        if self.running:
            return self
        self._ready.clear()
        self._error = None
        self._thread = start_daemon(self._serve, "harlem-loopback-server")
        if not self._ready.wait(self.startup_timeout):
            raise RuntimeError("the loopback server did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"the loopback server could not start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (open connections get about a second)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            with contextlib.suppress(Exception):  # best effort: the loop is stopped next anyway
                future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._runner = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # report to start() instead of dying silently
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        app = make_app()

        @web.middleware
        async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append((request.method, request.path_qs))
            return await handler(request)

        app.middlewares.append(note)
        # Open connections (a /stream or /slow in progress) get a second at stop(). Where
        # that setting lives moved from the site to the runner in aiohttp 3.9.
        timeout: Dict[str, Any] = {"shutdown_timeout": _SHUTDOWN_TIMEOUT}
        on_runner = "shutdown_timeout" in inspect.signature(web.BaseRunner.__init__).parameters
        runner = web.AppRunner(app, access_log=None, **(timeout if on_runner else {}))
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.host,
            self._requested_port,
            ssl_context=self.ssl_context,
            **({} if on_runner else timeout),
        )
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` where nothing listens (connecting is refused), for error tests.

    The port is bound and released, so the OS will not hand it out again right away.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

