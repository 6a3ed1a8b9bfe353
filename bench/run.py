"""What recording costs a program: harlem's overhead, side by side with the same work unrecorded.

    python bench/run.py              # the full run (about 20 minutes on 2 CPUs)
    python bench/run.py --quick      # fewer requests and rounds (under 2 minutes)
    python bench/run.py --peers      # also OpenTelemetry and vcrpy, in a venv made for them
    python bench/run.py --only requests,memory --modes file,agent

Method. A loopback server (:mod:`bench.server`) runs in its own process, pinned to the last
CPU, so that it never takes the measured program's GIL. Every run is a fresh process
(:mod:`bench.workloads`) doing one workload in one mode: recorded or not, each run starts alike,
and the agent and the peers are measured exactly as the library modes are. Rounds interleave
every variant of a workload (unrecorded first, unrecorded again as an A/A control, then each
mode, the order rotated each round), so a machine that slows down slows them all; the table
shows medians over rounds. Each run warms up before its clock starts. Ratios are recorded /
unrecorded:

* ``ratio``: wall-clock time of the measured requests with the recording running (the goal),
  with its 90 % interval: the rounds resampled (bootstrap), so that a reader sees how far this
  one run can be trusted. A verdict marked ``?`` has the goal inside that interval: the run
  cannot tell. An A/A row (the unrecorded runs again, as one more variant of every round)
  shows the noise itself: its true ratio is 1;
* ``start+stop``: from just before the recording starts to just after its file is written
  (for the agent: the whole process, interpreter start and exit included);
* ``CPU``: CPU time of every thread of the program (the builder thread included) during the
  measured requests: what the recording costs where the wall clock hides it in network waits,
  and the steadier figure on a busy machine.

Also measured: peak memory while fetching large bodies, whether a live file's cost per entry
grows with the file, the final export of a long recording, and the agent's start-up cost
(``bench/startup.py``). Everything is printed as Markdown tables, for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from launch import AGENT_HAR, workload_run  # noqa: E402
from server import ServerProcess  # noqa: E402

#: Workload -> goal for ``ratio`` (None: measured, no goal yet).
GOALS: Dict[str, Optional[float]] = {"requests": 1.05, "aiohttp": 1.10, "aiohttp-gather": 1.25,
                                     "httpx": None}
#: A live file's goal (an entry written as soon as it is built): its workload's goal where
#: that is looser.
LIVE_GOAL = 1.15
#: The A/A control: unrecorded runs once more, as a variant of its own.
CONTROL = "again"
WORKLOAD_LABELS = {
    "requests": "requests, one Session, sequential",
    "aiohttp": "aiohttp, one ClientSession, sequential",
    "aiohttp-gather": "aiohttp, gather, {concurrency} at a time",
    "httpx": "httpx, one Client, sequential",
}
MODES = ("file", "live", "interval", "thread", "process", "logger", "agent")
MODE_LABELS = {
    "plain": "unrecorded",
    CONTROL: "unrecorded again (A/A: the noise)",
    "file": "record_to_file (default)",
    "live": "record_to_file(live=True)",
    "interval": "record_to_file(interval_seconds=1)",
    "thread": 'record_to_file(in_background="thread")',
    "process": 'record_to_file(in_background="process")',
    "logger": "record_to_logger (FileHandler to /dev/null)",
    "agent": "agent (HARLEM_OUTPUT)",
    "otel": "peer: OpenTelemetry (SDK, in-memory exporter)",
    "vcr": 'peer: vcrpy (record_mode="all")',
}
PEER_MODES = ("otel", "vcr")
PEER_WORKLOADS = ("requests", "aiohttp", "aiohttp-gather")
PEER_PACKAGES = ("opentelemetry-sdk", "opentelemetry-instrumentation-requests",
                 "opentelemetry-instrumentation-aiohttp-client", "vcrpy")
#: Installed into the peers' venv at this interpreter's versions, so both sides run the same code.
PINNED = ("requests", "urllib3", "charset-normalizer", "idna", "certifi", "aiohttp", "yarl",
          "multidict", "frozenlist", "aiosignal", "aiohappyeyeballs", "propcache", "attrs")
MEMORY_GOAL_MIB = 150.0
LIVE_GROWTH_GOAL = 1.3
EXPORT_GOAL = 2.0
SECTIONS = ("requests", "aiohttp", "aiohttp-gather", "httpx", "memory", "live", "export",
            "startup")


class Plan:
    """How much of everything to do: the full run's sizes, or ``--quick``'s."""

    def __init__(self, quick: bool):
        self.count = 200 if quick else 2000
        # 9: one run of the same unrecorded workload can be 15 % off another on a shared VM
        self.rounds = 3 if quick else 9
        self.warmup = 10 if quick else 50
        self.concurrency = 50
        self.memory_count = 100 if quick else 2000
        self.live_count = 2000 if quick else 10_000
        self.live_window = self.live_count // 10
        self.export_count = 2000 if quick else 10_000
        self.export_rounds = 3 if quick else 5
        self.startup_runs = 0 if quick else 20


class Runner:
    """Starts one measured run (a :mod:`bench.workloads` process) and reads its result."""

    def __init__(self, url: str, out: str):
        self.url = url
        self.out = out

    def run(self, workload: str, mode: str, python: str = sys.executable,
            **options: Any) -> Dict[str, Any]:
        command, env = workload_run(workload, "plain" if mode == CONTROL else mode, self.url,
                                    self.out, python)
        for name, value in options.items():
            command += ["--" + name.replace("_", "-"), str(value)]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - started
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"{workload}/{mode} failed ({done.returncode}):\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["wall"] = wall
        if mode == "agent":
            result["entries"] = har_entry_count(os.path.join(self.out, AGENT_HAR))
        for name in os.listdir(self.out):  # recordings can be gigabytes: never keep them
            os.unlink(os.path.join(self.out, name))
        return result


def har_entry_count(path: str) -> int:
    """Entries in a compact HAR written by harlem, which puts each entry on a line of its own
    between a one-line head and a one-line tail (so this works on files of any size)."""
    if not os.path.exists(path):
        return 0
    newlines = 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(16 * 1024 * 1024), b""):
            newlines += block.count(b"\n")
    return max(0, newlines - 2)


# --- the measurements ------------------------------------------------------------------------


Samples = Dict[str, List[Dict[str, Any]]]


def interleaved(runner: Runner, workload: str, variants: Sequence[str], rounds: int,
                options: Dict[str, Any], python: str = sys.executable) -> Samples:
    """``rounds`` rounds of every variant, the order rotated each round."""
    samples: Samples = {variant: [] for variant in variants}
    for number in range(rounds):
        order = list(variants[number % len(variants):]) + list(variants[:number % len(variants)])
        times = []
        for variant in order:
            result = runner.run(workload, variant, python, **options)
            samples[variant].append(result)
            times.append(f"{variant} {result['block']:.2f}s")
        progress(f"{workload} round {number + 1}/{rounds}: " + ", ".join(times))
    return samples


def median_of(samples: List[Dict[str, Any]], key: str) -> float:
    return statistics.median(sample[key] for sample in samples)


def goal_of(workload: str, mode: str) -> Optional[float]:
    """The goal a mode's ``ratio`` is held to (None: none, as for the peers and the control)."""
    goal = GOALS.get(workload)
    if goal is None or mode in PEER_MODES or mode == CONTROL:
        return None
    return max(goal, LIVE_GOAL) if mode == "live" else goal


def ratio_interval(plain: List[Dict[str, Any]], runs: List[Dict[str, Any]],
                   draws: int = 2000) -> "tuple[float, float]":
    """The 90 % bootstrap interval of median(runs) / median(plain) over the rounds.

    Rounds are drawn with replacement, a round's two runs together (they ran side by side);
    seeded, so that the same samples always print the same interval.
    """
    rounds = list(zip(plain, runs))
    chance = random.Random(0)
    ratios = []
    for _ in range(draws):
        drawn = [rounds[chance.randrange(len(rounds))] for _ in rounds]
        ratios.append(statistics.median(run["block"] for _, run in drawn)
                      / statistics.median(base["block"] for base, _ in drawn))
    ratios.sort()
    return ratios[int(0.05 * (draws - 1))], ratios[int(0.95 * (draws - 1))]


def verdict_of(ratio: float, interval: "tuple[float, float]", goal: Optional[float]) -> str:
    """PASS or MISS by the median; with ``?`` when the interval holds the goal (noise decides)."""
    if goal is None:
        return ""
    low, high = interval
    if high <= goal:
        return "PASS"
    if low > goal:
        return "MISS"
    return "PASS?" if ratio <= goal else "MISS?"


def throughput_rows(workload: str, samples: Samples, plan: Plan, label: str,
                    base_label: str = MODE_LABELS["plain"]) -> List[List[str]]:
    """One row for the unrecorded runs (``plain``), then one per mode, against them."""
    plain = samples["plain"]
    rows = []
    block = median_of(plain, "block")
    rows.append([label, base_label, f"{block * 1000:.0f} ms",
                 f"{block / plan.count * 1e6:.0f} µs/req", "", "", "", "", "", ""])
    for mode, runs in samples.items():
        if mode == "plain":
            continue
        goal = goal_of(workload, mode)
        median = median_of(runs, "block")
        ratio = median / block
        interval = ratio_interval(plain, runs)
        whole_key = "wall" if mode == "agent" else "session"
        whole = median_of(runs, whole_key) / median_of(plain, whole_key)
        cpu = median_of(runs, "cpu") / median_of(plain, "cpu")
        recorded = mode == CONTROL or min(run["entries"] for run in runs) >= plan.count
        verdict = verdict_of(ratio, interval, goal) if recorded else "NOT RECORDED"
        rows.append(["", MODE_LABELS[mode], f"{median * 1000:.0f} ms",
                     f"{(median - block) / plan.count * 1e6:+.0f} µs/req",
                     f"{ratio:.3f}", f"{interval[0]:.2f}-{interval[1]:.2f}",
                     f"<= {goal:.2f}" if goal else "", verdict, f"{whole:.3f}", f"{cpu:.3f}"])
    return rows


def memory_rows(runner: Runner, modes: Sequence[str], plan: Plan) -> List[List[str]]:
    """Peak RSS of one process per mode fetching ``memory_count`` bodies of 1 MiB."""
    results = {}
    for mode in ("plain",) + tuple(modes):
        results[mode] = runner.run("large", mode, count=plan.memory_count, warmup=5)
        progress(f"memory {mode}: {results[mode]['maxrss_mib']:.0f} MiB, "
                 f"{results[mode]['wall']:.1f}s")
    plain = results["plain"]["maxrss_mib"]
    rows = [[MODE_LABELS["plain"], f"{plain:.0f} MiB", "", "", "", ""]]
    for mode in modes:
        result = results[mode]
        delta = result["maxrss_mib"] - plain
        verdict = "PASS" if delta <= MEMORY_GOAL_MIB else "MISS"
        if result["entries"] < plan.memory_count:
            verdict = "NOT RECORDED"
        note = ""
        if mode == "process":  # an export process still running at exit was never reaped
            child = result["children_maxrss_mib"]
            note = (f"export process: {child:.0f} MiB" if child else
                    "export process still writing when the recording stopped")
        rows.append([MODE_LABELS[mode], f"{result['maxrss_mib']:.0f} MiB", f"{delta:+.0f} MiB",
                     f"<= +{MEMORY_GOAL_MIB:.0f} MiB", verdict, note])
    return rows


def live_rows(runner: Runner, plan: Plan, with_requests: bool) -> List[List[str]]:
    """Median cost per entry over the first and the last ``live_window`` entries (means too:
    a cost that grows only now and then shows in them)."""
    window = plan.live_window
    runs = [("built entries into LiveFileHarExporter.add_entry",
             runner.run("live-feed", "plain", count=plan.live_count)["times"]),
            ("the same, each in a page of its own (add_page + add_entry)",
             runner.run("live-pages", "plain", count=plan.live_count)["times"])]
    progress("live growth: exporter fed directly")
    if with_requests:
        real = runner.run("live-requests", "live", count=plan.live_count, warmup=plan.warmup)
        runs.append(("requests GETs under live=True, end to end", real["times"]))
        progress("live growth: real requests")
        # The same loop with nothing recorded, right after: what the machine's own drift over
        # a run this long does to the same ratio (no goal: nothing of harlem's runs in it).
        control = runner.run("live-requests", "plain", count=plan.live_count,
                             warmup=plan.warmup)
        runs.append((CONTROL_LIVE, control["times"]))
        progress("live growth: the same requests unrecorded")
    rows = []
    for label, times in runs:
        first, last = times[:window], times[-window:]
        ratio = statistics.median(last) / statistics.median(first)
        goal, verdict = f"<= {LIVE_GROWTH_GOAL}", "PASS" if ratio <= LIVE_GROWTH_GOAL else "MISS"
        if label == CONTROL_LIVE:
            goal = verdict = ""
        rows.append([label, f"{statistics.median(first) * 1e6:.1f} µs",
                     f"{statistics.median(last) * 1e6:.1f} µs", f"{ratio:.2f}", goal, verdict,
                     f"{statistics.fmean(first) * 1e6:.1f} -> {statistics.fmean(last) * 1e6:.1f} µs"])
    return rows


#: The live growth section's control row.
CONTROL_LIVE = "the same requests unrecorded (the machine's drift)"


def export_rows(runner: Runner, plan: Plan) -> List[List[str]]:
    result = runner.run("export", "plain", count=plan.export_count, rounds=plan.export_rounds)
    ratio = result["harlem"] / result["by_hand"]
    return [[f"{plan.export_count} entries, {result['size_mib']:.1f} MiB",
             f"{result['harlem'] * 1000:.0f} ms", f"{result['by_hand'] * 1000:.0f} ms",
             f"{ratio:.2f}", f"<= {EXPORT_GOAL:g}", "PASS" if ratio <= EXPORT_GOAL else "MISS"]]


def startup_text(plan: Plan) -> str:
    script = BENCH / "startup.py"
    if not script.exists():
        return "(bench/startup.py is not there: skipped)"
    progress("start-up: bench/startup.py (builds two fresh venvs)")
    done = subprocess.run([sys.executable, str(script), "--runs", str(plan.startup_runs)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return f"bench/startup.py failed ({done.returncode}):\n{done.stderr[-2000:]}"
    return done.stdout.rstrip()


# --- the peers' venv -------------------------------------------------------------------------


def peers_python(folder: Path) -> str:
    """A venv with the peers and this interpreter's HTTP libraries, at the same versions (made
    once, reused while the wanted packages stay the same)."""
    pins = [f"{name}=={version_of(name)}" for name in PINNED if version_of(name) != "not installed"]
    wanted = "\n".join(pins + list(PEER_PACKAGES))
    python = folder / "bin" / "python"
    marker = folder / "harlem-bench-requirements.txt"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    progress(f"peers: creating {folder}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *wanted.splitlines()], check=True)
    marker.write_text(wanted)
    return str(python)


# --- printing ------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def table(header: Sequence[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
              for row in rows]
    return "\n".join(lines)


def version_of(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), "")
    except OSError:
        pass
    sys.path.insert(0, str(REPO))
    from harlem._version import __version__

    libraries = ", ".join(f"{name} {version_of(name)}" for name in
                          ("requests", "urllib3", "aiohttp", "httpx", "wrapt", "orjson"))
    return "\n".join([
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), {platform.system()} "
        f"{platform.release()}",
        f"- python {platform.python_version()} ({platform.python_implementation()}), "
        f"harlem {__version__}, {libraries}",
        f"- load average at start: {load()}",
    ])


def load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def busy() -> bool:
    """True when the last minute had more runnable tasks than CPUs: the benchmark itself keeps
    one to two busy (client, server), so other work competed with the runs."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def httpx_recorded() -> bool:
    """httpx is measured once harlem records it (its recorder is registered) and it is there."""
    import importlib.util

    sys.path.insert(0, str(REPO))
    from harlem.recorders import RECORDERS

    return "httpx" in RECORDERS and importlib.util.find_spec("httpx") is not None


# --- main --------------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds (CI)")
    parser.add_argument("--peers", action="store_true",
                        help="also measure OpenTelemetry and vcrpy (installs them into a venv)")
    parser.add_argument("--peers-venv", type=Path,
                        default=Path.home() / ".cache" / "harlem-bench" /
                        f"peers-py{sys.version_info[0]}.{sys.version_info[1]}",
                        help="where the peers' venv lives (made once, reused)")
    parser.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--modes", help="comma-separated recording modes: " + ",".join(MODES))
    parser.add_argument("--rounds", type=int, help="rounds per workload")
    parser.add_argument("--count", type=int, help="requests per run")
    parser.add_argument("--server-cpu", type=int, default=(os.cpu_count() or 1) - 1,
                        help="pin the server to this CPU (-1: do not pin; default: the last)")
    args = parser.parse_args(argv)
    plan = Plan(args.quick)
    plan.rounds = args.rounds or plan.rounds
    plan.count = args.count or plan.count
    sections = args.only.split(",") if args.only else list(SECTIONS)
    modes = tuple(args.modes.split(",")) if args.modes else MODES
    for name in sections:
        if name not in SECTIONS:
            parser.error(f"--only: unknown section {name!r}")
    for name in modes:
        if name not in MODES:
            parser.error(f"--modes: unknown mode {name!r}")
    if "httpx" in sections and not httpx_recorded():
        sections.remove("httpx")
        if args.only:
            print("httpx is not recorded by this harlem (or not installed): skipped")

    started = time.perf_counter()
    busy_at_start = busy()
    print(f"# harlem benchmark{' (--quick)' if args.quick else ''}\n")
    print(machine())
    pin = args.server_cpu if args.server_cpu >= 0 and (os.cpu_count() or 1) > 1 else None
    print(f"- server: separate process, {'pinned to CPU %d' % pin if pin is not None else 'not pinned'}"
          f"; {plan.count} requests per run, {plan.rounds} rounds, medians\n", flush=True)
    peers = peers_python(args.peers_venv) if args.peers else None

    with ServerProcess(cpu=pin) as server, tempfile.TemporaryDirectory(
            prefix="harlem-bench-") as out:
        runner = Runner(server.url, out)
        options: Dict[str, Any] = {"count": plan.count, "warmup": plan.warmup, "concurrency": plan.concurrency}
        workloads = [name for name in GOALS if name in sections]
        if workloads:
            rows: List[List[str]] = []
            for workload in workloads:
                samples = interleaved(runner, workload, ("plain", CONTROL) + modes, plan.rounds,
                                      options)
                label = WORKLOAD_LABELS[workload].format(concurrency=plan.concurrency)
                rows += throughput_rows(workload, samples, plan, label)
                if peers and workload in PEER_WORKLOADS:
                    peer_samples = interleaved(runner, workload, ("plain",) + PEER_MODES,
                                               plan.rounds, options, python=peers)
                    rows += throughput_rows(workload, peer_samples, plan, "",
                                            "unrecorded, in the peers' venv")
            print("## Throughput: recorded / unrecorded\n")
            print(table(["workload", "mode", "median", "per request (Δ)", "ratio",
                         "90 % interval", "goal", "", "start+stop", "CPU"], rows) + "\n",
                  flush=True)
            print("The interval resamples the rounds; `?`: the goal lies inside it, so this "
                  "run cannot tell\n(the A/A row is the unrecorded runs against themselves). "
                  f"A live file's goal is {LIVE_GOAL}, or its\nworkload's where that is looser.\n")
            if peers:
                print("Peers run in their own venv; their ratios are against the unrecorded "
                      "runs of that venv (same Python, same requests and aiohttp).\n")
        if "memory" in sections:
            print(f"## Peak memory: {plan.memory_count} responses of 1 MiB (requests), "
                  "one process each\n")
            print(table(["mode", "peak RSS", "vs unrecorded", "goal", "", "note"],
                        memory_rows(runner, modes, plan)) + "\n", flush=True)
        if "live" in sections:
            print(f"## Live file growth: first vs last {plan.live_window} of "
                  f"{plan.live_count} entries\n")
            print(table(["path", "first (median)", "last (median)", "ratio", "goal", "",
                         "means"],
                        live_rows(runner, plan, with_requests=not args.quick)) + "\n",
                  flush=True)
        if "export" in sections:
            print("## Export at exit: FileHarExporter.stop() vs orjson by hand "
                  "(both fsync)\n")
            print(table(["recording", "harlem", "orjson by hand", "ratio", "goal", ""],
                        export_rows(runner, plan)) + "\n", flush=True)
    if "startup" in sections:
        print(f"## Start-up (bench/startup.py --runs {plan.startup_runs})\n")
        text = startup_text(plan) if plan.startup_runs else "skipped with --quick (it builds two venvs)"
        print("```\n" + text + "\n```\n")
    print(f"Load average at end: {load()}; took {time.perf_counter() - started:.0f} s.")
    if busy_at_start or busy():
        print("\nWARNING: other processes kept this machine busy (load average above its CPU "
              "count): wall-clock ratios are unreliable; the CPU column holds better.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
