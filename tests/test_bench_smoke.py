"""The benchmark script still runs end to end (server process, a recorded run, the table).

Times are never asserted: this only keeps ``bench/run.py`` from rotting between real runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("requests")

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"
INSTRUCTIONS = RUN.with_name("instructions.py")


def test_a_tiny_run_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "requests", "--modes", "file",
         "--rounds", "1", "--count", "10"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert any("record_to_file" in row for row in rows), done.stdout
    assert any("unrecorded again (A/A" in row for row in rows), done.stdout  # the noise, shown
    assert "90 % interval" in rows[0], done.stdout
    assert "NOT RECORDED" not in done.stdout


def test_the_live_growth_section_prints_its_rows() -> None:
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--only", "live"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert any("add_entry" in row for row in rows), done.stdout
    assert any("a page of its own" in row for row in rows), done.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_print_their_table() -> None:
    done = subprocess.run(
        [sys.executable, str(INSTRUCTIONS), "--only", "requests", "--variants", "plain,file",
         "--count", "3", "--no-startup"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[2].strip() for row in rows[1:]] == ["unrecorded",
                                                               "record_to_file (default)"]
    assert all(" M " in row for row in rows[1:]), done.stdout
