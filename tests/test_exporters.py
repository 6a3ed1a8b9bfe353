"""Exporters: valid documents, safe files, flat costs, and nothing held in memory."""

from __future__ import annotations

import concurrent.futures
import gc
import io
import json
import logging
import multiprocessing
import os
import stat
import threading
import time
import weakref
from typing import Any, Dict, List

import orjson
import pytest

from harlem import (BackgroundProcessHarExporter, BackgroundThreadHarExporter, CompositeHarExporter,
                    ExecutorHarExporter, FileHarExporter, HarExporter, IoHarExporter,
                    LiveFileHarExporter, LoggingHarExporter, ModelHarExporter, to_har_model)
from tests.entries import DEFAULT_PAGE, make_entry
from tests.helpers import check_har


def feed(exporter: HarExporter, count: int = 3) -> None:
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    for number in range(count):
        exporter.add_entry(make_entry(number))
    exporter.stop()


def entry_numbers(har: dict) -> list:
    return [e["request"]["queryString"][0]["value"] for e in har["log"]["entries"]]


@pytest.mark.parametrize("indent", [None, 2, 4])
def test_file_exporter_writes_a_valid_har_in_every_indent(tmp_path, indent):
    path = tmp_path / "out.har"
    feed(FileHarExporter(path, indent=indent))
    har = check_har(path)
    assert entry_numbers(har) == ["0", "1", "2"]
    assert har["log"]["creator"]["name"] == "harlem"
    assert har["log"]["pages"][0]["id"] == "page_0"
    data = path.read_bytes()
    assert data.startswith(b"{")
    if indent:  # reads as ordinary indented JSON
        assert data.decode() == json.dumps(json.loads(data), indent=indent, ensure_ascii=False) + "\n"


def test_file_is_private_and_written_atomically(tmp_path):
    path = tmp_path / "out.har"
    feed(FileHarExporter(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["out.har"]  # no temporary or spool file left


def test_a_symlink_planted_at_the_output_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "out.har"
    path.symlink_to(victim)
    feed(FileHarExporter(path))
    assert victim.read_text() == "keep me"
    assert not path.is_symlink()
    check_har(path)


def test_file_exporter_holds_no_entries_after_writing_them(tmp_path):
    exporter = FileHarExporter(tmp_path / "out.har")
    exporter.start()
    entry = make_entry(1)
    ref = weakref.ref(entry)
    exporter.add_entry(entry)
    del entry
    gc.collect()
    assert ref() is None  # serialised to the spool, not kept
    exporter.stop()


def test_a_finished_recording_leaves_no_file_open(tmp_path):
    """The spool lives as long as its exporter (which may start again), then closes: an
    unclosed file is a ResourceWarning, an error under ``-W error`` or pytest's
    ``filterwarnings = error``."""
    import warnings

    from harlem import record_to_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with record_to_file(tmp_path / "out.har"):
            pass
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_restarting_a_file_exporter_continues_the_recording(tmp_path):
    path = tmp_path / "out.har"
    exporter = FileHarExporter(path)
    feed(exporter, 2)
    feed(exporter, 1)
    assert entry_numbers(check_har(path)) == ["0", "1", "0"]


@pytest.mark.parametrize("stream_type", [io.BytesIO, io.StringIO])
def test_io_exporter_writes_to_binary_and_text_streams(stream_type):
    stream = stream_type()
    feed(IoHarExporter(stream, indent=2))
    value = stream.getvalue()
    check_har(json.loads(value))


@pytest.mark.parametrize("indent", [None, 2])
def test_live_file_is_valid_after_every_entry_and_only_appends(tmp_path, indent):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, indent=indent)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    previous = path.read_bytes()
    tail = exporter._layout.tail
    for number in range(20):
        exporter.add_entry(make_entry(number))
        data = path.read_bytes()
        # earlier bytes untouched: the old file minus its tail is a prefix of the new one
        assert data.startswith(previous[: len(previous) - len(tail)])
        assert entry_numbers(check_har(path)) == [str(n) for n in range(number + 1)]
        previous = data
    exporter.stop()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_live_append_cost_does_not_depend_on_file_size(tmp_path, monkeypatch):
    """Each entry is one positioned write of the new bytes only (structure, not timing)."""
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path)
    exporter.start()
    writes = []
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: writes.append(len(data)) or real_pwrite(fd, data, offset))
    for number in range(200):
        exporter.add_entry(make_entry(number))
    exporter.stop()
    assert len(writes) == 200
    assert max(writes) - min(writes) < 64  # same-sized entries cost the same at 1 and at 200


def test_live_file_holds_no_entries(tmp_path):
    exporter = LiveFileHarExporter(tmp_path / "live.har")
    exporter.start()
    entry = make_entry(1)
    ref = weakref.ref(entry)
    exporter.add_entry(entry)
    del entry
    gc.collect()
    assert ref() is None
    exporter.stop()


def test_live_pages_added_later_keep_every_entry(tmp_path):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_entry(make_entry(0))
    exporter.add_page(dict(DEFAULT_PAGE, id="page_1", title="second"))
    exporter.add_entry(dict(make_entry(1), pageref="page_1"))
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_0", "page_1"]
    assert entry_numbers(har) == ["0", "1"]
    exporter.stop()


def _page(page_id: str, started: float | None = None, title: str = "job") -> Dict[str, Any]:
    from harlem.pipeline import iso_time

    return dict(DEFAULT_PAGE, id=page_id, title=title,
                startedDateTime=iso_time(time.time() if started is None else started))


@pytest.mark.parametrize("indent", [None, 2])
def test_live_pages_are_written_in_place_and_the_file_is_rewritten_rarely(
        tmp_path, monkeypatch, indent):
    """A page goes into room the head keeps after the pages: the entries' bytes stay where
    they are, and the file is rewritten only when the room runs out, each time with as much
    room again as the pages take (a few rewrites for a thousand pages, not a thousand)."""
    from harlem.exporters import live

    rewrites = []
    real_atomic_write = live.atomic_write
    monkeypatch.setattr(live, "atomic_write",
                        lambda *args, **kwargs: (rewrites.append(1), real_atomic_write(*args, **kwargs)))
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, indent=indent)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    for number in range(10):
        exporter.add_entry(make_entry(number))
    started_with = len(rewrites)
    before = path.read_bytes()
    entries_at = before.index(b'"entries"')
    exporter.add_page(_page("page_1"))
    after = path.read_bytes()
    assert len(rewrites) == started_with, "a page rewrote the file"
    assert len(after) == len(before) and after[entries_at:] == before[entries_at:]
    assert [p["id"] for p in check_har(path)["log"]["pages"]] == ["page_0", "page_1"]
    for number in range(2, 1000):
        exporter.add_page(_page(f"page_{number}"))
        if number % 97 == 0:
            check_har(path)
    exporter.add_entry(dict(make_entry(10), pageref="page_999"))
    exporter.stop()
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == [f"page_{n}" for n in range(1000)]
    assert entry_numbers(har) == [str(n) for n in range(11)]
    assert len(rewrites) - started_with <= 10, len(rewrites)


def test_live_retention_lets_go_of_ended_pages_that_no_kept_entry_names(tmp_path):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, retention_seconds=60)
    exporter.start()
    old = time.time() - 3600
    exporter.add_page(DEFAULT_PAGE)
    for page_id in ("ended", "open", "named", "recent"):
        exporter.add_page(_page(page_id, started=None if page_id == "recent" else old))
    exporter.add_entry(dict(make_entry(0, started=old), pageref="ended"))  # expired
    exporter.add_entry(dict(make_entry(1), pageref="named"))  # kept: its page stays
    for page_id in ("ended", "named", "recent"):
        exporter.end_page(page_id)
    exporter.end_page("never added")
    exporter._last_expiry = exporter._pages_checked = 0.0  # a period later: retention is due
    exporter.add_entry(make_entry(2))
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_0", "open", "named", "recent"]
    assert entry_numbers(har) == ["1", "2"]
    exporter.stop()
    assert [p["id"] for p in check_har(path)["log"]["pages"]] == ["page_0", "open", "named", "recent"]
    assert exporter._ended == {"named", "recent"}


def test_live_interval_keeps_its_interval_without_new_requests(tmp_path):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, interval_seconds=0.05)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_entry(make_entry(0))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not check_har(path)["log"]["entries"]:
        time.sleep(0.02)  # the timer thread writes the batch; no further add_entry call
    assert entry_numbers(check_har(path)) == ["0"]
    exporter.stop()


def test_live_soft_interval_writes_when_the_next_entry_arrives(tmp_path):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, interval_seconds=3600, hard_interval=False)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_entry(make_entry(0))
    assert check_har(path)["log"]["entries"] == []  # batched
    exporter.stop()
    assert entry_numbers(check_har(path)) == ["0"]  # written at stop


def test_live_retention_drops_old_entries(tmp_path):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, retention_seconds=60)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_entry(make_entry(0, started=time.time() - 3600))
    exporter.add_entry(make_entry(1))
    exporter.stop()
    assert entry_numbers(check_har(path)) == ["1"]


def test_logging_exporter_and_to_har_model_round_trip():
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("test-harlem-logging")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Collect())
    feed(LoggingHarExporter(logger, level=logging.INFO, new_entry_message="entry!"))
    pages = [r.har_page for r in records if hasattr(r, "har_page")]
    entries = [r.har_entry for r in records if hasattr(r, "har_entry")]
    assert len(pages) == 1 and len(entries) == 3
    assert {r.levelno for r in records} == {logging.INFO}
    assert records[-1].getMessage() == "entry!"
    model = to_har_model(pages, entries)
    check_har(model.model_dump(by_alias=True, exclude_none=True))


def test_model_exporter_gives_a_pydantic_model():
    exporter = ModelHarExporter()
    feed(exporter)
    assert len(exporter.model.log.entries) == 3
    check_har(exporter.to_dict())


def test_composite_exporter_survives_a_failing_member(tmp_path, capfd):
    class Broken(HarExporter):
        def add_entry(self, entry):
            raise OSError("disk full")

    path = tmp_path / "out.har"
    feed(CompositeHarExporter([Broken(), FileHarExporter(path)]))
    assert entry_numbers(check_har(path)) == ["0", "1", "2"]
    assert capfd.readouterr().err.count("disk full") == 1  # warned once, not per entry


@pytest.mark.parametrize("wrap", [
    lambda inner: BackgroundThreadHarExporter(inner),
    lambda inner: BackgroundProcessHarExporter(inner),
    lambda inner: ExecutorHarExporter(inner, concurrent.futures.ThreadPoolExecutor(4)),
], ids=["thread", "process", "executor"])
@pytest.mark.parametrize("live", [False, True])
def test_background_exporters_write_the_same_file(tmp_path, wrap, live):
    path = tmp_path / "out.har"
    inner = LiveFileHarExporter(path) if live else FileHarExporter(path)
    feed(wrap(inner), 50)
    assert entry_numbers(check_har(path)) == [str(n) for n in range(50)]


@pytest.mark.parametrize("wrap", [
    lambda inner: BackgroundThreadHarExporter(inner),
    lambda inner: BackgroundProcessHarExporter(inner),
    lambda inner: ExecutorHarExporter(inner, concurrent.futures.ThreadPoolExecutor(4)),
    lambda inner: CompositeHarExporter([inner]),
], ids=["thread", "process", "executor", "composite"])
def test_wrappers_pass_on_the_end_of_a_page(tmp_path, wrap):
    """A live file under retention lets an old page go once told it ended, wherever it runs."""
    path = tmp_path / "out.har"
    exporter = wrap(LiveFileHarExporter(path, retention_seconds=60))
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_page(_page("old", started=time.time() - 3600))
    exporter.end_page("old")
    exporter.add_entry(make_entry(0))
    exporter.stop()
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_0"] and entry_numbers(har) == ["0"]


def test_background_process_that_died_loses_entries_but_not_the_program(tmp_path, capfd):
    exporter = BackgroundProcessHarExporter(FileHarExporter(tmp_path / "out.har"))
    exporter.start()
    exporter._process.kill()
    exporter._process.wait()
    for number in range(3):
        exporter.add_entry(make_entry(number, body="x" * 100_000))
    # its stop says the output was not written (a Recording then sets export_failed)
    with pytest.raises(RuntimeError, match="ended before its output was written"):
        exporter.stop()
    assert capfd.readouterr().err.count("background export process is gone") == 1


def test_exporter_start_stop_is_reference_counted(tmp_path):
    path = tmp_path / "out.har"
    exporter = FileHarExporter(path)
    exporter.start()
    exporter.start()
    exporter.add_entry(make_entry(0))
    exporter.stop()
    assert not path.exists()  # still in use by the second user
    exporter.stop()
    assert entry_numbers(check_har(path)) == ["0"]
    assert orjson.loads(path.read_bytes())["log"]["version"] == "1.2"


# --- the background thread's hand-over is bounded -----------------------------------------------


class _Gate(ModelHarExporter):
    """Takes entries only once ``opened`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        self.opened.wait(30)
        super().add_entries(entries)


def test_a_background_thread_that_falls_behind_holds_up_its_feeder_not_memory():
    inner = _Gate()
    exporter = BackgroundThreadHarExporter(inner).start()
    fed: List[int] = []

    def feed() -> None:
        for number in range(BackgroundThreadHarExporter.MAX_QUEUED + 10):
            exporter.add_entries([make_entry(number)])
            fed.append(number)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    feeder.join(2)
    assert feeder.is_alive(), "the queue took everything while the export stood still"
    assert exporter._queue.qsize() <= BackgroundThreadHarExporter.MAX_QUEUED
    inner.opened.set()
    feeder.join(30)
    exporter.stop()
    assert len(fed) == len(inner.entries) == BackgroundThreadHarExporter.MAX_QUEUED + 10


def test_a_gone_background_thread_never_holds_up_its_feeder(capsys, monkeypatch):
    import harlem._warn

    monkeypatch.setattr(harlem._warn, "_seen", set())  # the warning is once per process
    inner = _Gate()
    exporter = BackgroundThreadHarExporter(inner).start()
    working = exporter._thread
    gone = threading.Thread(target=lambda: None)
    gone.start()
    gone.join()
    exporter._thread = gone  # as if the export thread had ended
    started = time.monotonic()
    for number in range(BackgroundThreadHarExporter.MAX_QUEUED + 5):
        exporter.add_entries([make_entry(number)])
    assert time.monotonic() - started < 5, "waited for a thread that is gone"
    assert "the export thread is not running; add_entries dropped" in capsys.readouterr().err
    exporter._thread = working
    inner.opened.set()
    exporter.stop()


@pytest.mark.parametrize("indent", [None, 2, 4])
def test_a_live_entry_has_the_same_bytes_as_the_spooled_one(indent):
    """Live files serialise entries straight from the dict; file exports re-indent the
    spooled compact JSON: the two documents must not differ."""
    from harlem.exporters.layout import Layout, compact_entry

    layout = Layout(indent)
    for number in range(3):
        entry = make_entry(number)
        entry["time"] = float("nan")  # what only orjson's own serialisation makes plain
        assert layout.entry(entry) == layout.reindent(compact_entry(entry))


@pytest.mark.parametrize("wrap", ["plain", "thread", "process"])
def test_a_failing_add_entry_is_one_warning_and_the_rest_is_written(tmp_path, capfd, wrap):
    from tests.entries import FlakyFileExporter

    path = tmp_path / "out.har"
    inner = FlakyFileExporter(path)
    exporter = {"plain": lambda: inner, "thread": lambda: BackgroundThreadHarExporter(inner),
                "process": lambda: BackgroundProcessHarExporter(inner)}[wrap]()
    if wrap == "plain":  # the pipeline's own guard, as it calls exporters
        from harlem import pipeline

        exporter.start()
        exporter.add_page(DEFAULT_PAGE)
        for number in range(3):
            try:
                exporter.add_entry(make_entry(number))
            except ValueError:
                pipeline.warn_once("test", "add_entry failed")
        exporter.stop()
    else:
        feed(exporter)
    assert entry_numbers(check_har(path)) == ["0", "2"]
    assert capfd.readouterr().err.count("harlem: warning:") == 1


@pytest.mark.parametrize("wrap", [
    lambda inner: BackgroundThreadHarExporter(inner),
    lambda inner: BackgroundProcessHarExporter(inner),
    lambda inner: ExecutorHarExporter(inner, concurrent.futures.ThreadPoolExecutor(1)),
], ids=["thread", "process", "executor"])
def test_a_background_exporter_whose_folder_is_missing_raises_where_it_starts(tmp_path, wrap):
    """As the exporter it wraps does: the program learns it before recording anything."""
    exporter = wrap(FileHarExporter(tmp_path / "missing" / "out.har"))
    with pytest.raises(OSError):
        exporter.start()


def test_a_process_exporter_that_cannot_be_pickled_leaves_no_process(tmp_path):
    class Local(FileHarExporter):  # a class the child could not import anyway
        def __init__(self, path):
            super().__init__(path)
            self.lock = threading.Lock()  # and not picklable

    exporter = BackgroundProcessHarExporter(Local(tmp_path / "out.har"))
    with pytest.raises(Exception):
        exporter.start()
    assert exporter._process is None


def test_a_process_exporter_whose_child_fails_at_once_is_a_warning(tmp_path, capfd,
                                                                    monkeypatch):
    """The child cannot unpickle an exporter defined in the program's own script: it dies
    with its traceback, and stopping says the output was not written (at most one warning
    before that, if entries were sent to the dead process)."""
    import pickle

    import harlem._warn

    monkeypatch.setattr(harlem._warn, "_seen", set())  # (said once per process)

    exporter = BackgroundProcessHarExporter(FileHarExporter(tmp_path / "out.har"))
    real_dumps = pickle.dumps
    try:  # what a class the child cannot import sends: a reference to no module
        pickle.dumps = lambda obj, *a, **k: b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x0bno_such_mod\x94."
        exporter.start()
    finally:
        pickle.dumps = real_dumps
    with pytest.raises(RuntimeError, match="export process"):
        exporter.stop()
    assert capfd.readouterr().err.count("harlem: warning:") <= 1


def test_file_exporters_keep_the_folder_they_were_given_after_a_chdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    for exporter in (FileHarExporter("out.har"), LiveFileHarExporter("live.har")):
        exporter.start()
        exporter.add_page(DEFAULT_PAGE)
        exporter.add_entry(make_entry(0))
        os.chdir(tmp_path / "elsewhere")
        exporter.add_entry(make_entry(1))
        exporter.stop()
        os.chdir(tmp_path)
    assert entry_numbers(check_har(tmp_path / "out.har")) == ["0", "1"]
    assert entry_numbers(check_har(tmp_path / "live.har")) == ["0", "1"]
    assert os.listdir(tmp_path / "elsewhere") == []


def test_to_har_model_keeps_a_page_id_once():
    """Two recordings logged into one log both have page_0."""
    second = dict(DEFAULT_PAGE, title="the second recording")
    har = to_har_model([DEFAULT_PAGE, second], [make_entry(0), make_entry(1)])
    assert [(page.id, page.title) for page in har.log.pages] == [("page_0", DEFAULT_PAGE["title"])]
    assert len(har.log.entries) == 2


@pytest.mark.parametrize("background", ["thread", "process"])
def test_a_background_export_that_cannot_write_says_so_once_and_lets_the_program_go(
        tmp_path, background, capfd, monkeypatch):
    """The output folder vanished during the recording: as without a background, one warning
    naming the file, ``export_failed``, and the program goes on (the thread used to wait for
    a stop that had failed, until its join timeout)."""
    import shutil

    import harlem._warn
    from harlem import record_to_file

    monkeypatch.setattr(harlem._warn, "_seen", set())  # the warning is once per process
    folder = tmp_path / "gone"
    folder.mkdir()
    with record_to_file(folder / "out.har", in_background=background, join_timeout=300) as rec:
        for _ in range(100):  # (the export thread may be making its spool in it meanwhile)
            try:
                shutil.rmtree(folder)
                break
            except OSError:
                time.sleep(0.05)
        assert not folder.exists()
    assert rec.export_failed
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("harlem:")]
    assert f"could not export the HAR recording to {folder / 'out.har'}" in lines[-1], err
    assert "Traceback" not in err


# --- wrappers under signals, deaths and exits (an exploratory pass of 2026-12-07) --------------


def test_the_export_process_outlives_signals_to_the_process_group(tmp_path, server):
    """Ctrl-C (SIGINT) and a stopped service (SIGTERM) signal the program's whole process
    group: the export process is not in it, and writes everything the program had recorded
    (it died with it, and the HAR was lost)."""
    import signal
    import subprocess
    import sys
    import textwrap

    from tests.helpers import REPO_ROOT

    program = tmp_path / "busy.py"
    program.write_text(textwrap.dedent(f"""
        import sys, time, requests, harlem
        with harlem.record_to_file({str(tmp_path / "out.har")!r}, in_background="process"):
            for number in range(20):
                requests.get({server.url!r} + "/json?n=%d" % number)
            print("ready", flush=True)
            time.sleep(60)
    """))
    for number in (signal.SIGINT, signal.SIGTERM):
        process = subprocess.Popen([sys.executable, str(program)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
        assert process.stdout.readline().strip() == "ready"
        os.killpg(process.pid, number)
        process.communicate(timeout=60)
        if number == signal.SIGINT:  # KeyboardInterrupt: the recording stops, all is written
            assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 20
        else:  # killed unstopped: the export process still writes what it was sent
            deadline = time.monotonic() + 10
            while not (tmp_path / "out.har").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            check_har(tmp_path / "out.har")
        (tmp_path / "out.har").unlink()


def test_an_export_process_killed_sets_export_failed(tmp_path, monkeypatch):
    import harlem._warn
    from harlem import record_to_file

    monkeypatch.setattr(harlem._warn, "_seen", set())  # (its warnings said once per process)

    with record_to_file(tmp_path / "out.har", in_background="process") as recording:
        killed = _kill_export_process(recording)
    assert killed and recording.export_failed
    assert not (tmp_path / "out.har").exists()


def _kill_export_process(recording: Any) -> bool:
    """Find the BackgroundProcessHarExporter behind a recording's exporter and kill its child."""
    seen, todo = set(), [recording.exporter]
    while todo:
        exporter = todo.pop()
        if id(exporter) in seen:
            continue
        seen.add(id(exporter))
        if isinstance(exporter, BackgroundProcessHarExporter) and exporter._process is not None:
            exporter._process.kill()
            exporter._process.wait()
            return True
        todo += [value for value in vars(exporter).values() if hasattr(value, "add_entry")]
    return False


def test_the_export_process_imports_the_programs_own_exporter_class(tmp_path, monkeypatch):
    """A class in a module beside the program's script, run from another folder: the export
    process finds it on the program's sys.path (it had harlem's folder only)."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "myexporter.py").write_text(
        "from harlem import FileHarExporter\n"
        "class MyExporter(FileHarExporter):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    monkeypatch.chdir("/")
    from myexporter import MyExporter  # type: ignore[import-not-found]

    exporter = BackgroundProcessHarExporter(MyExporter(str(tmp_path / "out.har")))
    exporter.start()
    exporter.add_entry(make_entry(0))
    exporter.stop()
    assert entry_numbers(check_har(tmp_path / "out.har")) == ["0"]


class _ExitingExporter(HarExporter):
    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        raise SystemExit(3)


def test_an_exporter_that_calls_sys_exit_costs_the_others_nothing(tmp_path, server, capfd,
                                                                  monkeypatch):
    import requests

    import harlem._warn
    from harlem import RequestsHarRecorder, pipeline

    monkeypatch.setattr(harlem._warn, "_seen", set())

    healthy, fanned = ModelHarExporter(), ModelHarExporter()
    thread_file = tmp_path / "thread.har"
    composite = CompositeHarExporter([_ExitingExporter(), fanned])
    threaded = BackgroundThreadHarExporter(CompositeHarExporter(
        [_ExitingExporter(), FileHarExporter(thread_file)]))
    with RequestsHarRecorder(_ExitingExporter()), RequestsHarRecorder(healthy), \
            RequestsHarRecorder(composite), RequestsHarRecorder(threaded):
        for number in range(3):
            requests.get(server.url + f"/json?n={number}")
            pipeline.flush()
    assert len(healthy.model.log.entries) == 3
    assert len(fanned.model.log.entries) == 3
    assert len(check_har(thread_file)["log"]["entries"]) == 3
    assert "SystemExit" in capfd.readouterr().err


def test_an_executor_that_cannot_run_the_export_loses_nothing(tmp_path, monkeypatch, capfd):
    """Shut down before the recording stops, or a process pool that cannot pickle the task:
    what waits is exported at stop, in the calling thread (it was lost without a word)."""
    import harlem._warn

    monkeypatch.setattr(harlem._warn, "_seen", set())
    pool = concurrent.futures.ThreadPoolExecutor(1)
    exporter = ExecutorHarExporter(FileHarExporter(tmp_path / "shut.har"), pool)
    exporter.start()
    exporter.add_entry(make_entry(0))
    pool.shutdown(wait=True)
    exporter.add_entry(make_entry(1))
    exporter.stop()
    assert entry_numbers(check_har(tmp_path / "shut.har")) == ["0", "1"]
    spawn = multiprocessing.get_context("spawn")  # (a fork in a test process with threads warns)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as processes:
        exporter = ExecutorHarExporter(FileHarExporter(tmp_path / "pool.har"), processes)
        exporter.start()
        exporter.add_entry(make_entry(0))
        exporter.stop()
    assert entry_numbers(check_har(tmp_path / "pool.har")) == ["0"]
    err = capfd.readouterr().err
    assert "takes no more tasks" in err and "could not run the export" in err


def test_an_executor_task_that_calls_sys_exit_ends_only_its_call(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        exporter = ExecutorHarExporter(CompositeHarExporter(
            [_ExitingExporter(), FileHarExporter(tmp_path / "out.har")]), pool)
        exporter.start()
        for number in range(3):
            exporter.add_entries([make_entry(number)])
        exporter.stop()
    assert entry_numbers(check_har(tmp_path / "out.har")) == ["0", "1", "2"]


class _HungExporter(HarExporter):
    """A sink that never answers (a collector without a timeout)."""

    def add_entries(self, entries: List[Dict[str, Any]]) -> None:
        threading.Event().wait()


def test_stopping_behind_an_exporter_that_hangs_is_bounded(server, monkeypatch):
    """The wrapped exporter hangs and the queue to its thread is full: the builder waited for
    room for ever, and the recording's stop (which waits for the builder) with it."""
    import requests

    import harlem._warn
    from harlem import pipeline
    from harlem.recording import Recording
    from harlem.settings import Settings

    monkeypatch.setattr(harlem._warn, "_seen", set())
    monkeypatch.setattr(BackgroundThreadHarExporter, "MAX_QUEUED", 1)
    recording = Recording(BackgroundThreadHarExporter(_HungExporter(), join_timeout=0.5),
                          Settings.from_kwargs(join_timeout=1, recorders=["requests"])).start()
    for number in range(4):
        requests.get(server.url + f"/json?n={number}")
        pipeline.flush(0.3)  # a batch each
    stopper = threading.Thread(target=recording.stop, daemon=True)
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stopping the recording never ended"
    requests.get(server.url + "/json")  # the builder is free again for other recordings
    assert pipeline.flush(30)


@pytest.mark.parametrize("inner", [FileHarExporter, LiveFileHarExporter])
def test_a_process_exporter_started_again_continues_its_recording(tmp_path, inner):
    """Each start is a new process with a new copy of the exporter: it is given what the last
    run wrote first (the second run wrote the file anew, and a live file started empty)."""
    exporter = BackgroundProcessHarExporter(inner(tmp_path / "out.har"))
    for run in range(2):
        exporter.start()
        exporter.add_page(DEFAULT_PAGE)
        exporter.add_entry(make_entry(run))
        exporter.stop()
    har = check_har(tmp_path / "out.har")
    assert entry_numbers(har) == ["0", "1"]
    assert [page["id"] for page in har["log"]["pages"]] == [DEFAULT_PAGE["id"]]


@pytest.mark.parametrize("interval", [None, 3600])
def test_a_live_file_deleted_while_recording_is_written_again_at_the_end(tmp_path, interval):
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, interval_seconds=interval)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_entry(make_entry(0))
    path.unlink()  # a clean-up job, a user: the open file lives on, unnamed
    exporter.add_entry(make_entry(1))
    exporter.stop()
    assert entry_numbers(check_har(path)) == ["0", "1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("live", [{"live": True}, {"interval_seconds": 3600}])
def test_a_live_file_whose_folder_was_removed_is_a_failed_export(tmp_path, server, live,
                                                                 capfd, monkeypatch):
    """Not a silent loss: the recording warns and says it failed (the default mode did)."""
    import shutil

    import requests

    import harlem
    from harlem import _warn, record_to_file

    monkeypatch.setattr(_warn, "_seen", set())
    folder = tmp_path / "gone"
    folder.mkdir()
    with record_to_file(folder / "out.har", **live) as recording:
        requests.get(server.url + "/json").content
        harlem.pipeline.flush()  # (not in the middle of a rewrite: its temporary file)
        shutil.rmtree(folder)
        requests.get(server.url + "/json").content
    assert recording.export_failed
    assert "harlem: warning: could not export the HAR recording" in capfd.readouterr().err


def test_a_page_a_failed_rewrite_left_out_is_written_by_the_next(tmp_path, monkeypatch):
    """A page too big for the room forces a rewrite; when that fails (a disk nearly full),
    the next page, small enough for the room, must not go in place behind its back: the file
    would lack the first for good."""
    from harlem.exporters import live

    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_page(_page("page_1"))
    real_atomic_write = live.atomic_write

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(live, "atomic_write", disk_full)
    with pytest.raises(OSError):
        exporter.add_page(_page("page_2", title="x" * 5000))
    monkeypatch.setattr(live, "atomic_write", real_atomic_write)
    exporter.add_page(_page("page_3"))
    exporter.add_entry(dict(make_entry(0), pageref="page_2"))
    exporter.stop()
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_0", "page_1", "page_2", "page_3"]


def test_a_failed_retention_rewrite_lets_no_page_go(tmp_path, monkeypatch):
    """Pages leave with the rewrite that drops them: when it fails (no file descriptor left,
    a full disk), they stay, and a later rewrite does not write entries naming a page it
    forgot."""
    from harlem.exporters import live

    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, retention_seconds=60)
    exporter.start()
    exporter.add_page(DEFAULT_PAGE)
    exporter.add_page(_page("old", started=time.time() - 3600))
    exporter.add_entry(dict(make_entry(0), pageref="old"))  # recent: it stays, so must "old"
    exporter.end_page("old")
    exporter.add_page(_page("older", started=time.time() - 3600))
    exporter.end_page("older")
    real_atomic_write = live.atomic_write

    def no_descriptor_left(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(live, "atomic_write", no_descriptor_left)
    exporter._last_expiry = exporter._pages_checked = 0.0  # retention is due
    with pytest.raises(OSError):
        exporter.add_entry(make_entry(1))
    monkeypatch.setattr(live, "atomic_write", real_atomic_write)
    assert [p["id"] for p in exporter.pages] == ["page_0", "old", "older"]
    exporter.add_page(_page("big", title="x" * 5000))  # no room for it: a rewrite
    exporter.stop()
    har = check_har(path)
    assert [p["id"] for p in har["log"]["pages"]] == ["page_0", "old", "older", "big"]
