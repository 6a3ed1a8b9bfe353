"""Recording for ``httpx`` (``Client``, ``AsyncClient`` and the module-level helpers).

Where the facts are, and so what is hooked (class-level ``wrapt`` patches, all undone exactly
when the last recorder stops):

* ``Client._send_single_request`` and ``AsyncClient._send_single_request`` run once per hop:
  httpx calls them for the first request, every redirect and every request of an auth flow,
  whatever the transport (the default one, a proxy, a mounted custom transport, ``MockTransport``
  or ``ASGITransport``). The module-level helpers (``httpx.get``...) use a ``Client``. The
  request there is final: ``request.headers.raw`` holds the headers httpx sends (with the
  defaults, cookies and auth it added), in order, duplicates kept.
* ``AsyncClient.request``, ``send`` and the verb methods (``get``...) are coroutine functions:
  calling one only creates a coroutine, which may run later in another task (``gather``,
  ``create_task``) whose stack no longer holds the caller. Their wrappers take the caller's
  frames when the coroutine is created and hand them to the hop through a context variable.
* httpcore's ``trace`` request extension gives the phases: ``connect_tcp`` (DNS inside it:
  httpcore resolves in its connect), ``start_tls``, ``send_request_headers``,
  ``send_request_body`` and ``receive_response_headers`` of HTTP/1.1 and HTTP/2 alike. For the
  hop, the request gets a copy of its extensions with harlem's trace callback, which calls the
  program's own callback (if any) exactly as httpcore would have; the program's dict is put back
  when the hop returns. Transports that do not trace (custom ones) give no connect/send marks:
  their time shows as ``wait``.
* The response's ``network_stream`` extension gives the server address and the local port.
* Bodies: the request body is ``request.content`` when httpx already holds it as bytes, else
  a tap on ``request.stream`` copies the chunks as the transport sends them. The response's
  ``stream`` gets a tap that passes every raw chunk on unchanged, at the same pace, counting
  the wire bytes; its content decoder gets one that copies the decoded bytes, so ``read()``,
  ``iter_bytes``, ``iter_text``, ``iter_lines`` and their async twins are all seen once. The
  exchange ends when the body ends, fails, or the response is closed before its end.

Nothing here may change what the program sees: wrappers return what httpx returned and
re-raise what it raised (bare ``raise``), and harlem's own bookkeeping runs inside
:func:`_quietly`, which turns its failures into a one-time warning.
"""

from __future__ import annotations

import contextvars
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

from .. import pipeline
from .._warn import quietly, warn_once
from ..capture import Exchange, capture_frames, now, register_library_package
from .base import HarRecorder

__all__ = ["HttpxHarRecorder"]

LIBRARY = "httpx"

#: Packages whose frames may sit between the program and the hook: hidden from ``_initiator``
#: (``contextlib``: ``client.stream(...)`` is a context manager).
_LIBRARY_PACKAGES = ("httpx", "httpcore", "h11", "h2", "anyio", "sniffio", "wrapt", "contextlib")
#: The ``AsyncClient`` coroutine functions a program calls (see :func:`_async_call`).
_ASYNC_ENTRY_POINTS = ("request", "send", "get", "options", "head", "post", "put", "patch",
                       "delete")


class HttpxHarRecorder(HarRecorder):
    """Records every HTTP exchange made with httpx (one entry per redirect hop)."""

    library = LIBRARY
    module_name = "httpx"

    @classmethod
    def _instrument(cls) -> None:
        import httpx

        if not _supported(httpx):
            warn_once("httpx-version", f"httpx {getattr(httpx, '__version__', '?')} is not "
                                       "supported (0.23 or newer is): it is not recorded")
            return
        for name in _LIBRARY_PACKAGES:  # (imported or not yet: anyio may come after httpx)
            register_library_package(name)
        _bind(httpx)
        cls._wrap_all([(httpx.Client, "_send_single_request", _send),
                       (httpx.AsyncClient, "_send_single_request", _send_async)]
                      + [(httpx.AsyncClient, name, _async_call) for name in _ASYNC_ENTRY_POINTS])


# --- guarding harlem's own work -------------------------------------------------------------


_quietly = quietly("httpx")


# --- httpx 0.23 .. 0.28 differences, in one place ------------------------------------------
#
# Common to all of them: ``Client/AsyncClient._send_single_request(request)``,
# ``Request.extensions/stream/headers.raw`` (and ``_content`` once read),
# ``Response.stream/extensions/headers.raw/http_version/_get_content_decoder`` (which caches
# the decoder in ``_decoder``), ``SyncByteStream``/``AsyncByteStream`` and httpcore's ``trace``
# extension with ``network_stream`` in the response extensions (httpcore 0.15+).

#: httpx's ``http_version`` -> HAR's spelling (as browsers write it).
_HTTP_VERSIONS = {"HTTP/2": "http/2.0", "HTTP/2.0": "http/2.0", "HTTP/3": "http/3.0"}


def _supported(httpx: Any) -> bool:
    return all(hasattr(cls, "_send_single_request") for cls in (httpx.Client, httpx.AsyncClient)) \
        and hasattr(httpx.Response, "_get_content_decoder")


def _held_content(message: Any) -> Optional[bytes]:
    """The body httpx already holds as bytes (request or response), else ``None``."""
    content = message.__dict__.get("_content")
    return content if isinstance(content, bytes) else None


def _content_decoder(response: Any) -> Any:
    """The response's content decoder, or ``None`` when no Content-Encoding applies."""
    decoder = response._get_content_decoder()
    return None if isinstance(decoder, _IDENTITY[0]) else decoder


def _network_stream(response: Any) -> Any:
    return response.extensions.get("network_stream")


# --- taps: byte streams that pass another's chunks through and report them ------------------


class _Tap:
    """Passes ``inner``'s chunks on unchanged, one by one as they come, reporting each to ``hop``.

    Nothing is read ahead. ``upload`` says which body it follows: the request's (reported to
    the hop as sent bytes) or the response's (received bytes).
    """

    def __init__(self, inner: Any, hop: "_Hop", upload: bool):
        self.inner = inner
        self.hop = hop
        self.upload = upload


class _SyncTap(_Tap):
    def __iter__(self) -> Iterator[bytes]:
        hop, upload = self.hop, self.upload
        try:
            for chunk in self.inner:
                hop.chunk(chunk, upload)
                yield chunk
        except GeneratorExit:  # closed before its end: dropped unclosed, or cut off
            hop.closed(upload)
            raise
        except BaseException as exc:
            hop.fail(exc, upload)
            raise
        hop.end(upload)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.hop.closed(self.upload)


class _AsyncTap(_Tap):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        hop, upload = self.hop, self.upload
        try:
            async for chunk in self.inner:
                hop.chunk(chunk, upload)
                yield chunk
        except GeneratorExit:  # closed before its end: dropped unclosed, or cut off
            hop.closed(upload)
            raise
        except BaseException as exc:
            hop.fail(exc, upload)
            raise
        hop.end(upload)

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.hop.closed(self.upload)


#: ``is_async`` -> (httpx's byte stream base class, the tap class deriving from it). httpx and
#: its transports check a stream's type, so the taps are made subclasses of the httpx in use.
_STREAMS: Dict[bool, Tuple[type, type]] = {}
#: httpx's decoder class for bodies without a Content-Encoding.
_IDENTITY: List[type] = []


def _bind(httpx: Any) -> None:
    """Make the classes that depend on the httpx in use (once)."""
    if _STREAMS:
        return
    import httpx._decoders

    _STREAMS[False] = (httpx.SyncByteStream,
                       type("HarlemSyncTap", (_SyncTap, httpx.SyncByteStream), {}))
    _STREAMS[True] = (httpx.AsyncByteStream,
                      type("HarlemAsyncTap", (_AsyncTap, httpx.AsyncByteStream), {}))
    _IDENTITY.append(httpx._decoders.IdentityDecoder)


class _DecoderTap:
    """Stands in for the response's content decoder, copying what it decodes for ``hop``."""

    __slots__ = ("inner", "hop")

    def __init__(self, inner: Any, hop: "_Hop"):
        self.inner = inner
        self.hop = hop

    def decode(self, data: bytes) -> bytes:
        try:
            decoded = self.inner.decode(data)
        except BaseException as exc:
            self.hop.fail(exc, False)
            raise
        self.hop.decoded(decoded, False)
        return decoded

    def flush(self) -> bytes:
        try:
            decoded = self.inner.flush()
        except BaseException as exc:
            self.hop.fail(exc, False)
            raise
        self.hop.decoded(decoded, True)
        return decoded


# --- the trace extension ---------------------------------------------------------------------

#: httpcore trace event (without its ``connection.``/``http11.``/``http2.``/``proxy.`` prefix)
#: -> the Exchange field it stamps. Later events overwrite earlier ones (a proxy tunnel's
#: CONNECT comes first, the real request last), except where :data:`_FIRST_ONLY` says.
_TRACE_MARKS = {
    "connect_tcp.started": "t_connect_start",
    "connect_unix_socket.started": "t_connect_start",
    "connect_tcp.complete": "t_connect_end",
    "connect_unix_socket.complete": "t_connect_end",
    "start_tls.started": "t_tls_start",
    "start_tls.complete": "t_connect_end",
    "send_request_headers.started": "t_send_start",
    "send_request_body.complete": "t_send_end",
    "send_request_body.failed": "t_send_end",  # the server answered before taking it all
    "receive_response_headers.complete": "t_response",
}
_FIRST_ONLY = frozenset({"t_connect_start", "t_tls_start"})


class _Tracer:
    """harlem's ``trace`` callback for one hop, in front of the program's own one (``user``).

    It returns what the program's callback returns, so httpcore treats that callback exactly as
    before (including its checks that async clients get coroutines); without one, an async
    client gets an empty coroutine to await.
    """

    __slots__ = ("hop", "user", "is_async")

    def __init__(self, hop: "_Hop", user: Any, is_async: bool):
        self.hop = hop
        self.user = user
        self.is_async = is_async

    def __call__(self, name: str, info: dict) -> Any:
        self.hop.event(name, info)
        if self.user is not None:
            return self.user(name, info)
        return _nothing() if self.is_async else None


async def _nothing() -> None:
    return None


# --- one hop -------------------------------------------------------------------------------


class _Hop:
    """One ``_send_single_request`` call: its exchange and the state of its bodies."""

    __slots__ = ("ex", "request", "extensions", "upload", "upload_size", "identity", "decoding",
                 "raw_size", "raw_done")

    def __init__(self, ex: Exchange, request: Any):
        self.ex = ex
        self.request = request
        #: The program's own extensions dict, put back on the request when the hop returns.
        self.extensions: Any = None
        #: Request body chunks copied as sent (None: not followed, or past ``body_limit``).
        self.upload: Optional[List[bytes]] = None
        self.upload_size = 0
        #: True when no Content-Encoding applies: the raw bytes are the body.
        self.identity = True
        #: True once the program reads decoded bytes (through the content decoder).
        self.decoding = False
        self.raw_size = 0
        self.raw_done = False

    # -- the request --------------------------------------------------------------------

    @_quietly
    def start(self, is_async: bool) -> None:
        request, ex = self.request, self.ex
        ex.request_headers = list(request.headers.raw)  # bytes: the builder decodes them
        body = _held_content(request)
        if body is not None:
            ex.request_body = body
        else:
            stream = request.stream
            base, tap = _STREAMS[is_async]
            if isinstance(stream, base):  # else httpx itself reports the mismatch
                self.upload = []
                request.stream = tap(stream, self, True)
        extensions = self.extensions = request.extensions
        user = extensions.get("trace")
        if isinstance(user, _Tracer):
            # The same request sent again while a hop runs: what the program had is what that
            # hop keeps to give back, whichever of the two ends first.
            if user.hop.extensions is not None:
                self.extensions = user.hop.extensions
            user = user.user
        request.extensions = {**extensions, "trace": _Tracer(self, user, is_async)}

    def restore(self) -> None:
        """Give the program its request back as it was (extensions, stream)."""
        request = self.request
        if self.extensions is not None:
            request.extensions = self.extensions
        stream = request.__dict__.get("stream")
        if isinstance(stream, _Tap) and stream.hop is self:
            request.stream = stream.inner
        self._take_upload()

    def _take_upload(self) -> None:
        if self.upload is not None:
            self.ex.request_body = b"".join(self.upload)
            self.upload = None

    @_quietly
    def event(self, name: str, info: dict) -> None:
        field = _TRACE_MARKS.get(name.partition(".")[2])
        if field is None:
            return
        ex = self.ex
        if field in _FIRST_ONLY and getattr(ex, field) is not None:
            return
        setattr(ex, field, now())
        if field == "t_connect_end":  # read now: a failed hop's connection is closed at the end
            _note_addresses(ex, info.get("return_value"))

    # -- the response -------------------------------------------------------------------

    @_quietly
    def responded(self, response: Any, is_async: bool) -> None:
        """Status and headers are in; follow the body (or take it, when already read)."""
        ex = self.ex
        if ex.t_response is None:  # a transport that does not trace
            ex.t_response = now()
        ex.status = int(response.status_code)
        ex.reason = str(response.reason_phrase or "")
        version = str(response.http_version or "HTTP/1.1")
        ex.http_version = _HTTP_VERSIONS.get(version, version)
        ex.response_headers = list(response.headers.raw)
        _note_addresses(ex, _network_stream(response))  # also for a reused connection
        content = _held_content(response)
        if content is not None:  # the transport's response came with its body read
            ex.add_response_chunk(content)
            ex.response_wire_size = getattr(response, "num_bytes_downloaded", 0) or None
            self._finish(complete=True)
            return
        decoder = _content_decoder(response)
        if decoder is not None:
            self.identity = False
            response._decoder = _DecoderTap(decoder, self)
        response.stream = _STREAMS[is_async][1](response.stream, self, False)

    @_quietly
    def chunk(self, data: bytes, upload: bool) -> None:
        if self.ex.finished:  # the builder may be reading it: hands off
            return
        size = len(data)
        if upload:
            kept = self.upload
            if kept is None:
                return
            self.upload_size += size
            limit = self.ex.body_limit
            if limit is not None and self.upload_size > limit:
                self.upload = None  # bodySize then falls back on Content-Length
            else:
                kept.append(bytes(data))
            return
        self.raw_size += size
        if self.identity:
            self.ex.add_response_chunk(data)

    @_quietly
    def decoded(self, data: bytes, last: bool) -> None:
        if self.ex.finished:
            return
        self.decoding = True
        self.ex.add_response_chunk(data)
        if last and self.raw_done:
            self._finish(complete=True)

    @_quietly
    def end(self, upload: bool) -> None:
        if upload:
            return
        self.raw_done = True
        self.ex.t_end = now()
        # With a content decoder in use, httpx flushes it after the raw stream ends: the body
        # is complete once the flushed bytes are in (see ``decoded``).
        if not self.decoding:
            self._finish(complete=True)

    @_quietly
    def closed(self, upload: bool) -> None:
        if not upload and not (self.raw_done and self.decoding):
            self._finish(complete=self.raw_done)

    @_quietly
    def fail(self, exc: BaseException, upload: bool) -> None:
        if self.ex.finished:  # (a stream closed late, its closing cancelled: not a failure)
            return
        if not upload:  # a failed upload fails the hop, which reports it in ``failed``
            self.ex.error = exc
            self._finish(complete=False)

    @_quietly
    def failed(self, exc: BaseException) -> None:
        """The hop raised before a response: what the program sees raised."""
        if _is_test_client_upgrade(exc):
            pipeline.abandon(self.ex)
            return
        # No response reached the client: a "response" traced meanwhile was a proxy's answer
        # to CONNECT (httpcore traces the tunnel with this request's callbacks).
        self.ex.t_response = None
        self.ex.error = exc
        self._finish(complete=False)

    def _finish(self, complete: bool) -> None:
        ex = self.ex
        if ex.finished:
            return
        self._take_upload()
        if complete:
            # An encoded body read with ``iter_raw`` only: its decoding is unknown, its size on
            # the wire is not. No bytes at all (HEAD, 204, Content-Length: 0 under a
            # Content-Encoding) decode to nothing, whichever way they were read.
            ex.body_complete = self.identity or self.decoding \
                or (self.raw_done and self.raw_size == 0)
            if self.raw_done:
                ex.response_wire_size = self.raw_size
        pipeline.finish(ex)


def _note_addresses(ex: Exchange, stream: Any) -> None:
    if stream is None:
        return
    try:
        server = stream.get_extra_info("server_addr")
        client = stream.get_extra_info("client_addr")
    except OSError:  # the connection is already closed
        return
    if isinstance(server, tuple):  # (host, port) or IPv6's (host, port, flowinfo, scope_id)
        ex.server_ip, ex.server_port = str(server[0]), int(server[1])
    if isinstance(client, tuple):
        ex.local_port = int(client[1])


@_quietly
def _begin(client: Any, args: tuple, kwargs: dict, is_async: bool) -> Optional[_Hop]:
    request = args[0] if args else kwargs["request"]
    if not request.url.is_absolute_url:
        # "/users" from a client without base_url: httpx's own transports refuse it before
        # anything is sent, and HAR has no way to write a URL without scheme and host.
        return None
    ex = pipeline.begin(LIBRARY, str(request.method), str(request.url))
    if ex is None:
        return None
    caller = _caller.get() if is_async else None
    if caller is not None and caller[0] is client:
        ex.frames = caller[1]
    hop = _Hop(ex, request)
    hop.start(is_async)
    if request.url.scheme == "http":
        proxy = _forwarding_proxy(client, request.url)
        if proxy is not None:
            ex.absolute_target = True
            ex.request_headers = _as_forwarded(ex.request_headers or [],
                                               getattr(proxy, "_proxy_headers", None))
    return hop


def _forwarding_proxy(client: Any, url: Any) -> Any:
    """The HTTP proxy (httpcore's ``HTTPProxy`` pool) that a plain-HTTP request goes to, which
    forwards it: its request line then names the whole URL. Set with ``proxy=``, ``mounts=``,
    the environment or ``transport=HTTPTransport(proxy=...)``; None when there is none."""
    try:
        pool = getattr(client._transport_for_url(url), "_pool", None)
    except Exception:  # (a private name of httpx: at worst the request line is not counted)
        return None
    return pool if type(pool).__name__ in ("HTTPProxy", "AsyncHTTPProxy") else None


def _as_forwarded(headers: List[Tuple[bytes, bytes]],
                  proxy_headers: Any) -> List[Tuple[bytes, bytes]]:
    """The headers as they go to a forwarding proxy: httpcore puts the proxy's own
    (``Proxy-Authorization``, ``httpx.Proxy(headers=...)``) before the request's, unless the
    request has one of the same name, and h11 writes ``Host`` first."""
    if isinstance(proxy_headers, (list, tuple)) and proxy_headers:
        names = {name.lower() for name, _ in headers}
        headers = [(name, value) for name, value in proxy_headers
                   if name.lower() not in names] + list(headers)
    return ([item for item in headers if item[0].lower() == b"host"]
            + [item for item in headers if item[0].lower() != b"host"])


# --- the hooks -----------------------------------------------------------------------------


def _send(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not pipeline.is_recording(LIBRARY):
        return wrapped(*args, **kwargs)
    hop = _begin(instance, args, kwargs, False)
    if hop is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        _restore(hop)
        hop.failed(exc)
        raise
    _restore(hop)
    hop.responded(response, False)
    return response


def _send_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not pipeline.is_recording(LIBRARY):
        return wrapped(*args, **kwargs)
    return _recorded_send(wrapped, instance, args, kwargs)


async def _recorded_send(wrapped: Any, client: Any, args: tuple, kwargs: dict) -> Any:
    hop = _begin(client, args, kwargs, True)
    if hop is None:
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _restore(hop)
        hop.failed(exc)
        raise
    _restore(hop)
    hop.responded(response, True)
    return response


# A program that forgets to await reads "coroutine ... was never awaited" as without harlem.
_recorded_send.__name__ = "_send_single_request"
_recorded_send.__qualname__ = "AsyncClient._send_single_request"

#: ``(client, frames)``: the program's call of that client's method whose coroutine is running.
_caller: "contextvars.ContextVar[Optional[Tuple[Any, tuple]]]" = contextvars.ContextVar(
    "harlem_httpx_caller", default=None)


def _async_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    coroutine = wrapped(*args, **kwargs)
    caller = _caller.get()
    if (caller is not None and caller[0] is instance) or not pipeline.is_recording(LIBRARY):
        return coroutine  # called by httpx itself (``get`` -> ``request`` -> ``send``)
    frames = _caller_frames()
    if frames is None:
        return coroutine
    # httpx's coroutine is made again when the program awaits this one: one that is never
    # awaited then warns once, under the name of httpx's method, as without harlem. (Made here
    # first all the same, so that wrong arguments raise where the program called.)
    name = coroutine.__qualname__
    coroutine.close()  # never started: nothing ran, nothing warns
    outer = _with_caller((instance, frames), wrapped, args, kwargs)
    outer.__qualname__ = name  # type: ignore[attr-defined]
    return outer


@_quietly
def _caller_frames() -> tuple:
    return capture_frames(3)


async def _with_caller(caller: Tuple[Any, tuple], wrapped: Any, args: tuple,
                       kwargs: dict) -> Any:
    token = _caller.set(caller)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        try:
            _caller.reset(token)
        except ValueError:  # an abandoned coroutine closed by the garbage collector elsewhere
            pass


def _is_test_client_upgrade(exc: BaseException) -> bool:
    """Starlette's ``TestClient.websocket_connect`` ends its handshake request by raising
    ``_Upgrade`` with the WebSocket session: how it switches protocols, not a failure, and no
    HTTP exchange of the program (WebSocket traffic is not recorded)."""
    kind = type(exc)
    return kind.__name__ == "_Upgrade" and kind.__module__.startswith("starlette.")


@_quietly
def _restore(hop: _Hop) -> None:
    hop.restore()

