"""harlem: record a Python program's HTTP traffic into HAR 1.2 files.

Importing ``harlem`` is cheap: every public name is loaded on first use, so that the agent
and the ``.pth`` hook add nothing to a program's start-up until something is recorded.

PYTEST_DONT_REWRITE: under the agent (``HARLEM_OUTPUT``) this package is imported before
pytest loads harlem's plugin, which would otherwise warn that it cannot rewrite it (and stop
a run that turns warnings into errors). Nothing here asserts.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    # What type checkers see (py.typed): the names below, each from its module. At run time
    # they load on first use (``__getattr__``); a test keeps this list and _EXPORTS the same.
    from typing import Any

    from .asgi import HarlemMiddleware
    from .exporters.background import (BackgroundProcessHarExporter,
                                       BackgroundThreadHarExporter, ExecutorHarExporter)
    from .exporters.base import HarExporter
    from .exporters.composite import CompositeHarExporter
    from .exporters.files import FileHarExporter, IoHarExporter
    from .exporters.live import LiveFileHarExporter
    from .exporters.logging import LoggingHarExporter
    from .exporters.model import ModelHarExporter
    from .pipeline import flush
    from .record import page, record_to_file, record_to_logger, to_har_model
    from .recorders.aiohttp import AiohttpHarRecorder
    from .recorders.asgi import AsgiHarRecorder
    from .recorders.base import HarRecorder
    from .recorders.httpx import HttpxHarRecorder
    from .recorders.requests import RequestsHarRecorder
    from .recording import Recording
    from .settings import Settings, SettingsError

_EXPORTS = {
    "record_to_file": "harlem.record",
    "record_to_logger": "harlem.record",
    "page": "harlem.record",
    "to_har_model": "harlem.record",
    "flush": "harlem.pipeline",
    "Recording": "harlem.recording",
    "Settings": "harlem.settings",
    "SettingsError": "harlem.settings",
    "HarRecorder": "harlem.recorders.base",
    "RequestsHarRecorder": "harlem.recorders.requests",
    "AiohttpHarRecorder": "harlem.recorders.aiohttp",
    "HttpxHarRecorder": "harlem.recorders.httpx",
    "AsgiHarRecorder": "harlem.recorders.asgi",
    "HarlemMiddleware": "harlem.asgi",
    "HarExporter": "harlem.exporters.base",
    "ModelHarExporter": "harlem.exporters.model",
    "IoHarExporter": "harlem.exporters.files",
    "FileHarExporter": "harlem.exporters.files",
    "LiveFileHarExporter": "harlem.exporters.live",
    "LoggingHarExporter": "harlem.exporters.logging",
    "CompositeHarExporter": "harlem.exporters.composite",
    "ExecutorHarExporter": "harlem.exporters.background",
    "BackgroundThreadHarExporter": "harlem.exporters.background",
    "BackgroundProcessHarExporter": "harlem.exporters.background",
}

__all__ = [  # (a literal: what linters read; a test keeps it and _EXPORTS the same)
    "__version__",
    "record_to_file", "record_to_logger", "page", "to_har_model", "flush", "Recording",
    "Settings", "SettingsError", "HarRecorder", "RequestsHarRecorder", "AiohttpHarRecorder",
    "HttpxHarRecorder", "AsgiHarRecorder", "HarlemMiddleware", "HarExporter",
    "ModelHarExporter", "IoHarExporter", "FileHarExporter", "LiveFileHarExporter",
    "LoggingHarExporter", "CompositeHarExporter", "ExecutorHarExporter",
    "BackgroundThreadHarExporter", "BackgroundProcessHarExporter",
]


if not TYPE_CHECKING:  # (seen by type checkers, it would make every misspelled name Any)
    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'harlem' has no attribute {name!r}")
        value = getattr(__import__(module, fromlist=[name]), name)
        globals()[name] = value
        return value


def __dir__() -> list:
    return sorted(__all__)
