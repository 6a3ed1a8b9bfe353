"""Never break the program: a failure inside harlem is one warning, never the program's problem.

Every test here makes harlem fail somewhere on purpose (a strange body, an entry that cannot be
serialised, a full disk, a broken logger, a dead export process, a crashing builder, an output
folder that disappears) and checks three things: the program's calls return or raise exactly
what they do without harlem, each distinct problem is reported once on stderr (and through the
``harlem`` logger), and whatever file harlem leaves is a valid HAR.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import aiohttp
import pytest
import requests

from harlem import _warn, pipeline, record_to_file, record_to_logger
from harlem.exporters.base import HarExporter
from harlem.exporters.files import IoHarExporter
from harlem.exporters.layout import repair
from harlem.exporters.live import LiveFileHarExporter
from harlem.har import build
from harlem.recording import Recording
from tests.helpers import REPO_ROOT, check_har
from tests.test_crash_safety import small_entry

WARNING = "harlem: warning: "
TIMEOUT = 60


# --- what the program sees --------------------------------------------------------------------


def _normalised(text: str) -> str:
    """An exception message without what differs from run to run (object addresses)."""
    return re.sub(r"0x[0-9a-fA-F]+", "0x?", text)


def _headers(items: Any) -> List[Any]:
    return [(k, v) for k, v in items if k.lower() != "date"]


def _stable(body: bytes) -> bytes:
    """An echoed body without the random multipart boundary (also inside its base64 copy)."""
    boundaries = set(re.findall(rb'boundary="?([0-9a-f]{32})', body))
    if not boundaries:
        return body
    data = json.loads(body)
    raw = base64.b64decode(data["body_base64"])
    for boundary in boundaries:
        raw = raw.replace(boundary, b"BOUNDARY")
    data["body_base64"] = base64.b64encode(raw).decode()
    text = json.dumps(data).encode()
    for boundary in boundaries:
        text = text.replace(boundary, b"BOUNDARY")
    return text


def requests_outcome(call: Callable[[], Any]) -> Any:
    """What a requests call gave the program: the response's visible parts, or the exception."""
    try:
        response = call()
    except Exception as exc:
        return ("raised", type(exc), _normalised(str(exc)))
    return ("returned", response.status_code, response.reason, _headers(response.headers.items()),
            _stable(response.content))


def aiohttp_outcome(call: Callable[[aiohttp.ClientSession], Any]) -> Any:
    """The same for an aiohttp call: ``call(session)`` returns what ``session.request`` does."""

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            try:
                async with call(session) as response:
                    body = await response.read()
            except Exception as exc:
                return ("raised", type(exc), _normalised(str(exc)))
            return ("returned", response.status, response.reason,
                    _headers(response.headers.items()), _stable(body))

    return asyncio.run(run())


class Warnings:
    """harlem's warnings during a test: stderr lines and ``harlem`` log records."""

    def __init__(self, capsys: Any, caplog: Any):
        self._capsys = capsys
        self._caplog = caplog
        self._err = ""

    def lines(self) -> List[str]:
        self._err += self._capsys.readouterr().err
        return [line for line in self._err.splitlines() if line.startswith(WARNING)]

    def logged(self) -> List[str]:
        return [r.getMessage() for r in self._caplog.records
                if r.name == "harlem" and r.levelno == logging.WARNING]

    def assert_each_once(self, *fragments: str) -> None:
        """Every fragment is in exactly one warning line and one log record, and no warning
        line is repeated."""
        lines = self.lines()
        assert len(lines) == len(set(lines)), lines
        for fragment in fragments:
            assert len([line for line in lines if fragment in line]) == 1, (fragment, lines)
            assert len([m for m in self.logged() if fragment in m]) == 1, (fragment, self.logged())


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any) -> Warnings:
    """Forget the warnings earlier tests gave (they are once per process) and collect them."""
    monkeypatch.setattr(_warn, "_seen", set())
    caplog.set_level(logging.WARNING, logger="harlem")
    return Warnings(capsys, caplog)


def entries(path: Path) -> List[Dict[str, Any]]:
    return check_har(path)["log"]["entries"]


# --- strange request bodies ---------------------------------------------------------------------


class _ExplodingBody:
    """An iterable body that fails while the library sends it."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"first part"
        raise RuntimeError("the body generator failed")


REQUESTS_BODIES: Dict[str, Callable[[], Dict[str, Any]]] = {
    "bytes generator": lambda: {"data": (part for part in [b"ab", b"cd"])},
    "str generator": lambda: {"data": (part for part in ["ab", "cd"])},
    "BytesIO": lambda: {"data": io.BytesIO(b"file-like")},
    "StringIO": lambda: {"data": io.StringIO("text file-like")},
    "bytearray": lambda: {"data": bytearray(b"\x00\x01\x02")},
    "memoryview": lambda: {"data": memoryview(b"view")},
    "non-latin-1 str": lambda: {"data": "snowman \u2603"},
    "lone surrogate str": lambda: {"data": "\ud800"},
    "multipart files": lambda: {"files": {"f": ("a.bin", b"\x00\xff", "application/x-odd")}},
    "repeated form keys": lambda: {"data": {"k": ["v1", "v2"]}},
    "failing iterable": lambda: {"data": _ExplodingBody()},
    "NaN json": lambda: {"json": float("nan")},
    "unserialisable json": lambda: {"json": object()},
    "plain object": lambda: {"data": object()},
    "int header value": lambda: {"headers": {"X-Number": 5}},  # type: ignore[dict-item]
    "bytes header value": lambda: {"headers": {"X-Bytes": b"\xe9t\xe9"}},
}


@pytest.mark.parametrize("kind", sorted(REQUESTS_BODIES))
def test_strange_bodies_with_requests(kind, tmp_path, server, warnings):
    def call() -> Any:
        return requests.post(server.url + "/echo", timeout=10, **REQUESTS_BODIES[kind]())

    plain = requests_outcome(call)
    with record_to_file(tmp_path / "out.har"):
        recorded = requests_outcome(call)
    assert recorded == plain
    assert len(entries(tmp_path / "out.har")) <= 1
    assert warnings.lines() == []


async def _async_parts() -> Any:
    yield b"async "
    yield b"parts"


AIOHTTP_BODIES: Dict[str, Callable[[], Dict[str, Any]]] = {
    "async generator": lambda: {"data": _async_parts()},
    "BytesIO": lambda: {"data": io.BytesIO(b"file-like")},
    "bytearray": lambda: {"data": bytearray(b"\x00\x01\x02")},
    "memoryview": lambda: {"data": memoryview(b"view")},
    "lone surrogate str": lambda: {"data": "\ud800"},
    "form with a file": lambda: {"data": _form()},
    "repeated form keys": lambda: {"data": [("k", "v1"), ("k", "v2")]},
    "unserialisable json": lambda: {"json": object()},
    "plain object": lambda: {"data": object()},
    "int header value": lambda: {"headers": {"X-Number": 5}},
}


def _form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("name", "value")
    form.add_field("file", io.BytesIO(b"\x00\xff"), filename="a.bin", content_type="x/odd")
    return form


@pytest.mark.parametrize("kind", sorted(AIOHTTP_BODIES))
def test_strange_bodies_with_aiohttp(kind, tmp_path, server, warnings):
    def call(session: aiohttp.ClientSession) -> Any:
        return session.post(server.url + "/echo", **AIOHTTP_BODIES[kind]())

    plain = aiohttp_outcome(call)
    with record_to_file(tmp_path / "out.har"):
        recorded = aiohttp_outcome(call)
    assert recorded == plain
    assert len(entries(tmp_path / "out.har")) <= 1
    assert warnings.lines() == []


# --- failures inside harlem --------------------------------------------------------------------


def _some_traffic(url: str) -> Any:
    """A few calls with both libraries, and what the program saw of them."""
    seen = [requests_outcome(lambda: requests.get(url + "/json?n=%d" % n)) for n in range(3)]
    seen.append(requests_outcome(lambda: requests.get(url + "/status/503")))
    seen.append(aiohttp_outcome(lambda session: session.get(url + "/echo?lib=aiohttp")))
    return seen


@pytest.mark.parametrize("background", [None, "thread", "process"])
@pytest.mark.parametrize("live", [False, True])
def test_an_entry_that_cannot_be_serialised_is_skipped_with_one_warning(
        background, live, tmp_path, server, warnings, monkeypatch):
    real = build.build_entry

    def poisoned(exchange: Any, settings: Any, partial: bool = False) -> Dict[str, Any]:
        entry = real(exchange, settings, partial)
        if "/json?n=1" in entry["request"]["url"]:
            entry["_unserialisable"] = object()
        return entry

    expected = _some_traffic(server.url)
    monkeypatch.setattr(build, "build_entry", poisoned)
    path = tmp_path / "out.har"
    with record_to_file(path, live=live, in_background=background):
        seen = _some_traffic(server.url)
    assert seen == expected
    urls = [e["request"]["url"] for e in entries(path)]
    assert len(urls) == 4 and not any("/json?n=1" in url for url in urls)
    if background != "process":  # the export process has its own stderr: not ours to read
        warnings.assert_each_once("could not export an entry" if background is None else "failed")


def test_a_crashing_builder_is_one_warning(tmp_path, server, warnings, monkeypatch):
    expected = _some_traffic(server.url)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the builder crashed")

    monkeypatch.setattr(build, "build_entry", crash)
    path = tmp_path / "out.har"
    with record_to_file(path):
        seen = _some_traffic(server.url)
    assert seen == expected
    # every exchange is still an entry, with what could be kept without the builder's work
    kept = entries(path)
    assert len(kept) == len(expected)
    assert all("RuntimeError" in entry["response"]["comment"] for entry in kept)
    warnings.assert_each_once("could not build a HAR entry")


class _Bail(BaseException):
    """Not an ``Exception``: what an exporter that calls ``sys.exit`` raises, for example."""


class _BailingExporter(HarExporter):
    def add_entry(self, entry: Dict[str, Any]) -> None:
        raise _Bail("an exporter bailed out")


def test_a_base_exception_in_an_exporter_never_blocks_later_requests(server, warnings,
                                                                     monkeypatch):
    budget = pipeline.MAX_PENDING_BYTES
    monkeypatch.setattr(pipeline, "MAX_PENDING_BYTES", 10_000)
    done: List[int] = []

    def work() -> None:
        for number in range(4):
            requests.get(server.url + "/binary?size=20000").content
            done.append(number)

    with Recording(_BailingExporter()):
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(15)
        blocked = worker.is_alive()
        monkeypatch.setattr(pipeline, "MAX_PENDING_BYTES", budget)  # let a blocked program go
        worker.join(TIMEOUT)
    assert not blocked, "the program's requests were blocked by harlem"
    assert done == [0, 1, 2, 3]
    warnings.assert_each_once("_BailingExporter could not export an entry")


def test_a_failing_recorder_hook_is_one_warning(tmp_path, server, warnings, monkeypatch):
    from harlem.capture import Exchange

    expected = _some_traffic(server.url)

    def broken(self: Any, data: bytes) -> None:
        raise RuntimeError("cannot keep a chunk")

    monkeypatch.setattr(Exchange, "add_response_chunk", broken)
    with record_to_file(tmp_path / "out.har"):
        seen = _some_traffic(server.url)
    assert seen == expected
    check_har(tmp_path / "out.har")
    lines = warnings.lines()
    assert len(lines) == len(set(lines)) and 1 <= len(lines) <= 2, lines  # one per library
    assert all("the request itself is unaffected" in line for line in lines)


def test_a_failing_pipeline_warns_once_whatever_the_number_of_requests(
        tmp_path, server, warnings, monkeypatch):
    expected = _some_traffic(server.url)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot begin")

    monkeypatch.setattr(pipeline, "begin", broken)
    with record_to_file(tmp_path / "out.har"):
        seen = _some_traffic(server.url)
        first = warnings.lines()
        assert _some_traffic(server.url) == expected
    assert seen == expected
    assert entries(tmp_path / "out.har") == []
    # One line per hook that failed (each names itself), none repeated by more requests.
    assert first and len(first) == len(set(first)) and warnings.lines() == first, first
    assert all("cannot begin" in line for line in first)


# --- loggers -------------------------------------------------------------------------------------


class _RaisingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("the logger is broken")


def test_a_logger_that_raises_is_one_warning_per_kind_of_record(server, warnings):
    logger = logging.getLogger("tests.never_break.raising")
    logger.addFilter(_RaisingFilter())
    logger.setLevel(logging.DEBUG)
    expected = _some_traffic(server.url)
    with record_to_logger(logger):
        seen = _some_traffic(server.url)
    assert seen == expected
    warnings.assert_each_once("could not export a page", "could not export an entry")


def test_a_logger_writing_to_a_closed_stream_leaves_the_program_alone(server, warnings):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    stream.close()
    logger = logging.getLogger("tests.never_break.closed")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    expected = _some_traffic(server.url)
    try:
        with record_to_logger(logger):
            seen = _some_traffic(server.url)
    finally:
        logger.removeHandler(handler)
    assert seen == expected
    # logging reports its own handler errors ("--- Logging error ---"); harlem adds nothing.
    assert warnings.lines() == []


# --- background export ---------------------------------------------------------------------------


def test_a_dead_export_process_is_one_warning(tmp_path, server, warnings):
    expected = _some_traffic(server.url)
    with record_to_file(tmp_path / "out.har", in_background="process") as recording:
        process = recording.exporter._process
        process.kill()
        process.wait(TIMEOUT)
        seen = _some_traffic(server.url)
    assert seen == expected
    warnings.assert_each_once("the background export process is gone")


# --- the disk -----------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only): the disk fills up after a few entries."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs",
                              str(folder)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill_traffic(url: str, count: int = 16) -> List[Any]:
    """Requests whose entries (6 KB bodies) overflow 64 KiB after about ten of them."""
    return [requests_outcome(lambda: requests.get(f"{url}/binary?size=6000&seed={n}"))
            for n in range(count)]


def _assert_prefix(found: List[Dict[str, Any]], limit: int) -> None:
    seeds = [int(e["request"]["url"].rsplit("=", 1)[1]) for e in found]
    assert seeds == list(range(len(seeds))) and len(seeds) <= limit, seeds


def test_a_full_disk_in_live_mode_keeps_a_valid_file_and_the_program_running(
        tiny_disk, server, warnings):
    expected = _fill_traffic(server.url)
    path = tiny_disk / "out.har"
    with record_to_file(path, live=True) as recording:
        seen = _fill_traffic(server.url)
    assert seen == expected
    found = entries(path)
    assert found, "the entries written before the disk filled up are kept"
    _assert_prefix(found, 16)
    # one warning when the disk filled up, one at the end: the file lacks entries
    first, end = warnings.lines()
    assert "No space left" in first and f"{16 - len(found)} entries could not be written" in end
    assert recording.export_failed  # (harlem's summary line would count entries not in the file)


def test_a_full_disk_at_the_end_is_a_warning(tiny_disk, server, warnings):
    expected = _fill_traffic(server.url)
    with record_to_file(tiny_disk / "out.har"):
        seen = _fill_traffic(server.url)
    assert seen == expected
    assert warnings.lines()


def test_dev_full_as_the_output_is_a_warning(server, warnings):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    expected = _some_traffic(server.url)
    with open("/dev/full", "wb", buffering=0) as output:  # the test's close must not fail
        with Recording(IoHarExporter(output)):
            seen = _some_traffic(server.url)
    assert seen == expected
    assert len(warnings.lines()) == 1


@pytest.mark.parametrize("failing", [0, 1], ids=["first-entry", "second-entry"])
@pytest.mark.parametrize("indent", [None, 2])
def test_a_write_that_failed_once_leaves_the_live_file_valid(indent, failing, tmp_path,
                                                             monkeypatch):
    path = tmp_path / "out.har"
    exporter = LiveFileHarExporter(path, indent=indent)
    exporter.start()
    exporter.add_page(pipeline.default_page())  # as the pipeline does first
    real = os.pwrite
    calls = {"count": 0}

    def flaky(fd: int, data: bytes, offset: int) -> int:
        calls["count"] += 1
        if calls["count"] == failing + 1:  # the disk is full for one write, then space is freed
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", flaky)
    for number in range(4):
        try:
            exporter.add_entry(small_entry(number))
        except OSError:
            pass  # the pipeline turns this into a warning
        check_har(path)
    exporter.add_page({"startedDateTime": "2024-01-01T00:00:00.000Z", "id": "page_9",
                       "title": "a page", "pageTimings": {}})
    try:
        exporter.stop()
        error = ""
    except OSError as exc:  # the end says that an entry is missing
        error = str(exc)
    numbers = [int(e["request"]["url"].rsplit("=", 1)[1]) for e in entries(path)]
    assert (numbers == [0, 1, 2, 3] and not error) or (
        numbers == [n for n in range(4) if n != failing]
        and error.startswith("1 entry could not be written")), (numbers, error)


def test_a_short_write_leaves_the_live_file_valid(tmp_path, monkeypatch):
    path = tmp_path / "out.har"
    exporter = LiveFileHarExporter(path)
    exporter.start()
    real = os.pwrite
    calls = {"count": 0}

    def short(fd: int, data: bytes, offset: int) -> int:
        calls["count"] += 1
        if calls["count"] == 2:  # the kernel may write less than asked (a disk filling up)
            return real(fd, data[:len(data) // 2], offset)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", short)
    for number in range(3):
        exporter.add_entry(small_entry(number))
    exporter.stop()
    assert len(entries(path)) == 3


# --- the output disappears before the end -------------------------------------------------------


def test_an_unwritable_output_at_the_end_keeps_the_blocks_exception(tmp_path, server, warnings):
    folder = tmp_path / "gone"
    folder.mkdir()
    mine = ValueError("the program's own error")
    with pytest.raises(ValueError) as raised:
        with record_to_file(folder / "out.har"):
            requests.get(server.url + "/json")
            shutil.rmtree(folder)
            raise mine
    assert raised.value is mine
    assert len(warnings.lines()) == 1


PROGRAM = """
import os, shutil, sys
import requests

def main():
    requests.get(os.environ["TARGET_URL"] + "/json")
    shutil.rmtree(os.environ["OUTPUT_FOLDER"])  # the output's folder vanishes
    print("program done", flush=True)
    sys.exit(7)

if __name__ == "__main__":
    main()
"""


def _run_program(tmp_path: Path, server: Any, *command: str) -> subprocess.CompletedProcess:
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "gone").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url,
               OUTPUT_FOLDER=str(tmp_path / "gone"))
    return subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _assert_program_ended_its_own_way(result: subprocess.CompletedProcess) -> None:
    assert result.stdout == "program done\n"
    assert result.returncode == 7, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith(WARNING)]) == 1, \
        result.stderr


def test_an_unwritable_output_at_exit_keeps_the_exit_code_with_the_agent(tmp_path, server):
    out = str(tmp_path / "gone" / "out.har")
    result = _run_program(tmp_path, server, "-m", "harlem.cli.run", "-o", out, "--",
                          sys.executable, "prog.py")
    _assert_program_ended_its_own_way(result)


def test_an_unwritable_output_at_exit_keeps_the_exit_code_with_the_cli(tmp_path, server):
    result = _run_program(tmp_path, server, "-m", "harlem", "prog:main", "gone/out.har")
    _assert_program_ended_its_own_way(result)


def test_a_full_disk_keeps_the_exit_code_with_the_agent(tiny_disk, tmp_path, server):
    program = tmp_path / "fill.py"
    program.write_text(textwrap.dedent("""
        import os, sys, requests
        for seed in range(16):
            requests.get(f"{os.environ['TARGET_URL']}/binary?size=6000&seed={seed}").content
        sys.exit(5)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url)
    for live in ([], ["--live"]):
        out = tiny_disk / "out.har"
        result = subprocess.run(
            [sys.executable, "-m", "harlem.cli.run", "-o", str(out), *live, "--",
             sys.executable, str(program)],
            env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert [line for line in result.stderr.splitlines() if line.startswith(WARNING)]
        if out.exists():  # whatever is left on the full disk is a HAR, or repairs to one
            data = out.read_bytes()
            repaired, _ = repair(data)
            check_har(_write(tmp_path / "repaired.har", repaired))
            out.unlink()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
