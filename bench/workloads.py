"""One measured run, in a process of its own: ``python bench/workloads.py WORKLOAD MODE ...``.

:mod:`bench.run` starts this program once per run, so that every run begins in the same state
(no patches, threads, caches or heap left over from another mode) and so that the agent and
the peers' virtual environment are measured the same way as the library modes. It prints one
JSON line: ``block`` (seconds for the measured requests, recording running), ``session``
(seconds from just before the recording starts to just after it stopped, file written),
``cpu`` (CPU seconds of every thread of this process during ``block``), ``entries`` (what the
recording holds, to prove it recorded), ``maxrss_mib`` (peak resident memory of this process)
and ``children_maxrss_mib`` (of its ended children: the export process in mode ``process``).

Both arms do the same thing in the same order: warm-up requests before the recording (imports,
connection), more inside it (harlem's lazy imports, the builder thread), then the measured ones.

Workloads: ``requests`` (one keep-alive Session, GET /json), ``aiohttp`` (one ClientSession,
sequential GET /json), ``aiohttp-gather`` (the same, ``--concurrency`` at a time under
``asyncio.gather``), ``httpx`` (one ``httpx.Client``), ``large`` (requests, GET
/large?size=1 MiB, body read whole), ``live-requests`` (requests under ``live=True``, or
unrecorded as a control; prints per-request times), ``live-feed`` (built entries into :class:`LiveFileHarExporter`),
``live-pages`` (the same, each entry in a page of its own, as a worker with a page per job) and
``export`` (:class:`FileHarExporter.stop` against orjson by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import logging
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, Iterator, List

#: The keywords of each ``record_to_file`` mode. Besides these: ``logger``
#: (``record_to_logger``), ``plain`` (nothing; the agent's runs are ``plain`` runs started with
#: ``HARLEM_OUTPUT`` set) and the peers, ``otel`` and ``vcr``.
FILE_OPTIONS: Dict[str, Dict[str, Any]] = {
    "file": {}, "live": {"live": True}, "interval": {"interval_seconds": 1},
    "thread": {"in_background": "thread"}, "process": {"in_background": "process"},
}
MIB = 1024 * 1024


class Recorder:
    """The recording context of one mode, and how many entries it ended up with."""

    def __init__(self, mode: str, out: str, library: str):
        self.mode = mode
        self.path = os.path.join(out, f"{mode}.har")
        self.library = library
        self.count: Callable[[], int] = lambda: 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.mode == "plain":
            yield
        elif self.mode in FILE_OPTIONS or self.mode == "logger":
            with self._harlem() as recording:
                self.count = lambda: recording.entry_count
                yield
        elif self.mode == "otel":
            with self._otel():
                yield
        elif self.mode == "vcr":
            with self._vcr():
                yield
        else:
            raise SystemExit(f"unknown mode {self.mode!r}")

    def _harlem(self) -> Any:
        import harlem

        if self.mode == "logger":
            logger = logging.getLogger("harlem.bench")
            logger.propagate = False
            logger.setLevel(logging.DEBUG)
            if not logger.handlers:  # a real handler that formats and writes every record
                logger.addHandler(logging.FileHandler(os.devnull))
            return harlem.record_to_logger(logger)
        return harlem.record_to_file(self.path, **FILE_OPTIONS[self.mode])

    @contextlib.contextmanager
    def _otel(self) -> Iterator[None]:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        if self.library == "aiohttp":
            from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

            instrumentor: Any = AioHttpClientInstrumentor()
        else:
            from opentelemetry.instrumentation.requests import RequestsInstrumentor

            instrumentor = RequestsInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        self.count = lambda: len(spans.get_finished_spans())
        try:
            yield
        finally:
            instrumentor.uninstrument()

    @contextlib.contextmanager
    def _vcr(self) -> Iterator[None]:
        import vcr

        with vcr.VCR(record_mode="all").use_cassette(self.path.replace(".har", ".yaml")) as tape:
            self.count = lambda: len(tape.data)
            yield


# --- the HTTP workloads ---------------------------------------------------------------------


def _requests_session(url: str) -> Callable[[int], None]:
    import requests

    session = requests.Session()

    def fetch(count: int) -> None:
        for _ in range(count):
            session.get(url).json()

    return fetch


def _large_session(url: str) -> Callable[[int], None]:
    import requests

    session = requests.Session()

    def fetch(count: int) -> None:
        for _ in range(count):
            if len(session.get(url).content) != MIB:
                raise SystemExit("short body")

    return fetch


def _httpx_session(url: str) -> Callable[[int], None]:
    import httpx

    client = httpx.Client()

    def fetch(count: int) -> None:
        for _ in range(count):
            client.get(url).json()

    return fetch


def _aiohttp_session(url: str, concurrency: int) -> Callable[[int], None]:
    """A sync facade over one ClientSession on one event loop, so both arms share the driver."""
    import aiohttp

    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_open_session(aiohttp))
    atexit.register(lambda: loop.run_until_complete(session.close()))

    async def one() -> None:
        async with session.get(url) as response:
            await response.json()

    async def sequential(count: int) -> None:
        for _ in range(count):
            await one()

    async def gathered(count: int) -> None:
        slots = asyncio.Semaphore(concurrency)

        async def limited() -> None:
            async with slots:
                await one()

        await asyncio.gather(*(limited() for _ in range(count)))

    def fetch(count: int) -> None:
        loop.run_until_complete(gathered(count) if concurrency > 1 else sequential(count))

    return fetch


async def _open_session(aiohttp: Any) -> Any:
    return aiohttp.ClientSession()


#: Workload -> the library it uses (what the peers instrument).
LIBRARIES = {"requests": "requests", "live-requests": "requests", "large": "requests",
             "httpx": "httpx", "aiohttp": "aiohttp", "aiohttp-gather": "aiohttp"}


def _client(workload: str, base: str, concurrency: int) -> Callable[[int], None]:
    """A new client for an HTTP workload, as ``fetch(count)``."""
    if workload in ("requests", "live-requests"):
        return _requests_session(base + "/json")
    if workload == "large":
        return _large_session(f"{base}/large?size={MIB}")
    if workload == "httpx":
        return _httpx_session(base + "/json")
    if workload == "aiohttp":
        return _aiohttp_session(base + "/json", 1)
    if workload == "aiohttp-gather":
        return _aiohttp_session(base + "/json", concurrency)
    raise SystemExit(f"unknown workload {workload!r}")


def http_run(args: argparse.Namespace) -> Dict[str, Any]:
    """The client is made inside the recording, as an instrumented program makes it (some
    peers only see clients created after they start); a first client warms up beforehand."""
    recorder = Recorder(args.mode, args.out, LIBRARIES[args.workload])
    _client(args.workload, args.url, args.concurrency)(args.warmup)
    started = time.perf_counter()
    with recorder():
        fetch = _client(args.workload, args.url, args.concurrency)
        fetch(args.warmup)
        cpu = time.process_time()
        begin = time.perf_counter()
        fetch(args.count)
        block = time.perf_counter() - begin
        cpu = time.process_time() - cpu
    session = time.perf_counter() - started
    return {"block": block, "session": session, "cpu": cpu, "entries": recorder.count(),
            **_memory()}


def live_requests_run(args: argparse.Namespace) -> Dict[str, Any]:
    """Per-request times of a long ``live=True`` recording (mode ``live``): does the cost grow
    with the file? Mode ``plain`` times the same loop unrecorded, as a control."""
    recorder = Recorder(args.mode, args.out, "requests")
    times: List[float] = []
    clock = time.perf_counter
    with recorder():
        fetch = _client("requests", args.url, 1)
        fetch(args.warmup)
        for _ in range(args.count):
            begin = clock()
            fetch(1)
            times.append(clock() - begin)
    return {"times": times, "entries": recorder.count()}


def _memory() -> Dict[str, float]:
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / MIB
    return {"maxrss_mib": own, "children_maxrss_mib": children}


# --- the exporter micro-benchmarks ----------------------------------------------------------


def realistic_entries(base: str, count: int, out: str) -> List[Dict[str, Any]]:
    """``count`` entries recorded by harlem from real requests: nine small JSON GETs for every
    8 KiB binary download (base64 in the HAR), cycled to ``count``."""
    import orjson
    import requests

    import harlem

    path = os.path.join(out, "templates.har")
    session = requests.Session()
    with harlem.record_to_file(path):
        for number in range(10):
            url = f"{base}/large?size=8192" if number == 9 else f"{base}/json?n={number}"
            session.get(url).raise_for_status()
    with open(path, "rb") as file:
        templates = orjson.loads(file.read())["log"]["entries"]
    os.unlink(path)
    return [templates[number % len(templates)] for number in range(count)]


def live_feed_run(args: argparse.Namespace) -> Dict[str, Any]:
    """Time each ``LiveFileHarExporter.add_entry`` of ``count`` entries (no HTTP in the loop);
    for ``live-pages``, each ``add_page`` of a new page and ``add_entry`` of an entry in it."""
    from harlem.exporters.live import LiveFileHarExporter
    from harlem.pipeline import default_page

    entries = realistic_entries(args.url, args.count, args.out)
    exporter = LiveFileHarExporter(os.path.join(args.out, f"{args.workload}.har"))
    pages = args.workload == "live-pages"
    clock = time.perf_counter
    times = []
    with exporter:
        exporter.add_page(default_page())
        for number, entry in enumerate(entries):
            begin = clock()
            if pages:
                page_id = f"page_{number + 1}"
                exporter.add_page(dict(default_page(), id=page_id, title=f"job {number}"))
                entry = dict(entry, pageref=page_id)
            exporter.add_entry(entry)
            times.append(clock() - begin)
    return {"times": times, "entries": exporter.entry_count}


def export_run(args: argparse.Namespace) -> Dict[str, Any]:
    """Median time of ``FileHarExporter.stop()`` with ``count`` spooled entries, against
    ``orjson.dumps`` of the whole document written by hand; both end with ``fsync``, as harlem
    does, so the comparison is the work, not the durability."""
    import orjson

    from harlem.exporters.base import empty_log
    from harlem.exporters.files import FileHarExporter
    from harlem.pipeline import default_page

    entries = realistic_entries(args.url, args.count, args.out)
    harlem_times: List[float] = []
    hand_times: List[float] = []
    path = os.path.join(args.out, "export.har")
    for _ in range(args.rounds):
        exporter = FileHarExporter(path)
        exporter.start()
        for entry in entries:
            exporter.add_entry(entry)
        begin = time.perf_counter()
        exporter.stop()
        harlem_times.append(time.perf_counter() - begin)
        size = os.path.getsize(path)

        begin = time.perf_counter()
        document = empty_log([default_page()])
        document["log"]["entries"] = entries
        with open(path, "wb") as file:
            file.write(orjson.dumps(document))
            file.flush()
            os.fsync(file.fileno())
        hand_times.append(time.perf_counter() - begin)
    os.unlink(path)
    return {"harlem": statistics.median(harlem_times), "by_hand": statistics.median(hand_times),
            "size_mib": size / MIB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload")
    parser.add_argument("mode", nargs="?", default="plain")
    parser.add_argument("--url", required=True, help="the benchmark server's base URL")
    parser.add_argument("--out", required=True, help="a folder for the recordings")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="for export: repetitions")
    args = parser.parse_args()
    runs = {"live-requests": live_requests_run, "live-feed": live_feed_run,
            "live-pages": live_feed_run, "export": export_run}
    result = runs.get(args.workload, http_run)(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
