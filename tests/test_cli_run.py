"""``harlem-run``: programs run unchanged (their arguments, pid and exit status) and recorded.

Invoked as ``python -m harlem.cli.run`` so that nothing needs installing; the program is another
``sys.executable`` process that harlem-run becomes (exec).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harlem.cli.run import UsageError, prepare
from tests.helpers import check_har
from tests.test_agent import (BOOTSTRAP, REPO, REQUESTS, clean_env, entries, run, summary_lines,
                              write_program)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="exec and POSIX paths")

HARLEM_RUN = [sys.executable, "-m", "harlem.cli.run"]


def cli_env(**variables: str) -> dict:
    """harlem importable (as if installed), no HARLEM_* variable inherited."""
    return clean_env(PYTHONPATH=str(REPO), **variables)


def test_the_program_gets_its_own_arguments_pid_and_exit_status(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, """
        import os
        fetch(1)
        print(os.getpid(), sys.argv[2:])
        sys.exit(5)
    """)
    out = tmp_path / "out.har"
    process = subprocess.Popen(
        HARLEM_RUN + ["-o", str(out), "--", sys.executable, str(app), server.url, "-o", "x", "--y"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 5, stderr
    assert stdout == f"{process.pid} ['-o', 'x', '--y']\n"  # exec: harlem-run's pid is kept
    assert len(entries(check_har(out))) == 1
    assert summary_lines(stderr) == [f"harlem: 1 entry -> {out}"]


def test_python_dash_m_and_options_before_the_command(tmp_path, server):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_program(package, REQUESTS, "fetch(2)\n", name="server.py")
    result = run(HARLEM_RUN + ["-o", "out.har", "-i", "2", "-q", "--no-redact", "python", "-m",
                               "mypkg.server", server.url], cli_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q
    out = tmp_path / "out.har"  # relative to where harlem-run ran
    assert out.read_text().startswith('{\n  "log": {')
    assert len(entries(check_har(out))) == 2


def test_a_flag_overrides_its_variable_and_variables_are_inherited(tmp_path, server):
    app = write_program(tmp_path, REQUESTS, "fetch(1)\n")
    out = tmp_path / "from-env.har"
    env = cli_env(HARLEM_OUTPUT=str(out), HARLEM_INDENT="not a number", HARLEM_QUIET="1")
    result = run(HARLEM_RUN + ["--indent", "4", sys.executable, str(app), server.url], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert out.read_text().startswith('{\n    "log": {')
    assert len(entries(check_har(out))) == 1


def test_a_launcher_before_python_changes_nothing(tmp_path, server):
    write_program(tmp_path, REQUESTS, """
        import subprocess
        fetch(1, "top")
        subprocess.run([sys.executable, "-c", "import requests, sys; "
                        "requests.get(sys.argv[1] + '/json?child=0').content", URL], check=True)
    """)
    out = tmp_path / "out.har"
    command = f"env {sys.executable} app.py {server.url}; exit $?"  # sh, then python, not exec
    result = run(HARLEM_RUN + ["-o", str(out), "sh", "-c", command], cli_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(entries(check_har(out))) == 2
    assert summary_lines(result.stderr) == [f"harlem: 2 entries -> {out}"]


@pytest.mark.parametrize("args, env, message", [
    ([], {}, "harlem-run: error: missing command"),
    (["-o", "{tmp}/out.har", "--"], {}, "harlem-run: error: missing command"),
    (["-o", "{tmp}/out.har", "--indent", "wide", "{python}", "{app}"], {},
     "harlem-run: error: --indent: invalid value 'wide'"),
    (["-o", "{tmp}/out.har", "{python}", "{app}"], {"HARLEM_MAX_BODY_SIZE": "lots"},
     "harlem-run: error: HARLEM_MAX_BODY_SIZE: invalid value 'lots'"),
    (["-o", "{tmp}/out.har", "-r", "5", "{python}", "{app}"], {},
     "harlem-run: error: --retention-seconds"),
    (["{python}", "{app}"], {}, "harlem-run: error: output: missing"),
    (["-o", "{tmp}/missing/out.har", "{python}", "{app}"], {},
     "harlem-run: error: output: cannot write"),
    (["-o", "{tmp}", "{python}", "{app}"], {}, "harlem-run: error: output: cannot write"),
    (["-o", "{tmp}/out.har", "no-such-command-here"], {},
     "harlem-run: error: command not found: no-such-command-here"),
    (["-o", "{tmp}/out.har", "./no/such/program"], {},
     "harlem-run: error: command not found: ./no/such/program"),
    (["-o", "{tmp}/out.har", "{app}"], {}, "harlem-run: error: command is not executable"),
    (["--bogus", "{python}", "{app}"], {}, "harlem-run: error: unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_runs(tmp_path, args, env, message):
    marker = tmp_path / "ran"
    app = write_program(tmp_path, f"open({str(marker)!r}, 'w').close()\n")
    values = {"tmp": str(tmp_path), "python": sys.executable, "app": str(app)}
    result = run(HARLEM_RUN + [arg.format(**values) for arg in args], cli_env(**env), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out.har").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run(HARLEM_RUN + ["-o", str(locked / "out.har"), sys.executable, "-c", "pass"],
                 cli_env())
    assert result.returncode == 2
    assert result.stderr.startswith("harlem-run: error: output: cannot write")


# --- how the program's environment is built (no process started) ---------------------------------


def test_the_environment_starts_a_new_recording_with_an_absolute_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, command, env = prepare(["-o", "out.har", "-l", "python3", "app.py", "-l"],
                                 {"PATH": os.environ["PATH"], "HARLEM_TOP_PID": "1"})
    assert command == ["python3", "app.py", "-l"]
    assert Path(path).name.startswith("python3") and os.path.isabs(path)
    assert env["HARLEM_OUTPUT"] == str(tmp_path / "out.har")
    assert env["HARLEM_LIVE"] == "1"
    assert "HARLEM_TOP_PID" not in env  # the program's first Python process will be the top


@pytest.mark.parametrize("current, expected", [
    (None, "{ours}"),
    ("", "{ours}"),
    ("/a", "{ours}:/a"),
    ("{ours}:/a:{ours}", "{ours}:/a"),
    ("/a::/b", "{ours}:/a::/b"),  # the program's own empty entry (the current folder) stays
])
def test_pythonpath_gets_the_bootstrap_first_once(tmp_path, current, expected):
    environ = {"PATH": os.environ["PATH"], "HARLEM_OUTPUT": str(tmp_path / "out.har")}
    if current is not None:
        environ["PYTHONPATH"] = current.format(ours=BOOTSTRAP).replace(":", os.pathsep)
    _, _, env = prepare(["python3"], environ)
    assert env["PYTHONPATH"] == expected.format(ours=BOOTSTRAP).replace(":", os.pathsep)


def test_prepare_refuses_a_missing_command():
    with pytest.raises(UsageError, match="missing command"):
        prepare(["-o", "x.har"], {})
