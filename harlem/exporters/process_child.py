"""The far end of :class:`~harlem.exporters.background.BackgroundProcessHarExporter`.

Reads frames from stdin: the pickled exporter, then pages, ended pages' ids and entries as JSON,
then stop.
A call that fails is one warning (as in the program's own process) and the rest go on; the
exporter is stopped whatever happened, so that what it has is written.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import orjson

from .._warn import warn_once
from .background import _HEADER, STOP_FAILED

_CALLS = {b"P": "add_page", b"D": "end_page", b"E": "add_entry"}


def main() -> int:
    stream = sys.stdin.buffer
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return 0  # the parent went before sending anything
    tag, length = _HEADER.unpack(header)
    exporter = pickle.loads(stream.read(length))  # (X) a failure here is the parent's warning
    earlier = _last_run(exporter) if tag == b"Y" else None
    try:
        exporter.start()  # (checked in the parent first; its folder may have gone since)
    except Exception as exc:
        warn_once("process-start", f"{type(exporter).__name__} could not start", exc)
        return STOP_FAILED
    if earlier is not None:
        for page in earlier.get("pages") or []:
            exporter.add_page(page)
        for entry in earlier.get("entries") or []:
            exporter.add_entry(entry)
    try:
        _serve(exporter, stream)
    finally:
        written = _stop(exporter)
    return 0 if written else STOP_FAILED


def _serve(exporter: Any, stream: Any) -> None:
    """Hand the pages and entries the parent sends to ``exporter``, until it says stop."""
    while True:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # parent gone: finish with what we have
        tag, length = _HEADER.unpack(header)
        payload = stream.read(length)
        if tag == b"S":
            return
        method = _CALLS.get(tag)
        if method is None:
            continue
        try:
            getattr(exporter, method)(orjson.loads(payload))
        except Exception as exc:
            warn_once(f"process-{method}", f"{type(exporter).__name__}.{method} failed", exc)


def _last_run(exporter: Any) -> "dict | None":
    """The exporter was started again in the program (tag Y), but this copy is new: what the
    last run wrote to its file, read before it starts (a live file starts anew), is given to
    it first, so that a file or live exporter continues the same recording, as it does in the
    program's own process."""
    import os

    from ..agent.merge import MergeError, read_har

    path = getattr(exporter, "path", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    try:
        return read_har(path)["log"]  # type: ignore[no-any-return]
    except MergeError as exc:
        warn_once("process-continue", f"cannot continue the recording in {path}", exc)
        return None


def _stop(exporter: Any) -> bool:
    """Stop ``exporter`` (it writes what it has); False, with one warning, if it could not."""
    try:
        exporter.stop()
    except Exception as exc:
        warn_once("process-stop", f"{type(exporter).__name__} could not write its output", exc)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
