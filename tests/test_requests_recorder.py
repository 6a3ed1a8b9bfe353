"""RequestsHarRecorder against real loopback servers: what the HAR says, and that the program
sees exactly what it would without recording."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import shutil
import socket
import threading
import time
import unittest.mock
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import requests
import requests.adapters
import requests.models
import urllib3.connection
import urllib3.response

import harlem._warn
from harlem import pipeline
from harlem.capture import Exchange
from harlem.demo.server import (COMPRESSIBLE_TEXT, HAS_BROTLI, JSON_BODY, LATIN1_TEXT, PNG_BYTES,
                                TEXT_BODY, LoopbackServer, closed_port, deterministic_bytes)
from harlem.exporters import ModelHarExporter
from harlem.recorders import requests as requests_recorder
from harlem.recorders.requests import RequestsHarRecorder
from tests.helpers import one_answer_server

MISSING = object()
PATCH_POINTS: List[Tuple[Any, str]] = [
    (requests.adapters.HTTPAdapter, "send"),
    (urllib3.connection.HTTPConnection, "_new_conn"),
    (urllib3.connection.HTTPSConnection, "connect"),
    (urllib3.connection.HTTPConnection, "endheaders"),
    (urllib3.connection.HTTPConnection, "getresponse"),
    (urllib3.response.HTTPResponse, "stream"),
    (urllib3.response.HTTPResponse, "read"),
    (urllib3.response.HTTPResponse, "_handle_chunk"),
    (requests.models.Response, "close"),
    (socket, "getaddrinfo"),
]


def patch_state() -> List[Any]:
    """What each patched name holds right now (a class's own attribute, or the module's)."""
    return [vars(owner).get(name, MISSING) for owner, name in PATCH_POINTS]


def same_objects(left: List[Any], right: List[Any]) -> bool:
    # Identity, not ==: a wrapt wrapper compares equal to the function it wraps.
    return len(left) == len(right) and all(a is b for a, b in zip(left, right))


class Recording:
    """A started recorder with an in-memory exporter; :meth:`har` is the validated HAR."""

    def __init__(self, check_har: Callable[[Any], Dict[str, Any]], **options: Any):
        self.exporter = ModelHarExporter()
        self.recorder = RequestsHarRecorder(self.exporter, **options)
        self._check = check_har

    def har(self) -> Dict[str, Any]:
        pipeline.flush()
        return self._check(self.exporter.to_dict())

    @property
    def entries(self) -> List[Dict[str, Any]]:
        return self.har()["log"]["entries"]

    def only_entry(self) -> Dict[str, Any]:
        entries = self.entries
        assert len(entries) == 1, [e["request"]["url"] for e in entries]
        return entries[0]


@pytest.fixture
def record(check_har: Callable[[Any], Dict[str, Any]]) -> Iterator[Callable[..., Any]]:
    """``with record(**options) as rec:`` records requests into ``rec`` until the block ends."""
    started: List[RequestsHarRecorder] = []

    @contextmanager
    def start(**options: Any) -> Iterator[Recording]:
        recording = Recording(check_har, **options)
        recording.recorder.start()
        started.append(recording.recorder)
        try:
            yield recording
        finally:
            # Entries already finished must be built while the recorder still receives; see
            # test_a_with_block_exports_what_finished_inside_it for stop() doing this itself.
            pipeline.flush()
            recording.recorder.stop()

    yield start
    for recorder in started:  # a failed test must not leave the library patched
        recorder.stop()


def headers_of(message: Dict[str, Any]) -> List[Tuple[str, str]]:
    return [(h["name"], h["value"]) for h in message["headers"]]


def header(message: Dict[str, Any], name: str) -> List[str]:
    return [h["value"] for h in message["headers"] if h["name"].lower() == name.lower()]


def body_bytes(content: Dict[str, Any]) -> bytes:
    text = content.get("text", "")
    return base64.b64decode(text) if content.get("encoding") == "base64" else text.encode("utf-8")


def outcome(call: Callable[[], requests.Response]) -> Tuple[Any, ...]:
    """What the program observes from ``call``: the exception, or status, headers and bytes.

    Object addresses in messages (urllib3 1.26 names the connection object) are blanked.
    """
    try:
        response = call()
        content = response.content
    except Exception as exc:  # noqa: BLE001 - the point is to compare whatever happens
        return ("raised", type(exc), re.sub(r" at 0x[0-9a-f]+", " at 0x?", str(exc)))
    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "date"]
    return ("returned", response.status_code, response.reason, headers, content)


# --- one entry per request, headers as sent ------------------------------------------------


def test_module_level_get_makes_one_complete_entry(server: Any, record: Any) -> None:
    with record() as rec:
        response = requests.get(server.url + "/json?a=1&b=x%20y&a=2")
    assert response.json() == JSON_BODY
    entry = rec.only_entry()
    request, har_response = entry["request"], entry["response"]
    assert request["method"] == "GET"
    assert request["url"] == server.url + "/json?a=1&b=x%20y&a=2"
    assert request["queryString"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "x y"},
                                      {"name": "a", "value": "2"}]
    assert [name for name, _ in headers_of(request)] == [
        "Host", "User-Agent", "Accept-Encoding", "Accept", "Connection"]
    assert header(request, "Host") == [f"127.0.0.1:{server.port}"]
    assert header(request, "User-Agent") == [requests.utils.default_user_agent()]
    assert request["httpVersion"] == har_response["httpVersion"] == "HTTP/1.1"
    assert har_response["status"] == 200 and har_response["statusText"] == "OK"
    assert json.loads(har_response["content"]["text"]) == JSON_BODY
    assert har_response["content"]["size"] == har_response["bodySize"] == len(response.content)
    assert entry["serverIPAddress"] == "127.0.0.1"
    assert entry["connection"].isdigit()
    frame = entry["_initiator"]["stack"]["callFrames"][0]
    assert frame["url"].endswith("test_requests_recorder.py")
    assert frame["functionName"] == "test_module_level_get_makes_one_complete_entry"


def test_session_headers_are_exactly_what_the_server_received(server: Any, record: Any) -> None:
    with record(redact=False) as rec:
        with requests.Session() as session:
            session.headers["X-Custom"] = "custom value"
            seen = session.post(server.url + "/echo", data=b"12345",
                                headers={"Authorization": "Bearer t0ken"}).json()
    entry = rec.only_entry()
    assert headers_of(entry["request"]) == [tuple(pair) for pair in seen["headers"]]
    assert header(entry["request"], "Content-Length") == ["5"]
    assert entry["request"]["bodySize"] == 5


def test_duplicate_response_headers_and_cookies_are_kept(server: Any, record: Any) -> None:
    with record(redact=False) as rec:
        requests.get(server.url + "/dup-headers")
    response = rec.only_entry()["response"]
    assert header(response, "X-Dup") == ["one", "two"]
    assert header(response, "Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert [(c["name"], c["value"]) for c in response["cookies"]] == [("a", "1"), ("b", "2")]


def test_non_ascii_header_values_are_read_as_utf8(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.Session() as session:
            session.get(server.url + "/unicode-headers",
                        headers={"X-Sent-Bytes": "h\u00e9llo \u2713".encode("utf-8"),
                                 "X-Sent-Latin1": "caf\u00e9"})
    entry = rec.only_entry()
    assert header(entry["response"], "X-Unicode") == ["h\u00e9llo \u2713"]
    assert header(entry["request"], "X-Sent-Bytes") == ["h\u00e9llo \u2713"]
    assert header(entry["request"], "X-Sent-Latin1") == ["caf\u00e9"]


def test_cookies_set_and_sent_by_a_session(server: Any, record: Any) -> None:
    with record(redact=False) as rec:
        with requests.Session() as session:
            session.get(server.url + "/cookies/set")
            sent = session.get(server.url + "/cookies").json()
    first, second = rec.entries
    assert [c["name"] for c in first["response"]["cookies"]] == ["session", "theme"]
    assert {c["name"]: c["value"] for c in second["request"]["cookies"]} == sent
    assert "theme" in sent


# --- request bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "form", "multipart", "binary", "text"])
def test_request_bodies_are_recorded_as_sent(server: Any, record: Any, kind: str) -> None:
    arguments: Dict[str, Any] = {
        "json": {"json": {"name": "héllo", "n": [1, 2]}},
        "form": {"data": {"q": "a b", "lang": "fr é"}},
        "multipart": {"files": {"upload": ("a.txt", b"file contents\n", "text/plain")},
                      "data": {"field": "value"}},
        "binary": {"data": deterministic_bytes(3000, seed=7)},
        "text": {"data": "plain str body é", "headers": {"Content-Type": "text/plain; charset=utf-8"}},
    }[kind]
    with record() as rec:
        seen = requests.post(server.url + "/echo", **arguments).json()
    request = rec.only_entry()["request"]
    sent = base64.b64decode(seen["body_base64"])
    assert request["bodySize"] == len(sent) == seen["body_size"]
    post = request["postData"]
    assert [post["mimeType"]] == (header(request, "Content-Type") or ["application/octet-stream"])
    if kind == "form":
        assert [(p["name"], p["value"]) for p in post["params"]] == [("q", "a b"), ("lang", "fr é")]
    elif kind == "multipart":
        names = [p["name"] for p in post["params"]]
        assert names == ["field", "upload"]
    elif kind == "binary":
        assert base64.b64decode(post["text"]) == sent and post["encoding"] == "base64"
    else:  # a str body goes out as UTF-8 with urllib3 2, as ISO-8859-1 with urllib3 1.26
        assert body_bytes(post) == sent


def test_streamed_request_body_is_sent_untouched_and_not_recorded(server: Any, record: Any) -> None:
    def parts() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    with record() as rec:
        seen = requests.post(server.url + "/echo", data=parts()).json()
    assert base64.b64decode(seen["body_base64"]) == b"first,second"
    request = rec.only_entry()["request"]
    assert header(request, "Transfer-Encoding") == ["chunked"]
    assert "postData" not in request and request["bodySize"] == -1


# --- response bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/gzip-chunked", "/br"])
def test_compressed_responses_report_wire_and_decoded_sizes(server: Any, record: Any, path: str) -> None:
    if path == "/br" and not (HAS_BROTLI and "br" in requests.utils.DEFAULT_ACCEPT_ENCODING):
        pytest.skip("brotli not available to both server and urllib3")
    with record() as rec:
        response = requests.get(server.url + path)
    assert response.text == COMPRESSIBLE_TEXT
    har_response = rec.only_entry()["response"]
    content = har_response["content"]
    decoded = len(COMPRESSIBLE_TEXT.encode())
    wire = len(gzip.compress(COMPRESSIBLE_TEXT.encode(), mtime=0)) if "gzip" in path else None
    assert content["size"] == decoded
    assert content["text"] == COMPRESSIBLE_TEXT
    assert 0 < har_response["bodySize"] < decoded
    if wire is not None:
        assert har_response["bodySize"] == wire
    if path != "/gzip-chunked":
        assert har_response["bodySize"] == int(header(har_response, "Content-Length")[0])
    assert content["compression"] == decoded - har_response["bodySize"]


@pytest.mark.parametrize("path, expected", [("/binary?size=5000&seed=3", deterministic_bytes(5000, 3)),
                                            ("/image.png", PNG_BYTES)])
def test_binary_responses_are_base64(server: Any, record: Any, path: str, expected: bytes) -> None:
    with record() as rec:
        assert requests.get(server.url + path).content == expected
    content = rec.only_entry()["response"]["content"]
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == expected


@pytest.mark.parametrize("path, expected", [("/text", TEXT_BODY), ("/latin1", LATIN1_TEXT)])
def test_text_responses_are_decoded_with_their_charset(server: Any, record: Any, path: str,
                                                      expected: str) -> None:
    with record() as rec:
        assert requests.get(server.url + path).text == expected
    content = rec.only_entry()["response"]["content"]
    assert content["text"] == expected and "encoding" not in content


@pytest.mark.parametrize("method, path", [("HEAD", "/json"), ("GET", "/empty"), ("GET", "/status/304")])
def test_bodiless_responses_finish_with_size_zero(server: Any, record: Any, method: str, path: str) -> None:
    with record() as rec:
        requests.request(method, server.url + path)
    response = rec.only_entry()["response"]
    assert response["content"]["size"] == 0 and response["bodySize"] == 0
    assert "comment" not in response


def test_redirects_make_one_entry_per_hop(server: Any, record: Any) -> None:
    with record() as rec:
        response = requests.get(server.url + "/redirect/2")
    assert response.json() == JSON_BODY and len(response.history) == 2
    entries = rec.entries
    assert [e["response"]["status"] for e in entries] == [302, 302, 200]
    assert [e["request"]["url"] for e in entries] == [
        server.url + "/redirect/2", server.url + "/redirect/1", server.url + "/json"]
    assert [e["response"]["redirectURL"] for e in entries] == ["/redirect/1", "/json", ""]
    assert header(entries[0]["response"], "Location") == ["/redirect/1"]
    assert entries[0]["response"]["content"]["text"] == "redirecting to /redirect/1"


# --- streaming ----------------------------------------------------------------------------


def read_stream(url: str, chunk_size: Any) -> Tuple[List[bytes], List[float]]:
    """The chunks ``iter_content`` yields and when each arrived (seconds after the headers)."""
    with requests.get(url, stream=True) as response:
        start = time.perf_counter()
        chunks, times = [], []
        for chunk in response.iter_content(chunk_size):
            chunks.append(chunk)
            times.append(time.perf_counter() - start)
    return chunks, times


def test_streaming_yields_the_same_chunks_at_the_same_pace(server: Any, record: Any) -> None:
    url = server.url + "/stream?chunks=3&size=1000&delay=0.3"
    plain, _ = read_stream(url, None)
    with record() as rec:
        recorded, times = read_stream(url, None)
    assert recorded == plain and b"".join(recorded) == b"\0" * 1000 + b"\1" * 1000 + b"\2" * 1000
    assert times[0] < 0.25 < times[-1]  # the first chunk came before the server sent the rest
    content = rec.only_entry()["response"]["content"]
    assert content["size"] == 3000 and base64.b64decode(content["text"]) == b"".join(plain)


def test_iter_lines_and_small_chunks_record_the_whole_body(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.get(server.url + "/text", stream=True) as response:
            pieces = list(response.iter_content(3))
        with requests.get(server.url + "/stream?chunks=2&size=10", stream=True) as response:
            lines = list(response.iter_lines())
    assert b"".join(pieces).decode("utf-8") == TEXT_BODY
    assert lines == [b"\0" * 10 + b"\1" * 10]
    first, second = rec.entries
    assert first["response"]["content"]["text"] == TEXT_BODY
    assert second["response"]["content"]["size"] == 20


def test_raw_read_with_copyfileobj_records_the_body(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.get(server.url + "/gzip", stream=True) as response:
            response.raw.decode_content = True
            sink = io.BytesIO()
            shutil.copyfileobj(response.raw, sink)
    assert sink.getvalue().decode() == COMPRESSIBLE_TEXT
    har_response = rec.only_entry()["response"]
    assert har_response["content"]["text"] == COMPRESSIBLE_TEXT
    assert har_response["bodySize"] == int(header(har_response, "Content-Length")[0])


def test_raw_read_of_still_encoded_bytes_leaves_the_size_unknown(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.get(server.url + "/gzip", stream=True) as response:
            data = response.raw.read()
    assert gzip.decompress(data).decode() == COMPRESSIBLE_TEXT
    har_response = rec.only_entry()["response"]
    assert har_response["content"]["size"] == -1
    assert har_response["bodySize"] == len(data)  # the wire size is known all the same


def test_a_streamed_body_closed_unread_is_finished_with_unknown_size(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.get(server.url + "/large?size=200000", stream=True) as response:
            first = next(response.iter_content(100))
    assert first == bytes(range(100))
    har_response = rec.only_entry()["response"]
    assert har_response["status"] == 200
    assert har_response["content"]["size"] == -1 and har_response["bodySize"] == -1
    assert "_error" not in har_response


def test_a_never_read_stream_is_exported_when_recording_stops(server: Any, record: Any) -> None:
    with record() as rec:
        response = requests.get(server.url + "/stream?chunks=2&size=10", stream=True)
    entry = rec.only_entry()
    assert entry["response"]["status"] == 200
    assert entry["response"]["content"]["size"] == -1 and entry["response"]["bodySize"] == -1
    assert "not read" in entry["response"]["comment"]
    assert response.content == b"\0" * 10 + b"\1" * 10  # the program can still read it
    assert len(rec.entries) == 1


# --- connections, timings, TLS ------------------------------------------------------------


def test_keep_alive_reuse_shares_the_connection(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.Session() as session:
            session.get(server.url + "/json")
            session.get(server.url + "/text")
    first, second = rec.entries
    assert first["connection"] == second["connection"]
    assert first["timings"]["connect"] >= 0 and first["timings"]["dns"] >= 0
    assert second["timings"]["connect"] == -1 and second["timings"]["dns"] == -1
    for entry in (first, second):
        phases = ("blocked", "dns", "connect", "send", "wait", "receive")
        assert entry["time"] == pytest.approx(sum(max(0, entry["timings"][p]) for p in phases))
        assert entry["timings"]["ssl"] == -1


def test_new_sessions_use_new_connections(server: Any, record: Any) -> None:
    with record() as rec:
        requests.get(server.url + "/json")
        requests.get(server.url + "/json")
    first, second = rec.entries
    assert first["connection"] != second["connection"]
    assert second["timings"]["connect"] >= 0


def test_tls_handshake_is_the_ssl_phase(tls: Any, record: Any) -> None:
    with record() as rec:
        with requests.Session() as session:
            assert session.get(tls.url + "/json", verify=tls.ca_file).json() == JSON_BODY
            assert session.get(tls.localhost_url + "/text", verify=tls.ca_file).text == TEXT_BODY
            session.get(tls.url + "/json", verify=tls.ca_file)
    first, by_name, reused = rec.entries
    for entry in (first, by_name):
        timings = entry["timings"]
        assert 0 <= timings["ssl"] <= timings["connect"]
        assert entry["serverIPAddress"] in ("127.0.0.1", "::1")
    assert by_name["request"]["url"].startswith("https://localhost:")
    assert reused["connection"] == first["connection"] and reused["timings"]["ssl"] == -1


def test_ipv6_server_address(record: Any) -> None:
    try:
        server = LoopbackServer(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        with record() as rec:
            requests.get(f"http://[::1]:{server.port}/json")
    finally:
        server.stop()
    entry = rec.only_entry()
    assert entry["serverIPAddress"] == "::1"
    assert header(entry["request"], "Host") == [f"[::1]:{server.port}"]


# --- failures -----------------------------------------------------------------------------


FAILURES = {
    "refused": (lambda server: f"http://127.0.0.1:{closed_port()}/", {}, "net::ERR_CONNECTION_REFUSED"),
    "dns": (lambda server: "http://no-such-host.invalid/", {}, "net::ERR_NAME_NOT_RESOLVED"),
    "read-timeout": (lambda server: server.url + "/slow?delay=3", {"timeout": 0.3}, "net::ERR_TIMED_OUT"),
    "reset": (lambda server: server.url + "/reset", {}, "net::ERR_CONNECTION_RESET"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_failures_give_one_status_0_entry_and_the_same_exception(server: Any, record: Any,
                                                                 kind: str) -> None:
    make_url, options, net_error = FAILURES[kind]
    url = make_url(server)
    plain = outcome(lambda: requests.get(url, **options))
    with record() as rec:
        recorded = outcome(lambda: requests.get(url, **options))
    assert plain[0] == "raised" and recorded == plain
    entry = rec.only_entry()
    assert entry["response"]["status"] == 0 and entry["response"]["_error"] == net_error
    assert entry["response"]["headers"] == [] and entry["timings"]["blocked"] == entry["time"]
    assert entry["request"]["url"] == url


def test_tls_verification_failure(tls: Any, record: Any) -> None:
    url = tls.url + "/json"
    plain = outcome(lambda: requests.get(url))
    with record() as rec:
        recorded = outcome(lambda: requests.get(url))
    assert recorded == plain and recorded[1] is requests.exceptions.SSLError
    response = rec.only_entry()["response"]
    assert response["status"] == 0 and response["_error"] == "net::ERR_CERT_AUTHORITY_INVALID"


def test_reset_in_the_middle_of_the_body(server: Any, record: Any) -> None:
    url = server.url + "/reset?after=body"
    plain = outcome(lambda: requests.get(url))
    with record() as rec:
        recorded = outcome(lambda: requests.get(url))
    assert plain[0] == "raised" and recorded == plain
    entry = rec.only_entry()
    assert entry["response"]["status"] == 200 and entry["response"]["_error"].startswith("net::")
    assert entry["response"]["content"]["size"] == -1
    assert entry["timings"]["wait"] >= 0 and entry["timings"]["receive"] >= 0


def retrying_session(backoff_factor: float = 0, **retry: Any) -> requests.Session:
    from urllib3.util.retry import Retry

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        max_retries=Retry(backoff_factor=backoff_factor, **retry))
    session.mount("http://", adapter)
    return session


@pytest.mark.parametrize("raise_on_status", [False, True])
def test_each_attempt_urllib3_retries_is_an_entry(server: Any, record: Any,
                                                  raise_on_status: bool) -> None:
    """A ``Retry`` on 503: three requests went out, so three entries, in order, from the
    program's call; the program gets what it gets without harlem (the last 503, or
    ``RetryError``)."""
    url = server.url + "/status/503"

    def call() -> requests.Response:
        with retrying_session(total=2, status_forcelist=[503],
                              raise_on_status=raise_on_status) as session:
            return session.get(url)

    plain = outcome(call)
    with record() as rec:
        recorded = outcome(call)
    assert recorded == plain
    entries = rec.entries
    assert [e["response"]["status"] for e in entries] == [503, 503, 503]
    assert [e["request"]["url"] for e in entries] == [url] * 3
    starts = [e["startedDateTime"] for e in entries]
    assert starts == sorted(starts)
    stacks = [e["_initiator"]["stack"]["callFrames"][0] for e in entries]
    assert stacks[0]["functionName"].split(".")[-1] == "call" and stacks.count(stacks[0]) == 3
    # The answers urllib3 discarded: status and headers, the body unknown; the last one is
    # read by the program unless urllib3 raised instead.
    for entry in entries[:2]:
        assert entry["response"]["content"]["size"] == -1 and "_error" not in entry["response"]
    last = entries[2]["response"]
    assert (last["content"]["size"] == -1) is raise_on_status


def test_each_connection_attempt_urllib3_retries_is_an_entry(record: Any) -> None:
    url = f"http://127.0.0.1:{closed_port()}/nothing"

    def call() -> requests.Response:
        with retrying_session(total=2) as session:
            return session.get(url)

    plain = outcome(call)
    with record() as rec:
        recorded = outcome(call)
    assert recorded == plain and recorded[1] is requests.exceptions.ConnectionError
    entries = rec.entries
    assert [e["response"]["_error"] for e in entries] == ["net::ERR_CONNECTION_REFUSED"] * 3
    # the last attempt's failure is the exception the program got
    assert entries[2]["response"]["comment"].startswith("requests.exceptions.ConnectionError")
    assert entries[0]["response"]["comment"].startswith("urllib3.exceptions.NewConnectionError")


def test_a_failed_attempt_ends_when_it_failed_not_after_the_back_off(record: Any) -> None:
    """urllib3 sleeps between a failed attempt and the next (backoff_factor): that sleep is
    no attempt's. A refusal that took a millisecond read as lasting the whole back-off."""
    from harlem.har.dates import epoch_ms

    url = f"http://127.0.0.1:{closed_port()}/nothing"
    with record() as rec:
        with retrying_session(total=2, backoff_factor=0.2) as session:  # sleeps 0 s, 0.4 s
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(url)
    entries = rec.entries
    spans = [(epoch_ms(e["startedDateTime"]), e["time"]) for e in entries]
    gap = spans[2][0] - (spans[1][0] + spans[1][1])  # between the 2nd's end and the 3rd's start
    assert gap >= 300, spans  # the 0.4 s back-off is a gap, not the 2nd attempt's time


def test_a_raw_read_of_exactly_the_rest_completes_the_body(server: Any, record: Any) -> None:
    """``raw.read(n)`` of the whole Content-Length: no read comes back empty to say the end
    was reached, but urllib3 knows it."""
    with record() as rec:
        response = requests.get(server.url + "/binary?size=3000", stream=True)
        data = response.raw.read(3000)
    assert data == deterministic_bytes(3000)
    entry = rec.only_entry()  # whole before the recording stopped: not a partial entry
    content = entry["response"]["content"]
    assert content["size"] == 3000 and entry["response"]["bodySize"] == 3000
    assert base64.b64decode(content["text"]) == data and "comment" not in entry["response"]


def test_a_body_read_through_read1_is_recorded(server: Any, record: Any) -> None:
    """``io.TextIOWrapper(response.raw)`` (and ``csv`` over it) reads through urllib3's
    ``read1``, which never calls ``read``."""
    if not hasattr(urllib3.response.HTTPResponse, "read1"):
        pytest.skip("urllib3 1.x has no read1")
    with record() as rec:
        response = requests.get(server.url + "/text", stream=True)
        text = io.TextIOWrapper(response.raw, encoding="utf-8").read()
        binary = requests.get(server.url + "/binary?size=3000", stream=True)
        parts = []
        while True:
            part = binary.raw.read1(500)
            if not part:
                break
            parts.append(part)
    assert text == TEXT_BODY and b"".join(parts) == deterministic_bytes(3000)
    first, second = rec.entries
    assert first["response"]["content"]["text"] == TEXT_BODY
    assert first["response"]["content"]["size"] == len(TEXT_BODY.encode("utf-8"))
    assert base64.b64decode(second["response"]["content"]["text"]) == b"".join(parts)
    assert second["response"]["bodySize"] == 3000 and "comment" not in second["response"]


@pytest.mark.parametrize("read", ["stream", "read_chunked"])
def test_encoded_bytes_streamed_by_the_program_leave_the_size_unknown(server: Any, record: Any,
                                                                     read: str) -> None:
    path = "/gzip" if read == "stream" else "/gzip-chunked"
    with record() as rec:
        with requests.get(server.url + path, stream=True) as response:
            data = b"".join(getattr(response.raw, read)(decode_content=False))
    assert gzip.decompress(data).decode() == COMPRESSIBLE_TEXT
    har_response = rec.only_entry()["response"]
    content = har_response["content"]
    assert content["size"] == -1 and "text" not in content
    assert har_response["bodySize"] == len(data)  # the wire size is known all the same


@pytest.mark.parametrize("method, path", [("HEAD", "/json"), ("GET", "/status/304"),
                                          ("GET", "/empty")])
def test_a_response_without_a_body_is_complete_read_or_not(server: Any, record: Any,
                                                           method: str, path: str) -> None:
    """HEAD, 204 and 304 responses have no body: nothing to read, so nothing "unread"."""
    with record() as rec:
        with requests.request(method, server.url + path, stream=True) as response:
            status = response.status_code
    entry = rec.only_entry()
    assert entry["response"]["status"] == status
    assert entry["response"]["content"]["size"] == 0 and entry["response"]["bodySize"] == 0
    assert "comment" not in entry["response"]


def test_a_body_read_with_read_chunked_is_recorded(server: Any, record: Any) -> None:
    with record() as rec:
        with requests.get(server.url + "/stream?chunks=3&size=7", stream=True) as response:
            chunks = list(response.raw.read_chunked())
    assert b"".join(chunks) == b"\0" * 7 + b"\1" * 7 + b"\2" * 7
    entry = rec.only_entry()
    assert entry["response"]["content"]["size"] == 21
    assert base64.b64decode(entry["response"]["content"]["text"]) == b"".join(chunks)


def test_header_sizes_count_the_bytes_on_the_wire(record: Any) -> None:
    """A header byte that is not UTF-8 (ISO-8859-1 "é") is one byte on the wire, and reads
    "é" in the HAR, as the other recorders have it."""
    head = b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\n"
    with one_answer_server(head + b"ok") as port, record() as rec:
        assert requests.get(f"http://127.0.0.1:{port}/").text == "ok"
    response = rec.only_entry()["response"]
    assert header(response, "X-Name") == ["caf\u00e9"]
    assert response["headersSize"] == len(head)


@pytest.mark.parametrize("path", ["/json", "/gzip", "/gzip-chunked", "/binary?size=70000",
                                  "/redirect/2", "/status/404", "/empty", "/stream?chunks=3&size=7",
                                  "/dup-headers", "/unicode-headers", "/latin1"])
def test_the_program_sees_the_same_with_and_without_recording(server: Any, record: Any,
                                                              path: str) -> None:
    url = server.url + path
    plain = outcome(lambda: requests.get(url))
    with record() as rec:
        recorded = outcome(lambda: requests.get(url))
    assert recorded == plain
    assert rec.entries


# --- several recorders, threads, and leaving no trace ---------------------------------------


def test_two_recorders_both_receive_entries_and_stopping_restores_everything(server: Any,
                                                                            record: Any) -> None:
    original = patch_state()
    with record() as first:
        patched = patch_state()
        assert not any(a is b for a, b in zip(patched, original))
        with record() as second:
            requests.get(server.url + "/json")
        requests.get(server.url + "/text")
        assert same_objects(patch_state(), patched)
    assert [e["request"]["url"] for e in first.entries] == [server.url + "/json", server.url + "/text"]
    assert [e["request"]["url"] for e in second.entries] == [server.url + "/json"]
    assert same_objects(patch_state(), original)
    requests.get(server.url + "/json")
    assert len(first.entries) == 2


def test_a_wrapper_a_mock_puts_back_after_the_recording_stopped_is_taken_back(
        server: Any, record: Any) -> None:
    """A test's mock that saved harlem's wrapper and outlives the recording (a module-scoped
    ``responses`` fixture under ``pytest --har``) puts that wrapper back when it ends: the
    next recording takes it back rather than wrapping it again (each request twice), and its
    stop leaves the library as it was before any recording."""
    original = requests.adapters.HTTPAdapter.send
    with record():
        mock = unittest.mock.patch.object(requests.adapters.HTTPAdapter, "send",
                                          requests.adapters.HTTPAdapter.send)
        mock.start()  # saves harlem's wrapper, and stands in its place
    assert vars(requests.adapters.HTTPAdapter)["send"] is not original  # (the mock's value)
    mock.stop()  # harlem's wrapper is back, and nobody records
    with record() as again:
        requests.get(server.url + "/json")
    assert [e["request"]["url"] for e in again.entries] == [server.url + "/json"]
    assert requests.adapters.HTTPAdapter.send is original
    with record() as third:  # and a later recording still works as usual
        requests.get(server.url + "/text")
    assert len(third.entries) == 1
    assert requests.adapters.HTTPAdapter.send is original


def test_a_response_class_the_hooks_do_not_follow_ends_the_entry_at_once(
        server: Any, record: Any, monkeypatch: Any) -> None:
    """A transport adapter that hands requests a response of its own class (vcrpy's stand-in
    for http.client's): harlem cannot see its body being read, so the entry is exported when
    the call returns, its body size unknown, not held until the recording stops and then
    said to be unread."""

    class OwnResponse(io.BytesIO):
        """Has ``stream`` and ``read``, but not urllib3's: no hook of harlem's runs."""

        status = 200
        reason = "OK"
        version = 11
        headers = {"Content-Type": "text/plain"}
        decode_content = True

        def stream(self, amt: int = 2 ** 16, decode_content: Any = None) -> Iterator[bytes]:
            while True:
                data = self.read(amt)
                if not data:
                    return
                yield data

        def release_conn(self) -> None:
            pass

    class OwnAdapter(requests.adapters.HTTPAdapter):
        def build_response(self, req: Any, resp: Any) -> requests.Response:
            resp.release_conn()  # (read by nobody: the answer below stands in for it)
            return super().build_response(req, OwnResponse(b"hello"))

    session = requests.Session()
    session.mount("http://", OwnAdapter())
    with record() as rec:
        response = session.get(server.url + "/text")
        assert response.text == "hello"
        pipeline.flush()
        entry = rec.only_entry()  # exported already, before the recording stops
    assert entry["response"]["status"] == 200
    assert entry["response"]["content"]["size"] == -1
    assert "comment" not in entry["response"]


def test_a_socket_without_addresses_leaves_the_address_out_quietly(
        server: Any, record: Any, monkeypatch: Any, capsys: Any) -> None:
    """vcrpy's socket stand-in has no ``getpeername``: no server address, and no warning."""
    monkeypatch.setattr(harlem._warn, "_seen", set())
    real = urllib3.connection.HTTPConnection.endheaders

    class NoAddresses:
        def __init__(self, sock: Any) -> None:
            self._sock = sock

        def __getattr__(self, name: str) -> Any:
            if name in ("getpeername", "getsockname"):
                raise AttributeError(name)
            return getattr(self._sock, name)

    def endheaders(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)  # (connected by now)
        self.sock = NoAddresses(self.sock)
        return result

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "endheaders", endheaders)
    with record() as rec:
        assert requests.get(server.url + "/json").json() == JSON_BODY
        entry = rec.only_entry()
    assert "serverIPAddress" not in entry
    assert "harlem" not in capsys.readouterr().err


def test_threads_each_get_their_own_entries(server: Any, record: Any) -> None:
    results: Dict[int, Any] = {}

    def work(index: int) -> None:
        with requests.Session() as session:
            results[index] = session.post(server.url + f"/echo?i={index}", data=f"body {index}").json()

    with record() as rec:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    entries = rec.entries
    assert len(entries) == 8 and len(results) == 8
    for entry in entries:
        index = int(entry["request"]["queryString"][0]["value"])
        assert entry["request"]["postData"]["text"] == f"body {index}"
        assert json.loads(entry["response"]["content"]["text"]) == results[index]


class SlowPagesExporter(ModelHarExporter):
    """Keeps the builder thread busy with the first page, so entries queue up behind it."""

    def add_page(self, page: Dict[str, Any]) -> None:
        time.sleep(0.3)
        super().add_page(page)


def test_a_with_block_exports_what_finished_inside_it(server: Any) -> None:
    exporter = SlowPagesExporter()
    with RequestsHarRecorder(exporter):
        requests.get(server.url + "/json")  # finished, but still queued when the block ends
    assert len(exporter.entries) == 1


def test_no_recording_outside_the_block(server: Any, record: Any) -> None:
    with record() as rec:
        pass
    requests.get(server.url + "/json")
    assert rec.entries == []


# --- harlem's own failures never reach the program ----------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harlem._warn, "_seen", set())


def test_a_failing_capture_step_warns_once_and_the_request_succeeds(
        server: Any, record: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any,
        fresh_warnings: None) -> None:
    def broken(raw: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(requests_recorder, "_response_headers", broken)
    plain = outcome(lambda: requests.get(server.url + "/json"))
    with record() as rec:
        first = outcome(lambda: requests.get(server.url + "/json"))
        second = outcome(lambda: requests.get(server.url + "/json"))
    assert first == second == plain
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harlem:")]
    assert len(warnings) == 1 and "RuntimeError: boom" in warnings[0]
    assert len(rec.entries) == 2  # still exported, with what was captured


def test_failing_begin_or_body_capture_never_breaks_the_request(
        server: Any, record: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any,
        fresh_warnings: None) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    plain = outcome(lambda: requests.get(server.url + "/gzip-chunked"))
    with record() as rec:
        monkeypatch.setattr(Exchange, "add_response_chunk", broken)
        assert outcome(lambda: requests.get(server.url + "/gzip-chunked")) == plain
        monkeypatch.setattr(pipeline, "begin", broken)
        assert outcome(lambda: requests.get(server.url + "/gzip-chunked")) == plain
    assert len(rec.entries) == 1
    assert capsys.readouterr().err.count("harlem: warning") == 2


def test_a_streamed_response_dropped_unread_is_finished(server: Any, record: Any) -> None:
    """``stream=True``, nothing read, the response dropped unclosed: the exchange stayed in
    flight until the recording stopped (one per such request, for a long-running program)."""
    import gc

    from harlem import pipeline

    with record() as rec:
        response = requests.get(server.url + "/stream?chunks=3&size=10", stream=True)
        status = response.status_code
        del response
        gc.collect()
        assert not pipeline._in_flight
        entry = rec.only_entry()  # (exported while the recording runs)
    assert entry["response"]["status"] == status == 200
    assert entry["response"]["content"]["size"] == -1
