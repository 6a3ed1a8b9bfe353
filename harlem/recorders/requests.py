"""Recording for ``requests`` (and the urllib3 underneath it).

Where the facts are, and so what is wrapped (class-level ``wrapt`` patches, all undone exactly
when the last recorder stops):

* ``requests.adapters.HTTPAdapter.send`` runs once per hop (``Session.send`` calls it for the
  first request and again for every redirect), for module-level helpers and every Session. It
  starts the exchange, keeps the request body, hands the response's body to the hooks below,
  and fails the exchange when the call raises. While it runs, a context variable names the
  exchange so that the urllib3 hooks below know whom they work for (per thread, per greenlet);
  outside it they call straight through.
* ``urllib3.connectionpool.HTTPConnectionPool._make_request`` is one attempt at sending the
  request. urllib3 retries inside one ``send`` when the adapter has a ``Retry`` (a failed
  connection, a status in ``status_forcelist``): each attempt after the first is an exchange of
  its own, as it is on the wire. ``HTTPResponse.drain_conn`` (urllib3 1.26 and later) is where
  a retried attempt's answer is discarded: its exchange ends there, its body unrecorded.
* ``urllib3.connection.HTTPConnection``: ``_new_conn`` (the TCP connection), ``endheaders``
  (http.client has buffered the request line and one line per header exactly as it sends
  them, including the Host and Accept-Encoding headers it adds itself: they are taken as they
  are, bytes, in one slice), ``getresponse`` (request sent; socket addresses; status line and
  headers in). ``HTTPSConnection.connect`` ends with the TLS handshake.
* ``socket.getaddrinfo`` is how urllib3 resolves names; it is timed only while this thread is
  inside ``_new_conn`` of a recorded exchange, and passes through untouched otherwise.
* ``urllib3.response.HTTPResponse``: ``stream`` (what ``.content``, ``.text``, ``.json()``,
  ``iter_content`` and ``iter_lines`` read through) passes every chunk on unchanged and at the
  same pace while keeping a copy, and finishes the exchange when the body ends; ``read`` and
  ``read_chunked`` do the same for programs that read ``response.raw`` directly
  (``shutil.copyfileobj``); ``_handle_chunk`` counts the wire bytes of chunked bodies, which
  urllib3 does not count in ``tell()``.
* ``requests.models.Response.close`` (also what ``with requests.get(...) as r`` calls) finishes
  an exchange whose body was never read to the end. urllib3's own ``close`` is left alone: the
  garbage collector calls it from finalizers, where finishing an exchange could deadlock on
  the pipeline's locks. A body nobody reads nor closes is exported when the recording stops.

Nothing here may change what the program sees: wrappers return what the library returned and
re-raise what it raised (bare ``raise``), and harlem's own bookkeeping runs inside
:func:`_quietly`, which turns its failures into a one-time warning.
"""

from __future__ import annotations

import contextvars
import functools
import socket
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .. import pipeline
from .._warn import quietly
from ..capture import Exchange, content_encoded, header_text, now, register_library_path
from .base import HarRecorder

__all__ = ["RequestsHarRecorder"]

LIBRARY = "requests"


# Looked up once by _instrument rather than on every connection or response.
_https_connection: Optional[type] = None
_urllib3_response: Optional[type] = None


class RequestsHarRecorder(HarRecorder):
    """Records every HTTP exchange made with ``requests`` (one entry per redirect hop)."""

    library = LIBRARY
    module_name = "requests"

    @classmethod
    def _instrument(cls) -> None:
        import requests
        import requests.adapters
        import requests.models
        import urllib3
        import urllib3.connection
        import urllib3.connectionpool
        import urllib3.response
        import wrapt

        global _https_connection, _urllib3_response
        for module in (requests, urllib3, wrapt):
            register_library_path(module)
        _https_connection = urllib3.connection.HTTPSConnection
        _urllib3_response = urllib3.response.HTTPResponse
        connection = urllib3.connection.HTTPConnection
        response = urllib3.response.HTTPResponse
        patches: List[Tuple[Any, str, Any]] = [
            (requests.adapters.HTTPAdapter, "send", _adapter_send),
            (urllib3.connectionpool.HTTPConnectionPool, "_make_request", _make_request),
            (connection, "_new_conn", _new_conn),
            (urllib3.connection.HTTPSConnection, "connect", _tls_connect),
            (connection, "endheaders", _endheaders),
            (connection, "getresponse", _getresponse),
            (socket, "getaddrinfo", _getaddrinfo),
            (response, "stream", _stream),
            (response, "read", _read),
            (response, "read_chunked", _read_chunked),
            (response, "_handle_chunk", _handle_chunk),
            (requests.models.Response, "close", _response_close),
        ]
        if hasattr(response, "drain_conn"):  # urllib3 >= 1.26
            patches.append((response, "drain_conn", _drain_conn))
        if "read1" in vars(response):  # urllib3 >= 2 (io.TextIOWrapper reads through it)
            patches.append((response, "read1", _read1))
        cls._wrap_all(patches)


# --- guarding harlem's own work -------------------------------------------------------------


_quietly = quietly("requests")


class _Send:
    """One ``HTTPAdapter.send`` in progress, as the urllib3 hooks below it see it."""

    __slots__ = ("exchange", "connecting", "attempted")

    def __init__(self, exchange: Optional[Exchange]) -> None:
        #: The exchange of the attempt in progress (each urllib3 retry is a new one).
        self.exchange = exchange
        #: True while its ``_new_conn`` runs: ``getaddrinfo`` calls are its DNS phase.
        self.connecting = False
        #: The exchange whose attempt (``_make_request``) has begun: another one is a retry.
        self.attempted: Optional[Exchange] = None


#: The ``send`` running here: a context variable rather than a thread-local, because the
#: thread-local class of a program that imports requests before gevent or eventlet patches
#: ``threading`` (the agent imports this module with requests) is one for every greenlet,
#: which then mixed up each other's exchanges; each greenlet has a context of its own.
#: Outside any ``send``, the hooks read ``_NO_SEND`` (no exchange: they pass straight
#: through; never changed).
_NO_SEND = _Send(None)
_sending: "contextvars.ContextVar[_Send]" = contextvars.ContextVar(
    "harlem_requests_send", default=_NO_SEND)


# --- urllib3 1.26 / 2.x differences, in one place ------------------------------------------
#
# Everything else is common to both: ``_new_conn``, ``endheaders`` (http.client's, with its
# ``_buffer`` of header lines), ``HTTPSConnection.connect``,
# ``HTTPResponse.stream/read/tell/_handle_chunk``, ``version`` and ``_original_response``. In
# 1.26 ``getresponse`` is inherited from http.client (the base's ``_wrap`` patches it on the
# urllib3 class all the same), and chunked request bodies go through ``request_chunked``
# instead of ``request(chunked=True)``; both still call ``endheaders``, so the hook sees them.
# Neither counts ``read_chunked``'s bytes in ``tell()``.


def _str_body_bytes(text: str) -> bytes:
    """The bytes a ``str`` request body goes out as.

    urllib3 2 encodes it as UTF-8 itself; urllib3 1.26 hands it to http.client, which uses
    ISO-8859-1 (and fails the request when that cannot encode it).
    """
    import urllib3

    if not urllib3.__version__.startswith("1."):
        return text.encode("utf-8")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


_HTTP_VERSIONS: Dict[int, str] = {9: "HTTP/0.9", 10: "HTTP/1.0", 11: "HTTP/1.1", 20: "http/2.0"}


# --- the hop: HTTPAdapter.send --------------------------------------------------------------


def _adapter_send(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if not pipeline.is_recording(LIBRARY):
        return wrapped(*args, **kwargs)
    exchange = _begin(args, kwargs)
    if exchange is None:
        return wrapped(*args, **kwargs)
    send = _Send(exchange)
    token = _sending.set(send)  # (a send within this one sets its own, and puts this back)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        _fail(send.exchange, exc)  # the last attempt's (see _make_request)
        raise
    finally:
        last = send.exchange
        _sending.reset(token)
    if last is not None and not _received(last, response):
        _finish(last)
    return response


@_quietly
def _begin(args: tuple, kwargs: dict) -> Optional[Exchange]:
    request = args[0] if args else kwargs["request"]
    exchange = pipeline.begin(LIBRARY, str(request.method or "GET"), str(request.url or ""), depth=2)
    if exchange is not None:
        exchange.request_body = _request_body(request.body)
    return exchange


def _request_body(body: Any) -> Optional[bytes]:
    """The request body as bytes, or ``None`` for no body or one that is sent as it is read.

    A file or an iterator is read by urllib3 while sending; reading it here would consume it,
    so such a body stays unrecorded.
    """
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return _str_body_bytes(body)
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    return None


@_quietly
def _fail(exchange: Optional[Exchange], exc: BaseException) -> None:
    # (already finished: an answer urllib3 discarded before raising, as MaxRetryError)
    if exchange is not None and not exchange.finished:
        exchange.error = exc
        pipeline.finish(exchange)


@_quietly
def _finish(exchange: Exchange) -> None:
    pipeline.finish(exchange)


@_quietly
def _received(exchange: Exchange, response: Any) -> bool:
    """Hand the exchange to the body hooks to complete (``False``: no body to follow)."""
    if exchange.finished:
        return True
    raw = response.raw
    if exchange.status == 0:  # an adapter or connection class that bypassed urllib3's hooks
        if exchange.t_response is None:
            exchange.t_response = now()
        _note_head(exchange, response.status_code, response.reason, raw)
    if _urllib3_response is None or not isinstance(raw, _urllib3_response):
        # Not urllib3's response (a transport adapter's or a cassette's own class, such as
        # vcrpy's): the hooks never see its body read. Exported now, its size unknown.
        return False
    if exchange.method == "HEAD" or exchange.status in _BODILESS \
            or getattr(raw, "length_remaining", None) == 0:
        # No body by definition (or Content-Length: 0): complete now, read or not.
        exchange.body_complete = True
        exchange.response_wire_size = 0
        return False
    _bodies[raw] = _Body(exchange, raw)
    return True


#: Statuses whose responses never have a body (RFC 9110: 1xx, 204, 304).
_BODILESS = frozenset((100, 101, 102, 103, 204, 304))


def _note_head(exchange: Exchange, status: Any, reason: Any, raw: Any) -> None:
    """The status line and headers of ``raw``: urllib3's response, or http.client's."""
    exchange.status = int(status)
    exchange.reason = _wire_text(str(reason or ""))
    exchange.http_version = _HTTP_VERSIONS.get(getattr(raw, "version", 11), "HTTP/1.1")
    exchange.response_headers = _response_headers(raw)


def _make_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    send = _sending.get()
    exchange = send.exchange
    if exchange is None:
        return wrapped(*args, **kwargs)
    if send.attempted is exchange:  # urllib3 retries: the previous attempt is over
        exchange = send.exchange = _next_attempt(exchange)
        if exchange is None:
            return wrapped(*args, **kwargs)
    send.attempted = exchange
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        _attempt_failed(exchange, exc)
        raise


#: What an attempt that urllib3 retried ends with when nothing else said how it ended.
_RETRIED = "urllib3 sent the request again before this attempt's answer was read"


@_quietly
def _next_attempt(previous: Exchange) -> Optional[Exchange]:
    """urllib3 sends the request again: a new exchange, from the same call site."""
    if not previous.finished:  # failed (its error), or answered and never drained
        if previous.error is None and previous.status == 0:
            previous.error = ConnectionError(_RETRIED)
        pipeline.finish(previous)
    exchange = pipeline.begin(LIBRARY, previous.method, previous.url, frames=previous.frames)
    if exchange is not None:
        exchange.request_body = previous.request_body
    return exchange


@_quietly
def _attempt_failed(exchange: Exchange, exc: BaseException) -> None:
    """urllib3 may retry: kept until the next attempt, or replaced by what the program sees.
    Either way the attempt ended here, not after urllib3's back-off sleep before the next."""
    if exchange.error is None and not exchange.finished:
        exchange.error = exc
        if exchange.t_end is None:
            exchange.t_end = now()


def _drain_conn(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """urllib3 discards a retried attempt's answer (or the last one, before raising)."""
    send = _sending.get()
    exchange = send.exchange
    if exchange is None or send.attempted is not exchange or exchange.finished:
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _finish(exchange)  # the body was never the program's: its size stays unknown


def _response_headers(raw: Any) -> List[Tuple[str, str]]:
    """Response headers in wire order with duplicates, as http.client parsed them.

    ``HTTPResponse.headers`` is a dict; the message http.client parsed keeps order and
    repetitions. Its ``_headers`` list holds them as parsed (``items()`` would run each one
    through the email policy, which changes nothing in text decoded as ISO-8859-1), and an
    all-ASCII list, the usual case, is taken as it is.
    """
    message = getattr(getattr(raw, "_original_response", None) or raw, "msg", None)
    items = getattr(message, "_headers", None)
    if items is None:
        headers = message if message is not None else raw.headers
        items = headers.items()
    else:
        try:
            if "".join(map("".join, items)).isascii():
                return list(items)
        except TypeError:  # not text: take the careful path below
            pass
    return [_wire_pair(str(name), str(value)) for name, value in items]


def _wire_pair(name: str, value: str) -> Tuple[Any, Any]:
    """A header that http.client decoded as ISO-8859-1, as the bytes it came as: the builder
    decodes them as every recorder's header bytes, and counts their true size."""
    try:
        return name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:  # not text http.client decoded: kept as it is
        return name, value


def _wire_text(text: str) -> str:
    """A reason phrase that http.client decoded as ISO-8859-1, spelled from its bytes as every
    recorder spells header bytes (:func:`~harlem.capture.header_text`), so "é" sent by a
    server reads "é" in the HAR whichever library received it."""
    if text.isascii():
        return text
    try:
        return header_text(text.encode("latin-1"))
    except UnicodeEncodeError:  # not bytes http.client decoded: leave it as it is
        return text


# --- the connection: urllib3.connection.HTTPConnection and socket.getaddrinfo ---------------


def _new_conn(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    send = _sending.get()
    exchange = send.exchange
    if exchange is None:
        return wrapped(*args, **kwargs)
    exchange.t_connect_start = now()
    send.connecting = True
    try:
        sock = wrapped(*args, **kwargs)
    finally:
        send.connecting = False
    _tcp_connected(exchange, instance)
    return sock


@_quietly
def _tcp_connected(exchange: Exchange, connection: Any) -> None:
    mark = now()
    if _https_connection is not None and isinstance(connection, _https_connection):
        exchange.t_tls_start = mark  # connected once the handshake is done: _tls_connect
    else:
        _connected(exchange, mark)


def _connected(exchange: Exchange, mark: float) -> None:
    exchange.t_connect_end = mark
    # Plain-HTTP connections open lazily, inside http.client's first send (in endheaders),
    # after the request was merely buffered: sending really starts once connected.
    if exchange.request_headers:
        exchange.t_send_start = mark


def _tls_connect(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    exchange = _sending.get().exchange
    if exchange is None:
        return wrapped(*args, **kwargs)
    result = wrapped(*args, **kwargs)
    _tls_connected(exchange)
    return result


@_quietly
def _tls_connected(exchange: Exchange) -> None:
    _connected(exchange, now())


def _getaddrinfo(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    send = _sending.get()
    if not send.connecting:
        return wrapped(*args, **kwargs)
    exchange = send.exchange
    if exchange is not None and exchange.t_dns_start is None:
        exchange.t_dns_start = now()
    try:
        return wrapped(*args, **kwargs)
    finally:
        if exchange is not None:
            exchange.t_dns_end = now()


def _endheaders(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    exchange = _sending.get().exchange
    if exchange is not None:
        # http.client's buffer: the request line, then b"Name: value" per header (a header's
        # values joined by CRLF-TAB), what it is about to send.
        lines = getattr(instance, "_buffer", None)
        if type(lines) is list:
            exchange.request_headers = lines[1:]
            if lines:  # the request line: "GET /path HTTP/1.1", or the whole URL to a proxy
                first = lines[0]
                exchange.absolute_target = first.startswith(b"http", first.find(b" ") + 1)
        exchange.t_send_start = now()
    return wrapped(*args, **kwargs)


def _getresponse(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    exchange = _sending.get().exchange
    if exchange is None:
        return wrapped(*args, **kwargs)
    _request_sent(exchange, instance)
    response = wrapped(*args, **kwargs)
    exchange.t_response = now()
    _answered(exchange, response)
    return response


@_quietly
def _answered(exchange: Exchange, response: Any) -> None:
    # urllib3 2's response, or http.client's in urllib3 1.x: the same status line attributes
    _note_head(exchange, response.status, response.reason, response)


# A connected socket's (server address, server port, local port): two system calls to learn,
# fixed for the socket's life, so each kept-alive connection asks once.
_addresses: "weakref.WeakKeyDictionary[Any, Tuple[str, int, int]]" = weakref.WeakKeyDictionary()


@_quietly
def _request_sent(exchange: Exchange, connection: Any) -> None:
    exchange.t_send_end = now()
    # Read the addresses now: a "Connection: close" response detaches the socket.
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        addresses = _addresses.get(sock)
    except TypeError:  # a socket-like object that takes no weak reference
        addresses = None
    if addresses is None:
        try:
            peer = sock.getpeername()
            local = sock.getsockname()
        except OSError:  # reset before the request was fully sent: the addresses are gone
            return
        except AttributeError:  # a stand-in with no addresses (vcrpy's fake socket)
            return
        if not isinstance(peer, tuple):  # (host, port) or IPv6's (host, port, flowinfo, scope)
            return
        addresses = (str(peer[0]), int(peer[1]), int(local[1]))
        try:
            _addresses[sock] = addresses
        except TypeError:
            pass
    exchange.server_ip, exchange.server_port, exchange.local_port = addresses


# --- the body: urllib3.response.HTTPResponse ------------------------------------------------


class _Body:
    """A recorded response's body in progress, keyed by its urllib3 response."""

    __slots__ = ("exchange", "in_stream", "chunk_bytes", "undecoded", "watch")

    def __init__(self, exchange: Exchange, raw: Any):
        self.exchange = exchange
        #: The program may drop a streamed response unread and unclosed: the exchange is then
        #: over (given up, sizes unknown), not in flight until the recording stops. (The
        #: callback names the exchange, not this object: no cycle for the collector.)
        self.watch = weakref.ref(raw, functools.partial(_dropped, exchange))
        #: True while ``stream`` pulls from urllib3, so that its inner ``read`` calls are not
        #: counted a second time.
        self.in_stream = False
        #: Wire bytes of a chunked body read by ``read_chunked`` (``tell()`` misses them).
        self.chunk_bytes = 0
        #: True once the program read still-encoded bytes: the decoded body is unknown.
        self.undecoded = False


_bodies: "weakref.WeakKeyDictionary[Any, _Body]" = weakref.WeakKeyDictionary()


@_quietly
def _dropped(exchange: Exchange, _raw: Any) -> None:
    if not exchange.finished:
        pipeline.finish(exchange)


def _body_of(raw: Any) -> Optional[_Body]:
    if not _bodies.data:  # its weak references, read as is: len(_bodies) is a Python call
        return None
    try:
        body = _bodies.get(raw)
    except TypeError:
        return None
    return body if body is not None and not body.exchange.finished else None


def _stream(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    body = _body_of(instance)
    if body is None or body.in_stream:  # (read_chunked, when stream itself calls it)
        return wrapped(*args, **kwargs)
    _note_decoding(instance, body, args, kwargs)
    return _tee(wrapped(*args, **kwargs), instance, body)


_read_chunked = _stream  # a generator of the body's chunks too, read by the program itself


def _tee(chunks: Iterator[bytes], raw: Any, body: _Body) -> Iterator[bytes]:
    """Yield urllib3's chunks unchanged, one by one as they come, keeping a copy of each.

    Nothing is read ahead: each chunk is pulled only when the program asks for the next one.
    Closing this generator closes urllib3's at once, as closing urllib3's own would have.
    """
    try:
        while True:
            body.in_stream = True
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            finally:
                body.in_stream = False
            _keep(body, chunk)
            try:
                yield chunk
            except GeneratorExit:
                chunks.close()  # type: ignore[attr-defined]
                raise
    except GeneratorExit:
        _end(raw, body)
        raise
    except BaseException as exc:
        _end(raw, body, error=exc)
        raise
    _end(raw, body, complete=True)


@_quietly
def _keep(body: _Body, chunk: bytes) -> None:
    if not body.undecoded:
        body.exchange.add_response_chunk(chunk)


def _direct_reader(some: bool) -> Any:
    """The wrapper of ``raw.read(amt, decode_content)`` (or of ``read1``, which returns
    ``some`` of the body) when the program calls it itself."""

    def read(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        body = _body_of(instance)
        if body is None or body.in_stream:
            return wrapped(*args, **kwargs)
        try:
            data = wrapped(*args, **kwargs)
        except BaseException as exc:
            _end(instance, body, error=exc)
            raise
        _direct_read(instance, body, args, kwargs, data, some)
        return data

    return read


_read = _direct_reader(some=False)
_read1 = _direct_reader(some=True)


@_quietly
def _direct_read(raw: Any, body: _Body, args: tuple, kwargs: dict, data: bytes,
                 some: bool) -> None:
    """Keep what a direct read returned; end the body once it is all read. Without a size,
    ``read`` returns the whole rest and ``read1`` some of it; empty is the end for both."""
    amt = args[0] if args else kwargs.get("amt")
    _note_decoding(raw, body, args, kwargs)
    _keep(body, data)
    unbounded = amt is None or amt < 0
    if (unbounded and not some) or (not data and (unbounded or amt > 0)) \
            or _all_read(raw, body):
        _end(raw, body, complete=True)


@_quietly
def _note_decoding(raw: Any, body: _Body, args: tuple, kwargs: dict) -> None:
    """``decode_content=False`` (the second argument of ``read``, ``read1``, ``stream`` and
    ``read_chunked``) on a compressed body: the program gets, and harlem sees, encoded bytes,
    so the decoded body is unknown."""
    decode = args[1] if len(args) > 1 else kwargs.get("decode_content")
    if decode is None:
        decode = raw.decode_content
    if not decode and _content_encoded(raw):
        body.undecoded = True


def _all_read(raw: Any, body: _Body) -> bool:
    """The last byte of a Content-Length body was just read (``read(n)`` of exactly what was
    left): no read will come back empty to say so. Not for a body being decoded, whose
    decoder may still hold bytes the program has not had."""
    return getattr(raw, "length_remaining", None) == 0 and (
        body.undecoded or not _content_encoded(raw))


def _content_encoded(raw: Any) -> bool:
    return content_encoded(raw.headers.get("content-encoding", ""))


def _handle_chunk(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    data = wrapped(*args, **kwargs)
    body = _body_of(instance)
    if body is not None and data:
        body.chunk_bytes += len(data)
    return data


def _response_close(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "raw", None)
        body = _body_of(raw)
        if body is not None:
            _end(raw, body)  # closed before its end: the size stays unknown


@_quietly
def _end(raw: Any, body: _Body, complete: bool = False, error: Optional[BaseException] = None) -> None:
    """Finish the exchange: read to the end (``complete``), failed (``error``) or abandoned."""
    exchange = body.exchange
    if exchange.finished:
        return
    _bodies.pop(raw, None)  # the program may keep the response for long: let go of the copy
    if error is not None:
        exchange.error = error
    elif complete:
        exchange.response_wire_size = _wire_size(raw, body)
        exchange.body_complete = not body.undecoded
    pipeline.finish(exchange)


def _wire_size(raw: Any, body: _Body) -> Optional[int]:
    """Body bytes as they came off the connection, before content decoding.

    ``tell()`` counts what ``read`` pulled (chunk framing already removed by http.client);
    ``chunk_bytes`` what ``read_chunked`` pulled. Decoded bytes without any wire bytes mean a
    path neither counts, so the size is unknown rather than wrong.
    """
    size = int(raw.tell()) + body.chunk_bytes
    if size == 0 and body.exchange.response_size > 0:
        return None
    return size
