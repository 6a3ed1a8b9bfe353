"""Send every page and entry to several exporters."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .._warn import warn_once
from .base import HarExporter

__all__ = ["CompositeHarExporter"]


class CompositeHarExporter(HarExporter):
    """Fans out to ``exporters``; one failing exporter does not stop the others."""

    def __init__(self, exporters: Iterable[HarExporter]):
        super().__init__()
        self.exporters = list(exporters)

    def _each(self, method: str, *args: Any) -> None:
        ending: Optional[BaseException] = None
        for exporter in self.exporters:
            try:
                getattr(exporter, method)(*args)
            except Exception as exc:
                name = type(exporter).__name__
                warn_once(f"composite-{name}-{method}", f"{name}.{method} failed", exc)
            except BaseException as exc:  # sys.exit, Ctrl-C: after the others had their call
                ending = ending or exc
        if ending is not None:
            raise ending

    @property
    def deferrable(self) -> bool:
        return all(exporter.deferrable for exporter in self.exporters)

    def on_start(self) -> None:
        self._each("start")

    def on_stop(self) -> None:
        self._each("stop")

    def add_page(self, page: Dict[str, Any]) -> None:
        self._each("add_page", page)

    def end_page(self, page_id: str) -> None:
        self._each("end_page", page_id)

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self._each("add_entry", entry)

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        self._each("add_entries", entries)
