"""The HAR model and validator: accept correct documents, name every broken rule."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from pydantic import ValidationError

from harlem.har.model import DEFAULT_PAGE_ID, Entry, Har, Timings, parse_iso_datetime
from harlem.har.validate import (
    SCHEMA_DIR,
    HarValidationError,
    check_schema,
    format_path,
    har_problems,
    possible_byte_sizes,
    validate_har,
    validate_har_file,
)
from tests.helpers import REFERENCE_SCHEMA_DIR

TEXT = "héllo wörld ✓"


def make_entry(**overrides: Any) -> Dict[str, Any]:
    """A correct entry: 127.0.0.1 GET with a query string, UTF-8 text response, TLS timings."""
    entry: Dict[str, Any] = {
        "pageref": "page_0",
        "startedDateTime": "2024-05-01T12:00:00.123Z",
        "time": 10.5,
        "request": {
            "method": "GET",
            "url": "http://127.0.0.1:8080/a?b=c&d=&e=x%20y",
            "httpVersion": "HTTP/1.1",
            "cookies": [{"name": "sid", "value": "1"}],
            "headers": [{"name": "Host", "value": "127.0.0.1:8080"}],
            "queryString": [
                {"name": "b", "value": "c"},
                {"name": "d", "value": ""},
                {"name": "e", "value": "x y"},
            ],
            "headersSize": 60,
            "bodySize": 0,
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "cookies": [
                {
                    "name": "theme",
                    "value": "dark",
                    "path": "/",
                    "expires": "2037-10-21T07:28:00.000Z",
                    "httpOnly": True,
                    "secure": False,
                }
            ],
            "headers": [{"name": "Content-Type", "value": "text/plain; charset=utf-8"}],
            "content": {
                "size": len(TEXT.encode("utf-8")),
                "mimeType": "text/plain; charset=utf-8",
                "text": TEXT,
            },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": len(TEXT.encode("utf-8")),
        },
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": 2, "ssl": 1, "send": 0.5, "wait": 6, "receive": 2},
        "serverIPAddress": "127.0.0.1",
        "connection": "54321",
        "_pid": 1234,
        "_initiator": {"type": "script", "stack": None},
    }
    entry.update(overrides)
    return entry


def make_har(entries: List[Dict[str, Any]] = None) -> Dict[str, Any]:  # type: ignore[assignment]
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "some-tool", "version": "1.0"},
            "pages": [
                {
                    "startedDateTime": "2024-05-01T12:00:00.000+02:00",
                    "id": "page_0",
                    "title": "a page",
                    "pageTimings": {"onContentLoad": -1, "onLoad": 120.5},
                }
            ],
            "entries": [make_entry()] if entries is None else entries,
        }
    }


def problems_after(change: Callable[[Dict[str, Any]], None]) -> List[str]:
    """Problems of the minimal HAR after ``change`` (which edits the one entry)."""
    har = make_har()
    change(har["log"]["entries"][0])
    with pytest.raises(HarValidationError) as caught:
        validate_har(har)
    return caught.value.problems


def assert_problem(problems: List[str], path: str, *words: str) -> None:
    matching = [p for p in problems if p.startswith(path + ":") and all(w in p for w in words)]
    assert matching, f"no problem at {path} mentioning {words}; got:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# Accepted documents
# ---------------------------------------------------------------------------------------


def test_minimal_har_is_valid(check_har: Callable[..., Dict[str, Any]]) -> None:
    har = make_har()
    validate_har(har)
    assert check_har(har) is har


def test_empty_log_without_pages_is_valid() -> None:
    validate_har({"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": []}})


def test_rich_entries_are_valid() -> None:
    body = bytes(range(256))
    post = make_entry(
        request={
            "method": "POST",
            "url": "https://[::1]:443/",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "queryString": [],
            "postData": {
                "mimeType": "application/octet-stream",
                "text": base64.b64encode(body).decode(),
                "encoding": "base64",
            },
            "headersSize": -1,
            "bodySize": 256,
        },
        serverIPAddress="::1",
    )
    redirect = make_entry()
    redirect["response"].update(
        status=302,
        statusText="Found",
        headers=[{"name": "location", "value": "/json"}],
        redirectURL="http://127.0.0.1:8080/json",
        content={"size": 0, "mimeType": "x-unknown"},
        bodySize=0,
    )
    failed = make_entry(time=3)
    failed["timings"] = {"blocked": -1, "dns": -1, "connect": 3, "send": 0, "wait": 0, "receive": 0}
    failed["response"] = {
        "status": 0,
        "statusText": "",
        "httpVersion": "",
        "cookies": [],
        "headers": [],
        "content": {"size": 0, "mimeType": "x-unknown"},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
        "_error": "ConnectionRefusedError: [Errno 111] Connection refused",
    }
    truncated = make_entry()
    truncated["response"]["content"] = {
        "size": 1_000_000,
        "mimeType": "text/plain",
        "text": "only the start",
        "_truncated": True,
    }
    gzipped = make_entry()
    gzipped["response"]["content"].update(compression=-3)
    gzipped["response"]["bodySize"] = gzipped["response"]["content"]["size"] + 3
    latin1 = make_entry()
    latin1["response"]["content"] = {
        "size": len("héllo".encode("latin-1")),
        "mimeType": "text/plain; charset=ISO-8859-1",
        "text": "héllo",
    }
    validate_har(make_har([post, redirect, failed, truncated, gzipped, latin1]))


def test_url_format_accepts_ip_literals() -> None:
    problems = check_schema(make_har())
    assert problems == []
    entry = make_entry()
    entry["request"]["url"] = "https://[::1]:443/"
    entry["request"]["queryString"] = []
    assert check_schema(make_har([entry])) == []


def test_raw_query_string_values_are_accepted() -> None:
    # Chrome writes the query values as they appear in the URL, without decoding.
    entry = make_entry()
    entry["request"]["queryString"][2]["value"] = "x%20y"
    validate_har(make_har([entry]))


def test_packaged_schema_equals_reference_when_present() -> None:
    if not REFERENCE_SCHEMA_DIR.is_dir():
        pytest.skip("no reference schema folder")
    for reference in REFERENCE_SCHEMA_DIR.iterdir():
        if reference.suffix == ".json" or reference.name == "LICENSE":
            assert (SCHEMA_DIR / reference.name).read_bytes() == reference.read_bytes()


# ---------------------------------------------------------------------------------------
# Rejected documents: one broken rule each
# ---------------------------------------------------------------------------------------


def test_time_must_be_sum_of_phases() -> None:
    problems = problems_after(lambda e: e.update(time=12))
    assert_problem(problems, "log.entries[0].time", "sum")


def test_ssl_is_not_summed_into_time() -> None:
    # 10.5 = connect 2 + send 0.5 + wait 6 + receive 2; adding ssl (1) would be wrong.
    problems = problems_after(lambda e: e.update(time=11.5))
    assert_problem(problems, "log.entries[0].time", "sum")


def test_time_tolerates_rounding() -> None:
    har = make_har()
    har["log"]["entries"][0]["time"] = 10.52
    validate_har(har)


def test_ssl_must_not_exceed_connect() -> None:
    problems = problems_after(lambda e: e["timings"].update(ssl=5))
    assert_problem(problems, "log.entries[0].timings.ssl", "connect")


@pytest.mark.parametrize("phase", ["send", "wait", "receive"])
def test_required_phases_are_not_negative(phase: str) -> None:
    problems = problems_after(lambda e: e["timings"].update({phase: -1}))
    assert_problem(problems, f"log.entries[0].timings.{phase}", "greater than or equal to 0")


def test_optional_phases_are_minus_one_or_positive() -> None:
    problems = problems_after(lambda e: e["timings"].update(dns=-2, blocked=-0.5))
    assert_problem(problems, "log.entries[0].timings.dns", "greater than or equal to -1")
    assert_problem(problems, "log.entries[0].timings.blocked", "-1")


def test_required_phase_missing() -> None:
    problems = problems_after(lambda e: e["timings"].pop("wait"))
    assert_problem(problems, "log.entries[0].timings.wait", "required")


def test_pageref_must_name_a_page() -> None:
    problems = problems_after(lambda e: e.update(pageref="page_9"))
    assert_problem(problems, "log.entries[0].pageref", "page_9")


def test_page_ids_are_unique() -> None:
    har = make_har()
    har["log"]["pages"].append(dict(har["log"]["pages"][0]))
    with pytest.raises(HarValidationError) as caught:
        validate_har(har)
    assert_problem(caught.value.problems, "log.pages[1].id", "duplicate")


def test_query_string_must_match_url() -> None:
    problems = problems_after(lambda e: e["request"]["queryString"].pop())
    assert_problem(problems, "log.entries[0].request.queryString", "does not match")
    problems = problems_after(lambda e: e["request"]["queryString"].reverse())
    assert_problem(problems, "log.entries[0].request.queryString", "does not match")


def test_url_must_be_absolute_without_fragment() -> None:
    problems = problems_after(lambda e: e["request"].update(url="/a?b=c&d=&e=x%20y"))
    assert_problem(problems, "log.entries[0].request.url", "absolute")
    problems = problems_after(lambda e: e["request"].update(url="http://h/a?b=c&d=&e=x%20y#top"))
    assert_problem(problems, "log.entries[0].request.url", "fragment")


def test_unknown_key_is_rejected_but_extensions_pass() -> None:
    problems = problems_after(lambda e: e["response"].update(transferSize=3, _transferSize=3))
    assert problems == [
        "log.entries[0].response.transferSize: unknown key (HAR extensions must start with '_')"
    ]


def test_snake_case_names_are_unknown_keys() -> None:
    problems = problems_after(lambda e: e.update(started_date_time=e["startedDateTime"]))
    assert_problem(problems, "log.entries[0].started_date_time", "unknown key")


def test_bool_is_not_a_number() -> None:
    problems = problems_after(lambda e: e["timings"].update(send=True))
    assert_problem(problems, "log.entries[0].timings.send", "valid number")
    problems = problems_after(lambda e: e["request"].update(bodySize=False))
    assert_problem(problems, "log.entries[0].request.bodySize", "valid integer")


def test_integer_fields_reject_floats_and_strings() -> None:
    problems = problems_after(lambda e: e["response"].update(status=200.0, headersSize="12"))
    assert_problem(problems, "log.entries[0].response.status", "valid integer")
    assert_problem(problems, "log.entries[0].response.headersSize", "valid integer")


def test_nan_is_rejected_in_a_dict() -> None:
    problems = problems_after(lambda e: e.update(time=float("nan")))
    assert_problem(problems, "log.entries[0].time", "finite")


def test_status_zero_needs_error() -> None:
    def fail(entry: Dict[str, Any]) -> None:
        entry["response"].update(status=0, statusText="")

    assert_problem(problems_after(fail), "log.entries[0].response.status", "_error")


def test_redirect_with_location_needs_redirect_url() -> None:
    def redirect(entry: Dict[str, Any]) -> None:
        entry["response"].update(status=301, headers=[{"name": "Location", "value": "/b"}])

    assert_problem(problems_after(redirect), "log.entries[0].response.redirectURL", "Location")


def test_dates_must_parse() -> None:
    problems = problems_after(lambda e: e.update(startedDateTime="2024-05-01 12:00:00"))
    assert_problem(problems, "log.entries[0].startedDateTime", "ISO 8601")
    problems = problems_after(lambda e: e.update(startedDateTime="2024-02-30T12:00:00Z"))
    assert_problem(problems, "log.entries[0].startedDateTime", "impossible")
    problems = problems_after(lambda e: e.update(startedDateTime="2024-05-01T12:00:00"))
    assert_problem(problems, "log.entries[0].startedDateTime", "time zone")


def test_server_ip_must_be_bare() -> None:
    problems = problems_after(lambda e: e.update(serverIPAddress="[::1]"))
    assert_problem(problems, "log.entries[0].serverIPAddress", "bare")
    problems = problems_after(lambda e: e.update(serverIPAddress="127.0.0.1:80"))
    assert_problem(problems, "log.entries[0].serverIPAddress", "bare")


def test_connection_must_be_digits() -> None:
    problems = problems_after(lambda e: e.update(connection="conn-1"))
    assert_problem(problems, "log.entries[0].connection", "digits")


def test_content_size_must_match_text() -> None:
    # The character count is not the UTF-8 byte count.
    problems = problems_after(lambda e: e["response"]["content"].update(size=len(TEXT)))
    assert_problem(problems, "log.entries[0].response.content.size", "bytes")


def test_content_size_must_match_base64() -> None:
    def binary(entry: Dict[str, Any]) -> None:
        entry["response"]["content"] = {
            "size": 5,
            "mimeType": "application/octet-stream",
            "text": base64.b64encode(b"1234").decode(),
            "encoding": "base64",
        }

    assert_problem(problems_after(binary), "log.entries[0].response.content.size", "4")


def test_base64_text_must_decode() -> None:
    def broken(entry: Dict[str, Any]) -> None:
        entry["response"]["content"] = {
            "size": 3,
            "mimeType": "application/octet-stream",
            "text": "not base64!",
            "encoding": "base64",
        }

    assert_problem(problems_after(broken), "log.entries[0].response.content.text", "base64")


def test_compression_is_size_minus_body_size() -> None:
    problems = problems_after(lambda e: e["response"]["content"].update(compression=100))
    assert_problem(problems, "log.entries[0].response.content.compression", "bodySize")


def test_request_body_size_must_match_post_data() -> None:
    def post(entry: Dict[str, Any]) -> None:
        entry["request"].update(
            method="POST",
            bodySize=3,
            postData={"mimeType": "application/json", "text": '{"a": "é"}'},
        )

    assert_problem(problems_after(post), "log.entries[0].request.bodySize", "bytes")


def test_truncated_bodies_skip_the_size_checks() -> None:
    har = make_har()
    entry = har["log"]["entries"][0]
    entry["request"].update(
        method="POST", bodySize=10_000, postData={"mimeType": "text/plain", "text": "cut", "_truncated": True}
    )
    entry["response"]["content"].update(size=99_999, _truncated=True)
    validate_har(har)


def test_every_problem_is_listed_with_its_path() -> None:
    har = make_har()
    entry = har["log"]["entries"][0]
    entry.update(time=99, pageref="nope", serverIPAddress="localhost")
    entry["timings"]["ssl"] = 50
    with pytest.raises(HarValidationError) as caught:
        validate_har(har)
    message = str(caught.value)
    for path in (
        "log.entries[0].time",
        "log.entries[0].pageref",
        "log.entries[0].serverIPAddress",
        "log.entries[0].timings.ssl",
    ):
        assert path in message
    assert message.startswith("invalid HAR: ")


def test_schema_layer_reports_its_own_problems() -> None:
    har = make_har()
    har["log"]["entries"][0]["request"]["url"] = "http://x/a b"
    har["log"]["entries"][0]["request"]["queryString"] = []
    problems = check_schema(har)
    assert problems and problems[0].startswith("log.entries[0].request.url: schema:")


def test_custom_schema_dir(tmp_path: Path) -> None:
    (tmp_path / "har.json").write_text(json.dumps({"type": "object", "required": ["extra"]}))
    assert check_schema(make_har(), tmp_path) == ["(root): schema: 'extra' is a required property"]
    assert any("schema:" in p for p in har_problems(make_har(), tmp_path))


def test_not_an_object() -> None:
    with pytest.raises(HarValidationError):
        validate_har([])  # type: ignore[arg-type]
    with pytest.raises(HarValidationError):
        validate_har({"log": {"version": "1.2"}})


def test_validator_does_not_require_harlem_creator() -> None:
    har = make_har()
    har["log"]["creator"] = {"name": "Firefox", "version": "125.0"}
    har["log"]["browser"] = {"name": "Firefox", "version": "125.0"}
    validate_har(har)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def test_valid_file(tmp_path: Path, check_har: Callable[..., Dict[str, Any]]) -> None:
    path = tmp_path / "ok.har"
    path.write_text(json.dumps(make_har(), ensure_ascii=False), encoding="utf-8")
    assert validate_har_file(path) == make_har()
    assert check_har(path) == make_har()


def test_file_with_nan(tmp_path: Path) -> None:
    har = make_har()
    har["log"]["entries"][0]["time"] = float("nan")
    path = tmp_path / "nan.har"
    path.write_text(json.dumps(har), encoding="utf-8")  # the stdlib happily writes NaN
    with pytest.raises(HarValidationError, match="NaN"):
        validate_har_file(path)


def test_file_with_bom_or_leading_junk(tmp_path: Path) -> None:
    data = json.dumps(make_har()).encode()
    path = tmp_path / "bom.har"
    path.write_bytes(b"\xef\xbb\xbf" + data)
    with pytest.raises(HarValidationError, match="byte-order mark"):
        validate_har_file(path)
    path.write_bytes(b" " + data)
    with pytest.raises(HarValidationError, match="does not start with"):
        validate_har_file(path)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.har"
    path.write_bytes(json.dumps(make_har(), ensure_ascii=False).encode("latin-1", "replace"))
    with pytest.raises(HarValidationError, match="not UTF-8"):
        validate_har_file(path)


# ---------------------------------------------------------------------------------------
# The model and its helpers
# ---------------------------------------------------------------------------------------


def test_model_round_trip_keeps_extensions_and_order() -> None:
    har = make_har()
    dumped = Har.model_validate(har).to_dict()
    assert dumped == har
    entry = Entry.model_validate(make_entry())
    assert entry.extensions["_pid"] == 1234
    assert list(entry.model_dump(by_alias=True, exclude_none=True))[-2:] == ["_pid", "_initiator"]


def test_model_dumps_whole_milliseconds_as_integers() -> None:
    timings = Timings.model_validate({"send": 1, "wait": 2.5, "receive": 0, "ssl": -1})
    assert timings.model_dump(by_alias=True, exclude_none=True) == {
        "send": 1,
        "wait": 2.5,
        "receive": 0,
        "ssl": -1,
    }
    assert isinstance(timings.model_dump(by_alias=True)["send"], int)


def test_same_site_cookie_attribute_is_known() -> None:
    har = make_har()
    har["log"]["entries"][0]["response"]["cookies"][0]["sameSite"] = "Lax"
    validate_har(har)


def test_from_entries_creates_the_default_page() -> None:
    first = make_entry(startedDateTime="2024-05-01T12:00:01.000Z")
    earlier = make_entry(startedDateTime="2024-05-01T11:59:59.500+00:00")
    for entry in (first, earlier):
        del entry["pageref"]
    har = Har.from_entries([], [first, earlier], creator_version="9.9")
    data = har.to_dict()
    assert data["log"]["version"] == "1.2"
    assert data["log"]["creator"] == {"name": "harlem", "version": "9.9"}
    assert data["log"]["pages"] == [
        {
            "startedDateTime": "2024-05-01T11:59:59.500+00:00",
            "id": DEFAULT_PAGE_ID,
            "title": "harlem recording",
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        }
    ]
    assert [e["pageref"] for e in data["log"]["entries"]] == [DEFAULT_PAGE_ID] * 2
    assert "pageref" not in first  # inputs are not modified
    validate_har(data)


def test_from_entries_adds_missing_referenced_pages() -> None:
    given = make_har()["log"]["pages"]
    entries = [make_entry(), make_entry(pageref="page_7")]
    data = Har.from_entries(given, entries).to_dict()
    assert [p["id"] for p in data["log"]["pages"]] == ["page_0", "page_7"]
    from harlem._version import __version__

    assert data["log"]["creator"]["version"] == __version__
    validate_har(data)


def test_from_entries_without_anything_still_has_a_page() -> None:
    data = Har.from_entries([], []).to_dict()
    assert len(data["log"]["pages"]) == 1
    parse_iso_datetime(data["log"]["pages"][0]["startedDateTime"])
    validate_har(data)


def test_from_entries_rejects_bad_entries() -> None:
    with pytest.raises(ValidationError):
        Har.from_entries([], [make_entry(time="10")])


def test_har_init_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, harlem.har; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "text, encoding, mime, expected",
    [
        ("abc", None, "text/plain", {3}),
        (TEXT, None, "text/plain; charset=utf-8", {len(TEXT.encode())}),
        ("héllo", None, 'text/plain; charset="ISO-8859-1"', {5}),
        ("héllo", None, "text/html", {6, 5}),  # UTF-8 or windows-1252: unknowable
        ("✓", None, "text/plain", {3}),  # not windows-1252: must be UTF-8
        ("h\ufffdllo", None, "text/plain", None),  # lossy decoding
        ("✓", None, "text/plain; charset=latin-1", None),  # cannot have come from latin-1
        ("abc", None, "text/plain; charset=utf-16", None),  # BOM or not: unknowable
        ("abc", None, "text/plain; charset=x-unknown", None),
        ("AAEC", "base64", "application/octet-stream", {3}),
        ("abc", "quoted-printable", "text/plain", None),
    ],
)
def test_possible_byte_sizes(text: str, encoding: Any, mime: str, expected: Any) -> None:
    result = possible_byte_sizes(text, encoding, mime)
    assert result == (None if expected is None else frozenset(expected))


def test_format_path() -> None:
    assert format_path(("log", "entries", 3, "timings", "time")) == "log.entries[3].timings.time"
    assert format_path(()) == "(root)"
    assert format_path(("log", "a b")) == 'log["a b"]'

