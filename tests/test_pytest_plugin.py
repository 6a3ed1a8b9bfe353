"""The pytest plugin, exercised by running real test files in a pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harlem.pytest_plugin import har_file_name
from tests.helpers import REPO_ROOT, check_har

TESTS = '''
import os, requests, pytest

URL = os.environ["TARGET_URL"]

def test_passes():
    requests.get(URL + "/json?passing")

def test_fails():
    requests.get(URL + "/status/404")
    assert False, "deliberate"

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    requests.get(URL + f"/json?n={n}")

def test_fixture(har):
    requests.post(URL + "/echo", json={"a": 1})
    assert har.entries[-1]["request"]["postData"]["text"] == '{"a": 1}'
    requests.get(URL + "/status/201")
    assert har.entries[-1]["response"]["status"] == 201
    assert len(har.entries) == 2
'''

ASYNC_TESTS = '''
import os, aiohttp, pytest

URL = os.environ["TARGET_URL"]

@pytest.mark.asyncio
async def test_asyncio(har):
    async with aiohttp.ClientSession() as session:
        async with session.get(URL + "/json?asyncio") as response:
            await response.read()
    assert har.entries[-1]["request"]["url"].endswith("asyncio")

@pytest.mark.anyio
async def test_anyio(har):
    async with aiohttp.ClientSession() as session:
        async with session.get(URL + "/json?anyio") as response:
            await response.read()
    assert har.entries[-1]["request"]["url"].endswith("anyio")

@pytest.fixture
def anyio_backend():
    return "asyncio"
'''


def plugin_installed() -> bool:
    found = entry_points()
    # Python 3.9's entry_points() is a dict of groups; 3.10 and later select by keyword.
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", ())
    return any(ep.name == "harlem" for ep in group)


def run_pytest(tmp_path: Path, server_url: str, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_traffic.py").write_text(textwrap.dedent(source))
    plugin = [] if plugin_installed() else ["-p", "harlem.pytest_plugin"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TARGET_URL=server_url)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin, *args,
                           "test_traffic.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_har_dir_keeps_only_failing_tests_by_default(tmp_path, server):
    result = run_pytest(tmp_path, server.url, TESTS, "--har", "hars")
    assert "1 failed, 4 passed" in result.stdout, result.stdout + result.stderr
    files = os.listdir(tmp_path / "hars")
    assert files == [har_file_name("test_traffic.py::test_fails")]
    har = check_har(tmp_path / "hars" / files[0])
    assert [e["response"]["status"] for e in har["log"]["entries"]] == [404]
    # the failure report shows the file and a table of the test's requests
    assert "harlem: HTTP traffic of this test" in result.stdout
    assert files[0] in result.stdout and "/status/404" in result.stdout


def test_a_har_path_that_is_a_file_is_a_usage_error(tmp_path, server):
    """Said at once, as pytest says a bad option: not an internal error at the first failure
    that stops the session."""
    (tmp_path / "hars").write_text("not a folder")
    result = run_pytest(tmp_path, server.url, TESTS, "--har", "hars")
    assert result.returncode == 4  # pytest's usage error
    assert "--har: 'hars' is not a folder" in result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr


def test_har_keep_all_writes_one_file_per_test(tmp_path, server):
    result = run_pytest(tmp_path, server.url, TESTS, "--har", "hars", "--har-keep", "all")
    assert "1 failed, 4 passed" in result.stdout, result.stdout + result.stderr
    files = sorted(os.listdir(tmp_path / "hars"))
    assert len(files) == 5
    for name in files:
        check_har(tmp_path / "hars" / name)
    passing = check_har(tmp_path / "hars" / har_file_name("test_traffic.py::test_passes"))
    assert [e["request"]["url"] for e in passing["log"]["entries"]] == [server.url + "/json?passing"]


def test_xdist_workers_write_separate_files(tmp_path, server):
    pytest.importorskip("xdist")
    result = run_pytest(tmp_path, server.url, TESTS, "-n", "2", "--har", "hars", "--har-keep", "all")
    assert "1 failed, 4 passed" in result.stdout, result.stdout + result.stderr
    files = os.listdir(tmp_path / "hars")
    assert len(files) == 5
    urls = [check_har(tmp_path / "hars" / f)["log"]["entries"] for f in files]
    assert sorted(len(entries) for entries in urls) == [1, 1, 1, 1, 2]  # the fixture test makes two


def test_har_fixture_works_without_the_option_and_with_async_tests(tmp_path, server):
    pytest.importorskip("pytest_asyncio")
    pytest.importorskip("anyio")
    result = run_pytest(tmp_path, server.url, ASYNC_TESTS)
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    assert not (tmp_path / "hars").exists()


def test_unused_plugin_imports_nothing_else(tmp_path):
    code = ("import sys, harlem.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith('harlem') and m != 'harlem.pytest_plugin'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert out.stdout.strip() == "['harlem', 'harlem._version']", out.stderr


def test_file_names_are_safe_and_unique():
    a = har_file_name("tests/test_x.py::test_a[http://x/?a=1]")
    b = har_file_name("tests/test_x.py::test_a[http://x/?a=2]")
    assert a != b and "/" not in a and ":" not in a and a.endswith(".har")


def test_a_test_that_changes_directory_does_not_move_the_har_files(tmp_path, server):
    """``--har hars`` is the folder where pytest was started, whatever a test does with the
    working directory (one that does not change it back sent its file, and every later
    test's, into its own folder)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = TESTS + textwrap.dedent(f'''
        def test_goes_elsewhere():
            os.chdir({str(elsewhere)!r})
            requests.get(URL + "/status/500")
            assert False
        ''')
    result = run_pytest(tmp_path, server.url, source, "--har", "hars")
    assert "2 failed, 4 passed" in result.stdout, result.stdout + result.stderr
    assert sorted(os.listdir(tmp_path / "hars")) == sorted(
        har_file_name(f"test_traffic.py::{name}") for name in ("test_fails", "test_goes_elsewhere"))
    assert not (elsewhere / "hars").exists()
    assert str(tmp_path / "hars") in result.stdout  # the report names where the file is


def test_the_builder_needs_no_import_while_tests_run(tmp_path, server):
    """What the builder thread imports is imported before the first test, on pytest's main
    thread: pytest compiles harlem's modules through assertion rewriting, and CPython 3.11's
    ast is not thread-safe (a first import on the builder thread lost entries, now and then,
    to a SystemError)."""
    source = TESTS + textwrap.dedent('''
        import sys
        def test_ready(har):
            assert "harlem.har.build" in sys.modules
        ''')
    for args in (("--har", "hars"), ()):  # recording every test, or the har fixture alone
        result = run_pytest(tmp_path, server.url, source, "-k", "test_ready", *args)
        assert "1 passed" in result.stdout, result.stdout + result.stderr


def test_the_agent_and_the_plugin_in_one_run_give_no_warning(tmp_path, server):
    """``HARLEM_OUTPUT`` imports harlem before pytest loads the plugin: pytest must not warn
    that it cannot rewrite it (a run with warnings as errors stopped before any test)."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings =\n    error::pytest.PytestAssertRewriteWarning\n")
    (tmp_path / "test_traffic.py").write_text(textwrap.dedent('''
        import os, requests
        def test_one():
            requests.get(os.environ["TARGET_URL"] + "/json")
        '''))
    plugin = [] if plugin_installed() else ["-p", "harlem.pytest_plugin"]
    env = dict(os.environ, TARGET_URL=server.url, HARLEM_OUTPUT=str(tmp_path / "all.har"),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "harlem_bootstrap"), str(REPO_ROOT)]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin,
                             "test_traffic.py"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    assert "PytestAssertRewriteWarning" not in result.stdout + result.stderr
    assert [e["request"]["url"] for e in check_har(tmp_path / "all.har")["log"]["entries"]] == \
        [server.url + "/json"]
