"""Exporters that write one whole HAR document when the recording ends.

Entries are serialised once, as they arrive, into an anonymous spool file, so memory stays
flat however many (or however large) the bodies; the final export streams from the spool. A
file is written to a temporary name in the same folder and renamed over the target, so a reader
never sees half a file, and it is created readable by its owner only.
"""

from __future__ import annotations

import io
import os
import tempfile
import weakref
from typing import IO, Any, Dict, Iterator, List, Optional, Union

from .._fds import above_std_streams, check_writable, open_anonymous, open_stream
from .base import HarExporter
from .layout import Layout, compact_entry

__all__ = ["IoHarExporter", "FileHarExporter", "atomic_write", "check_writable", "flush_spools"]

PathLike = Union[str, os.PathLike[str]]  # no string: a forward reference is compiled at import


class _Spool:
    """Compact serialised entries, one per line, in an anonymous temporary file.

    The file is buffered; before a fork every spool is flushed, or a forked child would write
    the parent's unflushed bytes into the shared file a second time when it exits.
    """

    _open: "weakref.WeakSet[_Spool]" = weakref.WeakSet()

    def __init__(self, folder: Optional[str] = None):
        self._file: Any = open_anonymous(folder, ".harlem-spool-")
        self.count = 0
        _Spool._open.add(self)

    @classmethod
    def flush_all(cls) -> None:
        for spool in list(cls._open):
            try:
                spool._file.flush()
            except (OSError, ValueError):
                pass

    def append(self, data: bytes) -> None:
        self._file.write(data + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[bytes]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield line[:-1]
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        # Kept open from stop to stop (an exporter started again continues its recording), so
        # closed when its exporter goes: an unclosed file is a ResourceWarning in the
        # program's output, an error under ``-W error``.
        try:
            self.close()
        except Exception:
            pass


def flush_spools() -> None:
    """Write every spool's buffered entries to its file (before a fork: see :class:`_Spool`).

    The agent calls it again after it made the builder drain its queue into the spools.
    """
    _Spool.flush_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=flush_spools)


class IoHarExporter(HarExporter):
    """Writes the whole HAR document to ``output`` (a binary or text IO) when stopped.

    The IO is not closed. ``indent`` pretty-prints the JSON; ``None`` writes it compact.
    """

    def __init__(self, output: Optional[IO[Any]] = None, indent: Optional[int] = None):
        super().__init__()
        self.output = output
        self.indent = indent
        self.pages: List[Dict[str, Any]] = []
        self._spool: Optional[_Spool] = None

    def _spool_folder(self) -> Optional[str]:
        return None

    def on_start(self) -> None:
        if self._spool is None:
            self._spool = _Spool(self._spool_folder())

    def add_page(self, page: Dict[str, Any]) -> None:
        with self._lock:
            if all(p["id"] != page["id"] for p in self.pages):
                self.pages.append(dict(page))

    def add_entry(self, entry: Dict[str, Any]) -> None:
        data = compact_entry(entry)
        with self._lock:
            if self._spool is None:
                self._spool = _Spool(self._spool_folder())
            self._spool.append(data)

    @property
    def deferrable(self) -> bool:
        return True  # the document is written when the exporter stops

    @property
    def entry_count(self) -> int:
        """Entries received so far (waiting in the spool for the document's writing)."""
        return self._spool.count if self._spool else 0

    def write_to(self, write: Any) -> int:
        """Stream the document recorded so far through ``write`` (bytes)."""
        with self._lock:
            return Layout(self.indent).write(write, self.pages, iter(self._spool or ()))

    def on_stop(self) -> None:
        output = self.output
        if output is None:
            return
        if isinstance(output, io.TextIOBase):
            self.write_to(lambda data: output.write(data.decode("utf-8")))
        else:
            self.write_to(output.write)
        output.flush()


class FileHarExporter(IoHarExporter):
    """Writes the HAR file at ``path`` when stopped (atomically, mode ``0o600`` by default).

    Starting it again after a stop continues the same recording; the next stop rewrites the
    file with every entry so far.
    """

    def __init__(self, path: PathLike, indent: Optional[int] = None, mode: int = 0o600):
        super().__init__(None, indent)
        self.path = os.path.abspath(os.fspath(path))  # where it was meant, even after a chdir
        self.mode = mode

    def _spool_folder(self) -> Optional[str]:
        return os.path.dirname(self.path)  # (absolute since __init__)

    def check_ready(self) -> None:
        check_writable(self.path)

    def on_start(self) -> None:
        self.check_ready()
        super().on_start()

    def on_stop(self) -> None:
        atomic_write(self.path, self.write_to, self.mode)


def atomic_write(path: PathLike, writer: Any, mode: int = 0o600) -> Any:
    """Call ``writer(write)`` into a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is created exclusively (``O_EXCL``), never through a symlink, with
    ``mode``; the rename replaces a symlink planted at ``path`` instead of following it.
    ``/dev/null`` or a named pipe is written into instead (see :func:`open_stream`).
    """
    path = os.fspath(path)
    stream = open_stream(path)
    if stream is not None:
        with os.fdopen(stream, "wb", buffering=1024 * 1024) as out:
            return writer(out.write)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        fd = above_std_streams(fd)
        if mode != 0o600:  # mkstemp already created it 0600
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as out:
            result = writer(out.write)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return result
