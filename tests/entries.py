"""Hand-made HAR entries for exporter tests (recorder output is tested elsewhere)."""

from __future__ import annotations

import time
from typing import Any, Dict

from harlem import FileHarExporter
from harlem.pipeline import iso_time


class Entry(dict):
    """A dict that can be weakly referenced, to prove exporters do not keep entries."""


def make_entry(number: int, started: float | None = None, body: str = "") -> Dict[str, Any]:
    text = body or f'{{"n": {number}}}'
    return Entry({
        "pageref": "page_0",
        "startedDateTime": iso_time(started if started is not None else time.time()),
        "time": 3.5,
        "request": {"method": "GET", "url": f"http://127.0.0.1:1/item?n={number}",
                    "httpVersion": "HTTP/1.1", "cookies": [], "headers": [{"name": "Host", "value": "127.0.0.1:1"}],
                    "queryString": [{"name": "n", "value": str(number)}], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [{"name": "Content-Type", "value": "application/json"}],
                     "content": {"size": len(text.encode()), "mimeType": "application/json", "text": text},
                     "redirectURL": "", "headersSize": -1, "bodySize": len(text.encode())},
        "cache": {},
        "timings": {"blocked": 0.5, "dns": -1, "connect": -1, "send": 1.0, "wait": 1.5, "receive": 0.5},
    })


DEFAULT_PAGE = {"id": "page_0", "title": "harlem recording", "startedDateTime": iso_time(time.time()),
                "pageTimings": {"onContentLoad": -1, "onLoad": -1}}


class FlakyFileExporter(FileHarExporter):
    """A file exporter that fails on entry number 1. Defined here, importable, so that a
    background process's child can unpickle it."""

    def add_entry(self, entry: Dict[str, Any]) -> None:
        if entry["request"]["queryString"][0]["value"] == "1":
            raise ValueError("entry 1 is bad")
        super().add_entry(entry)
