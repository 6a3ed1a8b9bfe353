"""The builder's batching and deferral: the structure that keeps recording off the program's
request path."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from harlem import pipeline
from harlem.exporters import CompositeHarExporter, FileHarExporter, LiveFileHarExporter
from harlem.exporters.model import ModelHarExporter
from harlem.recording import Recording


def test_a_burst_of_requests_wakes_the_builder_once_per_batch_not_once_per_request(
        server, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 60.0)  # one batch holds the whole burst
    exporter = ModelHarExporter()
    with Recording(exporter):
        session = requests.Session()
        pipeline.flush()  # the builder is idle, waiting for a first item
        wakes = []
        wake = pipeline._wake
        monkeypatch.setattr(wake, "set", lambda: (wakes.append(1), threading.Event.set(wake)))
        for _ in range(50):
            session.get(server.url + "/json").content
        woken = len(wakes)
        assert pipeline.flush(30), "a flush must cut the batching delay short"
    assert woken <= 2, woken  # the first exchange of the batch (and at most one more)
    assert len(exporter.entries) == 50


def test_a_page_reaches_the_exporter_before_its_entries_even_within_one_batch(server, monkeypatch):
    import harlem

    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 60.0)
    exporter = ModelHarExporter()
    with Recording(exporter):
        requests.get(server.url + "/json?before").content
        with harlem.page("checkout"):
            requests.get(server.url + "/json?inside").content
    model = exporter.model
    refs = {e.request.url.rsplit("?", 1)[1]: e.pageref for e in model.log.entries}
    titles = {p.id: p.title for p in model.log.pages}
    assert titles[refs["inside"]] == "checkout"
    assert refs["before"] == pipeline.DEFAULT_PAGE_ID


# --- building while the program pauses, for exporters that write at the end -----------------


def _busy(session: requests.Session, url: str, seconds: float) -> int:
    """Requests back to back for ``seconds``: never a pause of a batch window."""
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        session.get(url).content
        count += 1
    return count


def test_a_file_recording_builds_when_the_program_pauses_not_while_it_works(
        server, tmp_path, monkeypatch, check_har):
    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 0.5)
    exporter = FileHarExporter(tmp_path / "out.har")
    assert exporter.deferrable
    with Recording(exporter) as recording:
        session = requests.Session()
        made = _busy(session, server.url + "/json", 2.0)
        assert recording.entry_count == 0, "built while the program was busy"
        deadline = time.monotonic() + 30
        while recording.entry_count < made and time.monotonic() < deadline:
            time.sleep(0.05)  # the pause: the builder catches up without a flush
        assert recording.entry_count == made
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == made


def test_deferred_building_is_bounded_by_a_count(server, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 0.5)
    monkeypatch.setattr(pipeline, "MAX_DEFERRED", 10)
    with Recording(FileHarExporter(tmp_path / "out.har")) as recording:
        session = requests.Session()
        deadline = time.monotonic() + 30
        while recording.entry_count < 10 and time.monotonic() < deadline:
            session.get(server.url + "/json").content  # busy all along: built by the count
        assert recording.entry_count >= 10


def test_live_files_and_models_get_entries_while_the_program_works(server, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SECONDS", 0.05)
    live = LiveFileHarExporter(tmp_path / "live.har")
    model = ModelHarExporter()
    assert not live.deferrable and not model.deferrable
    assert not CompositeHarExporter([FileHarExporter(tmp_path / "f.har"), model]).deferrable
    with Recording(CompositeHarExporter([live, model])):
        session = requests.Session()
        deadline = time.monotonic() + 30
        while not model.entries and time.monotonic() < deadline:
            session.get(server.url + "/json").content
        assert model.entries, "an exporter that shows entries as they come waited for a pause"


def test_two_recorders_of_one_library_into_one_exporter_give_it_each_entry_once(server):
    """Each recorder feeds its exporter; the same exporter named twice still gets one entry
    per exchange (as it gets each page once)."""
    from harlem import RequestsHarRecorder

    exporter = ModelHarExporter()
    other = ModelHarExporter()
    with RequestsHarRecorder(exporter), RequestsHarRecorder(exporter), \
            RequestsHarRecorder(other):
        requests.get(server.url + "/json")
    assert len(exporter.model.log.entries) == 1
    assert len(other.model.log.entries) == 1


def test_an_entry_harlem_cannot_build_in_full_is_kept_with_what_cannot_leak(server, monkeypatch,
                                                                             capsys):
    """A bug of harlem's in building (here: reading cookies) must not lose the entry: it is
    kept with its time, method, URL without query and status, and a comment; no header, body
    or query that redaction should have seen."""
    import harlem._warn
    from harlem.har import build
    from tests.helpers import check_har

    def broken(*args, **kwargs):
        raise OverflowError("a bug")

    monkeypatch.setattr(build, "request_cookies", broken)
    monkeypatch.setattr(harlem._warn, "_seen", set())
    exporter = ModelHarExporter()
    with Recording(exporter):
        requests.get(server.url + "/json?token=s3cret", headers={"Authorization": "Bearer s3cret"})
    (entry,) = check_har(exporter.to_dict())["log"]["entries"]
    assert entry["request"]["url"] == server.url + "/json"
    assert entry["request"]["method"] == "GET" and entry["response"]["status"] == 200
    assert "OverflowError" in entry["response"]["comment"]
    assert "s3cret" not in str(entry)
    assert "could not build a HAR entry in full" in capsys.readouterr().err


def test_no_thread_of_harlems_runs_before_the_first_exchange(server):
    """Pages alone do not start the builder: a program that imports an HTTP library and forks
    before any request has no thread of harlem's (Python 3.12 warns at a fork with threads)."""
    import subprocess
    import sys
    import tempfile

    from tests.helpers import REPO_ROOT

    code = ("import os, threading, requests, sys\n"
            "pid = os.fork()\n"  # (the agent flushes before a fork: no thread for that either)
            "if pid == 0:\n    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "before = sorted(t.name for t in threading.enumerate())\n"
            "requests.get(sys.argv[1])\n"
            "print(before, 'harlem-builder' in [t.name for t in threading.enumerate()])\n")
    env = dict(os.environ, HARLEM_OUTPUT="out.har",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "harlem_bootstrap"), str(REPO_ROOT)]))
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", code, server.url + "/json"], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread'] True", done.stdout


def test_where_no_thread_can_start_the_entries_are_built_in_the_calling_thread(server,
                                                                                monkeypatch):
    """Python 3.12.0 to 3.12.2 refuse new threads at interpreter shutdown (a request from an
    atexit handler, or from a thread outliving the main one): entries were lost, and with
    them the agent's whole file."""
    def refused(*args, **kwargs):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(pipeline, "start_daemon", refused)
    # as if no builder ran yet (one started by an earlier test waits on the real event)
    monkeypatch.setattr(pipeline, "_running", False)
    monkeypatch.setattr(pipeline, "_wake", threading.Event())
    exporter = ModelHarExporter()
    with Recording(exporter):
        requests.get(server.url + "/json")
        requests.get(server.url + "/text")
    assert [e.request.url.rsplit("/", 1)[1] for e in exporter.model.log.entries] == \
        ["json", "text"]


def test_a_recorder_that_cannot_attach_leaves_nothing_patched_or_open(monkeypatch, tmp_path):
    from harlem import FileHarExporter, RequestsHarRecorder

    def broken(recorder):
        raise RuntimeError("cannot attach")

    monkeypatch.setattr(pipeline, "attach", broken)
    send = requests.adapters.HTTPAdapter.send
    exporter = FileHarExporter(tmp_path / "out.har")
    recorder = RequestsHarRecorder(exporter)
    with pytest.raises(RuntimeError, match="cannot attach"):
        recorder.start()
    assert requests.adapters.HTTPAdapter.send is send
    assert not recorder.receiving and not exporter.started


def test_recordings_that_share_an_exporter_give_it_each_entry_and_page_once(server):
    """A Recording counts entries through a shim of its own in front of the exporter: two
    Recordings (or a Recording and a recorder) on one exporter gave it everything twice."""
    from harlem import RequestsHarRecorder

    class Seen(ModelHarExporter):
        def __init__(self) -> None:
            super().__init__()
            self.page_ids: list = []

        def add_page(self, page: dict) -> None:
            self.page_ids.append(page["id"])
            super().add_page(page)

    shared = Seen()
    with Recording(shared) as outer, RequestsHarRecorder(shared):
        with Recording(shared) as inner:
            requests.get(server.url + "/json")
    assert len(shared.model.log.entries) == 1 and shared.page_ids == ["page_0"]
    assert outer.entry_count == inner.entry_count == 1  # each Recording's own count holds


# --- pages ending ---------------------------------------------------------------------------


class _CallLog(ModelHarExporter):
    """Remembers the order of the calls it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def add_page(self, page):
        self.calls.append(("page", page["id"]))
        super().add_page(page)

    def add_entries(self, entries):
        self.calls.extend(("entry", entry["pageref"]) for entry in entries)
        super().add_entries(entries)

    def end_page(self, page_id):
        self.calls.append(("end", page_id))


def test_a_page_ends_for_exporters_only_after_the_requests_begun_inside_it(server):
    """The block is over, but a response it began is still being read: the page ends once
    that entry is exported, never before (an exporter letting the page go would leave the
    entry naming a page that is not in the file)."""
    import harlem

    exporter = _CallLog()
    with Recording(exporter):
        session = requests.Session()
        with harlem.page("job") as page:
            response = session.get(server.url + "/stream?chunks=3&size=1000&delay=0.2", stream=True)
            session.get(server.url + "/json").content
        assert pipeline.flush(30)
        assert ("end", page["id"]) not in exporter.calls, "ended while a response was being read"
        assert len(response.content) == 3000
        response.close()
        assert pipeline.flush(30)
        deadline = time.monotonic() + 30
        while ("end", page["id"]) not in exporter.calls and time.monotonic() < deadline:
            time.sleep(0.02)  # (the builder notices the page free once that entry is out)
        with harlem.page("empty") as empty:
            pass
        assert pipeline.flush(30)
    calls = exporter.calls
    assert calls.count(("entry", page["id"])) == 2 and calls.count(("end", page["id"])) == 1
    last_entry = max(i for i, call in enumerate(calls) if call == ("entry", page["id"]))
    assert calls.index(("end", page["id"])) > last_entry
    assert calls.index(("end", empty["id"])) > calls.index(("page", empty["id"]))
    assert ("end", pipeline.DEFAULT_PAGE_ID) not in calls  # the default page never ends
    assert not any(page["id"] in sent for sent in pipeline._pages_sent.values())


@pytest.mark.parametrize("in_background", [None, "thread", "process"])
def test_a_live_file_with_retention_keeps_only_recent_pages(server, tmp_path, check_har,
                                                             in_background):
    """A worker that opens a page per job: the pages of expired jobs leave the file (and
    memory) with their entries; every entry still names a page in the file."""
    import harlem
    from harlem import record_to_file

    path = tmp_path / "live.har"
    session = requests.Session()

    def written() -> dict:
        pipeline.flush()
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # (a background process starts its exporter a moment later)
        while True:  # (and a background exporter writes a moment after the flush)
            har = check_har(path)
            if len(har["log"]["entries"]) == count or time.monotonic() > deadline:
                return har
            time.sleep(0.02)

    with record_to_file(path, live=True, retention_seconds=0.5,
                        in_background=in_background) as recording:
        for number in range(3):
            with harlem.page(f"job {number}"):
                session.get(server.url + f"/json?job={number}").content
        count = 3
        assert len(written()["log"]["pages"]) == 4
        time.sleep(1.2)  # past the retention, and past the next time it is applied
        with harlem.page("job 3"):
            session.get(server.url + "/json?job=3").content
        count = 1
        har = written()
        assert [p["title"] for p in har["log"]["pages"]] == ["harlem recording", "job 3"]
        assert [e["request"]["url"][-5:] for e in har["log"]["entries"]] == ["job=3"]
    assert [p["title"] for p in check_har(path)["log"]["pages"]] == ["harlem recording", "job 3"]
    assert recording.entry_count == 4


def test_a_page_reaches_exporters_before_an_entry_begun_in_another_thread_as_it_opened(
        server, monkeypatch):
    """An exchange that another thread begins the moment a page opens names the page: its
    entry must not overtake the page on its way to the exporters. Here that thread makes its
    whole request right when the page is about to be queued."""
    import harlem

    exporter = _CallLog()
    real_active = pipeline._active_exporters
    done = threading.Event()
    armed = []

    def request_while_the_page_opens():
        if armed:  # (open_page asks who gets the page: the page is open, not yet queued)
            armed.clear()
            other = threading.Thread(
                target=lambda: (requests.get(server.url + "/json").content, done.set()))
            other.start()
            other.join(1.0)  # (it waits for the page to be queued, or has made its request)
        return real_active()

    with Recording(exporter):
        requests.get(server.url + "/json").content  # (the builder runs)
        monkeypatch.setattr(pipeline, "_active_exporters", request_while_the_page_opens)
        armed.append(True)
        with harlem.page("job") as page:
            assert done.wait(30)
        monkeypatch.setattr(pipeline, "_active_exporters", real_active)
        assert pipeline.flush(30)
    calls = exporter.calls
    assert ("entry", page["id"]) in calls
    assert calls.index(("page", page["id"])) < calls.index(("entry", page["id"])), calls


@pytest.mark.parametrize("live", [False, True])
def test_a_page_title_with_undecodable_bytes_is_kept_readable(server, tmp_path, check_har, live):
    """A title made from a file name with bytes that are not UTF-8 (os.listdir gives them as
    lone surrogates, which JSON cannot hold): the HAR is written, with U+FFFD in their place."""
    import harlem
    from harlem import record_to_file

    path = tmp_path / "out.har"
    title = os.fsdecode(b"report-caf\xe9.csv")
    with record_to_file(path, live=live):
        with harlem.page(title):
            requests.get(server.url + "/json").content
    titles = [page["title"] for page in check_har(path)["log"]["pages"]]
    assert titles[-1] == "report-caf\ufffd.csv"
