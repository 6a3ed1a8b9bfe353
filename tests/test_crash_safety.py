"""Crash safety and file safety of the HAR files harlem writes.

* Live mode: after a SIGKILL at any moment, the file on disk is a valid HAR holding every entry
  written before the kill; if the kill tore the last write, ``harlem repair`` brings back the
  last valid state without losing an entry whose bytes were all written.
* Files are created readable by their owner only (0600), a symlink planted at the output path
  is replaced, never followed, and a rewrite replaces the file atomically: a reader never sees
  half of it.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import orjson
import pytest

from harlem import pipeline, record_to_file
from harlem.capture import Exchange
from harlem.cli.main import main as harlem_main
from harlem.exporters.files import FileHarExporter
from harlem.exporters.layout import Layout, repair
from harlem.exporters.live import LiveFileHarExporter
from harlem.har.build import build_entry
from harlem.settings import Settings
from tests.helpers import REPO_ROOT, check_har

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and permissions")

TIMEOUT = 60


def small_entry(number: int, body_size: int = 300) -> Dict[str, Any]:
    """A valid entry, built from a real exchange, for ``http://example.test/?n=<number>``."""
    exchange = Exchange("requests", "GET", f"http://example.test/?n={number}")
    exchange.t_end = exchange.t_start
    exchange.status = 200
    exchange.response_headers = [("Content-Type", "text/plain")]
    exchange.add_response_chunk(b"x" * body_size)
    exchange.body_complete = True
    return build_entry(exchange, Settings())


def numbers(har: Dict[str, Any]) -> List[int]:
    """The ``n`` of each entry's URL, in file order."""
    return [int(e["request"]["url"].rsplit("=", 1)[1]) for e in har["log"]["entries"]]


# --- torn writes, exhaustively -------------------------------------------------------------------


def _last_write(tmp_path: Path, indent: Optional[int], count: int,
                monkeypatch: pytest.MonkeyPatch) -> Tuple[bytes, int, bytes]:
    """A live file with ``count`` entries: its bytes before the last entry was added, and the
    ``(offset, data)`` of the single ``pwrite`` that added it."""
    path = tmp_path / f"live-{indent}-{count}.har"
    exporter = LiveFileHarExporter(path, indent=indent)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    for number in range(count - 1):
        exporter.add_entry(small_entry(number))
    before = path.read_bytes()
    writes: List[Tuple[bytes, int]] = []
    real = os.pwrite

    def spy(fd: int, data: bytes, offset: int) -> int:
        writes.append((bytes(data), offset))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    exporter.add_entry(small_entry(count - 1))
    monkeypatch.setattr(os, "pwrite", real)
    exporter.stop()
    assert len(writes) == 1, "one entry, one write"
    data, offset = writes[0]
    return before, offset, data


def _torn(before: bytes, offset: int, data: bytes, written: int) -> bytes:
    """The file after a write of ``data`` at ``offset`` stopped after ``written`` bytes."""
    torn = bytearray(before)
    torn[offset:offset + written] = data[:written]
    return bytes(torn)


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("count", [1, 3])
def test_every_torn_write_repairs_to_the_entries_fully_written(indent, count, tmp_path,
                                                               monkeypatch):
    before, offset, data = _last_write(tmp_path, indent, count, monkeypatch)
    separator_and_entry = len(data) - len(Layout(indent).tail)
    problems = []
    outcomes: Dict[bytes, Any] = {}  # most torn states repair to the same few documents
    for written in range(len(data) + 1):
        torn = _torn(before, offset, data, written)
        repaired, _ = repair(torn)
        whole = written >= separator_and_entry  # the new entry's last byte is on disk
        expected = list(range(count if whole else count - 1))
        if repaired not in outcomes:
            try:
                outcomes[repaired] = numbers(check_har(orjson.loads(repaired)))
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                outcomes[repaired] = f"invalid: {str(exc)[:200]}"
        got = outcomes[repaired]
        if got != expected:
            problems.append((written, got, expected))
    assert not problems, f"{len(problems)} of {len(data) + 1} torn states: {problems[:6]}"


@pytest.mark.parametrize("indent", [None, 2])
def test_every_torn_page_write_repairs_to_the_pages_fully_written(indent, tmp_path, monkeypatch):
    """A page is written in place, into the room after the pages: a crash in that write
    leaves the head torn, and repair cuts the pages back to the last whole one."""
    path = tmp_path / "live.har"
    exporter = LiveFileHarExporter(path, indent=indent)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    for number in range(3):
        exporter.add_entry(small_entry(number))
    before = path.read_bytes()
    writes: List[Tuple[bytes, int]] = []
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: (
        writes.append((bytes(data), offset)), real(fd, data, offset))[1])
    exporter.add_page({**pipeline.default_page(), "id": "page_1", "title": "new"})
    monkeypatch.setattr(os, "pwrite", real)
    exporter.stop()
    assert len(writes) == 1, "one page, one write in place"
    data, offset = writes[0]
    separator_and_page = len(data) - len(Layout(indent).pages_close)
    problems = []
    for written in range(len(data) + 1):
        repaired, count = repair(_torn(before, offset, data, written))
        try:
            har = check_har(orjson.loads(repaired))
        except Exception as exc:  # noqa: BLE001 - collected, reported together below
            problems.append((written, f"invalid: {str(exc)[:200]}"))
            continue
        pages = [page["id"] for page in har["log"]["pages"]]
        expected = ["page_0", "page_1"] if written >= separator_and_page else ["page_0"]
        if pages != expected or numbers(har) != [0, 1, 2] or count != 3:
            problems.append((written, pages, numbers(har)))
    assert not problems, f"{len(problems)} of {len(data) + 1} torn states: {problems[:6]}"


@pytest.mark.parametrize("indent", [None, 2])
def test_a_write_torn_inside_the_entry_repairs_to_the_entries_before_it(indent, tmp_path,
                                                                        monkeypatch):
    before, offset, data = _last_write(tmp_path, indent, 3, monkeypatch)
    for written in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        torn = _torn(before, offset, data, written)
        with pytest.raises(ValueError):
            orjson.loads(torn)
        repaired, count = repair(torn)
        assert count == 2 and numbers(check_har(orjson.loads(repaired))) == [0, 1]


def test_harlem_repair_fixes_a_torn_file_in_place_and_keeps_it_private(tmp_path, monkeypatch):
    before, offset, data = _last_write(tmp_path, 2, 3, monkeypatch)
    path = tmp_path / "torn.har"
    path.write_bytes(_torn(before, offset, data, len(data) // 2))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-m", "harlem", "repair", str(path)], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert "kept 2 entries" in result.stderr
    assert numbers(check_har(path)) == [0, 1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- real SIGKILLs -------------------------------------------------------------------------------

#: A tight request loop, recorded live. Before each request it notes ``begin N`` in the side
#: file, and ``done N`` once the entry reached the exporter (``pipeline.flush()``): every
#: ``done`` entry's bytes were handed to the kernel, which a SIGKILL cannot take back.
CHILD = """
import sys
import requests
import harlem
from harlem import pipeline, record_to_file

url, out, side, indent = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
log = open(side, "a", buffering=1)
with record_to_file(out, live=True, indent=int(indent) or None):
    number = 0
    while True:
        log.write(f"begin {number}\\n")
        size = (0, 300, 60_000, 400_000)[number % 4]  # big entries make torn writes likely
        if number % 9 == 4:
            with harlem.page(f"page {number}"):  # a page is written into the head
                requests.get(f"{url}/binary?size={size}&n={number}").content
        else:
            requests.get(f"{url}/binary?size={size}&n={number}").content
        pipeline.flush()
        log.write(f"done {number}\\n")
        number += 1
"""


def _side_counts(side: Path) -> Tuple[int, int]:
    """``(requests begun, entries known written)`` from the child's side file."""
    begun = done = 0
    for line in side.read_text().splitlines():
        word, _, number = line.partition(" ")
        if not number.isdigit():
            continue  # a line the kill cut short
        if word == "begin":
            begun = int(number) + 1
        elif word == "done":
            done = int(number) + 1
    return begun, done


def test_sigkill_at_random_moments_loses_no_written_entry(tmp_path, server):
    program = tmp_path / "child.py"
    program.write_text(textwrap.dedent(CHILD))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    seed = random.randrange(1 << 32)
    chooser = random.Random(seed)
    deadline = time.monotonic() + 30
    kills = repaired = 0
    while kills < 20 and time.monotonic() < deadline:
        indent = chooser.choice([0, 2])
        out, side = tmp_path / f"out{kills}.har", tmp_path / f"side{kills}.txt"
        side.touch()
        child = subprocess.Popen([sys.executable, str(program), server.url, str(out), str(side),
                                  str(indent)], env=env, stderr=subprocess.PIPE)
        # Kill at a random moment: mostly mid-loop, sometimes during start-up.
        wanted = chooser.choice([0, 1, 3, 8, 20])
        started = time.monotonic()
        while _side_counts(side)[1] < wanted and child.poll() is None \
                and time.monotonic() - started < 5:
            time.sleep(0.001)
        time.sleep(chooser.uniform(0, 0.05))
        child.kill()
        _, stderr = child.communicate(timeout=TIMEOUT)
        assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
        kills += 1
        begun, done = _side_counts(side)
        context = f"seed {seed}, kill {kills}, indent {indent}, begun {begun}, done {done}"
        if not out.exists():
            assert done == 0, context
            continue
        try:
            check_har(out)
        except Exception:  # noqa: BLE001 - a torn last write: what harlem repair is for
            assert harlem_main(["repair", str(out)]) == 0, context
            repaired += 1
        found = numbers(check_har(out))
        assert found == list(range(len(found))), f"{context}: not a prefix: {found}"
        assert done <= len(found) <= begun, f"{context}: {len(found)} entries"
    assert kills >= 5, f"only {kills} kills in the time allowed"  # a loaded machine is slow


# --- file permissions ---------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: whatever harlem creates gets exactly the mode it asks for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("options", [{}, {"live": True}, {"indent": 2, "live": True},
                                     {"interval_seconds": 0.1}, {"in_background": "thread"}],
                         ids=["file", "live", "live-indent", "interval", "thread"])
def test_har_files_are_private(options, tmp_path, server, open_umask):
    import requests

    path = tmp_path / "out.har"
    path.write_text("an older file, readable by all")
    path.chmod(0o644)
    with record_to_file(path, **options):
        requests.get(server.url + "/json")
        if options.get("live"):
            pipeline.flush()
            assert _mode(path) == 0o600  # already while recording
    assert _mode(path) == 0o600
    assert len(check_har(path)["log"]["entries"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.har"]  # no temporary file left over


def test_agent_and_cli_outputs_are_private(tmp_path, server, open_umask):
    program = tmp_path / "prog.py"
    program.write_text("import os, requests\n"
                       "def main():\n    requests.get(os.environ['TARGET_URL'] + '/json')\n"
                       "if __name__ == '__main__':\n    main()\n")
    bystander = tmp_path / "bystander.py"
    bystander.write_text("import subprocess, sys\n"
                         "subprocess.run([sys.executable, 'prog.py'], check=True)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url)
    runs = {
        "cli.har": [sys.executable, "-m", "harlem", "prog:main", "cli.har"],
        "agent.har": [sys.executable, "-m", "harlem.cli.run", "-o", "agent.har", "--",
                      sys.executable, "bystander.py"],
        "empty.har": [sys.executable, "-m", "harlem.cli.run", "-o", "empty.har", "--",
                      sys.executable, "-c", "pass"],
    }
    for name, command in runs.items():
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT, check=False)
        assert result.returncode == 0, result.stderr
        assert _mode(tmp_path / name) == 0o600, name
        check_har(tmp_path / name)
    assert len(check_har(tmp_path / "agent.har")["log"]["entries"]) == 1  # from the child


def test_the_agents_parts_folder_is_private(tmp_path, server, open_umask):
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent("""
        import os, sys, requests
        if os.fork() == 0:
            requests.get(os.environ["TARGET_URL"] + "/json?child")
            from harlem import pipeline
            pipeline.flush()  # the entry is in the part file
            parts = os.environ["HARLEM_OUTPUT"] + ".parts"
            print(oct(os.stat(parts).st_mode & 0o777), flush=True)
            for name in os.listdir(parts):
                print(oct(os.stat(os.path.join(parts, name)).st_mode & 0o777), flush=True)
            os._exit(0)
        os.wait()
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url)
    result = subprocess.run([sys.executable, "-m", "harlem.cli.run", "-o", "out.har", "--",
                             sys.executable, "prog.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    modes = result.stdout.split()
    assert modes[0] == "0o700" and set(modes[1:]) == {"0o600"}, modes
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1


# --- symlinks -------------------------------------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Tuple[Path, Path]:
    """``out.har`` is a symlink to a file that must not change."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o644)
    path = tmp_path / "out.har"
    path.symlink_to(victim)
    return path, victim


def _assert_untouched(path: Path, victim: Path) -> None:
    assert victim.read_text() == "precious" and _mode(victim) == 0o644
    assert not path.is_symlink() and _mode(path) == 0o600
    check_har(path)


@pytest.mark.parametrize("exporter_class", [FileHarExporter, LiveFileHarExporter])
def test_a_symlink_at_the_output_is_replaced_not_followed(exporter_class, planted):
    path, victim = planted
    exporter = exporter_class(path)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    exporter.add_entry(small_entry(0))
    exporter.stop()
    _assert_untouched(path, victim)
    assert numbers(check_har(path)) == [0]


def test_a_dangling_symlink_creates_nothing_at_its_target(tmp_path):
    target = tmp_path / "elsewhere.har"
    path = tmp_path / "out.har"
    path.symlink_to(target)
    with record_to_file(path):
        pass
    assert not target.exists() and not path.is_symlink()
    check_har(path)


def test_a_symlink_planted_while_recording_live_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o644)
    path = tmp_path / "out.har"
    exporter = LiveFileHarExporter(path)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    exporter.add_entry(small_entry(0))
    path.unlink()
    path.symlink_to(victim)  # swapped in behind harlem's back
    exporter.add_entry(small_entry(1))
    # a page larger than the room the head keeps for pages: the file is rewritten
    exporter.add_page({**pipeline.default_page(), "id": "page_1", "title": "rewrite " * 1000})
    exporter.add_entry(small_entry(2))
    exporter.stop()
    _assert_untouched(path, victim)


def test_harlem_repair_replaces_a_symlinked_output(tmp_path, planted, monkeypatch):
    path, victim = planted
    before, offset, data = _last_write(tmp_path, None, 2, monkeypatch)
    torn = tmp_path / "torn.har"
    torn.write_bytes(_torn(before, offset, data, len(data) // 2))
    assert harlem_main(["repair", str(torn), "-o", str(path)]) == 0
    _assert_untouched(path, victim)


# --- atomic replacement -------------------------------------------------------------------------


class _Reader(threading.Thread):
    """Reads ``path`` in a loop and notes every read that is not a whole JSON document."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.reads = 0
        self.bad: List[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                self.bad.append("the file was missing")
                continue
            self.reads += 1
            try:
                orjson.loads(data)
            except ValueError as exc:
                self.bad.append(f"{len(data)} bytes: {exc}")

    def __enter__(self) -> "_Reader":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        self.join(TIMEOUT)


def test_a_reader_never_sees_half_a_file_during_rewrites(tmp_path):
    path = tmp_path / "out.har"
    exporter = FileHarExporter(path)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    exporter.stop()  # the file exists before the reader starts
    with _Reader(path) as reader:
        for number in range(25):  # every stop rewrites the whole, growing file
            exporter.start()
            exporter.add_entry(small_entry(number, body_size=200_000))
            exporter.stop()
    assert reader.reads > 25 and reader.bad == []
    assert numbers(check_har(path)) == list(range(25))


def test_a_reader_never_sees_half_a_live_file_during_page_rewrites(tmp_path, monkeypatch):
    path = tmp_path / "out.har"
    # Pages go into room the head keeps for them; once it is full (here: always), the
    # file is rewritten with more room.
    monkeypatch.setattr(LiveFileHarExporter, "_add_page_in_place", lambda self, page: False)
    exporter = LiveFileHarExporter(path)
    exporter.start()
    exporter.add_page(pipeline.default_page())
    for number in range(10):
        exporter.add_entry(small_entry(number, body_size=300_000))
    with _Reader(path) as reader:
        for number in range(25):  # a page comes before the entries: the file is rewritten
            exporter.add_page({**pipeline.default_page(), "id": f"p{number}", "title": "p"})
    exporter.stop()
    assert reader.reads > 25 and reader.bad == []
    assert numbers(check_har(path)) == list(range(10))
