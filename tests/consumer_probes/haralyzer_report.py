"""Print what haralyzer makes of a HAR file, as JSON, for tests/test_consumers.py.

Runs in the consumers venv: ``python haralyzer_report.py file.har``. Entries are named by
their index in ``log.entries``. An attribute that raises is reported as ``{"error": ...}``
instead of stopping the report, so the test can say which attribute failed on which entry.
"""

import json
import sys

from haralyzer import HarParser

PAGE_ATTRIBUTES = ("page_size", "page_size_trans", "time_to_first_byte")
ASSET_KINDS = ("html", "css", "js", "image", "text")
ENTRY_ATTRIBUTES = ("port", "serverAddress", "status", "time", "url")


def attempt(read, *args):
    """``read(*args)``, or ``{"error": ...}`` when it raises (any failure is worth reporting)."""
    try:
        return read(*args)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return {"error": f"{type(exc).__name__}: {exc}"}


def indices(entries, index):
    return [index[id(entry.raw_entry)] for entry in entries]


def start(entry):
    return entry.startTime.isoformat()


def main(path):
    parser = HarParser.from_file(path)
    index = {id(raw): number for number, raw in enumerate(parser.har_data["entries"])}
    pages = []
    for page in parser.pages:
        report = {"id": page.page_id, "entries": indices(page.entries, index)}
        for name in PAGE_ATTRIBUTES:
            report[name] = attempt(getattr, page, name)
        for kind in ASSET_KINDS:
            files = attempt(getattr, page, f"{kind}_files")
            report[f"{kind}_files"] = files if isinstance(files, dict) else indices(files, index)
        pages.append(report)
    entries = []
    for page in parser.pages:
        for entry in page.entries:
            report = {"index": index[id(entry.raw_entry)], "pageref": entry.pageref,
                      "start": attempt(start, entry)}
            for name in ENTRY_ATTRIBUTES:
                report[name] = attempt(getattr, entry, name)
            entries.append(report)
    json.dump({"pages": pages, "entries": entries}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
