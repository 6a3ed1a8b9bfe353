"""The ``harlem`` command, run for real in subprocesses against the loopback server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, check_har
from tests.test_agent import default_signals

PROGRAM = '''
import os, sys, requests

URL = os.environ["TARGET_URL"]

def fetch():
    print("program output")
    requests.get(URL + "/json")
    requests.get(URL + "/text")

def fail():
    requests.get(URL + "/json")
    raise RuntimeError("the program's own error")

def interrupted():
    requests.get(URL + "/json")
    raise KeyboardInterrupt

def exits():
    requests.get(URL + "/json")
    sys.exit(7)

def waits():
    requests.get(URL + "/json")
    print("waiting", flush=True)
    import time
    for _ in range(1200):  # short sleeps: a signal is handled once back in Python
        time.sleep(0.05)

def forks():
    requests.get(URL + "/json")
    if os.fork() == 0:  # the child returns from the function too
        requests.get(URL + "/text")
        return
    os.wait()

async def coroutine():
    requests.get(URL + "/json")
    return 3
'''


def run_harlem(tmp_path: Path, *args: str, server_url: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server_url)
    env.pop("HARLEM_OUTPUT", None)
    return subprocess.run([sys.executable, "-m", "harlem", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_records_a_function_and_prints_a_summary(tmp_path, server):
    result = run_harlem(tmp_path, "prog:fetch", "out.har", server_url=server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "program output\n"  # harlem prints nothing to stdout
    har = check_har(tmp_path / "out.har")
    assert [e["request"]["url"] for e in har["log"]["entries"]] == [server.url + "/json", server.url + "/text"]
    assert "harlem: 2 entries -> out.har" in result.stderr


@pytest.mark.parametrize("flags", [["--indent", "2"], ["-l"], ["-n", "0.5", "-r", "60"], ["-b", "thread"],
                                   ["-b", "process"], ["-i", "2", "-l", "-b", "thread"], ["--quiet"]])
def test_every_flag_writes_a_valid_har(tmp_path, server, flags):
    result = run_harlem(tmp_path, "prog:fetch", "out.har", *flags, server_url=server.url)
    assert result.returncode == 0, result.stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 2
    assert ("harlem:" in result.stderr) is ("--quiet" not in flags)


def test_the_functions_exception_keeps_its_traceback_and_exit_code(tmp_path, server):
    result = run_harlem(tmp_path, "prog:fail", "out.har", server_url=server.url)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: the program's own error" in result.stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1  # written before exiting


def test_keyboard_interrupt_still_writes_the_har(tmp_path, server):
    result = run_harlem(tmp_path, "prog:interrupted", "out.har", server_url=server.url)
    assert result.returncode in (130, -2, 1)  # the interpreter's own KeyboardInterrupt exit
    assert "KeyboardInterrupt" in result.stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1


def test_sys_exit_code_passes_through(tmp_path, server):
    result = run_harlem(tmp_path, "prog:exits", "out.har", server_url=server.url)
    assert result.returncode == 7
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1


def test_a_coroutine_function_is_run_and_its_result_is_the_exit_code(tmp_path, server):
    result = run_harlem(tmp_path, "prog:coroutine", "out.har", server_url=server.url)
    assert result.returncode == 3
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1


@pytest.mark.parametrize("args, message", [
    (["nosuchmodule:main", "out.har"], "cannot find module 'nosuchmodule'"),
    (["prog:nosuchfunc", "out.har"], "has no attribute 'nosuchfunc'"),
    (["prog", "out.har"], "is not of the form pkg.module:func"),
    ([".prog:fetch", "out.har"], "names a relative module"),
    (["prog:fetch", "out.har", "--indent", "two"], "--indent: invalid value 'two'"),
    (["prog:fetch", "out.har", "-b", "fork"], "--in-background: invalid value 'fork'"),
    (["prog:fetch", "out.har", "-n", "-3"], "--interval-seconds: invalid value '-3'"),
    (["prog:fetch", "no/such/folder/out.har"], "output: cannot write"),
    (["prog:fetch", ""], "harlem: error: out.har: invalid value ''"),  # (no --output here)
    (["prog:fetch", "out.har", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["prog:fetch"], "the following arguments are required"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = run_harlem(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.har").exists()


def test_unwritable_output_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        result = run_harlem(tmp_path, "prog:fetch", "locked/out.har")
        assert result.returncode == 2 and "not writable" in result.stderr
    finally:
        locked.chmod(0o700)


def test_python_dash_m_harlem_and_help(tmp_path):
    result = run_harlem(tmp_path, "--help")
    assert result.returncode == 0
    for flag in ("--indent", "--live", "--interval-seconds", "--retention-seconds", "--in-background",
                 "-i", "-l", "-n", "-r", "-b"):
        assert flag in result.stdout


def test_repair_restores_a_torn_live_file(tmp_path, server):
    result = run_harlem(tmp_path, "prog:fetch", "out.har", "--live", server_url=server.url)
    assert result.returncode == 0, result.stderr
    whole = (tmp_path / "out.har").read_bytes()
    torn = whole[: whole.rfind(b",\n") + 40]  # a kill in the middle of writing the last entry
    (tmp_path / "out.har").write_bytes(torn)
    result = run_harlem(tmp_path, "repair", "out.har")
    assert result.returncode == 0, result.stderr
    assert "kept 1 entries" in result.stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1
    again = run_harlem(tmp_path, "repair", "out.har")
    assert "already valid" in again.stderr


def test_repair_reports_a_file_it_cannot_fix(tmp_path):
    (tmp_path / "bad.har").write_text("not a har at all")
    result = run_harlem(tmp_path, "repair", "bad.har")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_harlem_variables_are_defaults_that_flags_override(tmp_path, server):
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url, HARLEM_INDENT="2")
    run = lambda *extra: subprocess.run([sys.executable, "-m", "harlem", "prog:fetch", "out.har", *extra],
                                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run().returncode == 0
    assert (tmp_path / "out.har").read_text().startswith('{\n  "log"')
    assert run("--indent", "0").returncode == 0
    assert (tmp_path / "out.har").read_text().startswith('{"log"')
    env["HARLEM_INDENT"] = "wide"
    bad = run()
    assert bad.returncode == 2 and "HARLEM_INDENT: invalid value 'wide'" in bad.stderr


def test_redaction_off_is_noted_once(tmp_path, server):
    result = run_harlem(tmp_path, "prog:fetch", "out.har", "--no-redact", server_url=server.url)
    assert result.returncode == 0
    assert result.stderr.count("redaction is off") == 1


def test_a_value_error_while_importing_the_target_is_the_programs_own(tmp_path):
    """Not bad input (a module that raises while importing is the program failing): its
    traceback, exit status 1."""
    (tmp_path / "broken.py").write_text("import json\nCONFIG = json.loads('{not json')\n")
    result = run_harlem(tmp_path, "broken:main", "out.har")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "JSONDecodeError" in result.stderr


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_a_terminating_signal_writes_the_har_then_ends_the_process_by_it(tmp_path, server,
                                                                         signal_name):
    import signal

    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url)
    env.pop("HARLEM_OUTPUT", None)
    process = subprocess.Popen([sys.executable, "-m", "harlem", "prog:waits", "out.har"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_signals)  # as from a terminal (not nohup)
    assert process.stdout.readline() == "waiting\n"
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -getattr(signal, signal_name)  # as it would have without harlem
    assert "harlem: 1 entry -> out.har" in stderr and "Traceback" not in stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1


def test_a_harlem_output_left_in_the_shell_is_not_for_harlems_own_commands(tmp_path, server):
    """``HARLEM_OUTPUT=out.har harlem show out.har`` must not end by writing an empty
    recording over the file it showed; ``harlem app:main`` records once, into its own file."""
    recorded = run_harlem(tmp_path, "prog:fetch", "first.har", server_url=server.url)
    assert recorded.returncode == 0, recorded.stderr
    before = (tmp_path / "first.har").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url,
               HARLEM_OUTPUT="first.har")
    for args in (["show", "first.har", "--text"], ["merge", "-o", "merged.har", "first.har"],
                 ["repair", "first.har"], ["prog:fetch", "second.har"]):
        result = subprocess.run([sys.executable, "-m", "harlem", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stderr)
        assert (tmp_path / "first.har").read_bytes() == before, args
    assert len(check_har(tmp_path / "second.har")["log"]["entries"]) == 2


def test_merge_reads_flags_only(tmp_path, server):
    assert run_harlem(tmp_path, "prog:fetch", "one.har", server_url=server.url).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HARLEM_INDENT="4", HARLEM_OUTPUT="x.har",
               HARLEM_MAX_BODY_SIZE="huge")
    result = subprocess.run([sys.executable, "-m", "harlem", "merge", "-o", "merged.har",
                             "one.har"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "merged.har").read_text().startswith('{"log"')  # not indented by 4
    assert not (tmp_path / "x.har").exists()
    helped = subprocess.run([sys.executable, "-m", "harlem", "merge", "--help"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "--indent" in helped.stdout and "HARLEM_" not in helped.stdout  # nor says it does


@pytest.mark.parametrize("document", [
    '{"log": {"entries": "abc"}}',
    '{"log": {"entries": [1, 2',
    '{"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "pages": [null], '
    '"entries": []}}',
])
def test_repair_and_merge_refuse_json_that_is_not_a_har(tmp_path, document):
    (tmp_path / "odd.har").write_text(document)
    for args in (["repair", "odd.har"], ["merge", "-o", "out.har", "odd.har"]):
        result = run_harlem(tmp_path, *args)
        if args[0] == "repair" and "null" in document:
            continue  # a valid file for repair's purpose (its entries are whole): left as it is
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "odd.har").read_text() == document


def test_show_text_with_stdout_closed_or_cut_short(tmp_path, server):
    """``>&-`` is one line and exit 2; ``| head -1`` ends quietly (the reader had enough)."""
    assert run_harlem(tmp_path, "prog:fetch", "out.har", server_url=server.url).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "harlem", "show", "--text", "out.har"]
    closed = subprocess.run(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.close(1), timeout=60)
    assert closed.returncode == 2 and "standard output is closed" in closed.stderr
    assert "Traceback" not in closed.stderr
    reader = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.close()  # the reader is gone before the table is written
    _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 0 and b"Traceback" not in stderr, stderr


def _device_like_dev_null(path: Path) -> bool:
    """A private character device node of /dev/null's kind (root only), never the real one."""
    import stat

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        return False
    return True


def test_a_device_or_a_pipe_as_output_is_written_into_not_replaced(tmp_path, server):
    """``-o /dev/null`` (to only check the inputs) or a named pipe another process reads:
    the file is written into it; renamed over it, it replaced the device (as root) or the
    pipe with a regular file."""
    import stat
    import threading

    assert run_harlem(tmp_path, "prog:fetch", "one.har", server_url=server.url).returncode == 0
    node = tmp_path / "null"
    commands = [["merge", "-q", "-o", str(node), "one.har"],
                ["show", "--no-open", "-o", str(node), "one.har"],
                ["prog:fetch", str(node)]]
    if _device_like_dev_null(node):
        for args in commands:
            result = run_harlem(tmp_path, *args, server_url=server.url)
            assert result.returncode == 0, (args, result.stderr)
            assert stat.S_ISCHR(os.lstat(node).st_mode), args
        agent = subprocess.run(
            [sys.executable, "-c", "pass"], cwd=tmp_path, capture_output=True, text=True,
            timeout=60, env=dict(os.environ, HARLEM_OUTPUT=str(node), PYTHONPATH=os.pathsep.join(
                [str(REPO_ROOT / "harlem_bootstrap"), str(REPO_ROOT)])))
        assert agent.returncode == 0 and stat.S_ISCHR(os.lstat(node).st_mode), agent.stderr
        node.unlink()
    os.mkfifo(node)
    for args in (commands[0], commands[2]):
        received: list = []
        reader = threading.Thread(target=lambda: received.append(node.read_bytes()))
        reader.start()
        result = run_harlem(tmp_path, *args, server_url=server.url)
        reader.join(30)
        assert result.returncode == 0, (args, result.stderr)
        assert stat.S_ISFIFO(os.lstat(node).st_mode), args
        import json

        assert len(check_har(json.loads(received[0]))["log"]["entries"]) == 2, args
    # a pipe nobody reads: said at once (waiting for a reader would hang the program's exit)
    unread = run_harlem(tmp_path, *commands[0])
    assert unread.returncode == 2 and "a named pipe that nobody reads" in unread.stderr


def test_show_refuses_to_write_its_report_over_the_har_it_shows(tmp_path, server):
    assert run_harlem(tmp_path, "prog:fetch", "trace.har", server_url=server.url).returncode == 0
    before = (tmp_path / "trace.har").read_bytes()
    for output in ("trace.har", "../" + tmp_path.name + "/trace.har"):
        result = run_harlem(tmp_path, "show", "--no-open", "-o", output, "trace.har")
        assert result.returncode == 2
        assert "it is the HAR file being shown" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert (tmp_path / "trace.har").read_bytes() == before


def _deep_har(depth: int) -> dict:
    """A valid HAR whose entry holds a chain of ``depth`` Chrome ``_initiator`` parents."""
    stack: dict = {"callFrames": []}
    for _ in range(depth):
        stack = {"description": "Promise.then", "callFrames": [], "parent": stack}
    entry = {"startedDateTime": "2024-01-01T00:00:00.000Z", "time": 1,
             "request": {"method": "GET", "url": "https://example.com/", "httpVersion": "HTTP/1.1",
                         "cookies": [], "headers": [], "queryString": [], "headersSize": -1,
                         "bodySize": 0},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                          "cookies": [], "headers": [],
                          "content": {"size": 0, "mimeType": "text/plain"}, "redirectURL": "",
                          "headersSize": -1, "bodySize": 0},
             "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0},
             "_initiator": {"type": "script", "stack": stack}}
    return {"log": {"version": "1.2", "creator": {"name": "chrome", "version": "1"},
                    "pages": [], "entries": [entry]}}


def test_deeply_nested_hars_are_merged_or_refused_in_one_line(tmp_path):
    """A long chain of Chrome initiator parents: merged past what orjson reads and writes
    (255 levels, fewer in old releases); past what any JSON reader here takes, one line and
    exit 2 from merge and repair (they were tracebacks)."""
    import json

    (tmp_path / "deep300.har").write_text(json.dumps(_deep_har(300)))
    for indent in ([], ["-i", "2"], ["-i", "3"]):  # (orjson indents 2 itself: it stopped too)
        merged = run_harlem(tmp_path, "merge", "-q", *indent, "-o", "out.har", "deep300.har")
        assert merged.returncode == 0, (indent, merged.stderr)
        (entry,) = json.loads((tmp_path / "out.har").read_text())["log"]["entries"]
        assert entry["_initiator"] == _deep_har(300)["log"]["entries"][0]["_initiator"]
    # (written by hand: json.dumps cannot write it either)
    deep = '{"description":"Promise.then","callFrames":[],"parent":' * 50_000 + \
        '{"callFrames":[]}' + "}" * 50_000
    (tmp_path / "deep.har").write_text(json.dumps(_deep_har(0)).replace(
        '{"callFrames": []}', deep))
    before = (tmp_path / "deep.har").read_bytes()
    for args in (["merge", "-o", "out2.har", "deep.har"], ["repair", "deep.har"]):
        result = run_harlem(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "deep.har").read_bytes() == before  # repair cut no entry it cannot read
    repaired = run_harlem(tmp_path, "repair", "deep300.har")
    assert repaired.returncode == 0 and "already valid (1 entries)" in repaired.stderr


def test_a_bad_variable_beside_harlem_output_is_said_once_by_the_command(tmp_path, server):
    """With HARLEM_OUTPUT exported, the agent in harlem's own command also failed on a bad
    HARLEM_* value and warned at exit: a second line (and a warning from `harlem show`, which
    reads no settings). A blank HARLEM_OUTPUT is not the `harlem` command's output either."""
    assert run_harlem(tmp_path, "prog:fetch", "a.har", server_url=server.url).returncode == 0
    bad = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "harlem_bootstrap"),
                                                       str(REPO_ROOT)]),
               TARGET_URL=server.url, HARLEM_OUTPUT=str(tmp_path / "shell.har"),
               HARLEM_INDENT="wide")
    commands = {"fn": ([sys.executable, "-m", "harlem", "prog:fetch", "b.har"], 2),
                "run": ([sys.executable, "-m", "harlem.cli.run", "-o", "c.har", "--",
                         sys.executable, "-c", "pass"], 2),
                "show": ([sys.executable, "-m", "harlem", "show", "--text", "a.har"], 0)}
    for name, (command, code) in commands.items():
        result = subprocess.run(command, cwd=tmp_path, env=bad, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == code, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == (1 if code else 0), (name, lines)
        assert all("HARLEM_INDENT: invalid value 'wide'" in line for line in lines), lines
    blank = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server.url, HARLEM_OUTPUT=" ")
    result = subprocess.run([sys.executable, "-m", "harlem", "prog:fetch", "d.har", "-q"],
                            cwd=tmp_path, env=blank, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(check_har(tmp_path / "d.har")["log"]["entries"]) == 2


def test_a_lone_surrogate_escape_from_another_tool_is_read(tmp_path):
    """A browser that cut a body inside an emoji writes "\\ud83d" alone: valid JSON that
    orjson refuses. show and merge read it, the half character as U+FFFD."""
    import json

    har = _deep_har(0)
    har["log"]["entries"][0]["response"]["content"]["text"] = "cut \ud83d"
    (tmp_path / "cut.har").write_text(json.dumps(har))  # ASCII, with the escape
    shown = run_harlem(tmp_path, "show", "--text", "cut.har")
    assert shown.returncode == 0, shown.stderr
    merged = run_harlem(tmp_path, "merge", "-q", "-o", "out.har", "cut.har")
    assert merged.returncode == 0, merged.stderr
    (entry,) = json.loads((tmp_path / "out.har").read_text("utf-8"))["log"]["entries"]
    assert entry["response"]["content"]["text"] == "cut \ufffd"


def test_repair_reads_a_valid_har_with_a_byte_order_mark(tmp_path, server):
    assert run_harlem(tmp_path, "prog:fetch", "a.har", server_url=server.url).returncode == 0
    marked = b"\xef\xbb\xbf" + (tmp_path / "a.har").read_bytes()
    (tmp_path / "a.har").write_bytes(marked)
    result = run_harlem(tmp_path, "repair", "a.har")
    assert result.returncode == 0 and "already valid (2 entries)" in result.stderr, result.stderr
    assert (tmp_path / "a.har").read_bytes() == marked


def test_a_process_the_function_forks_prints_no_summary(tmp_path, server):
    """The child ends through the same code as the parent, but records nothing and writes
    nothing: "harlem: 0 entries -> out.har" from it was untrue (and a second summary)."""
    result = run_harlem(tmp_path, "prog:forks", "out.har", server_url=server.url)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("entr") == 1, result.stderr
    assert "harlem: 1 entry" in result.stderr
    assert len(check_har(tmp_path / "out.har")["log"]["entries"]) == 1
