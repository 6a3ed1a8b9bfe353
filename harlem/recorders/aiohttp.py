"""Recording for the ``aiohttp`` client (``ClientSession`` and ``aiohttp.request``).

aiohttp follows redirects (and retries a request whose kept-alive connection died) inside one
``ClientSession._request`` call, so one call can be several exchanges: one per *hop*. What is
hooked, and why there (class-level ``wrapt`` patches, all undone exactly at the last stop):

* ``ClientSession._request`` runs synchronously in the program's own frame when it calls
  ``session.get(...)`` (the coroutine only runs later, maybe in another task), so the caller's
  frames are taken there. Its coroutine then runs with a :class:`_Call` in a context variable,
  which every hook below reads, even from the DNS task or the body-writer task (tasks copy the
  context): with many requests in flight, each hook finds its own request's state. The
  coroutine's end is the call's end: the failure the program sees is the last hop's error.
* ``BaseConnector.connect`` runs once per attempt, with the request: the first call begins the
  first hop's exchange (timed from the coroutine's start), each later one a new hop.
* ``_create_connection`` of the TCP, Unix and named-pipe connectors runs only for a new
  connection (the connect phase; a reused connection has none), and the resolvers' ``resolve``
  only for a real name resolution (not for an IP address or a cached name).
* ``ClientRequest.write_bytes``: the hop's body is about to be written (aiohttp 3.13 and later
  call it only for a request with a body, older versions for every request). The writer's chunk
  callback is chained there, so that the body is seen as written (JSON, multipart, files,
  generators alike).
* ``ClientResponse.start`` is where a hop's status line and headers arrive. It is called once
  the request has gone out: its headers are then final (aiohttp adds Host, Accept, User-Agent,
  Content-Length... itself), and the socket addresses are read just before (a response read
  whole during ``start`` already gave its connection back when ``start`` returns). The body
  reader it yields may already hold body bytes, or the whole body: those are taken as they
  are, and later ones are followed. While the hop is still connecting, ``start`` reads a
  proxy's answer to CONNECT instead: not an exchange, but the moment TLS starts through the
  tunnel.
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

These last two are patched only once a body outlives its ``start`` (``_follow_bodies``): most
bodies arrive with their headers, and the readers' methods run for every response.

aiohttp's own tracing (``TraceConfig``) would say most of this, but a session with any trace
config pays for it on every request (a trace object, a parameters object and a coroutine per
signal): about a fifth of what an unrecorded keep-alive GET costs. These hooks cost nothing for
what they do not watch, and the program's own trace configs are left alone.

Nothing here may change what the program sees: wrappers return what aiohttp returned and
re-raise what it raised (bare ``raise``), never wait, and harlem's own bookkeeping runs inside
:func:`_quietly`, which turns its failures into a one-time warning.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import pipeline
from .._warn import quietly
from ..capture import Exchange, capture_frames, content_encoded, now, register_library_path
from .base import HarRecorder, _patch_lock

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
        from aiohttp import client_reqrep, connector, resolver

        for module in (aiohttp, wrapt):
            register_library_path(module)
        patches: List[Tuple[Any, str, Any]] = [
            (aiohttp.ClientSession, "_request", _on_request),
            (connector.BaseConnector, "connect", _on_connect),
            (client_reqrep.ClientRequest, "write_bytes", _on_write_bytes),
            (client_reqrep.ClientResponse, "start", _on_response_start),
        ]
        # What connects and resolves (not timed for a connector or resolver of the program's
        # own that replaces these methods without calling them)
        patches += [(owner, "_create_connection", _on_create_connection)
                    for owner in (connector.TCPConnector, connector.UnixConnector,
                                  getattr(connector, "NamedPipeConnector", None))
                    if owner is not None and "_create_connection" in vars(owner)]
        patches += [(owner, "resolve", _on_resolve)
                    for owner in (resolver.ThreadedResolver, resolver.AsyncResolver)]
        cls._wrap_all(patches + _version_patches())

    @classmethod
    def _uninstrument(cls) -> None:
        global _following
        super()._uninstrument()
        _following = False
        _let_go()

    @classmethod
    def _follow_bodies(cls) -> None:
        """Watch body readers from now on: a response's body outlived its ``start``.

        Most bodies arrive with their headers and are whole when ``start`` returns; until one
        does not, the readers' methods stay unpatched, and requests do not pay five wrapped
        calls each (about 27 000 instructions in wrapt alone, 7 % of an unrecorded keep-alive
        GET). Installed from within ``start``, before the rest of that body can be fed;
        removed with the other patches at the last stop.
        """
        global _following
        from aiohttp import client_reqrep, streams

        response = client_reqrep.ClientResponse
        reader = streams.StreamReader
        with _patch_lock:  # event loops in two threads may both get here first
            if _following:
                return
            _following = cls._wrap_more([
                (response, "release", _on_release),
                (response, "close", _on_release),
                (reader, "feed_data", _on_feed_data),
                (reader, "feed_eof", _on_feed_eof),
                (reader, "set_exception", _on_set_exception),
            ])


#: True once the body readers' methods are patched (see ``_follow_bodies``).
_following = False


# --- guarding harlem's own work -------------------------------------------------------------


_quietly = quietly("aiohttp")


@_quietly
def _let_go() -> None:
    """After the last stop: nothing is held any more."""
    # Bodies still unread were exported as partial entries when the recorders detached;
    # finishing them only lets go of them (no recorder receives them any more).
    abandoned = [hop for _, hop in _readers.values()]
    _readers.clear()
    _encoded.clear()
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
    """What the hops of one ``ClientSession._request`` call share: the value of
    :data:`_current` while the call runs, never a global "current" request."""

    __slots__ = ("frames", "t_start", "wall_start", "hop", "request", "tls_after", "decoded")

    def __init__(self, frames: tuple, decoded: bool):
        self.frames = frames
        #: False when aiohttp hands the program bodies still content-encoded
        #: (``auto_decompress=False``): their decoded size is then unknown.
        self.decoded = decoded
        #: When the coroutine started running (``now()`` and ``time.time()``): the first hop's
        #: start, although its exchange begins only when it asks for a connection.
        self.t_start = 0.0
        self.wall_start = 0.0
        #: The hop's ``ClientRequest``, known once it asks for a connection.
        self.request: Any = None
        #: The exchange of the hop in progress (None when recording stopped meanwhile).
        self.hop: Optional[Exchange] = None
        #: When ``hop``'s TLS handshake starts: after the TCP connection (``"tcp"``), after a
        #: proxy's answer to CONNECT (``"tunnel"``), or never (``None``: plain HTTP).
        self.tls_after: Optional[str] = None


_current: "contextvars.ContextVar[Optional[_Call]]" = contextvars.ContextVar(
    "harlem_aiohttp_call", default=None)


def _on_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not pipeline.is_recording(LIBRARY):
        return wrapped(*args, **kwargs)
    call = _new_call(instance, kwargs.get("auto_decompress"))
    if call is None:
        return wrapped(*args, **kwargs)
    return _recorded_request(call, wrapped, args, kwargs)


@_quietly
def _new_call(session: Any, decoded: Optional[bool]) -> _Call:
    if decoded is None:
        decoded = getattr(session, "_auto_decompress", True)
    # past here, _quietly and _on_request: session.get's caller
    return _Call(capture_frames(4), decoded is not False)


async def _recorded_request(call: _Call, wrapped: Any, args: tuple, kwargs: dict) -> Any:
    call.t_start, call.wall_start = now(), time.time()
    token = _current.set(call)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _failed(call, exc)
        raise
    else:
        _ended(call)
    finally:
        try:
            _current.reset(token)
        except ValueError:  # an abandoned coroutine closed by the garbage collector elsewhere
            pass
        # The call's context outlives it: aiohttp's timeout handles copy it, and a cancelled
        # timer stays in the event loop's queue until its deadline or a clean-up. Let go of
        # the request (and through it the response and its connection) now, or each of those
        # handles would keep a whole exchange's objects alive for the collector to walk.
        call.hop = call.request = None
    return response


# A program that forgets to await a request is warned "coroutine 'ClientSession._request' was
# never awaited": it should read the same while recording.
_recorded_request.__name__ = "_request"
_recorded_request.__qualname__ = "ClientSession._request"


def _begin(call: _Call, method: str, url: Any) -> Optional[Exchange]:
    # every hop comes from the program's one call, whose frames were taken at its start
    hop = pipeline.begin(LIBRARY, method, url, frames=call.frames)
    if hop is not None and call.hop is None:  # the first hop: from the call's start
        hop.t_start, hop.wall_start = call.t_start, call.wall_start
    return hop


@_quietly
def _ended(call: _Call) -> None:
    # Only when recording stopped while the request waited for its answer (ClientResponse.start
    # was no longer watched): end the exchange so that nothing keeps it.
    hop = call.hop
    if hop is not None and not hop.finished and hop.t_response is None:
        _note_request(call, hop)
        _finish(hop)


@_quietly
def _failed(call: _Call, error: BaseException) -> None:
    hop = call.hop
    if hop is not None and not hop.finished:
        _note_request(call, hop)
        hop.error = error  # what the program sees raised
        _finish(hop)


def _finish(exchange: Exchange) -> None:
    if _encoded:
        _encoded.discard(exchange)
    if isinstance(exchange.request_body, bytearray):
        exchange.request_body = bytes(exchange.request_body)
    pipeline.finish(exchange)


# --- connecting and sending -----------------------------------------------------------------


def _on_resolve(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    hop = _live_hop()
    if hop is None or not _connecting(hop):
        return wrapped(*args, **kwargs)
    return _timed(hop, "t_dns_start", ("t_dns_end",), wrapped(*args, **kwargs))


def _on_create_connection(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    hop = _live_hop()
    if hop is None:
        return wrapped(*args, **kwargs)
    # Sending can start once connected (a gap before the writer counts as sending).
    return _timed(hop, "t_connect_start", ("t_connect_end", "t_send_start"),
                  wrapped(*args, **kwargs))


def _live_hop() -> Optional[Exchange]:
    """The unfinished hop of the recorded call running in this task, if any."""
    call = _current.get()
    hop = call.hop if call is not None else None
    return hop if hop is not None and not hop.finished else None


def _connecting(hop: Exchange) -> bool:
    """True between the start and the end of ``hop``'s new connection."""
    return hop.t_connect_start is not None and hop.t_connect_end is None


async def _timed(hop: Exchange, start: str, ends: Tuple[str, ...], step: Any) -> Any:
    """Await ``step`` (a name resolution, a new connection), marking ``start`` before and
    each of ``ends`` after it."""
    if getattr(hop, start) is None:  # an overriding subclass that calls super(): the outer one
        setattr(hop, start, now())
    result = await step
    moment = now()
    for end in ends:
        setattr(hop, end, moment)
    return result


def _on_write_bytes(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``ClientRequest.write_bytes(writer, ...)``: the hop's body is about to be written."""
    call = _current.get()
    if call is not None and call.hop is not None and call.request is instance:
        # (not a proxy's CONNECT request: that is a ClientRequest of its own)
        _writing_body(call.hop, args[0] if args else kwargs.get("writer"))
    return wrapped(*args, **kwargs)


@_quietly
def _writing_body(hop: Exchange, writer: Any) -> None:
    if hop.finished:
        return
    moment = now()
    if hop.t_send_start is None:
        hop.t_send_start = moment
    hop.t_send_end = moment  # the request's head is with the writer: chunks move this on
    if hop.request_size is None:  # what is written counts, not what Content-Length announced
        hop.request_size = 0  # (a server that refuses "Expect: 100-continue" gets nothing)
    # Body chunks reach the writer's callback as the program's payload writes them (bytes,
    # multipart, files, generators alike); a callback already there (the program's own
    # aiohttp traces) still gets every chunk.
    writer._on_chunk_sent = _chunk_callback(hop, writer._on_chunk_sent)


def _chunk_callback(hop: Exchange, theirs: Any) -> Callable[[bytes], Any]:
    async def chunk_sent(chunk: bytes) -> None:
        _chunk_sent(hop, chunk)
        if theirs is not None:
            await theirs(chunk)

    return chunk_sent


@_quietly
def _chunk_sent(hop: Exchange, chunk: bytes) -> None:
    if hop.finished:
        return
    if hop.t_response is None:  # body still going out once the answer came: send ended there
        hop.t_send_end = now()
    hop.request_size = (hop.request_size or 0) + len(chunk)  # the true size, kept or not
    body = hop.request_body
    if body is None:
        # Grown in place (a long upload comes in many chunks); _finish makes it bytes.
        body = hop.request_body = bytearray()  # type: ignore[assignment]
    room = hop.body_limit - len(body) if hop.body_limit is not None else len(chunk)
    if room > 0:
        body += chunk[:room]


def _note_request(call: _Call, hop: Exchange) -> None:
    """The request as written: aiohttp adds Host, Accept, User-Agent, Content-Length... itself,
    and its headers no longer change once the writer has them."""
    request = call.request
    if request is not None and hop.t_send_end is not None and not hop.request_headers:
        # A copy: a client middleware may change the same request's headers and send it
        # again (digest auth, retries), and the builder reads them from another thread.
        hop.request_headers = tuple(request.headers.items())


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
    """A hop asks for a connection: its exchange begins (a lost attempt before it ends)."""
    hop = call.hop
    if hop is not None and not hop.finished and hop.t_response is None:
        # A retry (aiohttp resends an idempotent request when a kept-alive connection
        # turns out dead), or a client middleware sending it again: the lost attempt was an
        # exchange of its own.
        _note_request(call, hop)
        if hop.error is None:
            hop.error = _caught_now() or ConnectionError(_RETRIED)
        _finish(hop)
    # the URL object as it is: making its text is the builder's work
    call.hop = _begin(call, str(request.method), request.url)
    call.request = request
    if request.is_ssl():
        call.tls_after = "tunnel" if request.proxy else "tcp"
    else:  # (to a proxy, plain HTTP goes out with the whole URL in the request line)
        call.tls_after = None
        if request.proxy and call.hop is not None:
            call.hop.absolute_target = True


def _caught_now() -> Optional[BaseException]:
    """What a client middleware caught and now sends the request again for (it calls the
    handler from its ``except`` block: a refused port, a name that does not resolve). aiohttp's
    own retry happens after its ``except`` block, with nothing caught."""
    from aiohttp import ClientError

    return _being_handled((ClientError, OSError, asyncio.TimeoutError))


def _being_handled(kinds: Tuple[type, ...]) -> Optional[BaseException]:
    """The exception of ``kinds`` that the running code is handling (an ``except`` block, or
    an ``async with``/``finally`` it unwinds through), if any."""
    error = sys.exc_info()[1]
    return error if isinstance(error, kinds) else None


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
    if _connecting(hop):
        # Still connecting: this is a proxy's answer to CONNECT, not the hop's response.
        if call.tls_after != "tunnel":
            return wrapped(*args, **kwargs)
        return _tls_starts_after(hop, wrapped(*args, **kwargs))
    _note_sent(call, hop, args[0] if args else kwargs.get("connection"))
    return _watch_start(hop, call.decoded, wrapped, args, kwargs)


async def _watch_start(hop: Exchange, decoded: bool, wrapped: Any, args: tuple,
                       kwargs: dict) -> Any:
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        hop.error = exc  # ends the hop if aiohttp retries; else the final failure replaces it
        raise
    _response_started(hop, response, decoded)
    return response


@_quietly
def _note_sent(call: _Call, hop: Exchange, connection: Any) -> None:
    """Before the answer: the request has gone out (its body may still be going: chunks move
    the end of sending on), and the connection's addresses."""
    moment = now()
    if hop.t_send_start is None:  # a kept-alive connection and no body: sent just now
        hop.t_send_start = moment
    if hop.t_send_end is None:
        hop.t_send_end = moment
    _note_request(call, hop)
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
def _response_started(hop: Exchange, response: Any, decoded: bool) -> None:
    hop.t_response = now()  # sending was marked before start (_note_sent)
    version = response.version
    if version is not None:
        hop.http_version = f"HTTP/{version.major}.{version.minor}"
    hop.status = int(response.status)
    hop.reason = str(response.reason or "")
    hop.response_headers = response.raw_headers  # a tuple of bytes: the builder decodes them
    reader = response.content
    if hop.status == 101:  # switching protocols: no body, the connection now carries another
        _end(hop, reader, complete=True)
        return
    # What arrived with the headers was fed before the reader became known here: take it as
    # it stands (nothing has read from it yet), then follow the rest.
    hop.response_wire_size = _claim_early_wire(reader)
    buffered = getattr(reader, "_buffer", ())
    if not decoded and content_encoded(response.headers.get("Content-Encoding", "")):
        _encoded.add(hop)  # the program gets the encoded bytes: their decoding is unknown
        hop.response_wire_size = sum(map(len, buffered))
    else:
        for chunk in buffered:
            hop.add_response_chunk(chunk)
    error = reader.exception()
    if error is not None:
        _end(hop, reader, error=error)
    elif reader.is_eof():
        _end(hop, reader, complete=True)
    else:
        if not _following:
            AiohttpHarRecorder._follow_bodies()
        _follow(reader, response, hop)


def _on_release(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if _readers:
        reader = getattr(instance, "content", None)
        hop = _take(reader)
        if hop is not None:
            # given up before the end of the body (sizes unknown), cut by the total timeout,
            # or by a cancellation on its way out of the program's read
            _end_body(hop, reader, error=_timed_out(reader) or _cancelled_now())
    return wrapped(*args, **kwargs)


def _cancelled_now() -> Optional[BaseException]:
    """The cancellation (or Ctrl-C) being handled while the response is let go: the program's
    ``async with`` or ``finally`` releases it because its task is being cancelled
    (``task.cancel()``, ``asyncio.timeout``, ``wait_for``, a TaskGroup), not by choice."""
    return _being_handled((asyncio.CancelledError, KeyboardInterrupt))


def _timed_out(reader: Any) -> Optional[BaseException]:
    """aiohttp's ``ClientTimeout(total=...)`` ends a body being read by cancelling the reading
    task, without telling the reader: its timer knows (``TimerContext._cancelled``). The
    program gets ``TimeoutError``."""
    if getattr(getattr(reader, "_timer", None), "_cancelled", False) is True:
        return asyncio.TimeoutError("the request's total timeout expired during the body")
    return None


# --- the body: streams.StreamReader ----------------------------------------------------------

#: Readers of recorded responses whose body has not ended, by ``id``: their response (weakly)
#: and their exchange. Entries leave when the body ends, or when the program dropped the
#: response before (its session closed, the body never fed to its end): harlem must not keep
#: the response, its connection and the body so far alive meanwhile. aiohttp 3.14's readers
#: take no weak references; responses do.
_readers: Dict[int, Tuple[Any, Exchange]] = {}


def _follow(reader: Any, response: Any, hop: Exchange) -> None:
    key = id(reader)
    try:
        owner: Any = weakref.ref(response, functools.partial(_dropped, key))
    except TypeError:  # a response class without weak references: held until the body ends
        owner = response
    _readers[key] = (owner, hop)


def _dropped(key: int, owner: Any) -> None:
    """The program let go of a response whose body had not ended: given up, sizes unknown."""
    found = _readers.get(key)
    if found is not None and found[0] is owner:
        del _readers[key]
        _end_body(found[1], None)


def _hop_of(reader: Any) -> Optional[Exchange]:
    if not _readers:
        return None
    found = _readers.get(id(reader))
    return found[1] if found is not None else None


def _take(reader: Any) -> Optional[Exchange]:
    if not _readers:
        return None
    found = _readers.pop(id(reader), None)
    hop = found[1] if found is not None else None
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
        _readers.pop(id(reader), None)
        return
    _keep_chunk(hop, data)


def _keep_chunk(hop: Exchange, data: bytes) -> None:
    if _encoded and hop in _encoded:  # the bytes as on the wire: counted, not kept
        hop.response_wire_size = (hop.response_wire_size or 0) + len(data)
    else:
        hop.add_response_chunk(data)


#: Hops whose body the program gets still content-encoded (``auto_decompress=False``): not
#: kept, and of unknown decoded size; only their size on the wire is known.
_encoded: "set[Exchange]" = set()


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


def _end(hop: Exchange, reader: Any, complete: bool = False,
         error: Optional[BaseException] = None) -> None:
    """Finish the exchange: body read to the end (``complete``), failed (``error``) or given up.
    Unguarded, for ``_response_started``, which is guarded itself."""
    if hop.finished:
        return
    if error is not None:
        hop.error = error
    if complete and error is None:
        if not _encoded or hop not in _encoded:  # (else counted as it came, in _keep_chunk)
            hop.body_complete = True
            hop.response_wire_size = _wire_size(reader, hop)
    else:  # a wire size counted so far is not the body's
        hop.response_wire_size = None
    _finish(hop)


#: The hooks' way in: a failure of ours becomes a warning.
_end_body = _quietly(_end)
