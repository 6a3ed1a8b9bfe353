"""What the agent costs a program's start-up: medians of interleaved runs, against the goals.

    python bench/startup.py                      # builds two fresh venvs (needs the index)
    python bench/startup.py --python H --plain-python P [--runs 20]

``H`` is an interpreter with harlem installed (so its ``harlem.pth`` is in site-packages) and
``requests``; ``P`` the same Python with the same packages but without harlem. Fresh venvs matter: an
interpreter whose site-packages pre-imports modules (``re``, ``typing``...) hides their cost.

Each round runs every case once, in turn, so that a busy machine slows them all alike; the
first round is a warm-up and is not counted. Two wall-clock times per run: *start-up*, from
just before the interpreter is started to the end of the program's code (which prints the
time: what the goals are about), and *whole*, exit included (the agent writes the HAR file at
exit, ``fsync`` included, so that a power cut never leaves a torn file behind).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
#: (name, interpreter key, code, agent on, the case it compares with, goal: ms over that case).
#: An installed but inactive harlem has no goal of its own: it should be lost in the noise.
CASES: List[Tuple[str, str, str, bool, Optional[str], Optional[float]]] = [
    ("python -c pass, plain", "plain", "pass", False, None, None),
    ("  harlem installed, inactive", "harlem", "pass", False, "python -c pass, plain", None),
    ("  HARLEM_OUTPUT set", "harlem", "pass", True, "python -c pass, plain", 15.0),
    ("import requests, plain", "plain", "import requests", False, None, None),
    ("  harlem installed, inactive", "harlem", "import requests", False, "import requests, plain",
     None),
    ("  under the agent", "harlem", "import requests", True, "import requests, plain", 25.0),
]


def make_venv(folder: Path, packages: List[str]) -> str:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *packages], check=True)
    return python


def without_harlem(python: str) -> str:
    """Uninstall harlem (and its ``.pth``) but keep its dependencies, so that the two venvs
    differ by harlem alone: the "inactive" rows then measure harlem's ``.pth`` line, not the
    other distributions a venv happens to hold."""
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "harlem"], check=True)
    return python


def measure(pythons: Dict[str, str], output: str, runs: int) -> List[Tuple[float, float]]:
    """The medians of each case, (start-up, whole) in milliseconds, in the order of
    :data:`CASES`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HARLEM_", "PYTHON"))}
    active = dict(base, HARLEM_OUTPUT=output)
    times: List[List[Tuple[float, float]]] = [[] for _ in CASES]
    for round_number in range(runs + 1):
        for samples, (_, key, code, agent, _, _) in zip(times, CASES):
            program = f"{code}\nimport time\nprint(time.time())"
            launched = time.time()
            started = time.perf_counter()
            done = subprocess.run([pythons[key], "-c", program], env=active if agent else base,
                                  check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
            whole = time.perf_counter() - started
            if round_number:  # round 0 warms the caches up
                samples.append((float(done.stdout.split()[-1]) - launched, whole))
    return [(statistics.median(s[0] for s in samples) * 1000,
             statistics.median(s[1] for s in samples) * 1000) for samples in times]


def report(medians: List[Tuple[float, float]], pythons: Dict[str, str]) -> None:
    references = {case[0]: value for case, value in zip(CASES, medians) if case[4] is None}
    print(f"{'':34} {'start-up':>21}   {'whole, exit included':>21}")
    print(f"{'case':34} {'median':>9} {'delta':>10}   {'median':>9} {'delta':>10}   "
          "goal (start-up)")
    for (name, _, _, _, against, goal), (ready, whole) in zip(CASES, medians):
        if against is None:
            print(f"{name:34} {ready:6.1f} ms {'':10}   {whole:6.1f} ms")
            continue
        delta = ready - references[against][0]
        whole_delta = whole - references[against][1]
        if goal is None:
            aim = "~0 (noise)"
        else:
            aim = f"<= +{goal:g} ms: " + ("ok" if delta <= goal else "OVER")
        print(f"{name:34} {ready:6.1f} ms {delta:+7.1f} ms   {whole:6.1f} ms "
              f"{whole_delta:+7.1f} ms   {aim}")
    code = ("import sys, wrapt, requests; print('python', sys.version.split()[0], 'wrapt', "
            "wrapt.__version__, 'requests', requests.__version__)")
    versions = subprocess.run([pythons["harlem"], "-c", code], capture_output=True, text=True,
                              check=False).stdout.strip()
    print(f"\n{versions}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", help="an interpreter with harlem and requests installed")
    parser.add_argument("--plain-python", help="the same Python with requests, without harlem")
    parser.add_argument("--runs", type=int, default=20, help="rounds counted (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harlem-bench-") as folder:
        work = Path(folder)
        pythons = {
            "harlem": args.python or make_venv(work / "harlem", [str(REPO), "requests"]),
            "plain": args.plain_python or without_harlem(
                make_venv(work / "plain", [str(REPO), "requests"])),
        }
        report(measure(pythons, str(work / "out.har"), args.runs), pythons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
