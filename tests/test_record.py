"""The context managers and pages, with real requests against the loopback server."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import requests

import harlem
from harlem import ModelHarExporter, pipeline, RequestsHarRecorder, record_to_file, record_to_logger
from tests.helpers import check_har


def test_record_to_file_writes_even_on_keyboard_interrupt(tmp_path, server):
    path = tmp_path / "out.har"
    with pytest.raises(KeyboardInterrupt):
        with record_to_file(path):
            requests.get(server.url + "/json")
            raise KeyboardInterrupt
    assert len(check_har(path)["log"]["entries"]) == 1


def test_record_to_file_writes_when_the_block_raises(tmp_path, server):
    path = tmp_path / "out.har"
    with pytest.raises(ValueError, match="boom"):
        with record_to_file(path, indent=2):
            requests.get(server.url + "/json")
            raise ValueError("boom")
    assert len(check_har(path)["log"]["entries"]) == 1


def test_pages_group_what_follows(tmp_path, server):
    path = tmp_path / "out.har"
    with record_to_file(path):
        requests.get(server.url + "/json?before")
        with harlem.page("login"):
            requests.get(server.url + "/json?inside")
        requests.get(server.url + "/json?after")
    har = check_har(path)
    pages = {p["id"]: p["title"] for p in har["log"]["pages"]}
    refs = [pages[e["pageref"]] for e in har["log"]["entries"]]
    assert refs == ["harlem recording", "login", "harlem recording"]


def test_two_recordings_at_once_both_receive_every_entry(tmp_path, server):
    first, second = tmp_path / "a.har", tmp_path / "b.har"
    with record_to_file(first):
        requests.get(server.url + "/json?one")
        with record_to_file(second):
            requests.get(server.url + "/json?two")
        requests.get(server.url + "/json?three")
    assert len(check_har(first)["log"]["entries"]) == 3
    assert [e["request"]["url"][-3:] for e in check_har(second)["log"]["entries"]] == ["two"]


def test_stopping_the_last_recording_restores_requests_exactly(server):
    import requests.adapters

    original = requests.adapters.HTTPAdapter.__dict__["send"]
    exporter = ModelHarExporter()
    recorder = RequestsHarRecorder(exporter)
    for _ in range(3):  # start/stop many times
        with recorder:
            assert requests.adapters.HTTPAdapter.__dict__["send"] is not original
            requests.get(server.url + "/json")
        assert requests.adapters.HTTPAdapter.__dict__["send"] is original
    assert len(exporter.entries) == 3
    check_har(exporter.to_dict())


def test_record_to_logger_logs_pages_and_entries(server):
    records = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("test-record-to-logger")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    with record_to_logger(logger=logger, level=logging.INFO, new_entry_message="entry"):
        requests.get(server.url + "/json")
    entries = [r.har_entry for r in records if hasattr(r, "har_entry")]
    pages = [r.har_page for r in records if hasattr(r, "har_page")]
    assert len(entries) == 1 and pages
    check_har(harlem.to_har_model(pages, entries).model_dump(by_alias=True, exclude_none=True))


def test_requests_from_threads_are_all_recorded(tmp_path, server):
    path = tmp_path / "out.har"
    with record_to_file(path):
        threads = [threading.Thread(target=requests.get, args=(f"{server.url}/json?t={n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(check_har(path)["log"]["entries"]) == 8


def test_recording_changes_nothing_the_program_sees(tmp_path, server):
    def observe():
        response = requests.get(server.url + "/binary?size=5000")
        streamed = b"".join(requests.get(server.url + "/stream?chunks=5&size=100", stream=True).iter_content(7))
        try:
            requests.get(server.url + "/slow?delay=2", timeout=0.2)
        except requests.ReadTimeout as exc:
            error = type(exc)
        return response.status_code, response.content, dict(response.headers).keys(), streamed, error

    plain = observe()
    with record_to_file(tmp_path / "out.har"):
        recorded = observe()
    assert plain == recorded


def test_a_recorder_whose_exporter_cannot_start_leaves_the_library_untouched(tmp_path):
    import requests.adapters

    from harlem import FileHarExporter

    original = requests.adapters.HTTPAdapter.__dict__["send"]
    exporter = FileHarExporter(tmp_path / "missing" / "out.har")
    with pytest.raises(OSError):
        RequestsHarRecorder(exporter).start()
    assert requests.adapters.HTTPAdapter.__dict__["send"] is original
    assert not exporter.started


def test_restarting_a_live_recording_keeps_its_earlier_entries(tmp_path, server):
    from harlem import LiveFileHarExporter

    path = tmp_path / "live.har"
    recorder = RequestsHarRecorder(LiveFileHarExporter(path))
    with recorder:
        requests.get(server.url + "/json?first")
    with recorder:
        requests.get(server.url + "/json?second")
    assert [e["request"]["url"][-6:] for e in check_har(path)["log"]["entries"]] == ["?first", "second"]


def test_an_export_that_fails_at_the_end_warns_and_lets_the_program_go_on(tmp_path, server, capfd):
    import shutil

    folder = tmp_path / "vanishing"
    folder.mkdir()
    with record_to_file(folder / "out.har") as recording:
        requests.get(server.url + "/json")
        shutil.rmtree(folder)
    assert recording.export_failed
    assert capfd.readouterr().err.count("harlem: warning: could not export") == 1


def test_record_to_logger_refuses_a_process_it_could_not_log_from():
    for spelling in ("process", "PROCESS", " process"):  # as the settings read them
        with pytest.raises(ValueError, match="in_background='thread'"):
            with record_to_logger(in_background=spelling):
                pass


def test_the_demo_shows_its_own_call_sites_in_the_initiator(server):
    from harlem.demo import app

    exporter = ModelHarExporter()
    with RequestsHarRecorder(exporter):
        app._with_requests(server.url)
    frames = exporter.entries[0]["_initiator"]["stack"]["callFrames"]
    assert frames[0]["url"].endswith("harlem/demo/app.py")
    assert frames[0]["functionName"] == "_with_requests"


def test_a_library_that_cannot_be_recorded_is_skipped_with_one_warning(tmp_path, server, monkeypatch, capfd):
    from harlem.recorders.aiohttp import AiohttpHarRecorder

    def broken(cls):
        raise ImportError("this aiohttp does not import on this Python")

    monkeypatch.setattr(AiohttpHarRecorder, "_instrument", classmethod(broken))
    path = tmp_path / "out.har"
    with record_to_file(path):
        requests.get(server.url + "/json")
    assert len(check_har(path)["log"]["entries"]) == 1
    assert capfd.readouterr().err.count("not recording aiohttp") == 1


LATE_IMPORT = """
import sys
from harlem import record_to_file
url, path = sys.argv[1], sys.argv[2]
with record_to_file(path):
    heavy = sorted(m for m in ("aiohttp", "httpx", "fastapi", "starlette", "requests")
                   if m in sys.modules)
    print(",".join(heavy) or "none")
    import requests  # imported inside the block: recorded from its first request
    requests.get(url + "/json").content
import requests.adapters
print(type(requests.adapters.HTTPAdapter.__dict__["send"]).__name__)
"""


def test_a_recording_imports_no_library_and_records_one_imported_later(tmp_path, server):
    """Starting a recording must not import every installed HTTP library (hundreds of ms)."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    path = tmp_path / "out.har"
    result = subprocess.run([sys.executable, "-c", LATE_IMPORT, server.url, str(path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["none", "function"]  # unpatched again after the block
    entries = check_har(path)["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [server.url + "/json"]


NEVER_LEFT = """
import sys
import requests
from harlem import record_to_file
url, path = sys.argv[1], sys.argv[2]
block = record_to_file(path)
block.__enter__()  # by hand, and never left
requests.get(url + "/json").content
sys.exit(3)
"""


def test_a_block_never_left_is_written_at_exit(tmp_path, server):
    """A ``record_to_file`` entered by hand and never exited: the file is written at exit
    (before, the generator was closed during interpreter shutdown, which failed with a
    traceback and wrote nothing), and the program's exit status is its own."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    path = tmp_path / "out.har"
    result = subprocess.run([sys.executable, "-c", NEVER_LEFT, server.url, str(path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3
    assert result.stderr == ""
    entries = check_har(path)["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [server.url + "/json"]


def _slow_get(library: str, url: str, got: list) -> None:
    """One GET of ``url`` with ``library``, its status appended to ``got`` (in a thread)."""
    if library == "requests":
        got.append(requests.get(url).status_code)
    elif library == "httpx":
        import httpx

        got.append(httpx.get(url).status_code)
    else:
        import asyncio

        import aiohttp

        async def fetch() -> None:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                await response.read()
                got.append(response.status)

        asyncio.run(fetch())


@pytest.mark.parametrize("library", ["requests", "aiohttp", "httpx"])
def test_a_request_waiting_for_its_answer_when_the_recording_stops(tmp_path, server, library):
    """It is in the file (no request goes missing), valid: status 0 with ``_error`` saying it
    was still pending, its time so far spent waiting; the program gets its answer as usual."""
    pytest.importorskip(library)
    path = tmp_path / "out.har"
    got: list = []
    with record_to_file(path):
        caller = threading.Thread(target=_slow_get,
                                  args=(library, server.url + "/slow?delay=2", got))
        caller.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                ex.library == library and ex.t_send_end is not None
                for ex in tuple(pipeline._in_flight)):
            time.sleep(0.01)  # until the request has gone out
    caller.join()
    assert got == [200]
    (entry,) = check_har(path)["log"]["entries"]
    response = entry["response"]
    assert (response["status"], response["_error"]) == (0, "net::ERR_IO_PENDING")
    assert response["comment"] == "no response yet when the recording stopped"
    assert entry["timings"]["receive"] == 0 and entry["timings"]["wait"] > 0
    # Nothing holds on to it: the library, unpatched meanwhile, may never report its end.
    assert not [ex for ex in tuple(pipeline._in_flight) if ex.library == library]


@pytest.mark.parametrize("in_thread", [False, True])
def test_an_exporter_that_sends_entries_over_http_does_not_record_itself(server, in_thread):
    """Its requests run in harlem's threads (the builder, the export thread): harlem's work,
    not the program's. Recorded, each would make an entry to send, for ever."""
    from harlem import BackgroundThreadHarExporter, HarExporter

    shipped: list = []

    class Shipper(HarExporter):
        def add_entry(self, entry):
            shipped.append(requests.post(server.url + "/echo", json=entry["request"]["url"]).status_code)

    model = ModelHarExporter()
    shipper = BackgroundThreadHarExporter(Shipper()) if in_thread else Shipper()
    with RequestsHarRecorder(model), RequestsHarRecorder(shipper):
        requests.get(server.url + "/json?once")
        pipeline.flush()
        time.sleep(0.3)  # room for a loop to show itself
    assert shipped == [200]
    assert [e["request"]["url"] for e in check_har(model.to_dict())["log"]["entries"]] == [
        server.url + "/json?once"]


def test_a_failing_exporter_is_named_in_its_warning_under_a_recording(server, capfd,
                                                                      monkeypatch):
    """One warning per exporter class, naming the program's exporter (not harlem's counting
    shim in front of it, whose one name silenced the second class)."""
    import harlem._warn
    from harlem import HarExporter, Recording, Settings

    class CsvExporter(HarExporter):
        def add_entry(self, entry):
            raise RuntimeError("csv broke")

    class DbExporter(HarExporter):
        def add_entry(self, entry):
            raise RuntimeError("db broke")

    monkeypatch.setattr(harlem._warn, "_seen", set())
    for exporter_class in (CsvExporter, DbExporter):
        with Recording(exporter_class(), Settings(recorders="requests")):
            requests.get(server.url + "/json")
    err = capfd.readouterr().err
    assert "CsvExporter could not export an entry: RuntimeError: csv broke" in err, err
    assert "DbExporter could not export an entry: RuntimeError: db broke" in err, err


def test_type_checkers_see_every_public_name_where_it_comes_from():
    """``harlem`` loads its names lazily (``__getattr__``), which type checkers read as Any:
    its ``TYPE_CHECKING`` block imports each one from the module ``_EXPORTS`` names."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(harlem))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {alias.name: "harlem" + "." * (node.level > 0) + (node.module or "")
            for node in block.body if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names}
    assert seen == harlem._EXPORTS
    assert harlem.__all__ == ["__version__", *harlem._EXPORTS]


def test_a_request_to_an_http_proxy_counts_its_whole_url_in_headers_size(tmp_path):
    """Sent to a plain-HTTP proxy, the request line names the whole URL (absolute form):
    ``headersSize`` counts the bytes that went out, for every library, and the headers are
    those sent, the proxy's own too (Proxy-Authorization, httpx.Proxy(headers=...)), however
    the proxy was set (httpx: proxy= or a transport's proxy)."""
    import asyncio
    import socket

    import aiohttp
    import httpx

    heads: list = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        for _ in range(4):
            connection, _ = listener.accept()
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(65536)
                heads.append(head[:head.index(b"\r\n\r\n") + 4])
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                   b"Connection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = f"http://user:secret@127.0.0.1:{listener.getsockname()[1]}"
    url = "http://example.invalid/x?y=1"

    async def with_aiohttp() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, proxy=proxy) as response:
                await response.read()

    with record_to_file(tmp_path / "out.har"):
        requests.get(url, proxies={"http": proxy})
        try:
            client = httpx.Client(proxy=proxy)
        except TypeError:  # httpx < 0.26
            client = httpx.Client(proxies=proxy)
        with client:
            client.get(url)
        transport = httpx.HTTPTransport(proxy=httpx.Proxy(proxy, headers={"X-Proxy": "1"}))
        with httpx.Client(transport=transport) as client:
            client.get(url)
        asyncio.run(with_aiohttp())
    thread.join(10)
    listener.close()
    entries = check_har(tmp_path / "out.har")["log"]["entries"]
    assert len(entries) == len(heads) == 4
    assert all(head.startswith(b"GET " + url.encode() + b" HTTP/1.1\r\n") for head in heads)
    assert [e["request"]["headersSize"] for e in entries] == [len(head) for head in heads]
    for entry, head in zip(entries, heads):
        sent = [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n")[1:-2]]
        assert [h["name"].lower() for h in entry["request"]["headers"]] == sent
        assert "proxy-authorization" in sent and "secret" not in str(entry)


@pytest.mark.parametrize("server_like", [False, True])
def test_sigterm_during_a_record_to_file_block_writes_the_file(tmp_path, server, server_like):
    """A service stopped with SIGTERM (systemd, docker, kubernetes) inside ``with
    record_to_file(...)``: the default action killed it without the file. Also when a server
    handles the signal itself and raises it again once shut down, as uvicorn does."""
    import signal
    import subprocess
    import sys
    import textwrap

    from tests.helpers import REPO_ROOT

    program = tmp_path / "service.py"
    program.write_text(textwrap.dedent(f"""
        import signal, sys, time, requests, harlem
        with harlem.record_to_file({str(tmp_path / "service.har")!r}):
            requests.get({server.url!r} + "/json")
            if {server_like!r}:  # uvicorn: capture, shut down, restore, raise again
                caught = []
                previous = signal.signal(signal.SIGTERM, lambda n, f: caught.append(n))
                print("ready", flush=True)
                while not caught:
                    time.sleep(0.05)
                signal.signal(signal.SIGTERM, previous)
                signal.raise_signal(signal.SIGTERM)
            print("ready", flush=True)
            time.sleep(60)
    """))
    process = subprocess.Popen([sys.executable, str(program)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, err
    assert len(check_har(tmp_path / "service.har")["log"]["entries"]) == 1
