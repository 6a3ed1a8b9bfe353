"""From raw exchange to exporter: the one path every recorder's data takes.

Recorders call :func:`begin` when a library call starts and :func:`finish` when the exchange is
over. :func:`finish` only appends the exchange to a backlog; a single daemon thread (the
*builder*) turns it into a HAR entry dict and hands it to each listening recorder's exporter.
This keeps entry building, redaction and serialisation off the user's request path.

The builder works in batches: woken by the first exchange of a batch, it lets
:data:`BATCH_SECONDS` pass, then builds everything that arrived meanwhile. Waking a thread and
handing it the GIL costs more than building a small entry, and a program making requests in a
loop would otherwise pay for one wake-up per request, while its own thread waits for the GIL.
A flush, a page, a recorder stopping or :data:`WAKE_BYTES` of waiting bodies wake it at once.

When every exporter listening needs its entries only when it stops (a file written at the end:
:attr:`HarExporter.deferrable`), the builder also waits for the program to pause: it builds
once a batch window passes with no new exchange, and a program busy making requests back to
back is not slowed by building under its feet (the builder would hold the GIL it needs). The
wait ends at :data:`MAX_DEFERRED` exchanges or :data:`MAX_DEFER_SECONDS`, so memory and the
work of one batch stay bounded. Live files, logs and models get every entry within a batch.

Pages (``harlem.page()``) travel through the same backlog, so an exporter always sees a page
before the entries that name it, and its end (:meth:`HarExporter.end_page`) after them: once
the block is over and no exchange begun inside it is still in flight. :func:`flush` waits
until everything queued so far has been exported; recorders flush when they stop, so a
``with`` block's file is complete at its end.
"""

from __future__ import annotations

import os
import threading
import time
from _thread import get_ident
from collections import deque
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ._threads import own_threads, start_daemon
from ._warn import warn_once
from .capture import Exchange, capture_frames, now

if TYPE_CHECKING:  # pragma: no cover
    from .exporters.base import HarExporter
    from .recorders.base import HarRecorder

__all__ = ["begin", "finish", "abandon", "flush", "open_page", "close_page", "attach", "detach",
           "is_recording", "DEFAULT_PAGE_ID"]

DEFAULT_PAGE_ID = "page_0"
DEFAULT_PAGE_TITLE = "harlem recording"
#: Past this many body bytes waiting for the builder, :func:`finish` waits (bounded memory).
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: Past this many, the builder starts on the batch at once instead of waiting it out.
WAKE_BYTES = 4 * 1024 * 1024
#: How long the builder lets a batch gather: the most an entry waits to reach an exporter
#: that shows entries as they come.
BATCH_SECONDS = 0.05
#: For exporters that write at the end: build after at most this long, pause or not ...
MAX_DEFER_SECONDS = 10.0
#: ... or once this many exchanges wait.
MAX_DEFERRED = 10_000

_lock = threading.RLock()
_listeners: Dict[str, Tuple["HarRecorder", ...]] = {}
# How many body bytes an exchange keeps for each listener tuple: the most any of them wants.
_body_limits: Dict[Tuple["HarRecorder", ...], int] = {}
# True while every listening exporter is deferrable: the builder may wait for a pause.
_deferrable = False
_open_pages: List[dict] = []
_page_counter = 0
# Pages whose block ended while exchanges begun inside it were still in flight.
_ending_pages: List[dict] = []
_in_flight: "set[Exchange]" = set()
# Appends and pops on a deque are atomic: producers and the builder share it without a lock.
_backlog: "deque[Any]" = deque()
_worker: Optional[threading.Thread] = None
# True from the builder's start until its loop ends: what _put reads for every exchange
# (Thread.is_alive() is five Python calls).
_running = False
_wake = threading.Event()
_idle = False  # the builder waits for a first item, with no timeout: the next one must wake it
_urgent = False  # someone waits for the backlog (flush) or it is large: no batching delay
_pending_bytes = 0  # body bytes in the backlog; under _lock
# Waited on by a producer past MAX_PENDING_BYTES; shares _lock (an RLock: a generator closed by
# the garbage collector may finish an exchange on a thread that is already inside it).
_pending_cond = threading.Condition(_lock)
#: True from a stop that waited ``join_timeout`` for the builder in vain to the builder's next
#: finished round: the stops that follow do not wait again.
_held = False
#: Held while the backlog is built in a program's thread (no builder thread could start).
_here_lock = threading.Lock()
# Which page ids each exporter has been given, so a shared exporter gets each page once.
_pages_sent: "Dict[int, set]" = {}


def iso_time(timestamp: float) -> str:
    """A wall-clock timestamp as ISO 8601 in UTC with milliseconds, as browsers write it."""
    global _last_second
    seconds = int(timestamp)
    millis = int((timestamp - seconds) * 1000)
    second, text = _last_second
    if second != seconds:  # entries come in bursts: most share the previous one's second
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return f"{text}.{millis:03d}Z"


_last_second: Tuple[int, str] = (-1, "")


# --- the recorder side ---------------------------------------------------------------------


def is_recording(library: str) -> bool:
    """True when some recorder listens to ``library``: wrappers skip all work otherwise."""
    return library in _listeners


def begin(library: str, method: str = "GET", url: Any = "", depth: int = 3,
          frames: Optional[tuple] = None) -> Optional[Exchange]:
    """Start an exchange for ``library``, or return ``None`` when nothing records it.

    ``depth`` is how many frames to skip to reach the caller of the patched function (the
    library's own frames are skipped anyway); a recorder that took the caller's ``frames``
    earlier (an async call, an incoming request with no caller) passes them instead. The
    exchange remembers which recorders were listening and which page was open at this moment.
    """
    listeners = _listeners.get(library)
    if not listeners or get_ident() in own_threads:  # (an exporter's own requests: not recorded)
        return None
    exchange = Exchange(library, method, url, capture_frames(depth) if frames is None else frames)
    exchange.listeners = listeners
    limit = _body_limits.get(listeners)
    exchange.body_limit = _limit_of(listeners) if limit is None else limit
    if _open_pages:
        # Naming the page and being in flight are one step for _end_pages: a page that
        # closes meanwhile is either not named or waited for.
        with _lock:
            exchange.page_id = _open_pages[-1]["id"] if _open_pages else None
            _in_flight.add(exchange)
    else:
        _in_flight.add(exchange)  # atomic; detach copies the set before looking through it
    return exchange


def finish(exchange: Exchange) -> None:
    """The exchange is over (body read, or failed): queue it for building. Call once."""
    global _pending_bytes
    if exchange.finished:
        return
    exchange.finished = True
    if exchange.t_end is None:
        exchange.t_end = now()
    size = _body_bytes(exchange)
    with _lock:
        while _pending_bytes > MAX_PENDING_BYTES and _running \
                and threading.current_thread() is not _worker:
            _pending_cond.wait(0.5)
        _pending_bytes += size
        large = _pending_bytes > WAKE_BYTES
    _put(exchange, urgent=large)
    _in_flight.discard(exchange)  # only once queued: its page's end comes after it
    if _ending_pages:  # (the builder may have looked while this one was still in flight)
        _end_pages()


def abandon(exchange: Exchange) -> None:
    """The exchange turned out not to be one (a test client switching to WebSocket): it is
    forgotten, never exported."""
    exchange.finished = True
    _in_flight.discard(exchange)


def _body_bytes(exchange: Exchange) -> int:
    """What an exchange counts against :data:`MAX_PENDING_BYTES` while it waits."""
    return exchange.response_size + len(exchange.request_body or b"")


# --- pages -------------------------------------------------------------------------------------


def default_page(started: Optional[float] = None) -> dict:
    """The page that entries made outside any ``harlem.page()`` block belong to."""
    return _new_page(DEFAULT_PAGE_ID, DEFAULT_PAGE_TITLE, started)


def _new_page(page_id: str, title: str, started: Optional[float] = None) -> dict:
    return {
        "startedDateTime": iso_time(time.time() if started is None else started),
        "id": page_id,
        "title": title,
        "pageTimings": {"onContentLoad": -1, "onLoad": -1},
    }


def open_page(title: str) -> dict:
    """Start a page: exchanges that begin from now on name it, until :func:`close_page`."""
    global _page_counter
    title = str(title)
    if not title.isascii():  # (a file name's undecodable bytes: lone surrogates, which JSON
        from .har.bodies import clean_str  # cannot hold)

        title = clean_str(title)
    with _lock:
        _page_counter += 1
        page = _new_page(f"page_{_page_counter}", title)
        _open_pages.append(page)
        # Queued under the lock, as begin() names the page under it: an exchange begun in
        # another thread the moment the page opens cannot queue its entry before the page.
        _backlog.append(("page", page, _active_exporters()))
    _nudge(urgent=True)  # (outside the lock: it may build the backlog right here)
    return page


def close_page(page: dict) -> None:
    with _lock:
        if page in _open_pages:
            _open_pages.remove(page)
            _ending_pages.append(page)
            _end_pages()


def _end_pages() -> None:
    """Queue the end of each ended page that no exchange in flight names any more.

    An exchange leaves ``_in_flight`` only once what it exports is queued, so the end comes
    after every entry that names the page.
    """
    with _lock:
        named = {exchange.page_id for exchange in tuple(_in_flight)}
        ended = [page for page in _ending_pages if page["id"] not in named]
        for page in ended:
            _ending_pages.remove(page)
            _put(("page_end", page), start=False)


def _active_exporters() -> List["HarExporter"]:
    seen: Dict[int, "HarExporter"] = {}
    for listeners in _listeners.values():
        for recorder in listeners:
            seen.setdefault(id(recorder.exporter), recorder.exporter)
    return list(seen.values())


# --- recorders joining and leaving -------------------------------------------------------------


def attach(recorder: "HarRecorder") -> None:
    """Make ``recorder`` receive exchanges of its library from now on.

    Its exporter first receives the default page and every page that is open right now.
    """
    with _lock:
        current = _listeners.get(recorder.library, ())
        if recorder not in current:
            _set_listeners(recorder.library, current + (recorder,))
        pages = [default_page()] + list(_open_pages)
    for page in pages:  # (with the first exchange, or the recording's end)
        _put(("page", page, [recorder.exporter]), urgent=True, start=False)


def _limit_of(recorders: Tuple["HarRecorder", ...]) -> int:
    return max(r.settings.max_body_size if r.settings.bodies else 0 for r in recorders)


def _set_listeners(library: str, recorders: Tuple["HarRecorder", ...]) -> None:
    """Under ``_lock``: who listens to ``library`` now (nobody when ``recorders`` is empty)."""
    global _deferrable
    old = _listeners.get(library)
    if recorders:  # the limit first: begin() may read it as soon as the tuple is listed
        _body_limits[recorders] = _limit_of(recorders)
        _listeners[library] = recorders
    else:
        _listeners.pop(library, None)
    if old is not None and old != recorders:
        _body_limits.pop(old, None)
    _deferrable = all(r.exporter.deferrable for rs in _listeners.values() for r in rs)


def detach(recorder: "HarRecorder") -> None:
    """Stop feeding ``recorder``; export what it is owed first.

    Exchanges still in flight (a streamed body nobody finished reading) are exported for this
    recorder as they stand, with unknown sizes, so that no request goes missing from its file.
    """
    with _lock:
        current = _listeners.get(recorder.library, ())
        _set_listeners(recorder.library, tuple(r for r in current if r is not recorder))
        # (a finished one is being queued by finish: its whole entry reaches the exporter)
        unfinished = [ex for ex in tuple(_in_flight)
                      if recorder in ex.listeners and not ex.finished]
        for exchange in unfinished:  # it gets this partial entry instead of the final one
            exchange.listeners = tuple(r for r in exchange.listeners if r is not recorder)
    for exchange in unfinished:
        _put(("partial", exchange, recorder), urgent=True)
        if not exchange.listeners:
            # Nobody waits for its end any more, which may never come: a library unpatched
            # meanwhile no longer reports it. Not kept (with its body) for ever.
            _in_flight.discard(exchange)
    global _held
    timeout = recorder.settings.join_timeout
    # An exporter that hangs (a sink that never answers) holds the builder: waited for once,
    # not once per recorder of the recording.
    if not flush(0.0 if _held else timeout):
        _held = True
        name = _name_of(recorder.exporter)
        warn_once(f"flush-{name}", f"{name} did not take its entries within {timeout:g} s; "
                                   f"stopping it without them")
    sink = _sink(recorder.exporter)
    if not _exporter_in_use(sink):
        _pages_sent.pop(id(sink), None)


def _exporter_in_use(sink: "HarExporter") -> bool:
    return any(_sink(r.exporter) is sink for listeners in _listeners.values() for r in listeners)


# --- the builder thread ------------------------------------------------------------------------


def _put(item: Any, urgent: bool = False, start: bool = True) -> None:
    """Add ``item`` to the backlog; wake the builder if it sleeps (or now, if ``urgent``)."""
    _backlog.append(item)
    _nudge(urgent, start)


def _nudge(urgent: bool = False, start: bool = True) -> None:
    """Have what was just appended to the backlog built: wake the builder (now, if
    ``urgent``), starting it if needed.

    The builder thread starts with the first item that needs it (``start``): not for a page
    alone, so that a program that imports an HTTP library and forks before any request has
    no thread of harlem's (Python 3.12 and later warn at a fork in a process with threads).
    Where no thread can start (Python 3.12.0 to 3.12.2 at interpreter shutdown: a request
    made from an ``atexit`` handler or a thread outliving the main one), the backlog is built
    in the calling thread instead (never while holding ``_lock``: see :func:`open_page`).
    """
    global _worker, _urgent, _running
    if not _running and start:
        here = False
        with _lock:
            if not _running:
                # Set once started; its loop's end, under _lock, comes after.
                try:
                    _worker = start_daemon(_run, "harlem-builder")
                    _running = True
                except RuntimeError:  # "can't create new thread at interpreter shutdown"
                    here = True
        if here:
            _drain_here()
            return
    if not _running:  # a page waiting for the first exchange: nothing to hurry for
        return
    if urgent:
        _urgent = True
        _wake.set()
    elif _idle:  # read after the append: the builder either sees the item or is woken
        _wake.set()


def flush(timeout: Optional[float] = None) -> bool:
    """Wait until everything queued before this call has reached the exporters."""
    if threading.current_thread() is _worker:
        return True
    if not _running:  # no exchange yet, only pages: delivered here, not by a new thread
        _drain_here()  # (the agent flushes before a fork, which a thread would make warn)
        return True
    done = threading.Event()
    _put(done, urgent=True)
    try:
        return done.wait(timeout)
    except AssertionError:
        # Waiting is impossible here: a signal handler (SIGTERM's export) run by gevent's or
        # eventlet's hub, which cannot block (BlockingSwitchOutError, "Cannot switch to
        # MAINLOOP from MAINLOOP"). The builder, a greenlet waiting for its batch, is not in
        # the middle of one: what is queued is built here instead.
        _drain_here()
        return True


def _drain_here() -> None:
    """Build the backlog in the calling thread: no builder thread runs, or none can start."""
    with _here_lock:
        _drain(_backlog)


def _run() -> None:
    global _running
    try:
        _loop()
    finally:  # only if the loop itself failed: the next item starts another builder
        with _lock:
            if threading.current_thread() is _worker:
                _running = False


def _loop() -> None:
    global _idle, _urgent, _held
    backlog = _backlog
    while True:
        _idle = True
        if not backlog:  # checked after _idle is set: an item appended since then wakes us
            _wake.wait()
        _idle = False
        _wake.clear()
        _gather()
        _urgent = False
        _drain(backlog)
        _held = False
        if _ending_pages:
            _end_pages()


def _gather() -> None:
    """Let a batch gather before it is built; an urgent item cuts the wait short.

    Producers do not wake the builder while it gathers (it is not idle), so each wait below
    ends on its timeout or on an urgent item.
    """
    if _urgent:
        return
    _wake.wait(BATCH_SECONDS)
    _wake.clear()
    if not _deferrable:
        return
    deadline = now() + MAX_DEFER_SECONDS
    seen = len(_backlog)
    while not _urgent and seen < MAX_DEFERRED and now() < deadline:
        _wake.wait(BATCH_SECONDS)
        _wake.clear()
        count = len(_backlog)
        if count == seen:  # a window without a new exchange: the program paused
            return
        seen = count


def _drain(backlog: "deque[Any]") -> None:
    """Build everything in ``backlog``; each exporter gets its entries in batches.

    A batch ends at :data:`BATCH_ENTRIES` entries or :data:`BATCH_BYTES` of bodies (a built
    entry weighs more than its exchange: base64, JSON), and before a page, a partial entry or
    a flush marker, so that exporters see everything in the order it was queued.
    """
    batch = _Batch()
    while backlog or batch.count:
        try:
            if not backlog:
                batch.deliver()
                continue
            item = backlog.popleft()
            if isinstance(item, Exchange):
                batch.add(item, item.listeners)
                if batch.count >= BATCH_ENTRIES or batch.size >= BATCH_BYTES:
                    batch.deliver()
                continue
            try:
                batch.deliver()
            finally:  # a flush marker must be set whatever happened, or its caller waits forever
                _handle_marker(item)
        except BaseException as exc:  # the builder must outlive any bad exchange
            warn_once("builder", "could not record an HTTP exchange", exc)


def _handle_marker(item: Any) -> None:
    """A flush marker, a page or a partial entry, taken in the backlog's order."""
    if isinstance(item, threading.Event):
        item.set()
    elif item[0] == "page":
        _deliver_page(item[1], item[2])
    elif item[0] == "page_end":
        _deliver_page_end(item[1]["id"])
    elif item[0] == "partial":
        partial = _Batch()
        partial.add(item[1], (item[2],), partial=True)
        partial.deliver()


#: :mod:`harlem.har.build`, imported when the builder first needs it (the agent imports this
#: module at start-up; an import statement per entry costs a microsecond).
_build: Any = None
#: The most entries handed to an exporter at once (one write for a live file).
BATCH_ENTRIES = 256
#: ... and the most body bytes.
BATCH_BYTES = 1024 * 1024


class _Batch:
    """Entries built from a run of exchanges, gathered per exporter."""

    def __init__(self) -> None:
        self.count = 0  # finished exchanges built into it
        self.size = 0  # their body bytes
        self.entries: Dict[int, Tuple["HarExporter", List[dict]]] = {}

    def add(self, exchange: Exchange, recorders: tuple, partial: bool = False) -> None:
        """Build ``exchange`` once per distinct settings among ``recorders``.

        A ``partial`` exchange is still in flight: its bytes are released when it finishes.
        """
        global _build
        if _build is None:
            from .har import build

            _build = build
        if not partial:
            self.count += 1
            self.size += _body_bytes(exchange)
        built: Dict[Any, dict] = {}
        given: List[int] = []  # exporters already given this exchange
        for recorder in recorders:
            exporter = recorder.exporter
            sink = _sink(exporter)
            if id(sink) in given:  # two recorders of one library into one exporter
                counted = getattr(exporter, "counted", None)  # (a Recording's count)
                if counted is not None and built:
                    counted([next(iter(built.values()))])
                continue
            given.append(id(sink))
            options = recorder.settings
            entry = built.get(options)
            if entry is None:
                try:
                    entry = _build.build_entry(exchange, options, partial=partial)
                except Exception as exc:
                    warn_once("build", "could not build a HAR entry in full", exc)
                    try:  # the entry is kept, with what cannot leak
                        entry = _build.fallback_entry(exchange, exc)
                    except Exception:
                        continue
                built[options] = entry
            self.entries.setdefault(id(exporter), (exporter, []))[1].append(entry)

    def deliver(self) -> None:
        """Hand each exporter its entries, then release the exchanges' memory budget."""
        global _pending_bytes
        entries, self.entries = self.entries, {}
        released, self.size, self.count = self.size, 0, 0
        try:
            for exporter, batch in entries.values():
                try:
                    exporter.add_entries(batch)
                except BaseException as exc:  # (sys.exit in one exporter: not the others')
                    name = _name_of(exporter)
                    warn_once(f"export-{name}", f"{name} could not export an entry", exc)
        finally:
            if released:
                with _lock:
                    _pending_bytes -= released
                    _pending_cond.notify_all()


def _sink(exporter: "HarExporter") -> "HarExporter":
    """Where ``exporter``'s entries end up: a Recording counts them on the way (a shim of
    its own in front of the program's exporter, which two Recordings may share)."""
    return getattr(exporter, "sink", exporter)


def _deliver_page(page: dict, exporters: List["HarExporter"]) -> None:
    for exporter in exporters:
        sent = _pages_sent.setdefault(id(_sink(exporter)), set())
        if page["id"] in sent:
            continue
        sent.add(page["id"])
        try:
            exporter.add_page(page)
        except BaseException as exc:
            name = _name_of(exporter)
            warn_once(f"export-page-{name}", f"{name} could not export a page", exc)


def _deliver_page_end(page_id: str) -> None:
    """Tell each exporter listening now that had the page: it has all its entries."""
    with _lock:
        exporters = _active_exporters()
    for exporter in exporters:
        sent = _pages_sent.get(id(_sink(exporter)))
        if sent is None or page_id not in sent:
            continue
        sent.discard(page_id)  # (an ended page is never sent again: not kept for ever)
        try:
            exporter.end_page(page_id)
        except BaseException as exc:
            name = _name_of(exporter)
            warn_once(f"export-page-end-{name}", f"{name} could not end a page", exc)


def _name_of(exporter: "HarExporter") -> str:
    """The exporter a warning names: the program's own, not a shim of harlem's in front of it
    (one that counts entries says ``name_in_warnings``)."""
    return getattr(exporter, "name_in_warnings", None) or type(exporter).__name__


# --- fork ----------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """A forked child starts with no recording of its own and none of the parent's backlog.

    Whoever wants the child recorded (the agent) attaches new recorders after this runs.
    """
    global _lock, _backlog, _worker, _running, _wake, _idle, _urgent, _pending_bytes, _pending_cond
    global _listeners, _open_pages, _deferrable, _here_lock, _ending_pages
    _lock = threading.RLock()
    _backlog = deque()
    _worker = None
    _running = False
    _wake = threading.Event()
    _idle = _urgent = False
    _pending_bytes = 0
    _pending_cond = threading.Condition(_lock)
    _here_lock = threading.Lock()
    _listeners = {}
    _deferrable = False
    _body_limits.clear()
    _in_flight.clear()
    _pages_sent.clear()
    _open_pages = list(_open_pages)
    _ending_pages = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
