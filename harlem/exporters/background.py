"""Run another exporter somewhere else: an executor, a thread, or a separate process.

The wrapped exporter sees the same calls in the same order; only where they run changes.
The process variant hands over serialised bytes (never pickled HAR objects) through a pipe
to a fresh interpreter (``python -m harlem.exporters.process_child``), which does not re-run the
user's ``__main__`` the way ``multiprocessing``'s spawn would.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

import orjson

from .._threads import start_daemon
from .._warn import warn_once
from .base import HarExporter

__all__ = ["ExecutorHarExporter", "BackgroundThreadHarExporter", "BackgroundProcessHarExporter"]

_STOP = ("stop", None)


class _Wrapper(HarExporter):
    """An exporter that runs ``self.exporter`` elsewhere, and needs entries when it does."""

    exporter: HarExporter
    #: What the wrapped exporter's ``start`` or ``stop`` raised where it runs: raised again by
    #: ``on_stop`` (:meth:`_raise_stop_error`), so that the recording knows its file was not
    #: written.
    _stop_error: Optional[BaseException] = None

    @property
    def deferrable(self) -> bool:
        return self.exporter.deferrable

    def _raise_stop_error(self) -> None:
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error

    def check_ready(self) -> None:
        self.exporter.check_ready()


class ExecutorHarExporter(_Wrapper):
    """Calls ``exporter`` from tasks submitted to ``executor``, one batch at a time, in order.

    What the executor cannot run (it was shut down, or its task failed: a process pool cannot
    pickle it) is not lost: :meth:`stop` runs it in the calling thread, after one warning.
    """

    def __init__(self, exporter: HarExporter, executor: concurrent.futures.Executor):
        super().__init__()
        self.exporter = exporter
        self.executor = executor
        self._items: Deque[Tuple[str, Any]] = collections.deque()
        self._draining: Optional[concurrent.futures.Future] = None
        self._scheduled = False  # a drain is submitted and has not yet found the queue empty

    def _submit(self, method: str, argument: Any) -> None:
        with self._lock:
            self._items.append((method, argument))
            if self._scheduled:  # (a drain that found nothing more has said so, under the lock)
                return
            try:
                draining = self.executor.submit(self._drain)
            except RuntimeError as exc:  # shut down: what waits is run at stop
                warn_once("executor-submit", "the executor takes no more tasks; "
                                             "the export waits for the recording's end", exc)
                return
            self._scheduled = True
            self._draining = draining
        draining.add_done_callback(self._drained)

    def _drained(self, future: concurrent.futures.Future) -> None:
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            with self._lock:
                self._scheduled = False
            warn_once("executor-task", "the executor could not run the export; "
                                       "it waits for the recording's end", error)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    self._scheduled = False
                    return
                method, argument = self._items.popleft()
            try:
                getattr(self.exporter, method)(*(() if argument is None else (argument,)))
            except BaseException as exc:  # (sys.exit in an exporter ends no more than its call)
                if method == "stop":
                    self._stop_error = exc
                else:
                    warn_once(f"executor-{method}",
                              f"{type(self.exporter).__name__}.{method} failed", exc)

    def on_start(self) -> None:
        self.check_ready()
        self._submit("start", None)

    def add_page(self, page: Dict[str, Any]) -> None:
        self._submit("add_page", page)

    def end_page(self, page_id: str) -> None:
        self._submit("end_page", page_id)

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self._submit("add_entry", entry)

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        self._submit("add_entries", entries)

    def on_stop(self) -> None:
        self._submit("stop", None)
        draining = self._draining
        if draining is not None:
            concurrent.futures.wait([draining])
            if draining.cancelled() or draining.exception() is not None:
                with self._lock:  # (its done callback may not have run yet)
                    self._scheduled = False
        with self._lock:
            left = bool(self._items) and not self._scheduled
        if left:  # the executor could not run them: here, in order
            self._drain()
        self._raise_stop_error()


class BackgroundThreadHarExporter(_Wrapper):
    """Calls ``exporter`` from a dedicated daemon thread; :meth:`stop` waits ``join_timeout``.

    At most :data:`MAX_QUEUED` calls wait for the thread (a call carries a whole batch of
    entries): an export that falls behind slows the builder, and through it, past harlem's
    memory budget, the program's requests, instead of growing memory without end. A thread
    that died no longer holds anything up: what it cannot take is dropped, with a warning.
    """

    #: Calls waiting for the export thread, at most.
    MAX_QUEUED = 16

    def __init__(self, exporter: HarExporter, join_timeout: float = 10.0):
        super().__init__()
        self.exporter = exporter
        self.join_timeout = join_timeout
        self._queue: "queue.Queue[Tuple[str, Any]]" = queue.Queue(self.MAX_QUEUED)
        self._thread: Optional[threading.Thread] = None
        #: Set when stopping: a call still waiting for room (the exporter hangs) gives up.
        self._stopping = False

    def on_start(self) -> None:
        self.check_ready()
        self._queue = queue.Queue(self.MAX_QUEUED)
        self._stopping = False
        self._thread = start_daemon(self._run, "harlem-export")

    def _put(self, item: Tuple[str, Any], deadline: Optional[float] = None) -> None:
        while True:
            thread = self._thread
            try:
                if thread is not None and thread.is_alive():
                    self._queue.put(item, timeout=0.2)
                else:  # not started, or gone: never wait for it
                    self._queue.put_nowait(item)
                return
            except queue.Full:
                late = self._stopping or (deadline is not None and time.monotonic() > deadline)
                if thread is not None and thread.is_alive() and not late:
                    continue  # still working: keep waiting for room
                state = "is not taking calls" if late else "is not running"
                warn_once("thread-full", f"the export thread {state}; {item[0]} dropped")
                return

    def _run(self) -> None:
        # BaseException throughout: an exporter calling sys.exit (SystemExit) would otherwise
        # end this thread without a word, and its file would never be written.
        try:
            self.exporter.start()
        except BaseException as exc:  # (checked before the thread started: its folder went since)
            self._stop_error = exc  # what the recording's end says: nothing is written
            return
        while True:
            method, argument = self._queue.get()
            if method == "stop":
                try:
                    self.exporter.stop()
                except BaseException as exc:
                    self._stop_error = exc
                return
            try:
                getattr(self.exporter, method)(argument)
            except BaseException as exc:
                warn_once(f"thread-{method}", f"{type(self.exporter).__name__}.{method} failed", exc)

    def add_page(self, page: Dict[str, Any]) -> None:
        self._put(("add_page", page))

    def end_page(self, page_id: str) -> None:
        self._put(("end_page", page_id))

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self._put(("add_entry", entry))

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        self._put(("add_entries", entries))

    def on_stop(self) -> None:
        self._stopping = True  # (the builder may be waiting for room, behind a hung exporter)
        deadline = time.monotonic() + self.join_timeout
        self._put(_STOP, deadline)
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            if self._thread.is_alive():
                warn_once("thread-join", f"the export thread did not finish in {self.join_timeout} s")
            self._thread = None
        self._raise_stop_error()


#: The export process's exit status when its exporter could not write at the end.
STOP_FAILED = 3


# Frames on the pipe to the child: 1 tag byte + 4-byte big-endian length + payload.
_HEADER = struct.Struct(">cI")


class BackgroundProcessHarExporter(_Wrapper):
    """Runs ``exporter`` in a separate Python process.

    ``exporter`` must be picklable before it starts (the built-in file, live and logging
    exporters are). Pages and entries cross the pipe as orjson bytes. If the process dies, the
    recording goes on without it and one warning is printed.
    """

    def __init__(self, exporter: HarExporter, join_timeout: float = 10.0):
        super().__init__()
        self.exporter = exporter
        self.join_timeout = join_timeout
        self._process: Optional[subprocess.Popen] = None
        self._lost = False  # said already: the process was gone when entries were sent
        #: True once a run ended: the next one continues the same recording (see on_start).
        self._ran = False

    def on_start(self) -> None:
        self.check_ready()
        self._lost = False
        exporter = pickle.dumps(self.exporter)  # before the process: an exporter that cannot
        # be pickled raises here, and leaves no process behind
        # No HARLEM_* variables: the export process must not record itself. It imports what
        # the program can (an exporter class of the program's own, next to its script): harlem,
        # then the program's sys.path.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [package_root] + [os.path.abspath(p or os.curdir) for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        # A session of its own: Ctrl-C in a terminal, a closed terminal and a stopped service
        # signal the program's whole process group, and this process would die with what it
        # was not yet sent. It ends when its parent closes the pipe (at the recording's stop,
        # or when the parent dies), having written what it has.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harlem.exporters.process_child"], bufsize=0,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, close_fds=True,
            start_new_session=True,
        )
        # (Y: a new copy of an exporter started again, to continue from what its last run wrote)
        self._send(b"Y" if self._ran else b"X", exporter)

    def _send(self, tag: bytes, payload: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            with self._lock:
                process.stdin.write(_HEADER.pack(tag, len(payload)) + payload)
        except (BrokenPipeError, OSError, ValueError) as exc:
            self._lost = True
            warn_once("process-dead", "the background export process is gone; entries are lost", exc)

    def add_page(self, page: Dict[str, Any]) -> None:
        self._send(b"P", orjson.dumps(page))

    def end_page(self, page_id: str) -> None:
        self._send(b"D", orjson.dumps(page_id))

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self._send(b"E", orjson.dumps(entry))

    def on_stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._ran = True
        # The builder may be blocked writing into a full pipe, holding the lock (the exporter
        # hangs): past join_timeout the process is ended, which ends that write too.
        held = not self._lock.acquire(timeout=self.join_timeout)
        if held:
            process.kill()
        else:
            self._lock.release()
            self._send(b"S", b"")
            try:
                if process.stdin:
                    process.stdin.close()
            except OSError:
                pass
        try:
            status = process.wait(self.join_timeout)
        except subprocess.TimeoutExpired:
            warn_once("process-join", f"the export process did not finish in {self.join_timeout} s")
        else:
            if status == STOP_FAILED:  # it said why (one warning): the file was not written
                raise RuntimeError("the background export process could not write its output")
            if held:
                raise RuntimeError(f"the background export process took no entries for "
                                   f"{self.join_timeout} s (its exporter hangs): ended")
            if status != 0 or self._lost:  # killed, or a traceback on stderr: not written
                raise RuntimeError(f"the background export process ended before its output "
                                   f"was written (exit status {status})")
        finally:
            self._process = None
