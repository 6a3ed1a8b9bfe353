"""Child processes under the agent: every process records its own traffic, each entry once.

Programs run for real (subprocess, multiprocessing with fork/spawn/forkserver, os.fork); the
top process merges the children's part files into its HAR at exit. Also: ``harlem merge``.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from harlem.agent.merge import MergeError, merge_files, read_har
from harlem.exporters.live import LiveFileHarExporter
from tests.entries import DEFAULT_PAGE, make_entry
from tests.helpers import check_har
from tests.test_agent import (REPO, REQUESTS, TIMEOUT, agent_env, clean_env, entries, run,
                              summary_lines, write_program)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX fork")


def tags(har: dict) -> Counter:
    """How many times each request (``?tag=n``) appears in the HAR."""
    return Counter(e["request"]["url"].rpartition("/json?")[2] for e in entries(har))


def pids(har: dict) -> Counter:
    return Counter(e["_pid"] for e in entries(har))


def test_a_subprocess_records_into_the_same_har(tmp_path, server):
    write_program(tmp_path, REQUESTS, "fetch(2, 'child')", name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess
        fetch(1, "parent")
        subprocess.run([sys.executable, {str(tmp_path / "child.py")!r}, URL], check=True)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    har = check_har(out)
    assert tags(har) == {"parent=0": 1, "child=0": 1, "child=1": 1}
    assert sorted(pids(har).values()) == [1, 2]
    assert summary_lines(result.stderr) == [f"harlem: 3 entries -> {out}"]  # the top's line only
    assert not (tmp_path / "out.har.parts").exists()


def test_a_top_without_http_library_still_gathers_its_childrens_traffic(tmp_path, server):
    write_program(tmp_path, REQUESTS, "fetch(1, 'child')", name="child.py")
    app = write_program(tmp_path, f"""
        import subprocess, sys
        subprocess.run([sys.executable, {str(tmp_path / "child.py")!r}, sys.argv[1]], check=True)
    """)
    out = tmp_path / "out.har"
    previous = {"log": {"version": "1.2", "creator": {"name": "old", "version": "1"},
                        "entries": [make_entry(99)]}}
    out.write_bytes(orjson.dumps(previous))  # a previous run's
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert tags(check_har(out)) == {"child=0": 1}
    assert summary_lines(result.stderr) == [f"harlem: 1 entry -> {out}"]


@pytest.mark.parametrize("method", [m for m in ("fork", "spawn", "forkserver")
                                    if m in multiprocessing.get_all_start_methods()])
def test_multiprocessing_workers_record_their_own_traffic(tmp_path, server, method):
    app = write_program(tmp_path, REQUESTS, f"""
        import multiprocessing

        def work(url, number):
            global URL
            URL = url
            fetch(2, f"worker{{number}}-")

        if __name__ == "__main__":
            context = multiprocessing.get_context({method!r})
            fetch(1, "parent")
            workers = [context.Process(target=work, args=(URL, n)) for n in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
                assert worker.exitcode == 0
            fetch(1, "parent-after")
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    har = check_har(out)
    assert tags(har) == {"parent=0": 1, "parent-after=0": 1, "worker0-=0": 1, "worker0-=1": 1,
                         "worker1-=0": 1, "worker1-=1": 1}
    assert sorted(pids(har).values()) == [2, 2, 2]
    starts = [e["startedDateTime"] for e in entries(har)]
    assert starts == sorted(starts)
    assert not (tmp_path / "out.har.parts").exists()


def test_a_pool_terminated_at_the_end_of_its_with_block_loses_nothing(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, """
        import multiprocessing

        def work(args):
            global URL
            URL, number = args
            fetch(1, f"task{number}-")

        if __name__ == "__main__":
            with multiprocessing.get_context("fork").Pool(2) as pool:  # exits with terminate()
                pool.map(work, [(URL, n) for n in range(4)])
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert tags(check_har(out)) == {f"task{n}-=0": 1 for n in range(4)}


def test_forked_children_record_their_own_traffic_and_not_the_parents(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, """
        import os
        fetch(1, "before")
        child = os.fork()
        if child == 0:
            fetch(1, "child-os-exit")
            os._exit(0)
        os.waitpid(child, 0)
        child = os.fork()
        if child == 0:
            fetch(1, "child-sys-exit")
            sys.exit(0)
        os.waitpid(child, 0)
        fetch(1, "after")
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    har = check_har(out)
    assert tags(har) == {"before=0": 1, "child-os-exit=0": 1, "child-sys-exit=0": 1, "after=0": 1}
    assert sorted(pids(har).values()) == [1, 1, 2]
    assert summary_lines(result.stderr) == [f"harlem: 4 entries -> {out}"]


def test_pages_of_several_processes_are_kept_apart(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, """
        import os, harlem
        with harlem.page("parent page"):
            fetch(1, "parent")
        child = os.fork()
        if child == 0:
            with harlem.page("child page"):
                fetch(1, "child")
            os._exit(0)
        os.waitpid(child, 0)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    har = check_har(out)
    titles = {page["id"]: page["title"] for page in har["log"]["pages"]}
    assert sorted(titles.values()) == ["child page", "harlem recording", "parent page"]
    by_tag = {e["request"]["url"].rpartition("?")[2]: titles[e["pageref"]] for e in entries(har)}
    assert by_tag == {"parent=0": "parent page", "child=0": "child page"}


def test_a_child_outliving_the_top_leaves_its_part_for_harlem_merge(tmp_path, server):
    write_program(tmp_path, REQUESTS, """
        import os, time
        parent = os.getppid()
        fetch(1, "child")
        print("fetched", flush=True)
        while os.getppid() == parent:  # until the top process is gone
            time.sleep(0.01)
    """, name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess
        fetch(1, "parent")
        child = subprocess.Popen([sys.executable, {str(tmp_path / "child.py")!r}, URL],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout.readline() == "fetched\\n"
        print(child.pid)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert tags(check_har(out)) == {"parent=0": 1}
    part = tmp_path / "out.har.parts" / f"{int(result.stdout)}.har"
    deadline = time.monotonic() + TIMEOUT
    while not part.exists() and time.monotonic() < deadline:  # renamed when the child is done
        time.sleep(0.02)
    assert tags(check_har(part)) == {"child=0": 1}

    merged = run([sys.executable, "-m", "harlem", "merge", "-o", str(out), str(out), str(part)],
                 clean_env(PYTHONPATH=str(REPO)))
    assert merged.returncode == 0, merged.stderr
    assert merged.stderr == f"harlem: 2 entries -> {out}\n"
    assert tags(check_har(out)) == {"parent=0": 1, "child=0": 1}


# --- harlem merge ------------------------------------------------------------------------------


def write_har(path: Path, pages: list, numbers_and_times: list) -> Path:
    document = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "pages": pages,
                        "entries": [make_entry(n, started) for n, started in numbers_and_times]}}
    path.write_bytes(orjson.dumps(document))
    return path


def numbers(har: dict) -> list:
    return [int(e["request"]["queryString"][0]["value"]) for e in entries(har)]


def page(page_id: str, title: str, started: str) -> dict:
    return {"id": page_id, "title": title, "startedDateTime": started,
            "pageTimings": {"onContentLoad": -1, "onLoad": -1}}


def test_merge_orders_entries_by_start_and_keeps_every_page_once(tmp_path):
    now = time.time()
    first = write_har(tmp_path / "a.har", [
        page("page_0", "harlem recording", "2024-01-01T00:00:01.000Z"),
        page("page_1", "login", "2024-01-01T00:00:02.000Z")],
        [(0, now), (2, now + 2), (4, now + 4)])
    second = write_har(tmp_path / "b.har", [
        page("page_0", "harlem recording", "2024-01-01T00:00:00.500Z"),
        page("page_1", "login", "2024-01-01T00:00:02.000Z"),  # the same page (a forked child)
        page("page_2", "search", "2024-01-01T00:00:03.000Z")], [(3, now + 3), (1, now + 1)])
    third = write_har(tmp_path / "c.har", [page("page_2", "other", "2024-01-01T00:00:04.000Z")],
                      [(5, now + 5)])
    har_c = orjson.loads(third.read_bytes())
    for entry in har_c["log"]["entries"]:
        entry["pageref"], entry["_pid"] = "page_2", 4242
    third.write_bytes(orjson.dumps(har_c))

    out = tmp_path / "out.har"
    assert merge_files([str(first), str(second), str(third)], str(out), indent=2) == (6, 0)
    har = check_har(out)
    assert numbers(har) == [0, 1, 2, 3, 4, 5]
    pages = {p["id"]: p for p in har["log"]["pages"]}
    assert sorted(pages) == ["page_0", "page_1", "page_2", "page_2-4242"]
    assert pages["page_0"]["startedDateTime"] == "2024-01-01T00:00:00.500Z"  # the earliest
    assert pages["page_2-4242"]["title"] == "other"
    assert entries(har)[-1]["pageref"] == "page_2-4242"
    assert out.read_text().startswith('{\n  "log": {')


def test_merge_keeps_another_tools_page_0_apart_from_harlems(tmp_path):
    """The HAR spec's own example names its page ``page_0``: only harlem's default pages are
    one page; another tool's is kept, renamed on a clash, with its entries."""
    now = time.time()
    harlem_file = write_har(tmp_path / "ours.har", [
        page("page_0", "harlem recording", "2024-01-01T00:00:05.000Z")], [(0, now)])
    spec_style = [write_har(tmp_path / f"{name}.har", [
        page("page_0", title, f"2024-01-01T00:00:0{n}.000Z")], [(n, now + n)])
        for n, (name, title) in enumerate([("login", "Login page"), ("checkout", "Checkout")],
                                          start=1)]
    out = tmp_path / "out.har"
    merge_files([str(harlem_file)] + [str(p) for p in spec_style], str(out))
    har = check_har(out)
    titles = {p["id"]: p["title"] for p in har["log"]["pages"]}
    assert sorted(titles.values()) == ["Checkout", "Login page", "harlem recording"]
    by_number = {n: titles[e["pageref"]] for n, e in zip(numbers(har), entries(har))}
    assert by_number == {0: "harlem recording", 1: "Login page", 2: "Checkout"}


def test_merge_makes_up_no_page_when_no_input_has_one(tmp_path):
    """Charles, Fiddler, mitmproxy and Playwright's minimal mode write no pages (HAR's pages
    are optional): the merged file has none either, not a "harlem recording" of its own."""
    now = time.time()
    inputs = []
    for number in range(2):
        document = orjson.loads(write_har(tmp_path / f"{number}.har", [],
                                          [(number, now + number)]).read_bytes())
        for entry in document["log"]["entries"]:
            entry.pop("pageref")
        (tmp_path / f"{number}.har").write_bytes(orjson.dumps(document))
        inputs.append(str(tmp_path / f"{number}.har"))
    out = tmp_path / "out.har"
    for indent in (None, 2):
        assert merge_files(inputs, str(out), indent=indent) == (2, 0)
        har = check_har(out)
        assert har["log"]["pages"] == [] and numbers(har) == [0, 1]


@pytest.mark.parametrize("started", [
    "2024-01-01T00:00:01.5000000Z",  # Fiddler's seven digits
    "2024-01-01T02:00:01.5+02:00", "2024-01-01T05:30:01.5+0530", "2024-01-01 00:00:01.5",
])
def test_merge_orders_dates_as_other_tools_write_them(tmp_path, started):
    """On every Python (before 3.11 datetime.fromisoformat read none of these): an entry at
    00:00:01.5 goes between ours at 00:00:01 and 00:00:02."""
    ours = write_har(tmp_path / "ours.har", [], [(0, 1704067201.0), (2, 1704067202.0)])
    theirs = orjson.loads(write_har(tmp_path / "theirs.har", [], [(1, 0.0)]).read_bytes())
    theirs["log"]["entries"][0]["startedDateTime"] = started
    (tmp_path / "theirs.har").write_bytes(orjson.dumps(theirs))
    out = tmp_path / "out.har"
    merge_files([str(ours), str(tmp_path / "theirs.har")], str(out))
    # (the last two are not the date format HAR asks for: ordered, though not valid)
    assert numbers(orjson.loads(out.read_bytes())) == [0, 1, 2]


def test_merge_run_again_or_given_a_file_twice_keeps_every_entry_and_page_once(tmp_path):
    """``harlem merge -o out.har out.har parts/*.har`` run a second time (or an input named
    twice) adds nothing: the same entries, the same renamed page."""
    now = time.time()
    top = write_har(tmp_path / "out.har", [
        page("page_0", "harlem recording", "2024-01-01T00:00:00.000Z"),
        page("page_1", "login", "2024-01-01T00:00:01.000Z")], [(0, now), (2, now + 2)])
    part = write_har(tmp_path / "part.har", [
        page("page_1", "search", "2024-01-01T00:00:03.000Z")], [(1, now + 1)])
    har_part = orjson.loads(part.read_bytes())
    for entry in har_part["log"]["entries"]:
        entry["pageref"], entry["_pid"] = "page_1", 4242
    part.write_bytes(orjson.dumps(har_part))

    for _ in range(2):
        assert merge_files([str(top), str(part)], str(top)) == (3, 0)
        har = check_har(top)
        assert numbers(har) == [0, 1, 2]
        assert sorted(p["id"] for p in har["log"]["pages"]) == ["page_0", "page_1", "page_1-4242"]
    assert merge_files([str(part), str(part)], str(tmp_path / "twice.har")) == (1, 0)


def test_merge_reads_a_har_saved_with_a_bom(tmp_path):
    now = time.time()
    plain = write_har(tmp_path / "a.har", [], [(0, now)])
    bom = tmp_path / "bom.har"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert merge_files([str(bom)], str(tmp_path / "out.har")) == (1, 0)


def test_merge_cuts_a_torn_live_file_back_to_its_last_complete_entry(tmp_path):
    path = tmp_path / "live.har"
    live = LiveFileHarExporter(path)
    live.start()
    live.add_page(DEFAULT_PAGE)
    for number in range(3):
        live.add_entry(make_entry(number))
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # killed in the middle of writing the last entry
    with pytest.raises(ValueError):
        orjson.loads(path.read_bytes())
    assert numbers(read_har(str(path))) == [0, 1]
    out = tmp_path / "out.har"
    assert merge_files([str(path)], str(out)) == (2, 0)
    assert numbers(check_har(out)) == [0, 1]
    live.stop()


def test_merge_rejects_what_is_not_a_har(tmp_path):
    bad = tmp_path / "bad.har"
    bad.write_text("[1, 2")
    with pytest.raises(MergeError, match="bad.har: not a HAR file"):
        merge_files([str(bad)], str(tmp_path / "out.har"))


@pytest.mark.parametrize("problem, message", [
    ("missing", "missing.har: No such file or directory"),
    ("not-har", "not-har.har: not a HAR file"),
    ("no-output", "output: missing"),
])
def test_harlem_merge_bad_input_is_one_line_and_exit_2(tmp_path, problem, message):
    good = write_har(tmp_path / "good.har", [DEFAULT_PAGE], [(0, None)])
    (tmp_path / "not-har.har").write_text('{"log": 1}')
    inputs = [str(good)] + ([str(tmp_path / f"{problem}.har")] if problem != "no-output" else [])
    output = [] if problem == "no-output" else ["-o", str(tmp_path / "out.har")]
    result = run([sys.executable, "-m", "harlem", "merge", *output, *inputs],
                 clean_env(PYTHONPATH=str(REPO)))
    assert result.returncode == 2
    assert result.stderr.startswith("harlem merge: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out.har").exists()


def test_a_terminated_child_blocked_in_a_wait_still_exports_and_dies(tmp_path, server):
    """SIGTERM noted while a child's main thread is blocked for good (here: delivered to another
    thread, as when it lands just before the wait) must still run harlem's handler: the child
    is killed by it, as without harlem, with its part written, instead of waiting for ever."""
    child = write_program(tmp_path, REQUESTS, """
        import multiprocessing, signal, threading
        fetch(1, "child")
        blocked = multiprocessing.Semaphore(0)
        def hit():  # a thread of the program's own, which does not block SIGTERM
            import time
            time.sleep(0.3)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        threading.Thread(target=hit).start()
        blocked.acquire()  # no timeout: only the signal ends this process
    """, name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess
        fetch(1, "top")
        done = subprocess.run([sys.executable, {str(child)!r}, URL], timeout=60)
        print(done.returncode)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(-signal.SIGTERM)
    assert tags(check_har(out)) == {"top=0": 1, "child=0": 1}


def test_retention_applies_to_the_children_too(tmp_path, server):
    """A child's entries older than the window are not in the merged file either."""
    child = write_program(tmp_path, REQUESTS, "fetch(1, 'child-early')", name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess, time
        subprocess.run([sys.executable, {str(child)!r}, URL], check=True)
        time.sleep(2.5)  # the child's entry is now older than the window
        fetch(1, "top-late")
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url],
                 agent_env(out, HARLEM_LIVE="1", HARLEM_RETENTION_SECONDS="2"))
    assert result.returncode == 0, result.stderr
    assert tags(check_har(out)) == {"top-late=0": 1}
    assert "(retention: the last 2 s)" in result.stderr


def test_a_child_that_takes_the_wakeup_descriptor_finds_it_free(tmp_path, server):
    """harlem watches SIGTERM in child processes through Python's wakeup descriptor; a program
    or event loop that sets its own (trio warns, and fails under -W error, when it finds one
    taken) must see none before its own, as without harlem. The child still records."""
    child = write_program(tmp_path, REQUESTS, """
        import os, signal
        fetch(1, "child")  # (its HTTP library imported: harlem watches from now on)
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        print(signal.set_wakeup_fd(write_end), signal.set_wakeup_fd(-1) == write_end)
        fetch(2, "child")
    """, name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess
        fetch(1, "top")
        done = subprocess.run([sys.executable, {str(child)!r}, URL], timeout=60,
                              capture_output=True, text=True)
        print(done.returncode, done.stdout.strip(), done.stderr.strip())
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 -1 True", result.stdout
    assert tags(check_har(out)) == {"top=0": 1, "child=0": 2, "child=1": 1}


def test_a_signal_to_the_whole_process_group_keeps_the_childrens_entries(tmp_path, server):
    """SIGTERM to the group (``timeout``, a closed terminal, a stopped service) while the top
    waits for its children: all export at once, and the top merged only the parts already
    finished; the others stayed in the parts folder (in about half the runs). The top now
    gives them a moment."""
    import os
    import subprocess

    child = write_program(tmp_path, REQUESTS, """
        import time
        fetch(1, "child")
        print("ready", flush=True)
        time.sleep(60)
    """, name="child.py")
    app = write_program(tmp_path, REQUESTS, f"""
        import subprocess
        fetch(1, "top")
        kids = [subprocess.Popen([sys.executable, {str(child)!r}, URL], stdout=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        for kid in kids:
            kid.stdout.readline()
        print("ready", flush=True)
        for kid in kids:
            kid.wait()
    """)
    for trial in range(2):
        out = tmp_path / f"out{trial}.har"
        process = subprocess.Popen([sys.executable, str(app), server.url], env=agent_env(out),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        assert process.stdout.readline().strip() == "ready"
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)
        assert process.returncode == -signal.SIGTERM
        assert tags(check_har(out)) == {"top=0": 1, "child=0": 2}, trial
        assert not (tmp_path / f"out{trial}.har.parts").exists()
