"""Keep pages and entries in memory and hand them back as the pydantic ``Har`` model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List

from .base import HarExporter

if TYPE_CHECKING:  # pragma: no cover (pydantic is imported when the model is asked for)
    from ..har.model import Har

__all__ = ["ModelHarExporter"]


class ModelHarExporter(HarExporter):
    """Collects pages and entries; :attr:`model` is the HAR as a validated pydantic model.

    Everything stays in memory: meant for tests and small recordings. For long runs use a
    file or logging exporter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pages: List[Dict[str, Any]] = []
        self.entries: List[Dict[str, Any]] = []

    def add_page(self, page: Dict[str, Any]) -> None:
        with self._lock:
            if all(p["id"] != page["id"] for p in self.pages):
                self.pages.append(dict(page))

    def add_entry(self, entry: Dict[str, Any]) -> None:
        with self._lock:
            self.entries.append(entry)

    def to_dict(self) -> Dict[str, Any]:
        """The HAR document as plain dicts."""
        from .base import empty_log

        with self._lock:
            har = empty_log(self.pages)
            har["log"]["entries"] = list(self.entries)
            return har

    @property
    def model(self) -> Har:
        """The recording as a :class:`harlem.har.model.Har` (imports pydantic on first use)."""
        from ..har.model import Har

        return Har.model_validate(self.to_dict())
