"""harlem's type hints, as a user's type checker reads them (``py.typed``): documented usage
type-checks under ``mypy --strict``, and mistakes that fail at run time fail there too."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import List

import pytest

mypy_api = pytest.importorskip("mypy.api")

REPO = Path(__file__).resolve().parents[1]

GOOD = """
    from __future__ import annotations

    import logging
    from pathlib import Path
    from typing import Any, Dict, List

    import harlem
    from harlem import (CompositeHarExporter, FileHarExporter, HarExporter, LiveFileHarExporter,
                        ModelHarExporter, Recording, RequestsHarRecorder, Settings,
                        record_to_file, record_to_logger, to_har_model)
    from harlem.har.model import Har


    class Csv(HarExporter):
        def add_entry(self, entry: Dict[str, Any]) -> None:
            print(entry["request"]["url"])

        def end_page(self, page_id: str) -> None:
            print(page_id)


    def first_url(pages: List[Dict[str, Any]], entries: List[Dict[str, Any]]) -> str:
        return to_har_model(pages, entries).log.entries[0].request.url


    def model_of(exporter: ModelHarExporter) -> Har:
        return exporter.model


    def run() -> None:
        with LiveFileHarExporter(Path("live.har"), interval_seconds=1) as live:
            count: int = live.entry_count
        started: FileHarExporter = FileHarExporter("out.har").start()
        recorder: RequestsHarRecorder = RequestsHarRecorder(Csv()).start()
        recorder.stop()
        with record_to_file("out.har", live="on", retention_seconds=60, redact=False) as rec:
            failed: bool = rec.export_failed
            with harlem.page("checkout"):
                pass
        line: str = rec.summary("out.har")
        with record_to_logger(logging.getLogger("har")):
            pass
        both = CompositeHarExporter([Csv(), ModelHarExporter()])
        with Recording(both, Settings.from_kwargs(indent=2)) as recording:
            total: int = recording.entry_count
        print(count, started, failed, line, total)
"""

BAD = """
    import harlem
    from harlem import RequestHarRecorder, RequestsHarRecorder

    harlem.record_to_fil("out.har")
    RequestsHarRecorder("out.har")
    harlem.to_har_model([], []).log.entrys
"""


def _mypy(tmp_path: Path, source: str) -> List[str]:
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(source))
    env_path = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(REPO)  # harlem's source, whether installed or not
    try:
        out, err, _ = mypy_api.run(["--strict", "--cache-dir", str(tmp_path / "cache"),
                                    "--no-error-summary", str(path)])
    finally:
        if env_path is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = env_path
    return [line for line in (out + err).splitlines() if line.startswith(str(path))]


def test_documented_usage_type_checks_strictly(tmp_path: Path) -> None:
    """start() and ``with`` give the exporter's or recorder's own class, to_har_model and
    ModelHarExporter.model a Har, switches take the strings the settings read."""
    errors = _mypy(tmp_path, GOOD)
    assert [e for e in errors if "error:" in e] == []


def test_mistakes_are_type_errors(tmp_path: Path) -> None:
    """A misspelled name is not Any (a module __getattr__ that type checkers see made it so),
    nor is a recorder's exporter, nor the model."""
    errors = "\n".join(_mypy(tmp_path, BAD))
    assert 'has no attribute "RequestHarRecorder"' in errors
    assert 'has no attribute "record_to_fil"' in errors
    assert 'incompatible type "str"; expected "HarExporter"' in errors
    assert 'has no attribute "entrys"' in errors
