"""A HAR file that is valid on disk at every moment of the recording.

Adding entries overwrites the document's tail with ``",\\n" + entry + ... + tail`` in a single
``pwrite`` (the pipeline hands over the entries it built in one batch together): the cost does
not grow with the file, earlier bytes are never touched, and the file parses after every
write. A torn write (the process killed mid-write) leaves the entries of that last write
incomplete; ``harlem repair`` keeps every complete one and cuts off the rest.

Pages precede the entries in the document: the head keeps room (spaces) after the pages, and
a page is written into it in place. Rewrites are rare and atomic (temporary file + rename):
when that room runs out (the next rewrite leaves as much room as the pages take, so a file
with many pages is rewritten a logarithmic number of times), and when retention drops what
expired, at most once per tenth of the retention period. Only a small index (time, offset,
length and page per entry) stays in memory.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Set, Tuple

from .._fds import above_std_streams
from .._threads import start_daemon
from .._warn import warn_once
from ..har.dates import epoch_ms
from .base import HarExporter
from .files import PathLike, atomic_write, check_writable
from .layout import Layout

__all__ = ["LiveFileHarExporter"]

#: With an interval, pending entries are written early once they hold this many bytes.
MAX_PENDING_BYTES = 8 * 1024 * 1024
#: Room left for pages to come after the pages of a head, at least (a few pages' worth).
PAGE_ROOM = 1024


class LiveFileHarExporter(HarExporter):
    """Keeps ``path`` a complete, valid HAR while recording.

    * ``interval_seconds=None``: every entry is written as it arrives.
    * ``interval_seconds=N``: entries are written in batches every N seconds; with
      ``hard_interval=True`` (default) a timer thread keeps the interval even when no request
      is made, with ``False`` a batch is written when an entry arrives after the interval.
    * ``retention_seconds=N``: entries that started more than N seconds ago are dropped, and
      so are pages as old that no entry names any more once the recording says they ended
      (:meth:`end_page`).
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
        #: The id of each page in self.pages, with its start (for retention: else 0).
        self._page_starts: Dict[Any, float] = {}
        self._ended: Set[Any] = set()  # ids of pages no entry will name any more (end_page)
        #: How many entries on disk name each page (for retention).
        self._refs: "Counter[Any]" = Counter()
        self._layout = Layout(indent)
        self._fd: Optional[int] = None
        self._end = 0  # offset where the tail starts
        #: Where the next page goes (the end of the last page on disk), how many spaces follow
        #: the pages' closing bracket, and how many of self.pages the head lists (none: it
        #: holds a made-up default page, replaced by a rewrite).
        self._pages_end = 0
        self._room = 0
        self._listed = 0
        #: (start time, offset, length, pageref) of each entry on disk, oldest first.
        self._index: List[Tuple[float, int, int, Any]] = []
        self._pending: List[Tuple[float, bytes, Any]] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._last_expiry = 0.0
        self._pages_checked = 0.0
        self._lost = 0  # entries a failed write lost since the start
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
        self._lost = 0
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
                self._put_back()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
            lost, self._lost = self._lost, 0
        if lost:  # (each failed write was a warning; the recording's end must say it too)
            raise OSError(f"{lost} {'entry' if lost == 1 else 'entries'} could not be written "
                          f"to {self.path}")

    def _put_back(self) -> None:
        """At the end: if ``path`` no longer names the file written all along (deleted,
        replaced, its folder removed), write it there again from what the open file holds,
        or raise: the recording must not end as if a file were there."""
        try:
            on_disk: Optional[os.stat_result] = os.lstat(self.path)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(self._fd) if self._fd is not None else None
        if mine is None or (on_disk is not None and (on_disk.st_ino, on_disk.st_dev)
                            == (mine.st_ino, mine.st_dev)):
            return
        self._rewrite(self._index)

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
            if page["id"] in self._page_starts:
                return
            self.pages.append(dict(page))
            self._page_starts[page["id"]] = _started(page) if self.retention_seconds else 0.0
            if self._fd is not None and not self._add_page_in_place(self.pages[-1]):
                self._flush(force_rewrite=True)

    def end_page(self, page_id: str) -> None:
        with self._lock:
            if page_id in self._page_starts:
                self._ended.add(page_id)

    def _add_page_in_place(self, page: Dict[str, Any]) -> bool:
        """Write ``page`` into the room after the pages; False if a rewrite must do it."""
        layout = self._layout
        data = layout.separator + layout.page(page)
        # (every earlier page must be on disk: one a failed rewrite left out needs a rewrite)
        if self._listed != len(self.pages) - 1 or not self._listed or len(data) > self._room:
            return False
        try:
            self._pwrite_all(data + layout.pages_close, self._pages_end)
        except OSError:  # (overwriting spaces needs no new disk space: an odd failure)
            try:  # the spaces back, then a rewrite says whether the file can still be written
                self._pwrite_all(layout.pages_close + b" " * len(data), self._pages_end)
            except OSError:
                pass
            return False
        self._pages_end += len(data)
        self._room -= len(data)
        self._listed += 1
        return True

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self.add_entries([entry])

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        """Append ``entries`` in one write (one per batch in interval mode)."""
        serialised = []
        error: Optional[Exception] = None
        for entry in entries:  # one entry that cannot be serialised keeps the others in
            try:
                started = _started(entry) if self.retention_seconds else 0.0
                serialised.append((started, self._layout.entry(entry), entry.get("pageref")))
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
        """Entries in the file and those waiting for the next write."""
        return len(self._index) + len(self._pending)

    # -- writing -------------------------------------------------------------------------

    def _flush(self, force_rewrite: bool = False) -> None:
        """Write pending entries (one append) and apply retention (a rare rewrite)."""
        self._last_flush = time.monotonic()
        if self._fd is None:
            return
        expired = self._expire()
        if force_rewrite or expired is not None:
            keep_from, dropped = expired or (0, set())
            self._rewrite(self._index[keep_from:],
                          [page for page in self.pages if page["id"] not in dropped])
            return
        if not self._pending:
            return
        pending = self._pending
        self._pending = []  # written or lost: a full disk must not grow memory
        self._pending_bytes = 0
        written = 0
        try:
            try:
                self._append(pending)
                written = len(pending)
            except OSError:
                if len(pending) == 1:
                    raise
                for item in pending:  # the disk may still hold some of them: keep what fits
                    self._append([item])
                    written += 1
        finally:
            self._lost += len(pending) - written

    def _append(self, pending: List[Tuple[float, bytes, Any]]) -> None:
        """Write ``pending`` entries after the last one, and the tail, in one ``pwrite``."""
        layout = self._layout
        parts = []
        index = []
        offset = self._end
        for started, data, pageref in pending:
            separator = layout.first_separator if not (self._index or index) else layout.separator
            offset += len(separator)
            parts.append(separator)
            parts.append(data)
            index.append((started, offset, len(data), pageref))
            offset += len(data)
        parts.append(layout.tail)
        self._write_tail_at(b"".join(parts), self._end)
        self._index.extend(index)
        self._end = offset
        if self.retention_seconds:
            self._refs.update(pageref for _, _, _, pageref in index)

    def _write_tail_at(self, data: bytes, offset: int) -> None:
        """Write ``data`` (ending with the tail) at ``offset``, all of it or nothing.

        A short or failed write (a full disk) is undone: the old tail goes back where it was
        (those bytes are already allocated) and the file is cut after it, so the file stays
        the valid document it was before.
        """
        try:
            self._pwrite_all(data, offset)
        except OSError:
            tail = self._layout.tail
            try:
                os.pwrite(self._fd, tail, offset)
                os.ftruncate(self._fd, offset + len(tail))
            except OSError:
                pass
            raise

    def _pwrite_all(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
            offset += written

    def _expire(self) -> Optional[Tuple[int, Set[Any]]]:
        """If retention is due and drops something: how many of the oldest written entries go,
        and the ids of the pages that go; else None."""
        if not self.retention_seconds:
            return None
        now = time.time()
        period = max(1.0, self.retention_seconds / 10)
        if now - self._last_expiry < period:
            return None
        cutoff = now - self.retention_seconds
        count = 0
        for started, _, _, _ in self._index:
            if started >= cutoff:
                break
            count += 1
        dropped: Set[Any] = set()
        # (pages are looked through once a period, or when entries go: not at every write)
        if count or (self._ended and now - self._pages_checked >= period):
            self._pages_checked = now
            dropped = self._expired_pages(cutoff, count)
        if not count and not dropped:
            return None
        self._last_expiry = now
        return count, dropped

    def _expired_pages(self, cutoff: float, kept_from: int) -> Set[Any]:
        """Ids of the pages retention drops: ended, older than ``cutoff``, and named by no
        entry that stays (on disk from ``kept_from``, or pending)."""
        old = {page_id for page_id in self._ended if self._page_starts[page_id] < cutoff}
        if not old:
            return old
        dropping = Counter(pageref for _, _, _, pageref in self._index[:kept_from]
                           if pageref in old)
        named = {page_id for page_id in old if self._refs[page_id] > dropping[page_id]}
        named.update(pageref for started, _, pageref in self._pending if started >= cutoff)
        return old - named

    def _rewrite(self, kept: List[Tuple[float, int, int, Any]],
                 pages: Optional[List[Dict[str, Any]]] = None) -> None:
        """Write a fresh file: head (with ``pages``, else all of them), the ``kept`` entries,
        the pending ones, the tail. Nothing changes in memory unless it was written."""
        pages = self.pages if pages is None else pages
        cutoff = time.time() - self.retention_seconds if self.retention_seconds else None
        old_fd = self._fd
        entries: List[Tuple[float, bytes, Any]] = []
        for started, offset, length, pageref in kept:
            data = os.pread(old_fd, length, offset) if old_fd is not None else b""
            entries.append((started, data, pageref))
        entries.extend(e for e in self._pending if cutoff is None or e[0] >= cutoff)
        listed, rest = self._layout.head_parts(pages)
        room = max(PAGE_ROOM, len(listed)) if pages else 0  # pages to come: as many again
        head = listed + self._layout.pages_close + b" " * room + rest
        index: List[Tuple[float, int, int, Any]] = []

        def writer(write: Any) -> None:
            offset = len(head)
            write(head)
            for number, (started, data, pageref) in enumerate(entries):
                separator = self._layout.first_separator if number == 0 else self._layout.separator
                write(separator)
                offset += len(separator)
                write(data)
                index.append((started, offset, len(data), pageref))
                offset += len(data)
            write(self._layout.tail)

        atomic_write(self.path, writer, self.mode)
        fd = above_std_streams(os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)))
        if old_fd is not None:
            os.close(old_fd)
        self._fd = fd
        self._index = index
        self._end = index[-1][1] + index[-1][2] if index else len(head)
        self.pages = pages
        self._pages_end, self._room, self._listed = len(listed), room, len(pages)
        known = self._page_starts  # (pages given before the start are read here)
        self._page_starts = {page["id"]: known[page["id"]] if page["id"] in known
                             else _started(page) if self.retention_seconds else 0.0
                             for page in pages}
        self._ended &= self._page_starts.keys()
        if self.retention_seconds:
            self._refs = Counter(pageref for _, _, _, pageref in index)
        self._pending.clear()
        self._pending_bytes = 0


def _started(item: Dict[str, Any]) -> float:
    """An entry's or a page's start as a Unix time (for retention); now if it cannot be read."""
    started = epoch_ms(item.get("startedDateTime"))
    return time.time() if started is None else started / 1000
