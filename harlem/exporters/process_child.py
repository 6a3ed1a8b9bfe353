"""The far end of :class:`~harlem.exporters.background.BackgroundProcessHarExporter`.

Reads frames from stdin: the pickled exporter, then pages and entries as JSON, then stop.
A call that fails is one warning (as in the program's own process) and the rest go on; the
exporter is stopped whatever happened, so that what it has is written.
"""

from __future__ import annotations

import pickle
import sys

import orjson

from .._warn import warn_once
from .background import _HEADER

_CALLS = {b"P": "add_page", b"E": "add_entry"}


def main() -> int:
    stream = sys.stdin.buffer
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return 0  # the parent went before sending anything
    tag, length = _HEADER.unpack(header)
    exporter = pickle.loads(stream.read(length))  # (X) a failure here is the parent's warning
    exporter.start()
    try:
        while True:
            header = stream.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break  # parent gone: finish with what we have
            tag, length = _HEADER.unpack(header)
            payload = stream.read(length)
            if tag == b"S":
                break
            method = _CALLS.get(tag)
            if method is None:
                continue
            try:
                getattr(exporter, method)(orjson.loads(payload))
            except Exception as exc:
                warn_once(f"process-{method}", f"{type(exporter).__name__}.{method} failed", exc)
    finally:
        exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
