"""The HAR in the tools people open it with: mitmproxy, haralyzer, Chrome and Firefox DevTools.

Every HAR here is recorded by harlem from real traffic (:mod:`tests.consumer_traffic`: every
kind of exchange, with each library harlem records), once per settings variant, and checked
by :func:`tests.helpers.check_har` (model, spec rules, JSON schema with its format checker).

mitmproxy and haralyzer run from their own venv (``bash .ci/consumers.sh``, cached under
/tmp): the tests are skipped, with the reason, when it cannot be installed, unless
``HARLEM_CONSUMERS_VENV`` names one (CI), which must then work. Chrome's and Firefox's
importers are restated in :mod:`tests.devtools_rules`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List
from urllib.parse import urlsplit

import pytest

from harlem.demo.server import (
    COMPRESSIBLE_TEXT,
    LATIN1_TEXT,
    PNG_BYTES,
    TEXT_BODY,
    deterministic_bytes,
)
from harlem.har.validate import check_schema
from tests.consumer_traffic import VARIANTS, record_every_kind
from tests.devtools_rules import (
    chrome_extension_problems,
    chrome_import_problems,
    firefox_import_problems,
    parse_date,
)
from tests.helpers import REPO_ROOT, check_har

PROBES = Path(__file__).resolve().parent / "consumer_probes"
CONSUMERS_SH = REPO_ROOT / ".ci" / "consumers.sh"
#: For the tests that compare bodies: the other variants cut them.
ONLY_DEFAULT = pytest.mark.parametrize("recorded", ["default"], indirect=True)


@dataclass
class Recorded:
    variant: str
    path: Path
    har: Dict[str, Any]

    @property
    def entries(self) -> List[Dict[str, Any]]:
        return self.har["log"]["entries"]


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def recorded(request: pytest.FixtureRequest, server: Any, tls: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("consumers") / f"{request.param}.har"
    har = record_every_kind(path, server, tls, **VARIANTS[request.param])
    return Recorded(request.param, path, har)


@pytest.fixture(scope="module")
def consumers_venv() -> Path:
    chosen = os.environ.get("HARLEM_CONSUMERS_VENV")
    if chosen:  # installed on purpose (CI): a broken one must fail the tests, not skip them
        return Path(chosen)
    try:
        done = subprocess.run(["bash", str(CONSUMERS_SH)], capture_output=True, text=True,
                              timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"mitmproxy/haralyzer could not be installed by {CONSUMERS_SH.name}: {exc}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"mitmproxy/haralyzer could not be installed by {CONSUMERS_SH.name}: {reason}")
    return Path(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the HAR itself


def test_the_har_holds_every_kind_of_exchange(recorded: Recorded) -> None:
    by_page: Dict[str, List[Dict[str, Any]]] = {}
    for entry in recorded.entries:
        by_page.setdefault(entry["pageref"], []).append(entry)
    titles = {page["id"]: page["title"] for page in recorded.har["log"]["pages"]}
    assert "requests" in {titles[ref] for ref in by_page}
    for ref, entries in by_page.items():
        kinds = {
            "failed": any(
                e["response"]["status"] == 0 and e["response"].get("_error") for e in entries),
            "failed after the response started": any(
                e["response"]["status"] and e["response"].get("_error") for e in entries),
            "redirect": any(e["response"]["redirectURL"] for e in entries),
            "response cookies": any(e["response"]["cookies"] for e in entries),
            "request cookies": any(e["request"]["cookies"] for e in entries),
            "https": any(e["request"]["url"].startswith("https:") for e in entries),
            "compressed": any("compression" in e["response"]["content"] for e in entries),
            "upload": any(e["request"]["bodySize"] > 0 for e in entries),
        }
        if recorded.variant != "no-bodies":
            kinds["binary response"] = any(
                e["response"]["content"].get("encoding") == "base64" for e in entries)
            kinds["binary upload"] = any(
                e["request"].get("postData", {}).get("encoding") == "base64" for e in entries)
        if recorded.variant == "truncated":
            kinds["truncated"] = any(e["response"]["content"].get("_truncated") for e in entries)
        assert [kind for kind, found in kinds.items() if not found] == [], titles[ref]


def test_the_file_passes_the_schema_with_its_format_checker(recorded: Recorded) -> None:
    check_har(recorded.path)  # raises with every problem found
    broken = copy.deepcopy(recorded.har)
    entry = broken["log"]["entries"][0]
    entry["startedDateTime"] = "2024-13-45T99:00:00Z"
    entry["serverIPAddress"] = "300.1.2.3"
    entry["request"]["url"] = "not a url"
    problems = "\n".join(check_schema(broken))
    for field in ("startedDateTime", "serverIPAddress", "request.url"):
        assert f"log.entries[0].{field}: schema:" in problems, problems


# --------------------------------------------------------------------------- DevTools


def test_chrome_devtools_can_import_it(recorded: Recorded) -> None:
    assert chrome_import_problems(recorded.har) == []


def test_chrome_extensions_are_ones_devtools_understands(recorded: Recorded) -> None:
    assert chrome_extension_problems(recorded.har) == []


def test_firefox_devtools_can_import_it(recorded: Recorded) -> None:
    assert firefox_import_problems(recorded.har) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda h: h["log"]["entries"][0]["response"].pop("content"),
     "log.entries[0].response.content: must be an object, not missing"),
    (lambda h: h["log"]["entries"][0].update(time="12"),
     "log.entries[0].time: must be a number, not a string"),
    (lambda h: h["log"]["entries"][0].update(startedDateTime="yesterday"),
     "log.entries[0].startedDateTime: must be an ISO 8601 date-time with a zone, not 'yesterday'"),
    (lambda h: h["log"]["entries"][0].update(_initiator=None),
     "log.entries[0]._initiator: must be an object, not null"),
    (lambda h: h["log"]["pages"][0].pop("pageTimings"),
     "log.pages[0].pageTimings: must be an object, not missing"),
    (lambda h: h["log"]["entries"][0]["timings"].update(wait=None),
     "log.entries[0].timings.wait: must be a number, not null"),
])
def test_the_chrome_rules_catch_what_chrome_refuses(recorded: Recorded, break_it: Any,
                                                     expected: str) -> None:
    broken = copy.deepcopy(recorded.har)
    break_it(broken)
    assert expected in chrome_import_problems(broken)


@pytest.mark.parametrize("break_it, expected", [
    (lambda h: h["log"].pop("pages"), "log.pages: must be an array, not missing"),
    (lambda h: h["log"]["entries"][0].pop("cache"),
     "log.entries[0].cache: must be an object, not missing"),
    (lambda h: h["log"]["entries"][0].pop("timings"),
     "log.entries[0].timings: must be an object, not missing"),
])
def test_the_firefox_rules_catch_what_firefox_refuses(recorded: Recorded, break_it: Any,
                                                      expected: str) -> None:
    broken = copy.deepcopy(recorded.har)
    break_it(broken)
    assert expected in firefox_import_problems(broken)


def test_the_extension_rules_catch_what_chrome_ignores(recorded: Recorded) -> None:
    broken = copy.deepcopy(recorded.har)
    entry = broken["log"]["entries"][0]
    entry.update(_priority="high", _resourceType="json", connection="conn-1")
    del entry["response"]["_transferSize"]
    assert chrome_extension_problems(broken) == [
        "log.entries[0]._priority: 'high' is not a Chrome resource priority",
        "log.entries[0]._resourceType: 'json' is not a Chrome resource type",
        "log.entries[0].response._transferSize: must be a number, not missing",
        "log.entries[0].connection: must be a port number, not 'conn-1'",
    ]


# --------------------------------------------------------------------------- mitmproxy


@pytest.fixture(scope="module")
def mitmproxy_flows(recorded: Recorded, consumers_venv: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> List[Dict[str, Any]]:
    """What ``mitmdump -n -r`` loaded from the HAR (it refuses the whole file on one bad entry)."""
    work = tmp_path_factory.mktemp("mitmproxy")
    out = work / "flows.json"
    done = subprocess.run(
        [str(consumers_venv / "bin" / "mitmdump"), "-n", "-q", "-r", str(recorded.path),
         "-s", str(PROBES / "mitmproxy_flows.py"), "--set", f"confdir={work / 'conf'}"],
        env={**os.environ, "HARLEM_PROBE_OUT": str(out)}, capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_mitmproxy_loads_every_entry(recorded: Recorded,
                                     mitmproxy_flows: List[Dict[str, Any]]) -> None:
    loaded = [(f["method"], f["url"], f["status"]) for f in mitmproxy_flows]
    written = [(e["request"]["method"], e["request"]["url"], e["response"]["status"])
               for e in recorded.entries]
    assert len(loaded) == len(written)
    assert loaded == written


@ONLY_DEFAULT
def test_mitmproxy_gets_the_bodies_back(recorded: Recorded,
                                        mitmproxy_flows: List[Dict[str, Any]]) -> None:
    expected = {
        "/binary": deterministic_bytes(2048, seed=7),
        "/gzip": COMPRESSIBLE_TEXT.encode(),
        "/deflate": COMPRESSIBLE_TEXT.encode(),
        "/gzip-chunked": COMPRESSIBLE_TEXT.encode(),
        "/latin1": LATIN1_TEXT.encode("latin-1"),
        "/text": TEXT_BODY.encode(),
        "/image.png": PNG_BYTES,
    }
    seen = set()
    for flow in mitmproxy_flows:
        path = urlsplit(flow["url"]).path
        if path in expected and flow["status"] == 200:
            assert base64.b64decode(flow["response_body"]) == expected[path], flow["url"]
            seen.add(path)
    assert seen == set(expected)


@ONLY_DEFAULT
def test_mitmproxy_gets_the_text_uploads_back(recorded: Recorded,
                                              mitmproxy_flows: List[Dict[str, Any]]) -> None:
    checked = 0
    for flow, entry in zip(mitmproxy_flows, recorded.entries):
        post = entry["request"].get("postData", {})
        if not flow["url"].endswith("/echo") or entry["response"]["status"] != 200:
            continue
        if post.get("encoding") == "base64":
            continue  # HAR 1.2 has no postData.encoding: mitmproxy loads the base64 text as is
        received = json.loads(entry["response"]["content"]["text"])["body_base64"]
        assert flow["request_body"] == received, flow["url"]  # what the server got
        checked += 1
    assert checked >= 5


# --------------------------------------------------------------------------- haralyzer


@pytest.fixture(scope="module")
def haralyzer_report(recorded: Recorded, consumers_venv: Path) -> Dict[str, Any]:
    done = subprocess.run(
        [str(consumers_venv / "bin" / "python"), str(PROBES / "haralyzer_report.py"),
         str(recorded.path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_haralyzer_sees_every_entry_inside_its_page(recorded: Recorded,
                                                    haralyzer_report: Dict[str, Any]) -> None:
    pages = haralyzer_report["pages"]
    assert "unknown" not in [page["id"] for page in pages]  # every entry has a known pageref
    for page in pages:
        assert all(recorded.entries[i]["pageref"] == page["id"] for i in page["entries"])
    seen = sorted(i for page in pages for i in page["entries"])
    assert seen == list(range(len(recorded.entries)))


def test_haralyzer_page_sizes_and_asset_types(recorded: Recorded,
                                              haralyzer_report: Dict[str, Any]) -> None:
    for page in haralyzer_report["pages"]:
        entries = [recorded.entries[i] for i in page["entries"]]
        transferred = sum(max(e["response"]["_transferSize"], 0) for e in entries)
        assert page["page_size_trans"] == transferred
        assert isinstance(page["page_size"], int)
        assert isinstance(page["time_to_first_byte"], (int, float))
        if not entries:
            continue
        for kind, path in (("html", "/page"), ("css", "/style.css"), ("js", "/app.js"),
                           ("image", "/image.png")):
            files = page[f"{kind}_files"]
            assert [urlsplit(recorded.entries[i]["request"]["url"]).path for i in files] == [path]


def test_haralyzer_reads_each_entry(recorded: Recorded, haralyzer_report: Dict[str, Any]) -> None:
    for report in haralyzer_report["entries"]:
        entry = recorded.entries[report["index"]]
        assert not isinstance(report["start"], dict), report  # an error: the date did not parse
        assert dt.datetime.fromisoformat(report["start"]) == parse_date(entry["startedDateTime"])
        assert report["status"] == entry["response"]["status"]
        assert report["url"] == entry["request"]["url"]
        if entry["response"]["status"]:  # it reached a server: haralyzer can say which
            assert isinstance(report["port"], int), report
            assert report["serverAddress"] == "127.0.0.1", report


def test_haralyzer_port_reads_our_connection_id(recorded: Recorded,
                                               haralyzer_report: Dict[str, Any]) -> None:
    """harlem's ``connection`` is the client-side port (HAR 1.2 allows either side's port):
    it identifies a keep-alive connection, which the server port cannot. haralyzer (like
    Chrome's and Firefox's importers) presents it as "the port"; docs/compatibility.md says so."""
    for report in haralyzer_report["entries"]:
        entry = recorded.entries[report["index"]]
        if entry["response"]["status"] and "connection" in entry:
            assert report["port"] == int(entry["connection"]), report
