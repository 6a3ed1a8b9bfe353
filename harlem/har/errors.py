"""A failed exchange's exception -> Chrome's net error name, plus a readable description.

Convention: ``response._error`` holds the Chrome name (``net::ERR_CONNECTION_REFUSED``), which
DevTools-like viewers show; ``response.comment`` holds the Python exception as
``"module.Class: message"`` (redacted like everything else) so nothing is lost.

HTTP libraries wrap the socket error several times (requests -> urllib3 ``MaxRetryError`` ->
``NewConnectionError`` -> ``ConnectionRefusedError``), so the whole chain is searched: causes,
contexts, ``.reason`` (urllib3, urllib), ``.os_error`` and ``.certificate_error`` (aiohttp),
exceptions among ``.args`` and the members of exception groups (trio's nurseries, anyio's task
groups, asyncio's TaskGroup). The most specific finding wins, in the order of :data:`_RULES`.
Classes are matched by name as well as by type so that this module imports no HTTP library.
"""

from __future__ import annotations

import socket
import ssl
from typing import Callable, List, Tuple

__all__ = ["net_error", "describe"]

_MAX_CHAIN = 32
_MAX_MESSAGE = 2000
# The server closed the connection: early (no response) or in the middle of the body.
_CLOSED_NAMES = frozenset({
    "RemoteDisconnected", "ServerDisconnectedError", "IncompleteRead", "ContentLengthError",
    "TransferEncodingError", "ClientPayloadError", "BadStatusLine",
    "ClientDisconnect",  # (Starlette, on the server side: the client left mid-request)
})
# Wrappers that libraries raise for a closed connection; they may hold a more precise cause.
_PROTOCOL_NAMES = frozenset({"ProtocolError", "RemoteProtocolError", "ChunkedEncodingError"})

Finding = Tuple[BaseException, str]
Test = Callable[[BaseException, str], bool]
Name = Callable[[BaseException, bool], str]


def _is(kinds: Tuple[type, ...], *fragments: str) -> Test:
    """An instance of ``kinds``, or of a class whose own name contains one of ``fragments``.

    Only the exception's own class name counts: urllib3's ``NewConnectionError`` (a refused
    connection) inherits from ``ConnectTimeoutError`` for compatibility's sake.
    """
    return lambda exc, name: isinstance(exc, kinds) or any(f in name for f in fragments)


def _fixed(name: str) -> Name:
    return lambda exc, response_started: name


def _cert_error(exc: BaseException, response_started: bool) -> str:
    if "mismatch" in str(exc).lower():  # "Hostname mismatch", "IP address mismatch"
        return "net::ERR_CERT_COMMON_NAME_INVALID"
    return "net::ERR_CERT_AUTHORITY_INVALID"


def _decoding(exc: BaseException, name: str) -> bool:
    """A body that does not decode as its Content-Encoding says (aiohttp reports it as a
    ``ClientPayloadError``, whose name would otherwise read as a closed connection)."""
    return ("DecodingError" in name or name == "DecodeError"  # requests and httpx, urllib3
            or "decode content-encoding" in str(exc).lower())


def _closed(exc: BaseException, response_started: bool) -> str:
    return "net::ERR_CONNECTION_CLOSED" if response_started else "net::ERR_EMPTY_RESPONSE"


# (test, name), most specific first: a connect timeout wraps a plain socket timeout, a
# certificate failure wraps a generic SSLError, a reset hides inside a ProtocolError, and
# http.client's RemoteDisconnected is a ConnectionResetError that means "no response".
_RULES: List[Tuple[Test, Name]] = [
    (_is((), "ConnectTimeout", "ConnectionTimeout"), _fixed("net::ERR_CONNECTION_TIMED_OUT")),
    (_is((socket.gaierror, socket.herror), "NameResolution", "DNSError"),
     _fixed("net::ERR_NAME_NOT_RESOLVED")),
    (_is((ConnectionRefusedError,)), _fixed("net::ERR_CONNECTION_REFUSED")),
    (_is((ssl.SSLCertVerificationError,), "CertificateError", "CertVerification"), _cert_error),
    (_is((ssl.SSLError,), "SSLError"), _fixed("net::ERR_SSL_PROTOCOL_ERROR")),
    (_decoding, _fixed("net::ERR_CONTENT_DECODING_FAILED")),
    (lambda exc, name: name in _CLOSED_NAMES, _closed),
    (_is((ConnectionResetError,)), _fixed("net::ERR_CONNECTION_RESET")),
    (_is((ConnectionAbortedError,)), _fixed("net::ERR_CONNECTION_ABORTED")),
    (_is((BrokenPipeError,)), _fixed("net::ERR_CONNECTION_CLOSED")),
    # (a send that timed out: urllib3 wraps the socket's timeout in a ProtocolError)
    (_is((TimeoutError, socket.timeout), "Timeout"), _fixed("net::ERR_TIMED_OUT")),
    (lambda exc, name: name in _PROTOCOL_NAMES, _closed),
    # The program gave up on the request: a cancelled task (asyncio's, trio's, anyio's; also
    # what asyncio.timeout and wait_for cancel with, inside), Ctrl-C. Chrome's word for a
    # request its page abandoned.
    (_is((KeyboardInterrupt,), "Cancelled"), _fixed("net::ERR_ABORTED")),
]


def _chain(exc: BaseException) -> List[Finding]:
    """``exc`` and every exception reachable from it, outermost first, with its class name."""
    found: List[Finding] = []
    seen = set()
    queue = [exc]
    while queue and len(found) < _MAX_CHAIN:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append((current, type(current).__name__))
        linked = [getattr(current, attr, None)
                  for attr in ("reason", "os_error", "certificate_error")]
        linked += [current.__cause__, current.__context__]
        linked += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        members = getattr(current, "exceptions", None)  # an exception group's
        if isinstance(members, (tuple, list)):
            linked += members
        queue.extend(item for item in linked if isinstance(item, BaseException))
    return found


def net_error(exc: BaseException, response_started: bool) -> str:
    """Chrome's name for the failure ``exc``; ``response_started`` tells an empty response
    (server closed before answering) from a connection closed mid-body."""
    chain = _chain(exc)
    for test, name in _RULES:
        for current, class_name in chain:
            if test(current, class_name):
                return name(current, response_started)
    return "net::ERR_FAILED"


def describe(exc: BaseException) -> str:
    """``"module.Class: message"`` (builtins without module), at most 2000 characters."""
    kind = type(exc)
    qualified = kind.__qualname__ if kind.__module__ == "builtins" \
        else f"{kind.__module__}.{kind.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # a user-defined __str__ may fail; the class name still says enough
        message = ""
    text = f"{qualified}: {message}" if message else qualified
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 1] + "…"
