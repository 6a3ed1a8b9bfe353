"""Exporters: where recorded pages and entries go.

Names load on first use, so that importing one exporter does not import them all (the agent
creates its exporter while the program imports its HTTP library: every millisecond shows).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

_EXPORTS = {
    "HarExporter": "base",
    "ModelHarExporter": "model",
    "IoHarExporter": "files",
    "FileHarExporter": "files",
    "LiveFileHarExporter": "live",
    "LoggingHarExporter": "logging",
    "CompositeHarExporter": "composite",
    "ExecutorHarExporter": "background",
    "BackgroundThreadHarExporter": "background",
    "BackgroundProcessHarExporter": "background",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harlem.exporters' has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value
