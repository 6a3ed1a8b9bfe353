"""pytest plugin: record each test's HTTP traffic (``--har DIR``) and assert on it (``har``).

Registered through the ``pytest11`` entry point, so it loads with pytest; it costs nothing
until used: importing it imports no other harlem module, and without ``--har`` or the ``har``
fixture no hook does any work.

* ``pytest --har DIR`` records every test (setup, call and teardown) with every installed
  recorder into ``DIR/<test id>.har``. Only failing tests keep their file unless
  ``--har-keep all``. A failing test's report gains a section with the file's path and a
  table of its requests.
* The ``har`` fixture gives the entries recorded so far in the current test, with or without
  ``--har``: ``assert har.entries[-1]["response"]["status"] == 201``.

Settings come from the ``HARLEM_*`` environment variables (``HARLEM_REDACT=0`` to see
credentials in assertions, for example). Test ids are made into file names that are unique
per test, so pytest-xdist workers never share a file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re

import pytest

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Iterator, List, Optional

_RECORDING = pytest.StashKey["_TestRecording"]()
_DIRECTORY = pytest.StashKey[str]()
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("harlem", "record HTTP traffic into HAR files")
    group.addoption("--har", metavar="DIR", default=None,
                    help="record each test's HTTP traffic into DIR/<test id>.har")
    group.addoption("--har-keep", choices=("failed", "all"), default="failed",
                    help="which tests keep their HAR file (default: failed)")


class _TestRecording:
    """One test's recording: every recorder into memory, written to a file at the end."""

    def __init__(self) -> None:
        from .exporters.model import ModelHarExporter
        from .recording import Recording
        from .settings import Settings

        self.exporter = ModelHarExporter()
        self.recording = Recording(self.exporter, Settings.from_env()).start()
        self.failed = False

    @property
    def entries(self) -> "List[Dict[str, Any]]":
        from . import pipeline

        pipeline.flush()
        with self.exporter._lock:
            return list(self.exporter.entries)

    def stop(self) -> None:
        self.recording.stop()

    def write(self, path: str) -> None:
        import orjson

        from .exporters.files import atomic_write
        from .exporters.layout import Layout

        har = self.exporter.to_dict()["log"]
        atomic_write(path, lambda write: Layout(None).write(
            write, har["pages"], (orjson.dumps(e) for e in har["entries"])))


class HarFixture:
    """What the ``har`` fixture gives a test."""

    def __init__(self, recording: _TestRecording):
        self._recording = recording

    @property
    def entries(self) -> "List[Dict[str, Any]]":
        """HAR entry dicts recorded so far in this test, oldest first."""
        return self._recording.entries


def har_file_name(nodeid: str) -> str:
    """A file name for a test id: readable, safe on every OS, unique per id."""
    readable = _UNSAFE.sub("_", nodeid).strip("._") or "test"
    digest = hashlib.sha1(nodeid.encode("utf-8")).hexdigest()[:8]
    return f"{readable[:150]}-{digest}.har"


def _directory(config: Any) -> "Optional[str]":
    """``--har DIR`` as an absolute path: a test that changes the working directory and
    does not change it back must not send its file, or later tests' files, elsewhere."""
    return config.stash.get(_DIRECTORY, None)


def pytest_configure(config: Any) -> None:
    directory = config.getoption("--har", default=None)
    if directory is None:
        return
    if not directory.strip() or os.path.exists(directory) and not os.path.isdir(directory):
        raise pytest.UsageError(f"--har: {directory!r} is not a folder")
    config.stash[_DIRECTORY] = os.path.abspath(directory)
    _prepare_builder()


def pytest_collection_modifyitems(items: Any) -> None:
    if any("har" in getattr(item, "fixturenames", ()) for item in items):
        _prepare_builder()


def _prepare_builder() -> None:
    """Import what the builder thread would import when it builds the first entry, now, on
    pytest's main thread before any test starts a thread. Under pytest, harlem's modules are
    compiled through pytest's assertion rewriting (``ast``), and CPython 3.11's ``ast`` is
    not thread-safe (gh-106905): a first import on the builder thread while another thread
    parsed (a server thread formatting a traceback) failed with ``SystemError`` and lost that
    batch of entries."""
    importlib.import_module("harlem.har.build")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    if _directory(item.config) is not None:
        item.stash[_RECORDING] = _TestRecording()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> "Iterator[None]":
    outcome = yield
    recording = item.stash.get(_RECORDING, None)
    if recording is None:
        return
    report = outcome.get_result()
    if report.failed:
        recording.failed = True
        directory = _directory(item.config)
        lines = [f"HAR: {os.path.join(directory, har_file_name(item.nodeid))}" if directory else
                 "HAR: recorded with the har fixture (use --har DIR to keep files)"]
        lines += _table(recording.entries)
        report.sections.append(("harlem: HTTP traffic of this test", "\n".join(lines)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> "Iterator[None]":
    yield
    recording = item.stash.get(_RECORDING, None)
    if recording is None:
        return
    recording.stop()
    directory = _directory(item.config)
    if directory is not None and (recording.failed or item.config.getoption("--har-keep") == "all"):
        path = os.path.join(directory, har_file_name(item.nodeid))
        try:
            os.makedirs(directory, exist_ok=True)
            recording.write(path)
        except OSError as exc:  # the run goes on: one warning, not an internal error
            from ._warn import warn_once

            warn_once("pytest-har", f"cannot write {path}", exc)


@pytest.fixture
def har(request: Any) -> "Iterator[HarFixture]":
    """The HTTP traffic of the current test, as HAR entry dicts (``har.entries``)."""
    recording = request.node.stash.get(_RECORDING, None)
    if recording is not None:  # --har already records this test
        yield HarFixture(recording)
        return
    recording = _TestRecording()
    request.node.stash[_RECORDING] = recording
    try:
        yield HarFixture(recording)
    finally:
        recording.stop()
        del request.node.stash[_RECORDING]


def _table(entries: "List[Dict[str, Any]]", limit: int = 20) -> "List[str]":
    rows = []
    for entry in entries[:limit]:
        response = entry["response"]
        status = response["status"] or response.get("_error", "failed")
        rows.append(f"  {entry['request']['method']:<7} {status!s:<6} {entry['time']:>9.1f} ms  "
                    f"{entry['request']['url']}")
    if len(entries) > limit:
        rows.append(f"  ... {len(entries) - limit} more")
    return rows or ["  (no requests)"]
