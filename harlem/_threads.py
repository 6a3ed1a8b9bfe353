"""harlem's own threads, started so that they never take the program's signals.

A signal sent to a process (``kill``, Ctrl-C, a supervisor's SIGTERM) is delivered to any one of
its threads that does not block it. Python runs the handler in the main thread, but only once
that thread next runs Python code: if the kernel picked one of our idle daemon threads while the
main thread sleeps or waits on a socket, the program reacts when that call returns, seconds or
minutes late (or never, if the call never returns). A program without harlem has no such
threads, so ours block the asynchronous signals and the main thread keeps receiving them.

The mask is set in the starting thread around ``Thread.start()`` so the new thread inherits it
from its first instruction; the starting thread's own mask is restored right after. Threads that
ours start (an executor's workers) inherit it too. Fault signals (SIGSEGV, SIGBUS, ...) stay
unblocked, so ``faulthandler`` still reports a crash in any thread.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable

try:
    import _signal  # the C module: ``signal`` imports enum, and this runs on the request path
except ImportError:  # pragma: no cover  (every CPython build has it)
    _signal = None  # type: ignore[assignment]

__all__ = ["start_daemon", "own_threads"]

#: The ids of harlem's threads while they run. What they do is harlem's work, not the
#: program's: an exporter that sends entries over HTTP from them must not record its own
#: requests (each would make an entry to send, for ever).
own_threads: "set[int]" = set()

_ASYNCHRONOUS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGCHLD", "SIGWINCH", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGIO", "SIGURG")
_BLOCKED = frozenset(getattr(_signal, name) for name in _ASYNCHRONOUS if hasattr(_signal, name))
_sigmask = getattr(_signal, "pthread_sigmask", None)  # not on Windows


def start_daemon(target: "Callable[[], object]", name: str) -> threading.Thread:
    """Start a daemon thread running ``target`` that leaves the program's signals to others."""
    def run() -> None:
        ident = threading.get_ident()
        own_threads.add(ident)
        try:
            target()
        finally:
            own_threads.discard(ident)

    thread = threading.Thread(target=run, name=name, daemon=True)
    if _sigmask is None:
        thread.start()
        return thread
    previous = _sigmask(_signal.SIG_BLOCK, _BLOCKED)
    try:
        thread.start()
    finally:
        _sigmask(_signal.SIG_SETMASK, previous)
    return thread
