"""The everyday API: record a block of code to a file or a logger, and name pages."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, Optional, Union

from . import pipeline
from .recording import Recording, file_exporter, in_background
from .settings import Settings

if TYPE_CHECKING:  # pragma: no cover (pydantic is imported when a model is asked for)
    from .har.model import Har

__all__ = ["record_to_file", "record_to_logger", "page", "to_har_model"]


@contextlib.contextmanager
def record_to_file(path: Union[str, "os.PathLike[str]"], indent: Optional[int] = None,
                   live: Union[bool, str] = False, interval_seconds: Optional[float] = None,
                   retention_seconds: Optional[float] = None, in_background: Optional[str] = None,
                   **options: Any) -> Iterator[Recording]:
    """Record every installed HTTP library into the HAR file ``path`` while the block runs.

    Same options as the CLI: ``indent``, ``live`` (the file is valid after every entry),
    ``interval_seconds`` (update at most that often; implies live), ``retention_seconds``
    (keep only recent entries), ``in_background`` (``"thread"`` or ``"process"``), plus any
    other setting as a keyword (``redact=False``, ``max_body_size="1MiB"``, ``recorders=...``).
    The file is written even when the block raises (KeyboardInterrupt included); the exception
    then propagates unchanged. In the main thread, SIGTERM and SIGHUP (a service stopped) write
    it too, before they end the program as they would have, unless the program handles them.
    A block the program never leaves (``__enter__`` called by hand, a generator suspended for
    good) is ended at interpreter exit, while the modules the export needs are still there.
    """
    import atexit

    from .agent.signals import ExportOnce, export_before_death

    settings = Settings.from_kwargs(
        output=path, indent=indent, live=live or None, interval_seconds=interval_seconds,
        retention_seconds=retention_seconds, in_background=in_background, **options)
    recording = Recording(file_exporter(settings), settings).start()
    ending = ExportOnce(recording.stop)
    restore_signals = export_before_death(ending)
    atexit.register(ending.run)
    try:
        yield recording
    finally:
        ending.run()
        restore_signals()
        atexit.unregister(ending.run)


@contextlib.contextmanager
def record_to_logger(logger: Optional[logging.Logger] = None, level: int = logging.DEBUG,
                     new_page_message: str = "harlem: new HAR page",
                     new_entry_message: str = "harlem: new HAR entry",
                     in_background: Optional[str] = None, **options: Any) -> Iterator[Recording]:
    """Log every page and entry (``extra={"har_page": ...}`` / ``{"har_entry": ...}``).

    :func:`to_har_model` rebuilds a HAR from the logged dicts.
    """
    from .exporters.logging import LoggingHarExporter

    settings = Settings.from_kwargs(in_background=in_background, **options)
    if settings.in_background == "process":  # (as parsed: "PROCESS" too)
        # A logger's handlers live in this process; another process would log into the void.
        raise ValueError("in_background='process' cannot log through this process's handlers: "
                         "use in_background='thread'")
    exporter = LoggingHarExporter(logger, level, new_page_message, new_entry_message)
    with Recording(_background(exporter, settings), settings) as recording:
        yield recording


_background = in_background  # the keyword above shadows the helper inside record_to_logger


@contextlib.contextmanager
def page(title: str) -> Iterator[Dict[str, Any]]:
    """Group the requests made inside the block under a new HAR page called ``title``."""
    opened = pipeline.open_page(title)
    try:
        yield opened
    finally:
        pipeline.close_page(opened)


def to_har_model(pages: Iterable[Dict[str, Any]], entries: Iterable[Dict[str, Any]]) -> Har:
    """Build a :class:`harlem.har.model.Har` from page and entry dicts (for example, logged ones)."""
    from .har.model import Har

    return Har.from_entries(list(pages), list(entries))
