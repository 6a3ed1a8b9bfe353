"""Log each page and entry as a record whose ``extra`` carries the HAR dict.

Hands rotation, shipping and retention to the user's logging stack; :func:`harlem.to_har_model`
turns the logged dicts back into a HAR.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from .base import HarExporter

__all__ = ["LoggingHarExporter"]


class LoggingHarExporter(HarExporter):
    """Logs pages as ``extra={"har_page": page}`` and entries as ``extra={"har_entry": entry}``."""

    def __init__(self, logger: Optional[logging.Logger] = None, level: int = logging.DEBUG,
                 new_page_message: str = "harlem: new HAR page",
                 new_entry_message: str = "harlem: new HAR entry"):
        super().__init__()
        self.logger = logger if logger is not None else logging.getLogger("harlem.har")
        self.level = level
        self.new_page_message = new_page_message
        self.new_entry_message = new_entry_message

    def add_page(self, page: Dict[str, Any]) -> None:
        self.logger.log(self.level, self.new_page_message, extra={"har_page": page})

    def add_entry(self, entry: Dict[str, Any]) -> None:
        self.logger.log(self.level, self.new_entry_message, extra={"har_entry": entry})

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state["logger"] = self.logger.name  # loggers travel by name to a background process
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        self.logger = logging.getLogger(state["logger"])
