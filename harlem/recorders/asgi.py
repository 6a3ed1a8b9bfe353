"""Recording for the server side: every HTTP request an ASGI application serves.

:class:`HarlemMiddleware` wraps any ASGI application (Starlette, FastAPI, Quart, Django's ASGI
handler, a bare callable). While an ``asgi`` recorder runs, it records each ``http`` request
as one exchange with ``direction = "incoming"``, from what passes through the ASGI interface,
at the pace it passes: it hands the application the very ``receive`` messages the server sent
and the server the very ``send`` messages the application sent, in order, unchanged.

:class:`AsgiHarRecorder` also records Starlette applications (and so FastAPI, a subclass)
without any code change: it wraps ``Starlette.__call__``, which puts the middleware in front of
every application, built before or after the recorder started; stopping the last recorder
removes it again. It patches Starlette when ``starlette.applications`` is imported (at once if it
already is): it never imports Starlette itself. When applications are nested (a Starlette app mounted in another, or an
explicit ``HarlemMiddleware`` inside a patched app), only the outermost one records.

What each field means for a request served (see ``docs/server.md``):

* ``url``: the scope's scheme, the Host header (else the server address), ``raw_path`` (else
  ``path``) with ``root_path`` in front when the server did not already put it there, and the
  query string. Headers are the scope's (as the server parsed them) and the ones the
  application sent; headers the server adds itself (``date``, ``server``,
  ``transfer-encoding``) are not seen.
* ``serverIPAddress`` is the server's own address (``scope["server"]``) and ``connection`` the
  client's port (``scope["client"]``): together they name the TCP connection.
* timings, measured in the server: the exchange starts when the server calls the
  application (request line and headers already in); ``send`` lasts until the application
  received the last request body message (0 when it never read the body), ``wait`` until
  it sent the response start, ``receive`` until its last body message was handed to the server.
* bodies: the request body as the application received it through ``receive``; the response
  body as the application sent it, decoded when the application compressed it with gzip or
  deflate (``GZipMiddleware``), the sent bytes counting as the wire size.
* an exception that escapes the application before it started a response is the 500 the
  server then sends (status 500, ``_error``, the exception in ``comment``), re-raised unchanged.
  A 5xx response is completed when the application returns, so that the exception behind it
  (Starlette's ``ServerErrorMiddleware`` sends its 500, then re-raises) lands in the entry too.
"""

from __future__ import annotations

import contextvars
import functools
import re
import sys
import zlib
from typing import Any, Awaitable, Callable, List, MutableMapping, Optional

from .. import pipeline
from .._warn import quietly, warn_once
from ..capture import Exchange, now
from .base import HarRecorder, _patch_lock, unwrap_all

__all__ = ["AsgiHarRecorder", "HarlemMiddleware"]

LIBRARY = "asgi"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HTTP_VERSIONS = {"2": "http/2.0", "2.0": "http/2.0", "3": "http/3.0"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: What the server sends when the application fails before responding (uvicorn, hypercorn).
_SERVER_ERROR = (500, "Internal Server Error")


class AsgiHarRecorder(HarRecorder):
    """Records every HTTP request served by an ASGI application.

    Starlette and FastAPI applications are recorded as they are; any other ASGI application
    is recorded once wrapped in :class:`HarlemMiddleware`.
    """

    library = LIBRARY
    module_name = "starlette"

    @classmethod
    def is_available(cls) -> bool:
        """Always: :class:`HarlemMiddleware` needs no framework (Starlette is optional)."""
        return True

    @classmethod
    def _instrument(cls) -> None:
        """Patch Starlette now if it is imported, else as soon as it is (importing it here
        would cost every recording a sixth of a second, servers or not)."""
        global _hook, _watching
        from ..agent import hooks

        _watching = True
        _hook = hooks.install([_STARLETTE], cls._patch_starlette)

    @classmethod
    def _patch_starlette(cls, module_name: str) -> None:
        with _patch_lock:
            if not _watching:  # the recorder stopped while Starlette was being imported
                return
            try:
                cls._wrap(sys.modules[_STARLETTE].Starlette, "__call__", _starlette_call)
            except Exception as exc:
                unwrap_all(cls)
                warn_once("asgi-starlette", "Starlette applications are not recorded", exc)

    @classmethod
    def _uninstrument(cls) -> None:
        global _hook, _watching
        _watching = False
        if _hook is not None:
            from ..agent import hooks

            hooks.uninstall(_hook)
            _hook = None
        super()._uninstrument()


_STARLETTE = "starlette.applications"
#: The import hook that patches Starlette once imported, and whether it still should.
_hook: Any = None
_watching = False


class HarlemMiddleware:
    """ASGI middleware recording each HTTP request the wrapped application serves.

    Use ``app.add_middleware(HarlemMiddleware)`` (Starlette, FastAPI) or
    ``app = HarlemMiddleware(app)`` (any ASGI application). It records only while an ``asgi``
    recorder runs (``harlem-run``, ``record_to_file``...); otherwise it only calls the
    application.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(self.app, scope, receive, send)


def _starlette_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    return _serve(wrapped, *args, **kwargs)


#: The request being served in this context: nested applications only pass through until its
#: response has gone out. A server may start the connection's next request from inside this
#: one's ``send`` or ``receive`` (uvicorn does, after a large upload or with pipelining), and
#: that request's task starts with a copy of this context: by then this response is out.
_serving: "contextvars.ContextVar[Optional[_Served]]" = contextvars.ContextVar(
    "harlem_asgi_serving", default=None)


async def _serve(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    current = _serving.get()
    if scope.get("type") != "http" or (current is not None and _nested(current, scope)) \
            or not pipeline.is_recording(LIBRARY):
        return await app(scope, receive, send)
    served = _begin(scope, receive, send)
    if served is None:
        return await app(scope, receive, send)
    token = _serving.set(served)
    try:
        await app(scope, served.receive, served.send)
    except BaseException as exc:
        served.returned(exc)
        raise
    finally:
        _serving.reset(token)
    served.returned(None)


def _nested(current: "_Served", scope: Scope) -> bool:
    """Whether ``scope`` is the request ``current`` serves, passing through another recorded
    application (a mounted app, an explicit middleware): frameworks hand the same scope on,
    or a copy that keeps its headers. Another request (an application this one calls in
    process, the connection's next request) has its own."""
    if current.answered:
        return False
    mine = current.scope
    headers = scope.get("headers")
    return scope is mine or (headers is not None and headers is mine.get("headers"))


# --- guarding harlem's own work -------------------------------------------------------------


_quietly = quietly("ASGI")


# --- one request served ----------------------------------------------------------------------


@_quietly
def _begin(scope: Scope, receive: Receive, send: Send) -> Optional["_Served"]:
    # An incoming request has no caller in this program: no _initiator frames to take.
    ex = pipeline.begin(LIBRARY, str(scope.get("method") or "GET"), _url(scope), frames=())
    if ex is None:
        return None
    ex.direction = "incoming"
    ex.frames = ()  # no caller in the program: the initiator is "other"
    ex.t_send_start = ex.t_start
    if not _has_body(scope):  # whole when the server called the app, read or not
        ex.t_send_end = ex.t_start
    version = str(scope.get("http_version") or "1.1")
    ex.http_version = _HTTP_VERSIONS.get(version, "HTTP/" + version)
    ex.request_headers = [(_text(name), _text(value)) for name, value in scope.get("headers", ())]
    server = scope.get("server")
    if server and server[1] is not None:
        ex.server_ip, ex.server_port = str(server[0]), int(server[1])
    client = scope.get("client")
    if client and client[1] is not None:
        ex.local_port = int(client[1])
    return _Served(ex, scope, receive, send)


def _url(scope: Scope) -> str:
    """The request's URL as the client asked for it, always a valid URI: a Host header or a
    target with characters a URI cannot hold (any client can send them) is percent-encoded."""
    scheme = str(scope.get("scheme") or "http")
    host = ""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"host":
            host = _authority(value)
            break
    if not host:
        server = scope.get("server")
        if server and server[1] is not None:
            address, port = str(server[0]), int(server[1])
            address = f"[{address}]" if ":" in address else address
            host = address if _DEFAULT_PORTS.get(scheme) == port else f"{address}:{port}"
        else:  # a Unix socket, and an HTTP/1.0 client that named no host
            host = "localhost"
    # Some servers and test clients (httpx < 0.26, Starlette < 0.42) leave the query in raw_path.
    raw_path = (scope.get("raw_path") or b"").split(b"?", 1)[0]
    query = scope.get("query_string") or b""
    query_part = "?" + _quote(query, _ENCODED_SAFE + "?") if query else ""
    absolute = _ABSOLUTE_FORM.match(raw_path)
    if absolute:  # the absolute form a proxy is sent ("GET http://host/path")
        target, authority, rest = absolute.groups()
        return (target.decode("ascii") + _authority(authority) + _quote(rest, _ENCODED_SAFE)
                + query_part)
    if raw_path == b"*":  # "OPTIONS *": the server itself, no path (RFC 9112, 3.3)
        return f"{scheme}://{host}"
    path = _quote(raw_path, _ENCODED_SAFE) if raw_path \
        else _quote(str(scope.get("path") or "/"), _DECODED_SAFE)
    root = str(scope.get("root_path") or "")
    # Servers differ on whether the path includes the root path: it does when it begins with
    # it as whole segments ("/api/docs", not "/apidocs").
    if root and path != root and not path.startswith(root.rstrip("/") + "/"):
        path = root + path
    return f"{scheme}://{host}{path}{query_part}"


#: What stays as it is in each part of a URL; anything else is percent-encoded. A path read
#: from the request line keeps its escapes; ``scope["path"]`` is decoded, so a "%" there is one.
_DECODED_SAFE = "/:@!$&'()*+,;=-._~"
_ENCODED_SAFE = _DECODED_SAFE + "%"
_HOST_SAFE = "!$&'()*+,;=:[]-._~%"
#: A host as a URI allows it: a bracketed IP literal or a name (percent escapes whole), then
#: a numeric port. Anything else is encoded whole as a name: "[zz", "a%zz", "h:abc".
_VALID_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9!$&'()*+,;=._~-]|%[0-9A-Fa-f]{2})*)"
                         rb"(?::[0-9]*)?")
_NAME_SAFE = "!$&'()*+,;=-._~"
#: "GET http://host/path": a scheme, then the authority, then the rest (a path given whole,
#: "/web/2020/http://example.com/", is not one).
_ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)", re.DOTALL)


def _authority(raw: bytes) -> str:
    """A Host header's value (or an absolute target's authority) as a URI's host and port."""
    if _VALID_HOST.fullmatch(raw):
        return _quote(raw, _HOST_SAFE)
    return _quote(raw, _NAME_SAFE)


def _quote(raw: Any, safe: str) -> str:
    """``raw`` (bytes from the request, or decoded text) with what ``safe`` does not allow
    percent-encoded: bytes as they are, text as UTF-8. Most requests have nothing to encode."""
    data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
    if _unsafe(safe).search(data) is None:
        return data.decode("ascii")
    from urllib.parse import quote

    return quote(data, safe=safe)


@functools.lru_cache(maxsize=8)
def _unsafe(safe: str) -> "re.Pattern[bytes]":
    return re.compile(b"[^A-Za-z0-9" + re.escape(safe).encode("ascii") + b"]")


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (HTTP/1.1: a non-zero Content-Length or any
    Transfer-Encoding); HTTP/2 and later may send one without either."""
    if str(scope.get("http_version") or "1.1") not in ("1.0", "1.1"):
        return True
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length"
                                               and value.strip() not in (b"", b"0")):
            return True
    return False


def _text(raw: Any) -> str:
    """ASGI header bytes as text, the way Starlette decodes them (ISO-8859-1)."""
    return raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)


class _Served:
    """One request's exchange while the application serves it, and its ASGI channels."""

    __slots__ = ("ex", "scope", "server_receive", "server_send", "upload", "upload_size",
                 "read_all", "decoder", "intact", "wire_size", "body_done", "answered", "cut")

    def __init__(self, ex: Exchange, scope: Scope, receive: Receive, send: Send):
        self.ex = ex
        #: The request's scope, to tell an application nested in this one (the same request,
        #: the same scope or at least its headers) from another request served meanwhile.
        self.scope = scope
        self.server_receive = receive
        self.server_send = send
        #: Request body bytes the application received, up to ``body_limit`` (None once
        #: exported).
        self.upload: Optional[List[bytes]] = []
        self.upload_size = 0
        self.read_all = False
        #: Inflates a gzip/deflate response body the application compressed.
        self.decoder: Any = None
        #: False once such a body failed to inflate: its decoded content is unknown.
        self.intact = True
        self.wire_size = 0
        #: True once the last response body message went out (a 5xx waits for the app's end).
        self.body_done = False
        #: True from the moment the last response message is handed to the server.
        self.answered = False
        #: True when the client went away before its request body ended (an upload given up).
        self.cut = False

    # -- the channels the application gets ---------------------------------------------------

    async def receive(self) -> Message:
        message = await self.server_receive()
        self._received(message)
        return message

    async def send(self, message: Message) -> None:
        if message.get("type") == "http.response.pathsend" or (
                message.get("type") == "http.response.body" and not message.get("more_body")):
            self.answered = True
        self._sending(message)
        try:
            await self.server_send(message)
        except BaseException as exc:
            self._failed(exc)
            raise
        self._sent(message)

    # -- bookkeeping --------------------------------------------------------------------------

    @_quietly
    def _received(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.disconnect" and not self.read_all and not self.ex.finished:
            # An upload given up: what arrived is the request body, sending ended here, and
            # whatever the application answers next reaches nobody.
            self.cut = True
            if self.ex.t_response is None:
                self.ex.t_send_end = now()
            if self.ex.error is None:
                self.ex.error = ConnectionResetError(_CUT_UPLOAD)
            return
        if kind != "http.request" or self.ex.finished:
            return
        body = message.get("body") or b""
        limit = self.ex.body_limit
        if self.upload is not None and body:
            room = len(body) if limit is None else limit - self.upload_size
            if room > 0:  # past the limit, only the size is counted
                self.upload.append(bytes(body[:room]))
        self.upload_size += len(body)
        if message.get("more_body", False):
            return
        self.read_all = True
        ex = self.ex
        if not self.upload_size:  # no body: the request was whole when the server called the app
            ex.t_send_end = ex.t_start
        elif ex.t_response is None:  # (read after the response started: no phase to end)
            ex.t_send_end = now()

    @_quietly
    def _sending(self, message: Message) -> None:
        ex = self.ex
        if ex.finished:
            return
        kind = message.get("type")
        if kind == "http.response.start":
            ex.status = int(message["status"])
            ex.reason = _reason(ex.status)
            ex.response_headers = [(_text(n), _text(v)) for n, v in message.get("headers", ())]
            self.decoder = _decoder(ex.response_headers)
        elif kind == "http.response.body" and ex.method != "HEAD":
            # (the server drops what an application sends in answer to HEAD: no body went out)
            body = message.get("body") or b""
            self.wire_size += len(body)
            if self.intact:
                self._keep(body, last=not message.get("more_body", False))

    def _keep(self, body: bytes, last: bool) -> None:
        decoder = self.decoder
        if decoder is None:
            self.ex.add_response_chunk(body)
            return
        try:
            self.ex.add_response_chunk(decoder.decompress(body))
            if last:
                self.ex.add_response_chunk(decoder.flush())
        except zlib.error:  # not what Content-Encoding said: the decoded body is unknown
            self.decoder = None
            self.intact = False

    @_quietly
    def _sent(self, message: Message) -> None:
        ex = self.ex
        if ex.finished:
            return
        kind = message.get("type")
        if kind == "http.response.start":
            ex.t_response = now()
        elif kind == "http.response.body" and not message.get("more_body", False):
            ex.t_end = now()
            ex.body_complete = self.intact
            ex.response_wire_size = self.wire_size
            self.body_done = True
            if ex.status < 500:
                self._finish()
        elif kind == "http.response.pathsend":  # the server sends a file: bytes unseen
            ex.t_end = now()
            self._finish()

    @_quietly
    def _failed(self, exc: BaseException) -> None:
        """The server refused a message (the client went away)."""
        if not self.ex.finished:
            self.ex.error = exc
            self.ex.body_complete = False
            self._finish()

    @_quietly
    def returned(self, exc: Optional[BaseException]) -> None:
        """The application returned, or raised ``exc``."""
        self.answered = True
        ex = self.ex
        if ex.finished:
            return
        if exc is not None:
            ex.error = exc
        if ex.t_response is None:  # nothing sent: the server answers 500 itself
            ex.t_response = ex.t_end = now()
            ex.status, ex.reason = _SERVER_ERROR
            ex.response_headers = []
            if exc is None:
                ex.error = RuntimeError("the application returned without sending a response")
        self._finish()

    def _finish(self) -> None:
        ex = self.ex
        # Only a body the application read to its end, or all there was of one the client gave
        # up; else its Content-Length tells its size.
        if self.upload is not None and (self.read_all or self.cut):
            ex.request_body = b"".join(self.upload)
            ex.request_size = self.upload_size  # all of it, kept or not
        self.upload = None
        pipeline.finish(ex)


_CUT_UPLOAD = "the client closed the connection before its request body ended"


def _decoder(headers: List[Any]) -> Any:
    """A zlib decompressor for a gzip or deflate body, else ``None`` (recorded as sent)."""
    for name, value in headers:
        if name.lower() == "content-encoding":
            coding = value.strip().lower()
            if coding in ("gzip", "x-gzip"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if coding == "deflate":
                return zlib.decompressobj(zlib.MAX_WBITS)
            return None
    return None


@functools.lru_cache(maxsize=64)
def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

