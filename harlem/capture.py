"""The raw exchange: what a recorder notes on the hot path, inside the user's call.

A recorder fills one :class:`Exchange` per HTTP exchange (one redirect hop is one exchange) with
cheap raw facts only: clock readings, header lists exactly as sent and received, body bytes,
socket addresses, the caller's code locations and the exception if any. Turning those facts
into a HAR entry (dates, cookies, postData, base64, redaction, JSON) happens later, off the
request path, in :mod:`harlem.har.build`. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["Exchange", "now", "capture_frames", "visible_frames", "register_library_path",
           "register_library_package", "header_text", "content_encoded"]

#: The one clock for phase timestamps: monotonic, sub-microsecond, comparable across threads.
now = time.perf_counter

# This process's id, kept up to date across forks: os.getpid() is a system call per exchange.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

def header_text(raw: bytes) -> str:
    """Header bytes as every recorder spells them: UTF-8 where they are, else ISO-8859-1.

    Recorders hand over header bytes as they were on the wire where they can, so that this
    runs in the builder, off the program's request path.
    """
    if raw.isascii():
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@functools.lru_cache(maxsize=64)
def content_encoded(value: str) -> bool:
    """Whether a ``Content-Encoding`` value applies an encoding (``gzip``, ``br, gzip``...),
    rather than none (``""``, ``identity``). The builder and the recorders read it alike."""
    return any(token.strip().lower() not in ("", "identity") for token in value.split(","))


#: A header as a recorder keeps it: ``(name, value)``, both ``str`` or both wire ``bytes``.
Header = Tuple[Any, Any]
#: A sequence of headers, or a multidict whose ``items()`` gives them.
Headers = Union[Sequence[Header], Any]

# Files whose frames never appear in ``_initiator``: harlem's machinery, wrapt, and the HTTP
# libraries (each recorder registers its own), so that the first frame is the user's call site.
# harlem's demo is user code as far as recording goes, so it stays visible.
_HERE = os.path.dirname(os.path.abspath(__file__))
_HIDDEN_PREFIXES: List[str] = [_HERE + os.sep]
_VISIBLE = os.path.join(_HERE, "demo") + os.sep
# The event loop's and thread pools' own frames sit below every async or threaded call: noise.
_STDLIB = os.path.dirname(os.__file__)
_HIDDEN_PREFIXES += [os.path.join(_STDLIB, name) + os.sep for name in ("asyncio", "concurrent")]
_HIDDEN_PREFIXES.append(os.path.join(_STDLIB, "threading.py"))
_hidden_tuple: Tuple[str, ...] = tuple(_HIDDEN_PREFIXES)
#: Frames kept in ``_initiator``, and frames walked on the request path (hidden ones included).
MAX_FRAMES = 30
MAX_WALK = 64
# Where an async call's stack ends: the frame of the event loop running one callback (a task's
# step). Past it are only the loop's own frames and the line that started the loop, the same
# for every request the loop makes: walking them was half the walk of an aiohttp request.
_LOOP_CALLBACK = (os.path.join(_STDLIB, "asyncio", "events.py"), "_run")
_STOP = "stop"
#: CO_COROUTINE, CO_ITERABLE_COROUTINE and CO_ASYNC_GENERATOR: a frame of an async function.
_ASYNC_FLAGS = 0x80 | 0x100 | 0x200
# The code object of that frame, found once asyncio is imported (it is not imported here: the
# agent's start-up must not pay for it); None until then, _NO_CODE when Handle._run has none
# (replaced by something that is not a Python function: the builder still stops by name).
_loop_step: Optional[Any] = None
_NO_CODE = object()
_modules = sys.modules


# Whether each code object seen on a captured stack is hidden: one dict look-up per frame
# instead of a prefix test per frame and prefix. Keyed by id(): a code object's own hash is
# computed afresh from its contents on every look-up (~0.4 us for an event loop's big
# functions, which sit on every async stack); the entry holds the code object, so its id
# cannot be reused while cached. Emptied when the prefixes change, and when it grows past
# _MAX_CODES (a program that compiles code at run time keeps making new ones).
_hidden_codes: Dict[int, Tuple[Any, Any]] = {}
_MAX_CODES = 20000
# What visible_frames made of each whole stack seen: a program makes its requests from a few
# places, and most of a stack is the library's own frames, which take a look-up each to skip.
# Emptied with _hidden_codes when the prefixes change, and past _MAX_STACKS.
_stacks: Dict[Tuple[int, ...], Tuple[Any, List[Tuple[Any, int]]]] = {}
_MAX_STACKS = 1024


def register_library_path(module: Any) -> None:
    """Hide the frames of ``module``'s package (a recorder's library) from ``_initiator``."""
    global _hidden_tuple, _hidden_codes, _stacks
    path = getattr(module, "__file__", None)
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(path) != "__init__.py":  # a single-module library: hide only that file
        folder = os.path.abspath(path)
    else:
        folder += os.sep
    if folder not in _HIDDEN_PREFIXES:
        _HIDDEN_PREFIXES.append(folder)
        _hidden_tuple = tuple(_HIDDEN_PREFIXES)
        _hidden_codes = {}
        _stacks = {}


def register_library_package(name: str) -> None:
    """Hide the frames of the installed package ``name`` from ``_initiator``, whether it is
    imported yet or not (found where it would be imported from, without importing it)."""
    module = sys.modules.get(name)
    if module is None:
        import importlib.util

        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return
        origin = spec.origin if spec is not None else None
        if not origin or not os.path.isabs(origin):  # not installed, or built in
            return
        module = type(sys)(name)
        module.__file__ = origin
    register_library_path(module)


#: Event loops other than asyncio's, and the layers over them: their frames sit between a task
#: and the line that started its loop, as asyncio's own do.
_EVENT_LOOP_PACKAGES = ("uvloop", "trio", "anyio", "sniffio")
_loops_hidden = False


def capture_frames(depth: int = 2) -> Tuple[Any, ...]:
    """The caller's stack, innermost first, as one flat tuple: ``code, lasti`` per frame.

    Cheap by design, as it runs inside the program's call: a ``sys._getframe`` walk of at most
    :data:`MAX_WALK` frames that keeps code objects and instruction offsets, and nothing else.
    Which frames are harlem's or a library's (:func:`visible_frames`), names, file URLs, lines
    and columns are all worked out later by the builder. Not even ``f_lineno``: CPython finds
    a line by scanning the code's line table from its start, which for a module's last lines
    (a script's ``main()`` call at its end) cost microseconds per request. Flat, because an
    exchange waits a while for its building: one tuple instead of one per frame is fewer
    objects for the garbage collector meanwhile. A call made in an event loop's task ends with
    the task's outermost coroutine (see :data:`_LOOP_CALLBACK`).
    """
    global _loop_step
    try:
        frame: Any = sys._getframe(depth)
    except ValueError:
        return ()
    stop = _loop_step
    if stop is None and "asyncio.events" in _modules:
        handle = getattr(_modules["asyncio.events"], "Handle", None)
        stop = _loop_step = getattr(getattr(handle, "_run", None), "__code__", _NO_CODE)
    out: List[Any] = []
    room = 2 * MAX_WALK
    while frame is not None:
        code = frame.f_code
        if code is stop:
            break
        out += (code, frame.f_lasti)
        if len(out) == room:
            break
        frame = frame.f_back
    return tuple(out)


def visible_frames(frames: Sequence[Any]) -> List[Tuple[Any, int]]:
    """The ``(code, lasti)`` pairs of a captured stack that ``_initiator`` shows: at most
    :data:`MAX_FRAMES`, without harlem's, wrapt's, the HTTP libraries' and the event loop's
    own frames, and none past an event loop's callback. The list is shared by every stack
    with the same frames: read it, do not change it."""
    global _hidden_codes, _loops_hidden
    if not _loops_hidden:  # (in the builder, the first time: not at the agent's start-up)
        _loops_hidden = True
        for name in _EVENT_LOOP_PACKAGES:
            register_library_package(name)
    codes = frames[0::2]
    # Keyed by the frames' code ids and offsets: the cached value holds the code objects, so
    # no other object can have those ids while it is cached, and a match is the same stack.
    key = tuple(map(id, codes)) + tuple(frames[1::2])
    stacks = _stacks  # the one read: if the prefixes change meanwhile, no stale result is kept
    known_stack = stacks.get(key)
    if known_stack is not None:
        return known_stack[1]
    hidden_codes = _hidden_codes
    if len(hidden_codes) > _MAX_CODES:
        hidden_codes = _hidden_codes = {}
    shown: List[Tuple[Any, int]] = []
    in_task = False
    for index in range(0, len(frames), 2):
        code = frames[index]
        known = hidden_codes.get(id(code))
        if known is None or known[0] is not code:
            known = hidden_codes[id(code)] = (code, _hidden(code))
        hidden = known[1]
        if hidden is _STOP:
            break
        # Past a task's outermost coroutine only the loop that steps it remains (uvloop's
        # and trio's, which have no Handle._run frame), and the line that started the loop.
        is_coroutine = bool(code.co_flags & _ASYNC_FLAGS)
        if in_task and not is_coroutine:
            break
        in_task = is_coroutine
        if not hidden:
            shown.append((code, frames[index + 1]))
            if len(shown) == MAX_FRAMES:
                break
    if len(stacks) >= _MAX_STACKS:
        stacks.clear()
    stacks[key] = (codes, shown)
    return shown


def _hidden(code: Any) -> Any:
    """Whether frames of ``code`` stay out of ``_initiator``: ``True``, ``False``, or
    :data:`_STOP` when neither they nor the frames that called them appear."""
    filename = code.co_filename
    if (filename, code.co_name) == _LOOP_CALLBACK:
        return _STOP
    return (filename.startswith(_hidden_tuple) and not filename.startswith(_VISIBLE)
            or filename.startswith("<frozen"))


class Exchange:
    """One HTTP exchange as raw facts. Timestamps are :func:`now` readings (seconds).

    Phase marks (``None`` when the phase did not happen, for example on a reused connection):
    ``t_start`` the library call began; ``t_dns_start``/``t_dns_end`` name resolution;
    ``t_connect_start``/``t_connect_end`` the connection (TCP and TLS together, DNS inside when the
    library cannot separate them); ``t_tls_start`` the TLS handshake began; ``t_send_start``/
    ``t_send_end`` the request went out; ``t_response`` the status line and headers arrived;
    ``t_end`` the body was read to the end (or the exchange failed).
    """

    __slots__ = (
        "library",
        "direction",
        "wall_start",
        "t_start",
        "t_dns_start",
        "t_dns_end",
        "t_connect_start",
        "t_tls_start",
        "t_connect_end",
        "t_send_start",
        "t_send_end",
        "t_response",
        "t_end",
        "method",
        "url",
        "http_version",
        "request_headers",
        "absolute_target",
        "request_body",
        "request_size",
        "status",
        "reason",
        "response_headers",
        "response_body",
        "response_size",
        "response_wire_size",
        "body_complete",
        "server_ip",
        "server_port",
        "local_port",
        "error",
        "frames",
        "page_id",
        "listeners",
        "pid",
        "finished",
        "body_limit",
    )

    def __init__(self, library: str, method: str = "GET", url: Any = "", frames: tuple = ()):
        self.library = library
        #: ``"outgoing"`` for a client call, ``"incoming"`` for a request served by the program.
        self.direction = "outgoing"
        self.wall_start = time.time()
        self.t_start = now()
        self.t_dns_start: Optional[float] = None
        self.t_dns_end: Optional[float] = None
        self.t_connect_start: Optional[float] = None
        self.t_tls_start: Optional[float] = None
        self.t_connect_end: Optional[float] = None
        self.t_send_start: Optional[float] = None
        self.t_send_end: Optional[float] = None
        self.t_response: Optional[float] = None
        self.t_end: Optional[float] = None
        self.method = method
        #: The URL as sent: ``str``, or the library's own immutable URL object (``str()``
        #: gives the text; the builder makes it, off the request path).
        self.url = url
        #: ``"HTTP/1.1"``, ``"HTTP/1.0"`` or ``"http/2.0"`` once known.
        self.http_version = ""
        #: Headers exactly as sent: ordered, duplicates kept; names and values are ``str``, or
        #: ``bytes`` as on the wire, which the builder decodes (UTF-8, else ISO-8859-1). A
        #: sequence of pairs, the ``b"Name: value"`` lines http.client wrote, or a multidict
        #: that nothing changes any more (read through ``items()``). A library's own object
        #: that it may still change (aiohttp's request headers, which a client middleware can
        #: rewrite before sending the request again) is copied instead.
        self.request_headers: Headers = ()
        #: True when the request line named the whole URL, not only its path: the absolute
        #: form a request to a plain-HTTP proxy goes out in (what ``headersSize`` counts).
        self.absolute_target = False
        #: The request body as bytes, ``None`` when there was none or it could not be seen.
        self.request_body: Optional[bytes] = None
        #: The request body's true size when the recorder kept only its first bytes.
        self.request_size: Optional[int] = None
        self.status = 0
        self.reason = ""
        #: Headers exactly as received: ordered, duplicates kept (as ``request_headers``).
        self.response_headers: Headers = ()
        #: The decoded body as the program received it, its first ``body_limit`` bytes: the
        #: first chunk as it came, a ``bytearray`` once a second one is added. Neither is
        #: a container the garbage collector tracks while the exchange waits for building.
        self.response_body: Union[bytes, bytearray] = b""
        #: Decoded body bytes the program received in all (even past ``body_limit``).
        self.response_size = 0
        #: Body bytes on the wire (before content decoding), once the whole body came off
        #: the wire; ``None`` when not measurable or not whole.
        self.response_wire_size: Optional[int] = None
        #: True once the body was read to its end and decoded as the program received it;
        #: False means its decoded size is unknown (the wire size may still be known).
        self.body_complete = False
        self.server_ip = ""
        self.server_port = 0
        self.local_port = 0
        self.error: Optional[BaseException] = None
        self.frames = frames
        self.page_id: Optional[str] = None
        #: The recorders that were active when the exchange began; set by the pipeline.
        self.listeners: tuple = ()
        self.pid = _pid
        self.finished = False
        #: How many body bytes to keep; the rest is only counted.
        self.body_limit: Optional[int] = None

    def add_response_chunk(self, data: bytes) -> None:
        """Keep a decoded body chunk (up to ``body_limit``) and count it."""
        if not data:
            return
        self.response_size += len(data)
        body = self.response_body
        limit = self.body_limit
        if limit is not None:
            room = limit - len(body)
            if room <= 0:
                return
            if len(data) > room:
                data = data[:room]
        if not body:
            self.response_body = bytes(data)  # the same object when it is bytes already
        elif type(body) is bytearray:
            body += data
        else:
            self.response_body = bytearray(body) + data

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Exchange {self.library} {self.method} {self.url} {self.status}>"
