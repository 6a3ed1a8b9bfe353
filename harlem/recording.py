"""A recording: one exporter fed by a recorder for every library that is installed.

``record_to_file``, ``record_to_logger``, the ``harlem`` CLI, the agent and the pytest plugin
all record through this class, so they behave alike: same libraries, same settings, same end.

A library is instrumented when the recording starts if the program has already imported it,
and otherwise the moment it imports it (a post-import hook): starting a recording never
imports an HTTP library the program does not use (aiohttp, httpx and FastAPI together take
hundreds of milliseconds to import).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, List, Optional, Type

from .exporters.base import HarExporter
from .recorders import RECORDERS, available_recorders
from .recorders.base import HarRecorder
from .settings import Settings, trigger_modules

__all__ = ["Recording", "file_exporter", "in_background"]


class _Tally(HarExporter):
    """Counts entries (and failed ones) on their way to the real exporter."""

    def __init__(self, inner: HarExporter):
        super().__init__()
        self.inner = inner
        self.entries = 0
        self.failed = 0

    @property
    def deferrable(self) -> bool:
        return self.inner.deferrable

    @property
    def name_in_warnings(self) -> str:
        return type(self.inner).__name__

    @property
    def sink(self) -> HarExporter:
        """The program's exporter: given each entry and page once, however many Recordings
        (or recorders) share it."""
        return self.inner

    def on_start(self) -> None:
        self.inner.start()

    def on_stop(self) -> None:
        self.inner.stop()

    def add_page(self, page: Dict[str, Any]) -> None:
        self.inner.add_page(page)

    def end_page(self, page_id: str) -> None:
        self.inner.end_page(page_id)

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self.add_entries([entry])

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        self.counted(entries)
        self.inner.add_entries(entries)

    def counted(self, entries: List[Dict[str, Any]]) -> None:
        """Count ``entries`` (the program's exporter had them through another Recording)."""
        self.entries += len(entries)
        self.failed += sum(1 for entry in entries if entry["response"]["status"] == 0)


class Recording:
    """Records every chosen library into ``exporter`` between :meth:`start` and :meth:`stop`.

    Libraries that are imported later can join with :meth:`start_library` (the agent does
    this from its post-import hooks). In a forked child, :meth:`stop` exports nothing: the
    parent owns the file.
    """

    def __init__(self, exporter: HarExporter, settings: Optional[Settings] = None):
        self.settings = settings or Settings()
        self.exporter = exporter
        self._tally = _Tally(exporter)
        self.recorders: List[HarRecorder] = []
        self._pid = os.getpid()
        #: True when the final export failed (warned on stderr, never raised).
        self.export_failed = False
        self._lock = threading.RLock()  # a library imported in another thread joins meanwhile
        self._stopped = False
        self._finder: Optional[Any] = None  # the post-import hook for libraries not yet imported

    @property
    def entry_count(self) -> int:
        """Entries exported so far (failed exchanges included)."""
        return self._tally.entries

    @property
    def failed_count(self) -> int:
        """Entries of exchanges that failed (status 0: no response)."""
        return self._tally.failed

    def start(self, libraries: bool = True) -> "Recording":
        """Start the exporter and, unless ``libraries`` is False, the recorders: now for the
        libraries already imported, at their import for the others."""
        self._tally.start()
        self._stopped = False
        if libraries:
            triggers = trigger_modules(self.settings.recorders or RECORDERS)
            imported = {name for module, name in triggers.items() if module in sys.modules}
            for name in sorted(imported, key=list(triggers.values()).index):
                self._start_named(name)
            later = {module: name for module, name in triggers.items() if name not in imported}
            if later:
                from .agent.hooks import install

                self._finder = install(later, lambda module: self._start_named(later[module]))
        return self

    def _start_named(self, name: str) -> None:
        try:  # one library that cannot be imported or patched must not stop the rest
            for cls in available_recorders([name]):
                self.start_library(cls)
        except Exception as exc:
            from ._warn import warn_once

            warn_once(f"recorder-{name}", f"not recording {name}", exc)

    def start_library(self, cls: Type[HarRecorder]) -> None:
        """Start recording the library of recorder class ``cls`` too (once)."""
        with self._lock:
            if self._stopped or any(type(r) is cls for r in self.recorders):
                return
            recorder = cls(self._tally, self.settings)
            recorder.start()
            self.recorders.append(recorder)

    def stop(self) -> None:
        """Stop every recorder and write the output; a failure is a warning and
        :attr:`export_failed`, never an exception. In a forked child, nothing is written."""
        with self._lock:
            self._stopped = True
            finder, self._finder = self._finder, None
        if finder is not None:
            from .agent.hooks import uninstall

            uninstall(finder)
        if os.getpid() != self._pid:
            for recorder in self.recorders:
                recorder.receiving = False
            self.recorders.clear()
            return
        try:
            while self.recorders:
                self.recorders.pop().stop()
            self._tally.stop()
        except Exception as exc:  # a full disk or a vanished folder must not break the program
            from ._warn import warn_once

            warn_once("export", f"could not export the HAR recording to "
                                f"{_target(self.exporter)}", exc)
            self.export_failed = True

    def __enter__(self) -> "Recording":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def summary(self, target: str) -> str:
        """The line harlem's commands print at the end: ``harlem: 3 entries -> out.har``."""
        from .agent.ending import summary_line

        return summary_line(self.entry_count, self.failed_count, target,
                            self.settings.retention_seconds)


def in_background(exporter: HarExporter, settings: Settings) -> HarExporter:
    """Wrap ``exporter`` as ``settings.in_background`` asks (thread, process or not at all)."""
    if not settings.in_background:
        return exporter  # without importing the background module: it costs the agent ~25 ms
    from .exporters.background import BackgroundProcessHarExporter, BackgroundThreadHarExporter

    if settings.in_background == "thread":
        return BackgroundThreadHarExporter(exporter, join_timeout=settings.join_timeout)
    return BackgroundProcessHarExporter(exporter, join_timeout=settings.join_timeout)


def file_exporter(settings: Settings) -> HarExporter:
    """The exporter that writes ``settings.output`` the way the settings ask."""
    if settings.output is None:
        raise ValueError("output: a file path is required")
    if settings.live or settings.interval_seconds:
        from .exporters.live import LiveFileHarExporter

        exporter: HarExporter = LiveFileHarExporter(
            settings.output, indent=settings.indent, interval_seconds=settings.interval_seconds,
            retention_seconds=settings.retention_seconds, join_timeout=settings.join_timeout)
    else:
        from .exporters.files import FileHarExporter

        exporter = FileHarExporter(settings.output, indent=settings.indent)
    return in_background(exporter, settings)


def _target(exporter: Any) -> str:
    """Where ``exporter`` writes: a file's path, through background wrappers, else its class."""
    inner = exporter
    while getattr(inner, "path", None) is None and getattr(inner, "exporter", None) is not None:
        inner = inner.exporter
    return getattr(inner, "path", None) or type(exporter).__name__
