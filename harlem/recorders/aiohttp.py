"""Recording for the ``aiohttp`` client (``ClientSession`` and ``aiohttp.request``).

aiohttp follows redirects (and retries a request whose kept-alive connection died) inside one
``ClientSession._request`` call, so one call can be several exchanges: one per *hop*. What is
hooked, and why there (class-level ``wrapt`` patches, all undone exactly at the last stop):

* ``ClientSession._request`` runs synchronously in the program's own frame when it calls
  ``session.get(...)`` (the coroutine only runs later, maybe in another task), so the caller's
  frames are taken there. Its coroutine then runs with a :class:`_Call` in a context variable,
  and the session gets harlem's one :class:`aiohttp.TraceConfig` (removed again at stop).
* aiohttp's tracing hands every callback the trace context made for *this* request, even from
  the DNS task or the body-writer task: the context is the :class:`_Call`. The callbacks note
  the exchange's start, DNS, connection and reuse, the request headers exactly as written
  (aiohttp adds Host, Accept, User-Agent, Content-Length... itself), the request body chunks as
  written (multipart, JSON, generators alike), and the final failure.
* ``BaseConnector.connect`` runs once per attempt, with the request: each call after the first
  one of a ``_request`` call starts a new hop exchange.
* ``ClientResponse.start`` is where a hop's status line and headers arrive. The socket
  addresses are read just before (a response read whole during ``start`` already gave its
  connection back when ``start`` returns). The body reader it yields may already hold body
  bytes, or the whole body: those are taken as they are, and later ones are followed. While
  the hop is still connecting, ``start`` reads a proxy's answer to CONNECT instead: not an
  exchange, but the moment TLS starts through the tunnel.
* ``aiohappyeyeballs.start_connection`` (aiohttp >= 3.10) returns once TCP is connected: for a
  direct https hop, the TLS handshake starts then. Before 3.10 TCP and TLS are one step.
* ``http_parser.DeflateBuffer.feed_data`` (aiohttp < 3.13, which does not count them itself)
  receives the compressed body bytes: the body size on the wire.
* ``streams.StreamReader``: ``feed_data``/``feed_eof``/``set_exception`` are called by the
  network side with the decoded body, at the pace it arrives, whatever way the program reads
  it (``read``, ``text``, ``json``, ``iter_chunked``, ``iter_any``, line iteration). Only
  readers of recorded responses (in ``_readers``) are looked at; the rest pass straight on.
* ``ClientResponse.release``/``close`` before the end of the body: the program gave up the
  body, so the exchange ends with unknown sizes rather than the error aiohttp then puts in the
  reader.

Nothing here may change what the program sees: wrappers return what aiohttp returned and
re-raise what it raised (bare ``raise``), never wait, and harlem's own bookkeeping runs inside
:func:`_quietly`, which turns its failures into a one-time warning.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import pipeline
from .._warn import quietly
from ..capture import Exchange, capture_frames, now, register_library_path
from .base import HarRecorder

__all__ = ["AiohttpHarRecorder"]

LIBRARY = "aiohttp"



class AiohttpHarRecorder(HarRecorder):
    """Records every HTTP exchange made with aiohttp's client (one entry per redirect hop)."""

    library = LIBRARY
    module_name = "aiohttp"

    @classmethod
    def _instrument(cls) -> None:
        import aiohttp
        import wrapt
        from aiohttp import client_reqrep, connector, streams

        for module in (aiohttp, wrapt):
            register_library_path(module)
        _make_trace_config(aiohttp)
        response = client_reqrep.ClientResponse
        reader = streams.StreamReader
        patches: List[Tuple[Any, str, Any]] = [
            (aiohttp.ClientSession, "_request", _on_request),
            (connector.BaseConnector, "connect", _on_connect),
            (response, "start", _on_response_start),
            (response, "release", _on_release),
            (response, "close", _on_release),
            (reader, "feed_data", _on_feed_data),
            (reader, "feed_eof", _on_feed_eof),
            (reader, "set_exception", _on_set_exception),
        ] + _version_patches()
        cls._wrap_all(patches)

    @classmethod
    def _uninstrument(cls) -> None:
        super()._uninstrument()
        _let_go()


# --- guarding harlem's own work -------------------------------------------------------------


_quietly = quietly("aiohttp")


@_quietly
def _let_go() -> None:
    """After the last stop: sessions lose harlem's trace config, and nothing is held any more."""
    with _sessions_lock:
        sessions = list(_sessions)
        _sessions.clear()
    for session in sessions:
        configs = session._trace_configs
        if _trace_config in configs:
            session._trace_configs = [c for c in configs if c is not _trace_config]
    # Bodies still unread were exported as partial entries when the recorders detached;
    # finishing them only lets go of them (no recorder receives them any more).
    abandoned = list(_readers.values())
    _readers.clear()
    with _early_wire_lock:
        _early_wire.clear()
    for exchange in abandoned:
        _finish(exchange)


# --- aiohttp 3.8 .. 3.14 differences, in one place ------------------------------------------
#
# Everything else is common to all of them: ``ClientSession._request`` and ``_trace_configs``,
# the trace signals used here, ``BaseConnector.connect(req, traces, timeout)``,
# ``ClientResponse.start/release/close/raw_headers/content``, and ``StreamReader.feed_data/
# feed_eof/set_exception`` with its ``_buffer`` deque of fed, unread bytes.


def _version_patches() -> List[Tuple[Any, str, Any]]:
    from aiohttp import connector, http_parser, streams

    patches: List[Tuple[Any, str, Any]] = []
    if not hasattr(streams.StreamReader, "total_raw_bytes"):  # aiohttp < 3.13
        patches.append((http_parser.DeflateBuffer, "feed_data", _on_inflate))
    eyeballs = getattr(connector, "aiohappyeyeballs", None)
    if eyeballs is not None:
        patches.append((eyeballs, "start_connection", _on_tcp_connect))
    return patches


def _wire_size(reader: Any, hop: Exchange) -> int:
    """Body bytes as they came off the connection: compressed when aiohttp inflated them."""
    compressed = getattr(reader, "total_compressed_bytes", None)  # aiohttp >= 3.13
    if compressed is None:
        compressed = hop.response_wire_size  # counted by _on_inflate before 3.13
    return hop.response_size if compressed is None else compressed


def _on_inflate(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    _count_wire(instance, args[0] if args else kwargs.get("chunk", b""))
    return wrapped(*args, **kwargs)


#: Compressed bytes inflated into readers not known yet (aiohttp < 3.13): a small body is
#: often inflated whole before ``ClientResponse.start`` returns. Readers of 3.11 and 3.12 take
#: no weak references, so this holds them, and only the latest few (they are claimed at once).
_early_wire: Dict[Any, int] = {}
_early_wire_lock = threading.Lock()
_EARLY_WIRE_READERS = 64


@_quietly
def _count_wire(inflater: Any, chunk: bytes) -> None:
    out = inflater.out
    hop = _hop_of(out)
    if hop is not None:
        hop.response_wire_size = (hop.response_wire_size or 0) + len(chunk)
        return
    with _early_wire_lock:
        _early_wire[out] = _early_wire.get(out, 0) + len(chunk)
        if len(_early_wire) > _EARLY_WIRE_READERS:
            del _early_wire[next(iter(_early_wire))]


def _claim_early_wire(reader: Any) -> Optional[int]:
    if not _early_wire:
        return None
    with _early_wire_lock:
        return _early_wire.pop(reader, None)


# --- one ClientSession._request call -----------------------------------------------------------


class _Call:
    """What the hops of one ``ClientSession._request`` call share.

    It is the ``trace_config_ctx`` aiohttp gives harlem's trace callbacks, and the value of
    :data:`_current` while the call runs, so with many requests in flight each hook finds its
    own request's state, never a global "current" one.
    """

    __slots__ = ("frames", "hop", "connected", "tls_after")

    def __init__(self, frames: tuple):
        self.frames = frames
        #: The exchange of the hop in progress (None when recording stopped meanwhile).
        self.hop: Optional[Exchange] = None
        #: True once ``hop`` asked the connector for a connection: the next ask is a new hop.
        self.connected = False
        #: When ``hop``'s TLS handshake starts: after the TCP connection (``"tcp"``), after a
        #: proxy's answer to CONNECT (``"tunnel"``), or never (``None``: plain HTTP).
        self.tls_after: Optional[str] = None
        #: The hop whose request body outgrew ``body_limit`` and is no longer kept.


_current: "contextvars.ContextVar[Optional[_Call]]" = contextvars.ContextVar(
    "harlem_aiohttp_call", default=None)


def _on_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not pipeline.is_recording(LIBRARY):
        return wrapped(*args, **kwargs)
    call = _new_call(instance)
    if call is None:
        return wrapped(*args, **kwargs)
    return _recorded_request(call, wrapped, args, kwargs)


@_quietly
def _new_call(session: Any) -> _Call:
    call = _Call(capture_frames(4))  # past here, _quietly and _on_request: session.get's caller
    configs = session._trace_configs
    if _trace_config not in configs:
        with _sessions_lock:
            # A new list: the program's own list (trace_configs=[...]) is left untouched.
            session._trace_configs = [*configs, _trace_config]
            _sessions.add(session)
    return call


async def _recorded_request(call: _Call, wrapped: Any, args: tuple, kwargs: dict) -> Any:
    token = _current.set(call)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        try:
            _current.reset(token)
        except ValueError:  # an abandoned coroutine closed by the garbage collector elsewhere
            pass


# A program that forgets to await a request is warned "coroutine 'ClientSession._request' was
# never awaited": it should read the same while recording.
_recorded_request.__name__ = "_request"
_recorded_request.__qualname__ = "ClientSession._request"


def _begin(call: _Call, method: str, url: str) -> Optional[Exchange]:
    # every hop comes from the program's one call, whose frames were taken at its start
    return pipeline.begin(LIBRARY, method, url, frames=call.frames)


def _finish(exchange: Exchange) -> None:
    if isinstance(exchange.request_body, bytearray):
        exchange.request_body = bytes(exchange.request_body)
    pipeline.finish(exchange)


# --- the trace callbacks ---------------------------------------------------------------------

_trace_config: Any = None
_sessions: "weakref.WeakSet[Any]" = weakref.WeakSet()
_sessions_lock = threading.Lock()


def _call_of_this_task(trace_request_ctx: Any = None) -> Optional[_Call]:
    """The trace context factory: the recorded call running in this task, if any."""
    return _current.get()


def _make_trace_config(aiohttp: Any) -> None:
    global _trace_config
    if _trace_config is not None:
        return
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_call_of_this_task)
    for signal, handler in _TRACE_HANDLERS:
        getattr(config, signal).append(_trace_callback(handler))
    config.freeze()
    _trace_config = config


def _trace_callback(handler: Callable[[_Call, Any], None]) -> Callable[..., Any]:
    async def callback(session: Any, call: Optional[_Call], params: Any) -> None:
        if call is not None:  # None: a request that started while nothing recorded
            handler(call, params)

    return callback


@_quietly
def _request_started(call: _Call, params: Any) -> None:
    if call.hop is None:
        call.hop = _begin(call, params.method, str(params.url))


def _mark(*fields: str) -> Callable[[_Call, Any], None]:
    """A handler that stamps ``fields`` of the hop's exchange with the time of the event."""

    def mark(call: _Call, params: Any) -> None:
        hop = call.hop
        if hop is not None:
            moment = now()
            for field in fields:
                setattr(hop, field, moment)

    mark.__name__ = "mark_" + "_".join(fields)
    return _quietly(mark)


@_quietly
def _headers_sent(call: _Call, params: Any) -> None:
    hop = call.hop
    if hop is None:
        return
    hop.method = str(params.method)
    hop.url = str(params.url)
    hop.request_headers = [(str(name), str(value)) for name, value in params.headers.items()]
    moment = now()
    if hop.t_send_start is None:
        hop.t_send_start = moment
    hop.t_send_end = moment


@_quietly
def _chunk_sent(call: _Call, params: Any) -> None:
    hop = call.hop
    if hop is None or hop.finished:
        return
    if hop.t_response is None:  # body still going out once the answer came: send ended there
        hop.t_send_end = now()
    chunk = params.chunk
    hop.request_size = (hop.request_size or 0) + len(chunk)  # the true size, kept or not
    body = hop.request_body
    if body is None:
        # Grown in place (a long upload comes in many chunks); _finish makes it bytes.
        body = hop.request_body = bytearray()  # type: ignore[assignment]
    room = hop.body_limit - len(body) if hop.body_limit is not None else len(chunk)
    if room > 0:
        body += chunk[:room]


@_quietly
def _ended(call: _Call, params: Any) -> None:
    # Only when recording stopped while the request waited for its answer (ClientResponse.start
    # was no longer watched): end the exchange so that nothing keeps it.
    hop = call.hop
    if hop is not None and not hop.finished and hop.t_response is None:
        _finish(hop)


@_quietly
def _failed(call: _Call, params: Any) -> None:
    hop = call.hop
    if hop is not None and not hop.finished:
        hop.error = params.exception  # what the program sees raised
        _finish(hop)


_TRACE_HANDLERS: Tuple[Tuple[str, Callable[[_Call, Any], None]], ...] = (
    ("on_request_start", _request_started),
    ("on_dns_resolvehost_start", _mark("t_dns_start")),
    ("on_dns_resolvehost_end", _mark("t_dns_end")),
    ("on_connection_create_start", _mark("t_connect_start")),
    ("on_connection_create_end", _mark("t_connect_end", "t_send_start")),
    ("on_connection_reuseconn", _mark("t_send_start")),
    ("on_request_headers_sent", _headers_sent),
    ("on_request_chunk_sent", _chunk_sent),
    ("on_request_end", _ended),
    ("on_request_exception", _failed),
)


# --- hops: BaseConnector.connect and the TCP connection -------------------------------------


def _on_connect(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    call = _current.get()
    if call is not None:
        _attempt(call, args[0] if args else kwargs.get("req"))
    return wrapped(*args, **kwargs)


#: What a hop that aiohttp retried on a new connection failed with, when nothing said.
_RETRIED = "the connection was lost; aiohttp sent the request again on a new connection"


@_quietly
def _attempt(call: _Call, request: Any) -> None:
    """A hop asks for a connection: the first hop's exchange exists already, others begin."""
    hop = call.hop
    if hop is None or call.connected:
        if hop is not None and not hop.finished and hop.t_response is None:
            # A retry (aiohttp resends an idempotent request when a kept-alive connection
            # turns out dead): the lost attempt was an exchange of its own.
            if hop.error is None:
                hop.error = ConnectionError(_RETRIED)
            _finish(hop)
        hop = call.hop = _begin(call, str(request.method), str(request.url))
    else:
        hop.method, hop.url = str(request.method), str(request.url)
    call.connected = True
    call.tls_after = ("tunnel" if request.proxy else "tcp") if request.is_ssl() else None


def _on_tcp_connect(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    call = _current.get()
    if call is None or call.hop is None or call.tls_after != "tcp":
        return wrapped(*args, **kwargs)
    return _tls_starts_after(call.hop, wrapped(*args, **kwargs))


async def _tls_starts_after(hop: Exchange, step: Any) -> Any:
    """Await a connecting ``step`` (TCP connect, proxy tunnel); the TLS handshake comes next."""
    result = await step
    hop.t_tls_start = now()
    return result


# --- the response: ClientResponse.start/release/close ---------------------------------------


def _on_response_start(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    call = _current.get()
    hop = call.hop if call is not None else None
    if call is None or hop is None or hop.finished:
        return wrapped(*args, **kwargs)
    if hop.t_connect_start is not None and hop.t_connect_end is None:
        # Still connecting: this is a proxy's answer to CONNECT, not the hop's response.
        if call.tls_after != "tunnel":
            return wrapped(*args, **kwargs)
        return _tls_starts_after(hop, wrapped(*args, **kwargs))
    _note_addresses(hop, args[0] if args else kwargs.get("connection"))
    return _watch_start(hop, wrapped, args, kwargs)


async def _watch_start(hop: Exchange, wrapped: Any, args: tuple, kwargs: dict) -> Any:
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        hop.error = exc  # ends the hop if aiohttp retries; else the final failure replaces it
        raise
    _response_started(hop, response)
    return response


@_quietly
def _note_addresses(hop: Exchange, connection: Any) -> None:
    transport = connection.transport if connection is not None else None
    if transport is None:
        return
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple):  # (host, port) or IPv6's (host, port, flowinfo, scope_id)
        hop.server_ip, hop.server_port = str(peer[0]), int(peer[1])
    local = transport.get_extra_info("sockname")
    if isinstance(local, tuple):
        hop.local_port = int(local[1])


@_quietly
def _response_started(hop: Exchange, response: Any) -> None:
    moment = hop.t_response = now()
    if hop.t_send_end is None:
        hop.t_send_end = moment
    if hop.t_send_start is None:
        hop.t_send_start = hop.t_send_end
    version = response.version
    if version is not None:
        hop.http_version = f"HTTP/{version.major}.{version.minor}"
    hop.status = int(response.status)
    hop.reason = str(response.reason or "")
    hop.response_headers = list(response.raw_headers)  # bytes: the builder decodes them
    reader = response.content
    if hop.status == 101:  # switching protocols: no body, the connection now carries another
        _end_body(hop, reader, complete=True)
        return
    # What arrived with the headers was fed before the reader became known here: take it as
    # it stands (nothing has read from it yet), then follow the rest.
    for chunk in getattr(reader, "_buffer", ()):
        hop.add_response_chunk(chunk)
    hop.response_wire_size = _claim_early_wire(reader)
    error = reader.exception()
    if error is not None:
        _end_body(hop, reader, error=error)
    elif reader.is_eof():
        _end_body(hop, reader, complete=True)
    else:
        _readers[reader] = hop


def _on_release(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if _readers:
        reader = getattr(instance, "content", None)
        hop = _take(reader)
        if hop is not None:
            _end_body(hop, reader)  # given up before the end of the body: sizes unknown
    return wrapped(*args, **kwargs)


# --- the body: streams.StreamReader ----------------------------------------------------------

#: Readers of recorded responses whose body has not ended, and their exchange. Plain keys:
#: aiohttp 3.14 readers take no weak references; entries leave when the body ends.
_readers: Dict[Any, Exchange] = {}


def _hop_of(reader: Any) -> Optional[Exchange]:
    if not _readers:
        return None
    try:
        return _readers.get(reader)
    except TypeError:  # an unhashable reader class: never registered
        return None


def _take(reader: Any) -> Optional[Exchange]:
    if not _readers:
        return None
    try:
        hop = _readers.pop(reader, None)
    except TypeError:
        return None
    return hop if hop is not None and not hop.finished else None


def _on_feed_data(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    hop = _hop_of(instance)
    if hop is not None:
        _keep(hop, instance, args[0] if args else kwargs.get("data", b""))
    return result


@_quietly
def _keep(hop: Exchange, reader: Any, data: bytes) -> None:
    if hop.finished:  # ended by a failure elsewhere: forget the reader
        _readers.pop(reader, None)
        return
    hop.add_response_chunk(data)


def _on_feed_eof(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    hop = _take(instance)
    if hop is not None:
        _end_body(hop, instance, complete=True)
    return wrapped(*args, **kwargs)


def _on_set_exception(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    hop = _take(instance)
    if hop is not None:
        _end_body(hop, instance, error=args[0] if args else kwargs.get("exc"))
    return wrapped(*args, **kwargs)


@_quietly
def _end_body(hop: Exchange, reader: Any, complete: bool = False,
              error: Optional[BaseException] = None) -> None:
    """Finish the exchange: body read to the end (``complete``), failed (``error``) or given up."""
    if hop.finished:
        return
    if error is not None:
        hop.error = error
    elif complete:
        hop.body_complete = True
        hop.response_wire_size = _wire_size(reader, hop)
    _finish(hop)
