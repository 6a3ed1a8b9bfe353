"""How a measured run is started: one environment and one command line, shared by
``bench/run.py`` (wall clock) and ``bench/instructions.py`` (callgrind), so that both describe
the same runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: Where an agent run writes its HAR file, in the run's output folder.
AGENT_HAR = "agent.har"


def run_env(write_bytecode: bool = False) -> Dict[str, str]:
    """harlem from this tree, with the agent's bootstrap on the path (so that an agent run
    differs from an unrecorded one by ``HARLEM_OUTPUT`` alone), none of the caller's
    ``HARLEM_*``, and quiet. ``write_bytecode`` drops ``PYTHONDONTWRITEBYTECODE``: harlem's
    byte code is then written once, as an installed package's is at install time, instead of
    compiled again in every run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["HARLEM_QUIET"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "harlem_bootstrap"), str(REPO),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def workload_run(workload: str, mode: str, url: str, out: str, python: str = sys.executable,
                 write_bytecode: bool = False) -> Tuple[List[str], Dict[str, str]]:
    """The command line and environment of one run of ``bench/workloads.py``. The agent's
    mode is an unrecorded run with ``HARLEM_OUTPUT`` set (to :data:`AGENT_HAR` in ``out``)."""
    env = run_env(write_bytecode)
    if mode == "agent":
        env["HARLEM_OUTPUT"] = os.path.join(out, AGENT_HAR)
    command = [python, str(BENCH / "workloads.py"), workload,
               "plain" if mode == "agent" else mode, "--url", url, "--out", out]
    return command, env
