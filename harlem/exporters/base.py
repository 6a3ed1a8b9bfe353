"""The exporter interface: where pages and entries go.

Exporters receive plain dicts (a HAR page, a HAR entry) that are already built and redacted;
they never see the raw traffic. Several recorders (one per library) usually share one exporter,
so :meth:`HarExporter.start` and :meth:`HarExporter.stop` are reference-counted: the exporter
opens on the first start and finishes (writes its file, joins its thread) on the last stop.
Starting it again later continues the same recording.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, TypeVar

__all__ = ["HarExporter"]

#: The exporter's own class, for type checkers: ``LiveFileHarExporter(...).start()`` is one.
_Self = TypeVar("_Self", bound="HarExporter")


class HarExporter:
    """Base class of every exporter. Subclasses implement :meth:`add_entry` (and usually
    :meth:`add_page`, :meth:`on_start`, :meth:`on_stop`).

    Calls may come from any thread (harlem's builder thread, a background exporter's thread,
    the user's code); the built-in exporters guard their state with ``self._lock``.
    """

    def __init__(self) -> None:
        #: Guards the exporter's data; never held while waiting for another thread.
        self._lock = threading.RLock()
        # Guards only the start/stop count, so on_stop may join threads that take _lock.
        self._lifecycle = threading.RLock()
        self._users = 0

    # -- lifecycle (reference-counted) ---------------------------------------------------

    def start(self: _Self) -> _Self:
        """Open the exporter for one more user (the first opens it: :meth:`on_start`);
        return it."""
        with self._lifecycle:
            if self._users == 0:
                self.on_start()  # if this raises, the exporter stays stopped
            self._users += 1
        return self

    def stop(self) -> None:
        """One user less; the last finishes the exporter (:meth:`on_stop`). Extra calls do
        nothing."""
        with self._lifecycle:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                self.on_stop()

    @property
    def started(self) -> bool:
        """True while some user has started it and not stopped it yet."""
        return self._users > 0

    @property
    def deferrable(self) -> bool:
        """True when this exporter needs its entries only by the time it stops.

        An exporter that writes everything at the end lets the pipeline build entries while
        the program pauses instead of while it works (see :mod:`harlem.pipeline`). Exporters
        that show entries as they come (live files, logs, a model read during the recording,
        and any custom exporter unless it says otherwise) get each entry within
        :data:`harlem.pipeline.BATCH_SECONDS`.
        """
        return False

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- what subclasses provide -------------------------------------------------------------

    def check_ready(self) -> None:
        """Raise ``OSError`` now if this exporter could not start (its file's folder is
        missing, say). The background wrappers, which start it in another thread or process,
        call this first: the error then reaches the program where it starts its recording."""

    def on_start(self) -> None:
        """Open resources (files, threads). Called when the first user starts the exporter."""

    def on_stop(self) -> None:
        """Finish: write what is owed, release resources. Called when the last user stops."""

    def add_page(self, page: Dict[str, Any]) -> None:
        """A HAR page dict (``id``, ``title``, ``startedDateTime``, ``pageTimings``)."""

    def end_page(self, page_id: str) -> None:
        """No entry will name page ``page_id`` any more: its ``harlem.page()`` block ended and
        every request begun inside it was exported. An exporter that keeps only recent data
        (a live file's retention) may let the page go once no entry it keeps names it."""

    def add_entry(self, entry: Dict[str, Any]) -> None:
        """A HAR entry dict. Must not keep a reference that the caller later mutates."""
        raise NotImplementedError

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        """Several entries in order: what the pipeline calls, once per batch it built.

        By default each goes to :meth:`add_entry`; one that fails does not keep the others
        out, and the first failure is raised once all were tried. Override it where one write
        for many entries is cheaper than one each (a live file).
        """
        error: Optional[Exception] = None
        for entry in entries:
            try:
                self.add_entry(entry)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def __getstate__(self) -> Dict[str, Any]:
        """Exporters travel to a background process before they start: drop the lock."""
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_lifecycle", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._lifecycle = threading.RLock()


def creator() -> Dict[str, str]:
    """``log.creator`` of every HAR harlem writes."""
    from .._version import __version__

    return {"name": "harlem", "version": __version__}


def empty_log(pages: Optional[list] = None) -> Dict[str, Any]:
    return {"log": {"version": "1.2", "creator": creator(), "pages": list(pages or []), "entries": []}}
