"""SIGTERM and SIGHUP: export the recording, then die of the signal as the program would have.

Without harlem, these signals kill a Python program on the spot (no ``atexit``). The handler
installed here exports first, then restores the default disposition and sends the signal again,
so the exit status (``-15`` from ``Popen.returncode``, ``143`` in a shell) stays the real one.

* Only the default action is replaced. A handler the program had before harlem started stays in
  place and runs as before; one it installs later replaces harlem's, as it would replace the
  default. Either way, when that handler ends the program through ``sys.exit`` (or by returning
  to an exit), ``atexit`` exports.
* An ignored signal (``nohup``) stays ignored.
* SIGINT is never touched: Python's own handler raises ``KeyboardInterrupt`` (asyncio relies on
  it) and the export happens in ``atexit``; Python then dies of SIGINT itself.

``_signal`` is used instead of ``signal``, which imports ``enum`` and costs start-up time.
"""

import _thread
import os
import sys

import _signal  # type: ignore[import-not-found]  # (no stub: it is CPython's C module)

TYPE_CHECKING = False  # typing costs start-up time; type checkers read the block below
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["install", "export_before_death", "hold", "die", "watch", "forget_watch",
           "ExportOnce", "SIGNALS"]

#: The signals whose default action would end the program without ``atexit``.
SIGNALS = ("SIGTERM", "SIGHUP")

#: harlem's handlers in place of the default action (for :func:`watch` to recognise them).
_handlers: "list[Any]" = []
#: The signals whose default action harlem's handler stands in for right now, and that handler.
_taken: "dict[int, Any]" = {}
#: Watches for the ``signal`` module's import while ``_taken`` is not empty (see :func:`_guard`).
_finder: "Any" = None
#: This process's watch: the two ends of the pipe Python writes signal numbers to.
_watch: "tuple[int, int] | None" = None


def install(export: "Callable[[int], bool]") -> "Callable[[], None]":
    """Call ``export(signum)`` before SIGTERM or SIGHUP kills the program (main thread only).

    ``export`` returns False to postpone the death: it will call :func:`die` itself (when the
    signal interrupted an export already under way in this thread). Returns what puts the
    default action back, where the handler installed here is still the one in place.
    """
    installed = []
    for name in SIGNALS:
        signum = getattr(_signal, name, None)  # no SIGHUP on Windows
        if signum is None:
            continue
        if _signal.getsignal(signum) == _signal.SIG_DFL:
            handler = _handler(export)
            _signal.signal(signum, handler)
            installed.append((signum, handler))
            _handlers.append(handler)
            _taken[signum] = handler
    if installed:
        _guard()

    def restore() -> None:
        for signum, handler in installed:
            if _taken.get(signum) is handler:
                del _taken[signum]
            if _signal.getsignal(signum) is handler:
                _signal.signal(signum, _signal.SIG_DFL)
        if not _taken:
            _unguard()

    return restore


def _guard() -> None:
    """Keep harlem's handler where the program puts the default action back.

    asyncio's ``loop.add_signal_handler`` replaces harlem's handler, and when the loop closes
    it sets the *default* action, not the handler it replaced (trio puts that one back): a
    SIGTERM in the program's remaining work then killed it without an export. Setting the
    default action through ``signal.signal`` now sets harlem's handler, which stands in for
    it as it did from the start. ``signal`` is watched for until imported, never imported
    here (it imports ``enum``, which the agent's start-up must not pay for).
    """
    global _finder
    if "signal" in sys.modules:
        _take_over_signal("signal")
    elif _finder is None:
        from .hooks import install as on_import

        _finder = on_import(["signal"], _take_over_signal)


def _take_over_signal(_name: str) -> None:
    global _python_signal
    import signal

    if signal.signal is _default_is_harlems:
        return
    _python_signal = signal.signal
    _default_is_harlems.__wrapped__ = _python_signal  # type: ignore[attr-defined]
    _default_is_harlems.__doc__ = _python_signal.__doc__
    signal.signal = _default_is_harlems


#: ``signal.signal`` as it was before :func:`_take_over_signal` (Python's, usually).
_python_signal: "Any" = None


# ``signal.signal`` while harlem's handler stands in for a default action (its docstring,
# and ``__wrapped__``, are those of the function it calls: see _take_over_signal).
def _default_is_harlems(signalnum: "Any", handler: "Any") -> "Any":
    previous = _python_signal(signalnum, handler)
    if handler == _signal.SIG_DFL:  # (an int or signal.Handlers.SIG_DFL)
        ours = _taken.get(int(signalnum))
        if ours is not None:
            _signal.signal(int(signalnum), ours)
    return previous


def _unguard() -> None:
    """No default action is harlem's any more: ``signal`` gets its own function back."""
    global _finder
    if _finder is not None:
        from .hooks import uninstall

        uninstall(_finder)
        _finder = None
    signal = sys.modules.get("signal")
    if signal is not None and signal.signal is _default_is_harlems:
        signal.signal = _python_signal


def export_before_death(ending: "ExportOnce") -> "Callable[[], None]":
    """Run ``ending`` before SIGTERM or SIGHUP ends the program (the file written, then the
    signal kills it as it would have: 143 in a shell), where their default action is in place
    and this is the main thread; returns what undoes it. A server that handles the signal
    itself and raises it again once shut down (uvicorn) ends the same way."""
    if _thread.get_ident() != _main_thread():
        return lambda: None
    return install(ending.on_signal)


def _main_thread() -> int:
    import threading

    return threading.main_thread().ident or 0


def _handler(export: "Callable[[int], bool]") -> "Callable[[int, Any], None]":
    def on_signal(signum: int, frame: "Any") -> None:
        if export(signum):
            die(signum)

    return on_signal


def hold() -> "Callable[[], None]":
    """While harlem writes its files: SIGINT, SIGTERM and SIGHUP wait until it is done.

    A second Ctrl-C during a long export (or a supervisor's SIGTERM that a program's handler
    turns into ``sys.exit``) would otherwise stop the write half way and lose the whole file.
    Returns what lets them through: each signal that came meanwhile is then handled as it
    would have been (the handler in place before, or death by the signal for the defaults).
    A no-op outside the main thread, where handlers cannot be changed.
    """
    pending: "list[int]" = []
    held: "dict[int, Any]" = {}
    for name in SIGNALS + ("SIGINT",):
        signum = getattr(_signal, name, None)
        if signum is None:
            continue
        handler = _signal.getsignal(signum)
        if handler in (_signal.SIG_IGN, None):  # ignored, or not Python's to change
            continue
        try:
            _signal.signal(signum, lambda number, frame: pending.append(number))
        except ValueError:  # not the main thread
            break
        held[signum] = handler

    def release() -> None:
        for signum, handler in held.items():
            _signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            handler = held[signum]
            if handler in (_signal.SIG_DFL, _signal.default_int_handler):
                die(signum)  # what Ctrl-C (or the default action) ends with, file written
            _signal.raise_signal(signum)  # the program's handler, or harlem's own: as it would

    return release


class ExportOnce:
    """A recording's last export (the agent's file or part, ``harlem fn out.har``'s file, a
    ``record_to_file`` block's): run once, whichever ending comes first (the program's or the
    block's end, ``atexit``, SIGTERM, ``os._exit``).

    While it runs, signals are held (:func:`hold`). A signal whose handler interrupts the
    export in the very thread running it (a pool worker terminated on its way out, before
    ``hold`` took effect) is remembered, and kills the process once the file is written.
    """

    def __init__(self, export: "Callable[[], None]") -> None:
        self.export = export
        #: Held while exporting: what must not interleave with the export takes it too.
        self.lock = _thread.RLock()
        self._done_in = 0  # the pid that exported: a forked child has yet to export its own
        self._exporting = 0  # the thread exporting right now
        self._pending = 0  # a signal that interrupted that export

    @property
    def done(self) -> bool:
        return self._done_in == os.getpid()

    def run(self) -> None:
        with self.lock:
            if self.done:
                return
            self._done_in = os.getpid()
            self._exporting = _thread.get_ident()
            release = hold()
            try:
                self.export()
            finally:
                self._exporting = 0
                if self._pending:
                    die(self._pending)
                release()

    def on_signal(self, signum: int) -> bool:
        """For :func:`install`: export, then (True) let the signal end the process."""
        if self._exporting == _thread.get_ident():
            self._pending = signum
            return False
        self.run()
        return True


def watch() -> None:
    """Make sure harlem's handler runs when SIGTERM or SIGHUP arrives (a child process).

    A Python handler runs only when the main thread is back in Python. A signal that lands
    just before the main thread blocks in a wait with no end (a pool worker going back to its
    task queue as ``Pool.terminate`` sends SIGTERM, within microseconds of its last result)
    is noted but never handled, and the process, which the default action would have killed,
    waits for ever. So Python's wakeup file descriptor is pointed at a pipe that a harlem
    thread reads: for each such signal still meant for harlem's handler, it sends the signal
    again to the main thread itself, which interrupts its wait. Nothing is done when the
    program (or its event loop) has a wakeup descriptor of its own, or from another thread
    than the main one.
    """
    global _watch
    if _watch is not None or not _handlers:
        return
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        previous = _signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        if previous != -1:  # someone else's: theirs it stays
            _signal.set_wakeup_fd(previous)
            raise ValueError("the wakeup descriptor is taken")
    except (ValueError, OSError):
        os.close(read_end)
        os.close(write_end)
        return
    _watch = (read_end, write_end)
    main = _thread.get_ident()  # (set_wakeup_fd works in the main thread only)
    from .._threads import start_daemon

    start_daemon(lambda: _redeliver(read_end, main), "harlem-signals")
    import signal

    signal.set_wakeup_fd = _program_wakeup_fd


def _program_wakeup_fd(fd: int, **options: "object") -> int:
    """``signal.set_wakeup_fd`` while harlem watches: the program (or its event loop) takes
    the descriptor, and sees what it would without harlem: none before its own (trio warns,
    and under ``-W error`` fails, when it finds one)."""
    previous = _signal.set_wakeup_fd(fd, **options)
    if _watch is None or previous != _watch[1]:
        return previous
    _stop_watching()
    return -1


def _stop_watching() -> None:
    """Close harlem's pipe (its reading thread ends) and give ``signal`` its own function."""
    global _watch
    import signal

    if signal.set_wakeup_fd is _program_wakeup_fd:
        signal.set_wakeup_fd = _signal.set_wakeup_fd
    if _watch is not None:
        try:
            os.close(_watch[1])
        except OSError:
            pass
        _watch = None


def _redeliver(read_end: int, main: int) -> None:
    import time

    sent: "dict[int, int]" = {}
    while True:
        try:
            numbers = set(os.read(read_end, 512))
        except OSError:
            return
        if not numbers:  # the write end closed: harlem no longer watches
            os.close(read_end)
            return
        for number in numbers:
            if sent.get(number, 0) >= 3 or _signal.getsignal(number) not in _handlers:
                continue
            sent[number] = sent.get(number, 0) + 1
            time.sleep(0.05 * sent[number])  # the usual case: the handler is running already
            _signal.pthread_kill(main, number)


def forget_watch() -> None:
    """In a forked child: the pipe is the parent's, and its reading thread did not follow."""
    if _watch is None:
        return
    try:
        _signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    try:
        os.close(_watch[0])
    except OSError:
        pass
    _stop_watching()


def die(signum: int) -> None:
    """End the process by ``signum``, as its default action does."""
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)
