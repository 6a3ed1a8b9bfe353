"""The far end of :class:`~harlem.exporters.background.BackgroundProcessHarExporter`.

Reads frames from stdin: the pickled exporter, then pages and entries as JSON, then stop.
"""

from __future__ import annotations

import pickle
import sys

import orjson

from .background import _HEADER


def main() -> int:
    stream = sys.stdin.buffer
    exporter = None
    while True:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            break  # parent gone: finish with what we have
        tag, length = _HEADER.unpack(header)
        payload = stream.read(length)
        if tag == b"X":
            exporter = pickle.loads(payload)
            exporter.start()
        elif tag == b"P" and exporter is not None:
            exporter.add_page(orjson.loads(payload))
        elif tag == b"E" and exporter is not None:
            exporter.add_entry(orjson.loads(payload))
        elif tag == b"S":
            break
    if exporter is not None:
        exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
