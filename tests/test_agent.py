"""The agent, end to end: real programs under ``HARLEM_OUTPUT`` with the bootstrap on PYTHONPATH.

Every program is a file run by ``sys.executable`` in a subprocess against the loopback server;
every HAR it leaves is validated. The helpers at the top are shared with test_agent_children.py
and test_cli_run.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.helpers import check_har

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP = REPO / "harlem_bootstrap"
TIMEOUT = 60

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")


def clean_env(**variables: str) -> Dict[str, str]:
    """The test's environment without any HARLEM_* variable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.pop("PYTHONPATH", None)
    env.update(variables)
    return env


def agent_env(output: Path, **variables: str) -> Dict[str, str]:
    """What ``harlem-run`` would give a program: the bootstrap first on PYTHONPATH."""
    return clean_env(PYTHONPATH=os.pathsep.join([str(BOOTSTRAP), str(REPO)]),
                     HARLEM_OUTPUT=str(output), **variables)


def write_program(folder: Path, *sources: str, name: str = "app.py") -> Path:
    """A program made of ``sources``, each dedented on its own."""
    path = folder / name
    path.write_text("\n".join(textwrap.dedent(source) for source in sources))
    return path


def run(args: List[str], env: Dict[str, str], cwd: Optional[Path] = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def entries(har: Dict[str, Any]) -> List[Dict[str, Any]]:
    return har["log"]["entries"]


def urls(har: Dict[str, Any]) -> List[str]:
    return sorted(e["request"]["url"] for e in entries(har))


def summary_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("harlem: ") and "->" in line]


def default_signals() -> None:
    """In the child, before it runs: the dispositions a program started from a terminal has.

    Ignored signals are inherited across exec, so a suite launched under ``nohup`` or as a
    shell's background job (SIGHUP and SIGINT ignored) would otherwise run these programs deaf
    to the very signals the tests send.
    """
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def start(args: List[str], env: Dict[str, str], cwd: Optional[Path] = None) -> subprocess.Popen:
    """A program that prints ``ready`` on stdout once it is waiting for a signal."""
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise AssertionError(f"program did not start: {line!r} {process.stderr.read()}")
    return process


#: ``fetch(count, tag)`` makes ``count`` requests to ``URL/json?<tag>=<n>`` with requests.
REQUESTS = """
import sys
import requests
URL = sys.argv[1] if len(sys.argv) > 1 else ""
def fetch(count, tag="main"):
    for number in range(count):
        requests.get(f"{URL}/json?{tag}={number}").content
"""


# --- activation --------------------------------------------------------------------------------


def test_a_program_without_http_library_leaves_an_empty_valid_har(tmp_path):
    app = write_program(tmp_path, "print('hello')\n")
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app)], agent_env(out))
    assert result.returncode == 0
    assert result.stdout == "hello\n"  # harlem never writes to stdout
    assert entries(check_har(out)) == []
    assert summary_lines(result.stderr) == [f"harlem: 0 entries -> {out}"]
    assert not (tmp_path / "out.har.parts").exists()


def test_requests_imported_late_and_from_a_thread_is_recorded(tmp_path, server):
    app = write_program(tmp_path, """
        import sys, threading, time
        URL = sys.argv[1]
        time.sleep(0.05)
        def worker():
            import requests
            requests.get(URL + "/json?thread=1").content
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        import requests
        requests.get(URL + "/text?main=1").content
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    har = check_har(out)
    assert urls(har) == [server.url + "/json?thread=1", server.url + "/text?main=1"]
    assert {e["_pid"] for e in entries(har)} == {har["log"]["entries"][0]["_pid"]}
    assert summary_lines(result.stderr) == [f"harlem: 2 entries -> {out}"]


def test_a_library_imported_before_activation_is_instrumented_at_once(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, """
        from harlem.agent.bootstrap import activate
        activate()
        activate()  # a second activation does nothing
        fetch(2)
    """)
    out = tmp_path / "out.har"
    env = clean_env(PYTHONPATH=str(REPO), HARLEM_OUTPUT=str(out))
    result = run([sys.executable, str(app), server.url], env)
    assert result.returncode == 0, result.stderr
    assert len(entries(check_har(out))) == 2
    assert len(summary_lines(result.stderr)) == 1


def test_aiohttp_is_recorded_too(tmp_path, server):
    app = write_program(tmp_path, """
        import asyncio, sys
        import aiohttp

        async def main(url):
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/json?aiohttp=0") as response:
                    await response.read()

        asyncio.run(main(sys.argv[1]))
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert urls(check_har(out)) == [server.url + "/json?aiohttp=0"]


def test_only_the_chosen_recorders_record(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, "fetch(1)\n")
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out, HARLEM_RECORDERS="aiohttp"))
    assert result.returncode == 0, result.stderr
    assert entries(check_har(out)) == []


def test_settings_reach_the_har(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, "fetch(1)\n")
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url],
                 agent_env(out, HARLEM_INDENT="2", HARLEM_QUIET="1", HARLEM_BODIES="0"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert out.read_text().startswith('{\n  "log": {')
    assert "text" not in entries(check_har(out))[0]["response"]["content"]


def test_a_bad_variable_is_one_warning_and_the_program_runs_unrecorded(tmp_path):
    """One line for the whole program, its child processes (which inherit the variable) too."""
    app = write_program(tmp_path, "import subprocess, sys\n"
                                  "for _ in range(2): subprocess.run([sys.executable, '-c', ''])\n"
                                  "print('ran')\n")
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app)], agent_env(out, HARLEM_INDENT="wide"))
    assert result.returncode == 0
    assert result.stdout == "ran\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "harlem: warning: not recording: HARLEM_INDENT: invalid value 'wide'")
    assert not out.exists()


def test_harlem_not_importable_is_one_warning_and_the_program_runs(tmp_path):
    """harlem-run's bootstrap on the PYTHONPATH of a Python that has no harlem installed.

    In a virtual environment (CI's), the base interpreter outside it is such a Python.
    """
    app = write_program(tmp_path, "print('ran')\n")
    env = clean_env(PYTHONPATH=str(BOOTSTRAP), HARLEM_OUTPUT=str(tmp_path / "out.har"))
    python = getattr(sys, "_base_executable", sys.executable)
    result = run([python, "-s", str(app)], env, cwd=tmp_path)
    if "harlem: warning" not in result.stderr:
        pytest.skip(f"harlem is installed in {python}")
    assert result.returncode == 0
    assert result.stdout == "ran\n"
    assert len(result.stderr.splitlines()) == 1


def test_without_harlem_output_nothing_is_imported(tmp_path):
    env = clean_env(PYTHONPATH=os.pathsep.join([str(BOOTSTRAP), str(REPO)]))
    code = "import sys; print(sorted(m for m in sys.modules if m.startswith('harlem')))"
    result = run([sys.executable, "-c", code], env)
    assert result.stdout == "[]\n"


#: Modules that cost milliseconds each in a fresh interpreter: activation must not import them.
HEAVY = {"typing", "re", "dataclasses", "enum", "signal", "threading", "json", "tempfile",
         "importlib.util", "inspect", "asyncio", "logging", "wrapt", "orjson", "datetime"}


def test_activation_imports_nothing_heavy(tmp_path):
    """The start-up budget, as a deterministic check: what activation adds to sys.modules."""
    code = "import sys; print(' '.join(sorted(sys.modules)))"
    plain = set(run([sys.executable, "-c", code], clean_env()).stdout.split())
    result = run([sys.executable, "-c", code], agent_env(tmp_path / "out.har"))
    assert result.returncode == 0, result.stderr
    added = set(result.stdout.split()) - plain
    assert "harlem.agent.bootstrap" in added
    assert not added & HEAVY, added & HEAVY
    assert not {m for m in added if m.startswith(("harlem.recording", "harlem.recorders",
                                                    "harlem.exporters", "harlem.pipeline"))}


# --- the user's own sitecustomize -----------------------------------------------------------------


def test_the_programs_own_sitecustomize_still_runs(tmp_path, server):
    custom = tmp_path / "custom"
    custom.mkdir()
    write_program(custom, """
        import os, sys
        os.environ["CUSTOMIZED"] = "yes"
    """, name="sitecustomize.py")
    app = write_program(tmp_path, REQUESTS, """
        import os, sitecustomize
        print(os.environ.get("CUSTOMIZED"), sitecustomize.__file__)
        fetch(1)
    """)
    out = tmp_path / "out.har"
    env = agent_env(out)
    env["PYTHONPATH"] += os.pathsep + str(custom)
    result = run([sys.executable, str(app), server.url], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["yes", str(custom / "sitecustomize.py")]
    assert len(entries(check_har(out))) == 1


def test_a_failing_sitecustomize_fails_as_python_reports_it(tmp_path, server):
    custom = tmp_path / "custom"
    custom.mkdir()
    write_program(custom, "raise RuntimeError('broken customization')\n", name="sitecustomize.py")
    app = write_program(tmp_path, REQUESTS, "fetch(1)\n")
    plain = run([sys.executable, str(app), server.url], clean_env(PYTHONPATH=str(custom)))
    out = tmp_path / "out.har"
    env = agent_env(out)
    env["PYTHONPATH"] += os.pathsep + str(custom)
    result = run([sys.executable, str(app), server.url], env)
    assert result.returncode == plain.returncode == 0
    expected = plain.stderr.splitlines()
    assert expected[0].startswith("Error in sitecustomize")
    assert result.stderr.splitlines()[:len(expected)] == expected
    assert len(entries(check_har(out))) == 1


# --- endings: the HAR is complete, the exit status is the program's own ---------------------------


ENDINGS = {
    "normal": ("", 0),
    "sys.exit": ("sys.exit(3)", 3),
    "exception": ("raise ValueError('boom')", 1),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", -signal.SIGINT),
    "os._exit": ("import os; os._exit(4)", 4),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_every_ending_leaves_a_complete_har_and_the_programs_exit_status(tmp_path, server, ending):
    statement, status = ENDINGS[ending]
    app = write_program(tmp_path, REQUESTS, "fetch(2)", statement)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == status, result.stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(result.stderr) == [f"harlem: 2 entries -> {out}"]


def waiting(count: int = 2) -> str:
    """Makes ``count`` requests, then prints ``ready`` and waits for a signal.

    It waits in short sleeps, as a program's event loop does: a Python-level signal handler
    (harlem's, or the program's own) runs only once the main thread is back in Python, and a
    signal that lands between Python's check and the start of a blocking call waits for that
    call to end (docs/agent.md, "Endings and signals"). On a loaded machine that instant is wide enough
    for a single 60 s sleep to swallow the signal.
    """
    return REQUESTS + f"""
fetch({count})
print("ready", flush=True)
import time
for _ in range(1200):
    time.sleep(0.05)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_leaves_a_complete_har_and_the_signal_status(tmp_path, server, signum):
    app = write_program(tmp_path, waiting())
    out = tmp_path / "out.har"
    process = start([sys.executable, str(app), server.url], agent_env(out))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signum, stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(stderr) == [f"harlem: 2 entries -> {out}"]


def test_a_handler_installed_after_harlem_replaces_it(tmp_path, server):
    app = write_program(tmp_path, """
        import signal, sys
        signal.signal(signal.SIGTERM, lambda *args: sys.exit(7))
    """, waiting())
    out = tmp_path / "out.har"
    process = start([sys.executable, str(app), server.url], agent_env(out))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 7, stderr
    assert len(entries(check_har(out))) == 2


def test_a_handler_installed_before_harlem_keeps_running(tmp_path, server):
    app = write_program(tmp_path, """
        import signal, sys
        def handler(signum, frame):
            sys.exit(8)
        signal.signal(signal.SIGTERM, handler)
        from harlem.agent.bootstrap import activate
        activate()
        assert signal.getsignal(signal.SIGTERM) is handler
    """, waiting())
    out = tmp_path / "out.har"
    env = clean_env(PYTHONPATH=str(REPO), HARLEM_OUTPUT=str(out))
    process = start([sys.executable, str(app), server.url], env)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 8, stderr
    assert len(entries(check_har(out))) == 2


def test_an_ignored_signal_stays_ignored(tmp_path):
    app = write_program(tmp_path, """
        import signal, sys
        print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)
    """)
    result = subprocess.run([sys.executable, str(app)], env=agent_env(tmp_path / "out.har"),
                            capture_output=True, text=True, timeout=TIMEOUT, check=False,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert result.stdout == "True\n", result.stderr


def test_a_live_recording_killed_with_sigkill_is_valid_on_disk(tmp_path, server):
    app = write_program(tmp_path, waiting(3))
    out = tmp_path / "out.har"
    process = start([sys.executable, str(app), server.url], agent_env(out, HARLEM_LIVE="1"))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:  # entries reach the disk from the builder thread
        if out.exists() and len(entries(check_har(out))) == 3:
            break
        time.sleep(0.02)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert len(entries(check_har(out))) == 3


# --- the .pth hook, in a real installation -------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtual environment with harlem pip-installed (its harlem.pth included).

    Built offline from this interpreter's setuptools and wheel when it has them, else with
    pip's build isolation (which needs the package index); skipped when neither works.
    """
    folder = tmp_path_factory.mktemp("venv") / "v"
    source = folder.parent / "source"  # pip builds in the source tree: keep the repository clean
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "tests", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder)],
                   check=True, timeout=120)
    python = folder / "bin" / "python"
    # --system-site-packages gives the *base* interpreter's packages; when this suite runs in a
    # venv (as in CI), point the new venv at this interpreter's too, after its own site-packages,
    # so requests/wrapt/orjson are found and the freshly installed harlem comes first.
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(own) / "harlem-test-parent.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    offline = importlib.util.find_spec("wheel") is not None
    options = ["--no-build-isolation", "--no-index"] if offline else []
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", *options, str(source)],
        capture_output=True, text=True, timeout=300, cwd=folder, check=False,
        env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"))
    if result.returncode:
        pytest.skip(f"cannot pip-install harlem here: {result.stderr.strip().splitlines()[-1:]}")
    return python


@pytest.mark.slow
def test_the_pth_hook_in_an_installed_harlem(venv, tmp_path, server):
    code = "import harlem, os; print(os.path.dirname(harlem.__path__[0]))"
    site = run([str(venv), "-c", code], clean_env(), cwd=tmp_path).stdout.strip()
    assert (Path(site) / "harlem.pth").is_file()
    assert Path(site, "harlem.pth").read_text().count("\n") == 1

    # HARLEM_OUTPUT unset: no harlem module is imported at all
    code = "import sys; print([m for m in sys.modules if m.startswith('harlem')])"
    assert run([str(venv), "-c", code], clean_env(), cwd=tmp_path).stdout == "[]\n"

    # set: the program is recorded, in isolated mode too
    app = write_program(tmp_path, REQUESTS, "fetch(2)\n")
    out = tmp_path / "out.har"
    result = run([str(venv), "-I", str(app), server.url], clean_env(HARLEM_OUTPUT=str(out)),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(result.stderr) == [f"harlem: 2 entries -> {out}"]

    # the .pth and harlem-run's PYTHONPATH together: one activation, one summary
    out.unlink()
    result = run([str(venv), "-m", "harlem.cli.run", "-o", str(out), str(venv), str(app),
                  server.url], clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(result.stderr) == [f"harlem: 2 entries -> {out}"]


def _blocked_signals(thread_id: int) -> set:
    """The signals a thread of this process blocks, from /proc (Linux)."""
    status = Path(f"/proc/self/task/{thread_id}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread masks from /proc")
def test_harlem_threads_leave_the_program_signals_to_its_own_threads(tmp_path, server):
    """A process-directed SIGTERM must not land in an idle harlem thread while main sleeps."""
    import requests

    from harlem import record_to_file

    before = _blocked_signals(threading.get_native_id())
    with record_to_file(tmp_path / "out.har", live=True, interval_seconds=0.05,
                        in_background="thread"):
        requests.get(server.url + "/json").content
        ours = [t for t in threading.enumerate() if t.name.startswith("harlem-")]
        names = {t.name for t in ours}
        assert {"harlem-builder", "harlem-export"} <= names, names
        for thread in ours:
            blocked = _blocked_signals(thread.native_id)
            assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP} <= blocked, thread.name
            assert signal.SIGSEGV not in blocked, thread.name  # faulthandler still works there
    assert _blocked_signals(threading.get_native_id()) == before


# --- endings found by an exploratory pass ----------------------------------------------------


@pytest.mark.parametrize("live", ["0", "1"])
def test_a_top_that_replaces_itself_by_exec_keeps_both_recordings(tmp_path, server, live):
    second = write_program(tmp_path, REQUESTS, "fetch(1, 'after')", name="second.py")
    app = write_program(tmp_path, REQUESTS, "fetch(1, 'before')", f"""
        import os
        os.execv(sys.executable, [sys.executable, {str(second)!r}, URL])
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out, HARLEM_LIVE=live))
    assert result.returncode == 0, result.stderr
    assert urls(check_har(out)) == [server.url + "/json?after=0", server.url + "/json?before=0"]
    assert not (tmp_path / "out.har.parts").exists()


def test_a_top_that_execs_a_program_that_does_not_record_leaves_its_file(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, "fetch(2)", """
        import os, shutil
        os.execv(shutil.which("true"), ["true"])
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert len(entries(check_har(out))) == 2


@pytest.mark.parametrize("call", ["os.execv(bad, [bad])", "os.execve(bad, [bad], os.environ)"])
def test_a_failed_exec_leaves_the_program_recording(tmp_path, server, call):
    """The exec fails (an executable whose interpreter is missing) and the program goes on:
    the file was written for the exec, and what follows is recorded too, into the same file,
    in a child process's part as well."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    body = f"""
        import os
        bad = {str(bad)!r}
        try:
            {call}
        except OSError:
            fetch(2, 'after')
    """
    child = write_program(tmp_path, REQUESTS, "fetch(1, 'child')", body, name="child.py")
    app = write_program(tmp_path, REQUESTS, "fetch(1, 'before')", body, f"""
        import subprocess
        subprocess.run([sys.executable, {str(child)!r}, URL], check=True)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert sorted(url.rsplit("?", 1)[1] for url in urls(check_har(out))) == [
        "after=0", "after=0", "after=1", "after=1", "before=0", "child=0"]
    assert not (tmp_path / "out.har.parts").exists()
    assert result.stderr.strip().splitlines()[-1].startswith("harlem: 6 entries")


def test_a_program_that_runs_another_with_its_own_output_gives_two_files(tmp_path, server):
    child = write_program(tmp_path, REQUESTS, "fetch(1, 'inner')", name="child.py")
    app = write_program(tmp_path, REQUESTS, "fetch(1, 'outer')", f"""
        import os, subprocess
        env = dict(os.environ, HARLEM_OUTPUT={str(tmp_path / "inner.har")!r})
        subprocess.run([sys.executable, {str(child)!r}, URL], env=env, check=True)
    """)
    out = tmp_path / "out.har"
    result = run([sys.executable, str(app), server.url], agent_env(out))
    assert result.returncode == 0, result.stderr
    assert urls(check_har(out)) == [server.url + "/json?outer=0"]
    assert urls(check_har(tmp_path / "inner.har")) == [server.url + "/json?inner=0"]


def test_a_closed_stderr_never_writes_into_harlems_files(tmp_path, server):
    """fd 2 closed before requests is imported: the program's later writes to fd 2 fail as
    they would without harlem, instead of landing in the spool (and the HAR)."""
    app = write_program(tmp_path, """
        import os
        os.close(2)
        """, REQUESTS, """
        failed = 0
        for number in range(3):
            fetch(1, f"n{number}")
            try:
                os.write(2, b"the program's own line\\n")
            except OSError:
                failed += 1
        print(failed)
    """)
    out = tmp_path / "out.har"
    for variables in ({}, {"HARLEM_LIVE": "1"}):
        result = run([sys.executable, str(app), server.url], agent_env(out, **variables))
        assert result.returncode == 0 and result.stdout == "3\n", variables
        assert len(entries(check_har(out))) == 3
        assert b"the program's own line" not in out.read_bytes()


@pytest.mark.parametrize("source", [
    "print('no HTTP library')",
    REQUESTS + "import httpx, aiohttp\nfetch(1)",
    REQUESTS + "import subprocess\nsubprocess.run([sys.executable, '-c', 'import requests'])\n"
               "fetch(1)",
], ids=["no-library", "three-libraries", "child"])
def test_an_output_folder_that_does_not_exist_is_one_warning(tmp_path, server, source):
    """The same line however many HTTP libraries (or processes) the program has: the folder
    is checked when the program starts, as harlem-run does."""
    pytest.importorskip("httpx")
    app = write_program(tmp_path, source)
    result = run([sys.executable, str(app), server.url], agent_env(tmp_path / "gone" / "out.har"))
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("harlem:")]
    folder = tmp_path / "gone"
    assert warnings == [f"harlem: warning: not recording: folder does not exist: {folder}"], \
        result.stderr


def test_a_ctrl_c_during_the_export_at_exit_waits_for_the_file(tmp_path, server):
    """A second Ctrl-C while a large recording is written must not cut the file short: it
    is written whole, then the signal ends the process, as Ctrl-C does."""
    app = write_program(tmp_path, REQUESTS, """
        import os, signal, threading
        for number in range(40):
            requests.get(f"{URL}/binary?size=500000&n={number}").content
        # fires while the agent writes the file at exit
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()
    """)
    out = tmp_path / "out.har"
    process = subprocess.run([sys.executable, str(app), server.url], env=agent_env(out),
                             capture_output=True, text=True, timeout=TIMEOUT,
                             preexec_fn=default_signals)
    assert process.returncode in (0, -signal.SIGINT), process.stderr
    assert f"{os.sep}harlem{os.sep}" not in process.stderr, process.stderr  # none of ours
    assert len(entries(check_har(out))) == 40


def test_the_last_export_runs_once_with_signals_held_and_a_failed_one_lets_them_through():
    """What the agent and ``harlem fn out.har`` end with: once, whichever ending calls it,
    Ctrl-C held while it writes; an export that raises must not leave Ctrl-C held for ever."""
    from harlem.agent.signals import ExportOnce

    seen = []

    def export() -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        raise RuntimeError("the disk went away")

    ending = ExportOnce(export)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError):
        ending.run()
    ending.run()
    assert ending.on_signal(signal.SIGTERM) is True  # done: nothing to wait for, let it kill
    assert len(seen) == 1 and seen[0] is not before  # held while it ran
    assert signal.getsignal(signal.SIGINT) is before and ending.done


GREENLETS = """
import sys
import requests  # imported first, then threading patched: the order gevent warns about
from gevent import monkey
monkey.patch_all()
import gevent

url = sys.argv[1]
answers = {}


def get(number):
    answers[number] = requests.get(f"{url}/echo?n={number}").json()["query"]


gevent.joinall([gevent.spawn(get, number) for number in range(30)])
print(sum(answers[number] != [["n", str(number)]] for number in range(30)))
"""


def test_greenlets_each_get_their_own_entries_whatever_the_patch_order(tmp_path, server):
    """gevent patched after requests was imported (the agent imports harlem's recorder with
    requests): each greenlet's entry holds its own answer, as the program sees it. A
    thread-local made before the patch is one for every greenlet: they mixed up each other's
    responses."""
    pytest.importorskip("gevent")
    output = tmp_path / "out.har"
    program = write_program(tmp_path, GREENLETS)
    done = run([sys.executable, "-W", "ignore", str(program), server.url], agent_env(output))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]  # the program got the right answers
    recorded = entries(check_har(output))
    assert len(recorded) == 30
    for entry in recorded:
        number = entry["request"]["queryString"][0]["value"]
        text = entry["response"]["content"]["text"]
        assert json.loads(text)["query"] == [["n", number]], (entry["request"]["url"], text)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_gevents_hub_waits_leaves_a_complete_har(tmp_path, server, signum):
    """Under gevent a signal handler runs in the hub when the program waits, where nothing may
    block: the export could not wait for the builder (BlockingSwitchOutError) and no file was
    written. What is queued is built in the handler instead."""
    pytest.importorskip("gevent")
    app = write_program(tmp_path, """
        from gevent import monkey
        monkey.patch_all()
    """, REQUESTS, """
        fetch(2)
        print("ready", flush=True)
        import time
        time.sleep(60)  # (gevent's: the hub waits in its event loop)
    """)
    out = tmp_path / "out.har"
    process = start([sys.executable, "-W", "ignore", str(app), server.url], agent_env(out))
    time.sleep(0.3)  # into the hub's wait
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signum, stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(stderr) == [f"harlem: 2 entries -> {out}"]


def test_a_signal_after_an_asyncio_loop_with_signal_handlers_closed_still_exports(
        tmp_path, server):
    """asyncio's add_signal_handler replaces harlem's handler, and its loop's close puts back
    the default action, not what it replaced: a SIGTERM after the loop, in the program's
    remaining work, killed it without writing the file."""
    app = write_program(tmp_path, REQUESTS, """
        import asyncio, signal

        async def main():
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
            fetch(2)

        asyncio.run(main())  # closing the loop removes its handler: SIG_DFL, by asyncio
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # harlem's, again
        print("ready", flush=True)
        import time
        for _ in range(1200):
            time.sleep(0.05)
    """)
    out = tmp_path / "out.har"
    process = start([sys.executable, str(app), server.url], agent_env(out))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGTERM, stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(stderr) == [f"harlem: 2 entries -> {out}"]
