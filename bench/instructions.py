"""What one request costs in CPU instructions, recorded and not: a measure the machine's load
cannot move.

    python bench/instructions.py                    # requests, aiohttp; file, live, agent
    python bench/instructions.py --only requests --variants plain,file --count 200 --no-startup

Wall-clock ratios on a shared machine move by ±0.15 between identical runs (see
docs/performance.md). ``valgrind --tool=callgrind`` counts the instructions a process runs
instead: the same work gives the same count, whatever else the machine does. Each variant runs
:mod:`bench.workloads` twice under callgrind, with 0 and with ``--count`` measured requests
(300, or 1000 for aiohttp's cheaper requests);
the difference divided by the count is one request's cost, start-up and exit cancelled out.
Threads are counted apart (``--separate-threads``), so the table shows what the program's own
thread pays (harlem's wrappers) next to everything the process ran (building the entries and
writing the file as well, which the builder does in pauses or when the recording stops; a
live file is written as the program runs, so its builder's share is paid during the requests).
The start-up rows count a whole ``python -c`` run with and without ``HARLEM_OUTPUT``, and
translate the difference into milliseconds of this machine's plain run.

The event loop's and the kernel's waiting is not an instruction: for aiohttp, whose parser is
C and whose time goes largely to system calls, instruction ratios are far higher than the
wall-clock ones. Needs ``valgrind`` on PATH; about 10 minutes for the defaults.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from launch import run_env, workload_run  # noqa: E402
from server import ServerProcess  # noqa: E402

WORKLOADS = {"requests": "requests, one Session, GET", "aiohttp": "aiohttp, one ClientSession, "
             "sequential GET", "aiohttp-gather": "aiohttp, gather, 50 at a time",
             "httpx": "httpx, one Client, GET"}
#: Measured requests per run: a collection of the whole heap (millions of instructions) lands
#: in one run or the other, so the cheaper a request, the more of them it takes to average it
#: out (300 aiohttp GETs moved the per-request count by up to 80 k, 1000 by a few k).
COUNTS = {"requests": 300, "httpx": 300, "aiohttp": 1000, "aiohttp-gather": 1000}
VARIANTS = {"plain": "unrecorded", "file": "record_to_file (default)",
            "live": "record_to_file(live=True)", "agent": "agent (HARLEM_OUTPUT)"}


def counted(command: List[str], env: Dict[str, str], folder: str) -> Tuple[int, int]:
    """(instructions of the main thread, of every thread) for one run of ``command``."""
    out = os.path.join(folder, "callgrind.out")
    for old in glob.glob(out + "*"):
        os.unlink(old)
    done = subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                           f"--callgrind-out-file={out}", "--trace-children=no", *command],
                          env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    per_thread: Dict[str, int] = {}
    for path in glob.glob(out + "-*"):
        with open(path) as file:
            for line in file:
                if line.startswith("summary:"):
                    per_thread[path.rsplit("-", 1)[1]] = int(line.split()[1])
                    break
    return per_thread.get("01", 0), sum(per_thread.values())


def measure(workload: str, variant: str, url: str, count: int, folder: str) -> Tuple[float, float]:
    """(main thread, whole process) instructions per request."""
    # Byte code written beforehand, or a start-up would also count compiling harlem's modules.
    base, env = workload_run(workload, variant, url, folder, write_bytecode=True)
    base += ["--warmup", "50"]
    # One run uncounted first: in a fresh checkout it compiles the byte code, which the run
    # with 0 requests would otherwise pay alone (a recorded variant read -11 % that way).
    subprocess.run(base + ["--count", "0"], env=env, check=True, capture_output=True)
    main0, all0 = counted(base + ["--count", "0"], env, folder)
    main1, all1 = counted(base + ["--count", str(count)], env, folder)
    return (main1 - main0) / count, (all1 - all0) / count


def startup_rows(folder: str, runs: int) -> List[str]:
    """``python -c pass`` and ``import requests``, plain and under the agent: instructions, and
    what the difference would take at this machine's speed (the plain run's median wall time
    scaled by the ratio of instructions)."""
    env = run_env(write_bytecode=True)
    agent = dict(env, HARLEM_OUTPUT=os.path.join(folder, "startup.har"))
    rows = []
    for code in ("pass", "import requests"):
        command = [sys.executable, "-c", code]
        subprocess.run(command, env=agent, check=True)  # writes harlem's byte code first
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True)
            times.append(time.perf_counter() - started)
        wall = statistics.median(times) * 1000
        plain = counted(command, env, folder)[1]
        active = counted(command, agent, folder)[1]
        extra = (active / plain - 1) * wall
        rows.append(f"| `python -c \"{code}\"` | {plain / 1e6:.1f} M | {active / 1e6:.1f} M | "
                    f"{(active / plain - 1) * 100:+.1f} % | {wall:.0f} ms | {extra:+.1f} ms |")
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="requests,aiohttp",
                        help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated, the first is the reference: " + ",".join(VARIANTS))
    parser.add_argument("--count", type=int, default=None,
                        help="measured requests per run (default: 300, 1000 for aiohttp)")
    parser.add_argument("--startup", action=argparse.BooleanOptionalAction, default=True,
                        help="also count the agent's start-up (default: yes)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts (apt-get install valgrind)")
        return 0
    workloads = [name.strip() for name in args.only.split(",") if name.strip()]
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    print("| workload | variant | program's thread | vs unrecorded | whole process "
          "| vs unrecorded |")
    print("|---|---|---|---|---|---|")
    with ServerProcess(cpu=None) as server, tempfile.TemporaryDirectory(
            prefix="harlem-instructions-") as folder:
        for workload in workloads:
            base_main = base_all = 0.0
            for variant in variants:
                print(f"  .. {workload} {variant}", file=sys.stderr, flush=True)
                own, whole = measure(workload, variant, server.url,
                                     args.count or COUNTS[workload], folder)
                if variant == variants[0]:
                    base_main, base_all = own, whole
                    cells = ["", ""]
                else:
                    cells = [f"{(own / base_main - 1) * 100:+.1f} %",
                             f"{(whole / base_all - 1) * 100:+.1f} %"]
                name = WORKLOADS[workload] if variant == variants[0] else ""
                print(f"| {name} | {VARIANTS[variant]} | {own / 1e6:.3f} M | {cells[0]} | "
                      f"{whole / 1e6:.3f} M | {cells[1]} |", flush=True)
        if args.startup:
            print("  .. start-up", file=sys.stderr, flush=True)
            print("\n| start-up | plain | under the agent | more | plain, wall clock "
                  "| the same share of it |")
            print("|---|---|---|---|---|---|")
            for row in startup_rows(folder, runs=10):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
