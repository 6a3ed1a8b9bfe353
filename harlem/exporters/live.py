"""A HAR file that is valid on disk at every moment of the recording.

Adding entries overwrites the document's tail with ``",\\n" + entry + ... + tail`` in a single
``pwrite`` (the pipeline hands over the entries it built in one batch together): the cost does
not grow with the file, earlier bytes are never touched, and the file parses after every
write. A torn write (the process killed mid-write) leaves the entries of that last write
incomplete; ``harlem repair`` keeps every complete one and cuts off the rest.

Rewrites are rare and atomic (temporary file + rename): when a page is added (pages precede
entries in the document) and when retention drops expired entries, at most once per tenth of
the retention period. Only a small index (time, offset, length per entry) stays in memory.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from .._fds import above_std_streams
from .._threads import start_daemon
from .._warn import warn_once
from .base import HarExporter
from .files import PathLike, atomic_write, check_writable
from .layout import Layout

__all__ = ["LiveFileHarExporter"]

#: With an interval, pending entries are written early once they hold this many bytes.
MAX_PENDING_BYTES = 8 * 1024 * 1024


class LiveFileHarExporter(HarExporter):
    """Keeps ``path`` a complete, valid HAR while recording.

    * ``interval_seconds=None``: every entry is written as it arrives.
    * ``interval_seconds=N``: entries are written in batches every N seconds; with
      ``hard_interval=True`` (default) a timer thread keeps the interval even when no request
      is made, with ``False`` a batch is written when an entry arrives after the interval.
    * ``retention_seconds=N``: entries that started more than N seconds ago are dropped.
    * ``join_timeout``: how long :meth:`stop` waits for the timer thread.
    """

    def __init__(self, path: PathLike, indent: Optional[int] = None,
                 interval_seconds: Optional[float] = None,
                 retention_seconds: Optional[float] = None, hard_interval: bool = True,
                 join_timeout: float = 10.0, mode: int = 0o600):
        super().__init__()
        self.path = os.path.abspath(os.fspath(path))  # where it was meant, even after a chdir
        self.indent = indent
        self.interval_seconds = interval_seconds
        self.retention_seconds = retention_seconds
        self.hard_interval = hard_interval
        self.join_timeout = join_timeout
        self.mode = mode
        self.pages: List[Dict[str, Any]] = []
        self._layout = Layout(indent)
        self._fd: Optional[int] = None
        self._end = 0  # offset where the tail starts
        #: (start time, offset, length) of each entry on disk, oldest first.
        self._index: List[Tuple[float, int, int]] = []
        self._pending: List[Tuple[float, bytes]] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._last_expiry = 0.0
        self._timer: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state.pop("_stopping", None)  # events do not pickle; a background process makes its own
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def check_ready(self) -> None:
        check_writable(self.path)

    def on_start(self) -> None:
        self.check_ready()
        if self._index and os.path.isfile(self.path):  # restarted: continue the same recording
            self._fd = above_std_streams(
                os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)))
            self._rewrite(self._index)
        else:
            self._rewrite([])
        if self.interval_seconds and self.hard_interval:
            self._stopping.clear()
            self._timer = start_daemon(self._tick, "harlem-live")

    def on_stop(self) -> None:
        if self._timer is not None:
            self._stopping.set()
            self._timer.join(self.join_timeout)
            self._timer = None
        with self._lock:
            try:
                self._flush()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    def _tick(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            try:
                with self._lock:
                    self._flush()
            except Exception as exc:
                warn_once("live-flush", f"could not update {self.path}", exc)

    # -- data ------------------------------------------------------------------------------

    def add_page(self, page: Dict[str, Any]) -> None:
        with self._lock:
            if any(p["id"] == page["id"] for p in self.pages):
                return
            self.pages.append(dict(page))
            if self._fd is not None:
                self._flush(force_rewrite=True)

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self.add_entries([entry])

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        """Append ``entries`` in one write (one per batch in interval mode)."""
        serialised = []
        error: Optional[Exception] = None
        for entry in entries:  # one entry that cannot be serialised keeps the others in
            try:
                started = _entry_time(entry) if self.retention_seconds else 0.0
                serialised.append((started, self._layout.entry(entry)))
            except Exception as exc:
                error = error or exc
        with self._lock:
            for item in serialised:
                self._pending.append(item)
                self._pending_bytes += len(item[1])
            if self._fd is not None and serialised:
                self._write_if_due()
        if error is not None:
            raise error

    def _write_if_due(self) -> None:
        """Under ``_lock``: write the pending entries now unless the interval says later."""
        due = (not self.interval_seconds
               or self._pending_bytes > MAX_PENDING_BYTES
               or (not self.hard_interval
                   and time.monotonic() - self._last_flush >= self.interval_seconds))
        if due:
            self._flush()

    @property
    def entry_count(self) -> int:
        return len(self._index) + len(self._pending)

    # -- writing -------------------------------------------------------------------------

    def _flush(self, force_rewrite: bool = False) -> None:
        """Write pending entries (one append) and apply retention (a rare rewrite)."""
        self._last_flush = time.monotonic()
        if self._fd is None:
            return
        keep_from = self._expired_count()
        if force_rewrite or keep_from:
            self._rewrite(self._index[keep_from:])
            return
        if not self._pending:
            return
        pending = self._pending
        self._pending = []  # written or lost: a full disk must not grow memory
        self._pending_bytes = 0
        try:
            self._append(pending)
        except OSError:
            if len(pending) == 1:
                raise
            for item in pending:  # the disk may still hold some of them: keep what fits
                self._append([item])

    def _append(self, pending: List[Tuple[float, bytes]]) -> None:
        """Write ``pending`` entries after the last one, and the tail, in one ``pwrite``."""
        layout = self._layout
        parts = []
        index = []
        offset = self._end
        for started, data in pending:
            separator = layout.first_separator if not (self._index or index) else layout.separator
            offset += len(separator)
            parts.append(separator)
            parts.append(data)
            index.append((started, offset, len(data)))
            offset += len(data)
        parts.append(layout.tail)
        self._write_tail_at(b"".join(parts), self._end)
        self._index.extend(index)
        self._end = offset

    def _write_tail_at(self, data: bytes, offset: int) -> None:
        """Write ``data`` (ending with the tail) at ``offset``, all of it or nothing.

        A short or failed write (a full disk) is undone: the old tail goes back where it was
        (those bytes are already allocated) and the file is cut after it, so the file stays
        the valid document it was before.
        """
        view = memoryview(data)
        position = offset
        try:
            while view:
                written = os.pwrite(self._fd, view, position)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
                position += written
        except OSError:
            tail = self._layout.tail
            try:
                os.pwrite(self._fd, tail, offset)
                os.ftruncate(self._fd, offset + len(tail))
            except OSError:
                pass
            raise

    def _expired_count(self) -> int:
        """How many of the oldest written entries retention drops now (0 if not due)."""
        if not self.retention_seconds or not self._index:
            return 0
        now = time.time()
        if now - self._last_expiry < max(1.0, self.retention_seconds / 10):
            return 0
        cutoff = now - self.retention_seconds
        count = 0
        for started, _, _ in self._index:
            if started >= cutoff:
                break
            count += 1
        if count:
            self._last_expiry = now
        return count

    def _rewrite(self, kept: List[Tuple[float, int, int]]) -> None:
        """Write a fresh file: head, the ``kept`` entries, the pending ones, the tail."""
        cutoff = time.time() - self.retention_seconds if self.retention_seconds else None
        old_fd = self._fd
        entries: List[Tuple[float, bytes]] = []
        for started, offset, length in kept:
            entries.append((started, os.pread(old_fd, length, offset) if old_fd is not None else b""))
        entries.extend(e for e in self._pending if cutoff is None or e[0] >= cutoff)
        head = self._layout.head(self.pages)
        index: List[Tuple[float, int, int]] = []

        def writer(write: Any) -> None:
            offset = len(head)
            write(head)
            for number, (started, data) in enumerate(entries):
                separator = self._layout.first_separator if number == 0 else self._layout.separator
                write(separator)
                offset += len(separator)
                write(data)
                index.append((started, offset, len(data)))
                offset += len(data)
            write(self._layout.tail)

        atomic_write(self.path, writer, self.mode)
        fd = above_std_streams(os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)))
        if old_fd is not None:
            os.close(old_fd)
        self._fd = fd
        self._index = index
        self._end = index[-1][1] + index[-1][2] if index else len(head)
        self._pending.clear()
        self._pending_bytes = 0


def _entry_time(entry: Dict[str, Any]) -> float:
    """The entry's start as a Unix time (for retention); now when it cannot be read."""
    try:
        return datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    except Exception:
        return time.time()
