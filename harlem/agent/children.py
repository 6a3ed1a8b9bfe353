"""Recording across processes: the top process writes the HAR file, the others write parts.

Layout, for ``HARLEM_OUTPUT=/path/out.har``::

    /path/out.har                 the HAR file, written by the top process at its exit
    /path/out.har.parts/          one part per other process (mode 0700, removed when empty)
        <pid>.live.har            a running child's part: a valid HAR after every entry
        <pid>.har                 a finished child's part (renamed when the child exits)
        <pid>-<n>.har             the same, when an earlier process had the same pid

A child writes a part only once it has recorded an entry, through
:class:`~harlem.exporters.live.LiveFileHarExporter`, so a child that ends through ``os._exit``,
a signal or even SIGKILL loses nothing that was written. At its exit, the top process merges
into the HAR file every finished part and every live part whose process is gone, then deletes
them. Parts of children that outlive the top process stay; ``harlem merge -o out.har out.har
out.har.parts/*.har`` adds them later. Entries carry ``_pid``, the process that made them.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .. import pipeline  # its fork hook must run before ours (registered at the end)
from .._warn import warn_once
from ..exporters.base import HarExporter
from ..exporters.files import flush_spools
from ..recording import Recording, file_exporter
from ..settings import Settings
from . import bootstrap
from .bootstrap import parts_folder

if TYPE_CHECKING:
    from ..exporters.live import LiveFileHarExporter

__all__ = ["PartExporter", "adopt", "new_recording", "finish", "merge_parts", "parts_folder"]

LIVE_SUFFIX = ".live.har"
DONE_SUFFIX = ".har"
# A pattern, compiled by re on first use (at the top's exit, when parts exist), not at start-up.
_PART_NAME = r"(\d+)(?:-\d+)?(\.live)?\.har"


class PartExporter(HarExporter):
    """A child process's part: a live HAR file opened at the first entry, renamed when done."""

    def __init__(self, folder: str, retention_seconds: Optional[float] = None):
        super().__init__()
        self.folder = folder
        #: As the top's file: a long-running worker's part keeps only its recent entries.
        self.retention_seconds = retention_seconds
        self.pages: List[Dict[str, Any]] = []
        self.path: Optional[str] = None
        self._stem = ""
        self._live: Optional[LiveFileHarExporter] = None
        self._ended: List[str] = []  # pages that ended before the file opened

    def add_page(self, page: Dict[str, Any]) -> None:
        with self._lock:
            if self._live is None:
                self.pages.append(dict(page))
            else:
                self._live.add_page(page)

    def end_page(self, page_id: str) -> None:
        with self._lock:
            if self._live is None:
                self._ended.append(page_id)
            else:
                self._live.end_page(page_id)

    def add_entry(self, entry: Dict[str, Any]) -> None:
        with self._lock:
            (self._live or self._open()).add_entry(entry)

    def _open(self) -> LiveFileHarExporter:
        from ..exporters.live import LiveFileHarExporter  # only a child process writes a part

        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self._stem = _free_stem(self.folder, os.getpid())
        self.path = os.path.join(self.folder, self._stem + LIVE_SUFFIX)
        live = LiveFileHarExporter(self.path, retention_seconds=self.retention_seconds)
        live.pages = self.pages
        live.start()
        for page_id in self._ended:
            live.end_page(page_id)
        self._live = live
        return live

    def on_stop(self) -> None:
        if self._live is None:
            return
        self._live.stop()
        done = os.path.join(self.folder, self._stem + DONE_SUFFIX)
        os.replace(self._live.path, done)
        self.path = done


def _free_stem(folder: str, pid: int) -> str:
    """``<pid>``, or ``<pid>-<n>`` when an earlier process with this pid left a part."""
    number = 0
    while True:
        stem = f"{pid}-{number}" if number else str(pid)
        if not any(os.path.lexists(os.path.join(folder, stem + suffix))
                   for suffix in (LIVE_SUFFIX, DONE_SUFFIX)):
            return stem
        number += 1


def adopt(output: str) -> None:
    """This program replaced the top process by ``exec`` (it is the top now, with the same
    pid): the HAR file the top wrote just before becomes a finished part, merged back into
    the file, with this program's own entries, at its exit."""
    if not os.path.isfile(output):
        return
    folder = parts_folder(output)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.replace(output, os.path.join(folder, _free_stem(folder, os.getpid()) + DONE_SUFFIX))


def new_recording(settings: Settings, top: bool) -> Recording:
    """A started recording (no library yet): the HAR file for the top, a part for a child."""
    exporter = file_exporter(settings) if top else PartExporter(
        parts_folder(_output(settings)), settings.retention_seconds)
    return Recording(exporter, settings).start(libraries=False)


def finish(recording: Optional[Recording], settings: Settings, top: bool,
           wait_for_parts: float = 0.0) -> Optional[Tuple[int, int]]:
    """Write this process's file; the top also merges the finished parts into it, after
    waiting up to ``wait_for_parts`` seconds for the parts still being written.

    Returns the top's ``(entries, failed entries)``, or None when it has no file to show:
    nothing recorded and nothing merged.
    """
    if recording is not None:
        pipeline.flush(settings.join_timeout)  # what is queued reaches the file before it closes
        recording.stop()
    if not top:
        return None
    if wait_for_parts:
        _wait_for_parts(parts_folder(_output(settings)), wait_for_parts)
    merged = merge_parts(_output(settings), settings.indent, with_output=recording is not None,
                         retention_seconds=settings.retention_seconds)
    if merged is None and recording is not None:
        return recording.entry_count, recording.failed_count
    return merged


def _output(settings: Settings) -> str:
    if settings.output is None:  # the agent only starts with an output
        raise ValueError("output: a file path is required")
    return settings.output


def merge_parts(output: str, indent: Optional[int] = None, with_output: bool = True,
                retention_seconds: Optional[float] = None) -> Optional[Tuple[int, int]]:
    """Merge the finished parts into ``output`` (into what it holds, if ``with_output``), then
    delete them; with ``retention_seconds``, only the entries of that last stretch are kept.

    Returns the output's ``(entries, failed entries)``, or None when there was nothing to merge.
    """
    folder = parts_folder(output)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    parts = [os.path.join(folder, name) for name in names if _is_finished(name)]
    counts = None
    if parts:
        from .merge import MergeError, merge_files

        bad = set()

        def skip(error: MergeError) -> None:
            bad.add(error.path)
            warn_once(f"merge-{error.path}", "left a part out of the HAR file", error)

        inputs = ([output] if with_output and os.path.exists(output) else []) + parts
        since = time.time() - retention_seconds if retention_seconds else None
        counts = merge_files(inputs, output, indent, on_bad_input=skip, keep_since=since)
        for path in parts:
            if path not in bad:
                _remove(path)
    try:
        os.rmdir(folder)
    except OSError:  # parts of children still running, or left out
        pass
    return counts


def _wait_for_parts(folder: str, seconds: float) -> None:
    """For at most ``seconds``: until this process's children have ended (a child opens its
    part only once it has entries, maybe while it exports) and no part in ``folder`` is
    still being written (its process finished it or is gone)."""
    deadline = time.monotonic() + seconds
    children = _children_of(os.getpid())
    while time.monotonic() < deadline:
        children = {pid for pid in children if _alive(pid)}
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        if not children and all(_is_finished(name) for name in names
                                if re.fullmatch(_PART_NAME, name)):
            return
        time.sleep(0.02)


def _children_of(pid: int) -> "set[int]":
    """The processes ``pid`` started, as Linux lists them (none where it does not)."""
    found: "set[int]" = set()
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as listed:
                found.update(int(child) for child in listed.read().split())
        except (OSError, ValueError):
            continue
    return found


def _is_finished(name: str) -> bool:
    """A finished part, or a live one whose process is gone (killed: its file is still valid)."""
    match = re.fullmatch(_PART_NAME, name)
    if match is None:
        return False
    return not match.group(2) or not _alive(int(match.group(1)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process (EPERM): alive
        return True
    try:  # a zombie (dead, not yet reaped) will not write again
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _before_fork() -> None:
    """Let the builder thread finish what is queued before the process is copied.

    A fork copies no thread but the caller: a builder caught in the middle of an import or an
    export would leave the child a half-imported module or a lock held forever.
    """
    agent = bootstrap.active_agent()
    if agent is not None and agent.recording is not None:
        pipeline.flush(agent.settings.join_timeout)
        # What the builder just wrote may sit in a spool's buffer, which the child would copy
        # and write a second time; the spools' own fork hook may already have run.
        flush_spools()


def _after_fork_in_child() -> None:
    agent = bootstrap.active_agent()
    if agent is not None:
        agent.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
