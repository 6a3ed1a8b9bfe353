"""The entry builder: a hand-made Exchange in, a HAR 1.2 entry out, checked field by field.

Every entry built here also goes through the HAR validator (model, prose rules, JSON schema).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import orjson
import pytest

from harlem.capture import Exchange, capture_frames, now
from harlem.har.build import build_entry
from harlem.har.cookies import cookie_date, request_cookies, response_cookie
from harlem.har.errors import describe, net_error
from harlem.har.resource_type import resource_type
from harlem.har.timings import har_timings
from harlem.settings import Settings

try:
    from tests.helpers import check_har
except ImportError:  # the validator is not there yet: check JSON-ability only
    check_har = None

# The perf_counter reading at the start of every hand-made exchange: a minute before the tests
# began, never a fixed value (perf_counter counts from boot: on a machine up for less than that
# value, a partial entry's "time so far" came out negative).
T0 = time.perf_counter() - 60.0
WALL = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
DEFAULTS = Settings()


def at(ms: float) -> float:
    """The perf_counter reading ``ms`` milliseconds after the exchange began."""
    return T0 + ms / 1000


def make_exchange(url: str = "http://example.com/api?x=1", method: str = "GET",
                  body: Optional[bytes] = b'{"ok": true}', **fields: Any) -> Exchange:
    """A finished 200 JSON exchange on a reused connection; ``fields`` override attributes."""
    ex = Exchange("requests", method, url)
    ex.wall_start = WALL
    ex.t_start = T0
    ex.t_send_start, ex.t_send_end, ex.t_response, ex.t_end = at(1), at(2), at(10), at(12)
    ex.http_version = "HTTP/1.1"
    ex.request_headers = [("Host", "example.com"), ("Accept", "*/*")]
    ex.status, ex.reason = 200, "OK"
    ex.response_headers = [("Content-Type", "application/json")]
    ex.server_ip, ex.server_port, ex.local_port = "127.0.0.1", 80, 50000
    ex.pid = 4242
    if body is not None:
        ex.add_response_chunk(body)
        ex.body_complete = True
    for name, value in fields.items():
        setattr(ex, name, value)
    return ex


def failed_exchange(error: BaseException, **fields: Any) -> Exchange:
    """An exchange that failed before any response, 30 ms after it began."""
    defaults: Dict[str, Any] = dict(
        body=None, error=error, status=0, reason="", response_headers=[], t_send_start=None,
        t_send_end=None, t_response=None, t_end=at(30), http_version="", local_port=0,
        server_ip="")
    defaults.update(fields)
    return make_exchange(**defaults)


def check_entry(entry: Dict[str, Any]) -> Dict[str, Any]:
    """Validate ``entry`` inside a minimal HAR; return it."""
    orjson.dumps(entry)  # raises on anything JSON cannot hold
    if check_har is None:
        return entry
    page = {"startedDateTime": "2023-11-14T22:13:20.000Z", "id": entry["pageref"],
            "title": "test", "pageTimings": {"onContentLoad": -1, "onLoad": -1}}
    check_har({"log": {"version": "1.2", "creator": {"name": "harlem", "version": "0"},
                       "pages": [page], "entries": [entry]}})
    return entry


def build(ex: Exchange, settings: Settings = DEFAULTS, partial: bool = False) -> Dict[str, Any]:
    entry = build_entry(ex, settings, partial=partial)
    check_entry(entry)
    return entry


def test_decoded_headers_cache_keeps_no_secret_and_changes_nothing() -> None:
    """Headers are decoded once per distinct raw form, but nothing redaction may change is
    kept between entries, and an entry built from the cache is the entry built without it."""
    from harlem.har import build as build_module

    sent = [b"Host: example.com", b"Authorization: Bearer s3cret", b"X-Team: blue",
            b"Referer: http://example.com/?token=t0ken", b"Accept: */*"]
    received = [(b"Content-Type", b"application/json"), (b"Set-Cookie", b"sid=c00kie"),
                (b"Server", b"demo \xc3\xa9")]
    settings = Settings(redact_header=("x-team",))
    build_module._header_cache.clear()
    cold = build(make_exchange(request_headers=sent, response_headers=received), settings)
    cached = repr(list(build_module._header_cache.values()))
    for secret in ("s3cret", "blue", "t0ken", "c00kie"):
        assert secret not in cached
    assert "example.com" in cached and "demo \u00e9" in cached
    warm = build(make_exchange(request_headers=sent, response_headers=received), settings)
    assert warm == cold
    assert {h["name"]: h["value"] for h in warm["request"]["headers"]}["X-Team"] == "[REDACTED]"
    # Pairs that are lists cannot be keys: decoded each time, built all the same.
    listed = build(make_exchange(request_headers=[["Accept", "*/*"]]), settings)
    assert listed["request"]["headers"] == [{"name": "Accept", "value": "*/*"}]
    # With patterns, any value may hold a match: nothing is cached.
    build_module._header_cache.clear()
    build(make_exchange(request_headers=sent), Settings(redact_pattern=("x",)))
    assert build_module._header_cache == {}


def header_bytes(first_line: str, headers: Any) -> int:
    return len((first_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
                + "\r\n").encode())


def summed(timings: Dict[str, float]) -> float:
    return sum(timings[p] for p in ("blocked", "dns", "connect", "send", "wait", "receive")
               if timings[p] != -1)


# --- the whole entry -------------------------------------------------------------------------


def test_small_json_exchange_field_by_field() -> None:
    entry = build(make_exchange())
    assert entry["pageref"] == "page_0"
    assert entry["startedDateTime"] == "2023-11-14T22:13:20.250Z"
    assert entry["time"] == 12.0
    assert entry["cache"] == {}
    assert entry["serverIPAddress"] == "127.0.0.1"
    assert entry["connection"] == "50000"
    assert entry["_priority"] == "High"
    assert entry["_resourceType"] == "fetch"
    assert entry["_pid"] == 4242
    assert entry["_direction"] == "outgoing"

    request = entry["request"]
    assert request["method"] == "GET"
    assert request["url"] == "http://example.com/api?x=1"
    assert request["httpVersion"] == "HTTP/1.1"
    assert request["headers"] == [{"name": "Host", "value": "example.com"},
                                  {"name": "Accept", "value": "*/*"}]
    assert request["queryString"] == [{"name": "x", "value": "1"}]
    assert request["cookies"] == []
    assert request["headersSize"] == header_bytes(
        "GET /api?x=1 HTTP/1.1", [("Host", "example.com"), ("Accept", "*/*")])
    assert request["bodySize"] == 0
    assert "postData" not in request

    response = entry["response"]
    assert response["status"] == 200
    assert response["statusText"] == "OK"
    assert response["httpVersion"] == "HTTP/1.1"
    assert response["headers"] == [{"name": "Content-Type", "value": "application/json"}]
    assert response["cookies"] == []
    assert response["content"] == {"size": 12, "mimeType": "application/json",
                                   "text": '{"ok": true}'}
    assert response["redirectURL"] == ""
    assert response["bodySize"] == 12
    assert response["headersSize"] == header_bytes(
        "HTTP/1.1 200 OK", [("Content-Type", "application/json")])
    assert response["_transferSize"] == response["headersSize"] + 12
    assert "_error" not in response and "comment" not in response


def test_page_id_and_unknown_connection_facts() -> None:
    ex = make_exchange(page_id="page_7", server_ip="", local_port=0, http_version="")
    entry = build(ex)
    assert entry["pageref"] == "page_7"
    assert "serverIPAddress" not in entry and "connection" not in entry
    assert entry["request"]["httpVersion"] == entry["response"]["httpVersion"] == "HTTP/1.1"


@pytest.mark.parametrize("raw, written", [
    ("[::1]", "::1"), ("::1", "::1"), ("fe80::1%eth0", "fe80::1"), ("10.0.0.7", "10.0.0.7"),
    ("/run/app.sock", None), ("localhost", None),
])
def test_server_ip_address(raw: str, written: Optional[str]) -> None:
    entry = build(make_exchange(server_ip=raw))
    assert entry.get("serverIPAddress") == written


def test_http2_version_is_kept() -> None:
    entry = build(make_exchange(http_version="http/2.0"))
    assert entry["request"]["httpVersion"] == entry["response"]["httpVersion"] == "http/2.0"


def test_incoming_direction() -> None:
    ex = make_exchange(direction="incoming", frames=())
    entry = build(ex)
    assert entry["_direction"] == "incoming"
    assert entry["_initiator"] == {"type": "other"}


def test_duplicate_headers_keep_order_and_repeats() -> None:
    response_headers = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"),
                        ("X-Dup", "one"), ("Set-Cookie", "b=2"), ("x-dup", "two")]
    request_headers = [("Accept", "a"), ("X-Dup", "1"), ("accept", "b")]
    ex = make_exchange(response_headers=response_headers, request_headers=request_headers,
                       body=b"hi")
    entry = build(ex, Settings(redact=False))
    assert [(h["name"], h["value"]) for h in entry["response"]["headers"]] == response_headers
    assert [(h["name"], h["value"]) for h in entry["request"]["headers"]] == request_headers
    assert [c["name"] for c in entry["response"]["cookies"]] == ["a", "b"]


def test_query_string_is_decoded_like_parse_qsl() -> None:
    url = "http://example.com/s?q=caf%C3%A9+au+lait&empty=&flag&x=1&x=2&plus=a%2Bb"
    entry = build(make_exchange(url=url))
    assert [(q["name"], q["value"]) for q in entry["request"]["queryString"]] == [
        ("q", "café au lait"), ("empty", ""), ("flag", ""), ("x", "1"), ("x", "2"),
        ("plus", "a+b")]
    assert entry["request"]["headersSize"] == header_bytes(
        "GET /s?q=caf%C3%A9+au+lait&empty=&flag&x=1&x=2&plus=a%2Bb HTTP/1.1",
        [("Host", "example.com"), ("Accept", "*/*")])


def test_request_line_uses_slash_for_an_empty_path() -> None:
    entry = build(make_exchange(url="http://example.com"))
    assert entry["request"]["headersSize"] == header_bytes(
        "GET / HTTP/1.1", [("Host", "example.com"), ("Accept", "*/*")])


def test_no_headers_known_means_unknown_size() -> None:
    entry = build(make_exchange(request_headers=[]))
    assert entry["request"]["headersSize"] == -1


def test_redirect_url_from_location() -> None:
    ex = make_exchange(status=302, reason="Found", body=b"",
                       response_headers=[("Location", "/next?a=1"), ("Content-Length", "0")])
    entry = build(ex)
    assert entry["response"]["redirectURL"] == "/next?a=1"
    assert entry["response"]["content"] == {"size": 0, "mimeType": "x-unknown"}
    assert entry["response"]["bodySize"] == 0


# --- timings -------------------------------------------------------------------------------


def test_timings_on_a_reused_connection() -> None:
    entry = build(make_exchange())
    assert entry["timings"] == {"blocked": 1.0, "dns": -1, "connect": -1, "send": 1.0,
                                "wait": 8.0, "receive": 2.0, "ssl": -1}
    assert summed(entry["timings"]) == entry["time"] == 12.0


def test_timings_on_a_new_tls_connection() -> None:
    ex = make_exchange(t_dns_start=at(1), t_dns_end=at(3), t_connect_start=at(3),
                       t_tls_start=at(5), t_connect_end=at(10), t_send_start=at(10.5),
                       t_send_end=at(11), t_response=at(20), t_end=at(25))
    timings = build(ex)["timings"]
    assert timings == {"blocked": 1.0, "dns": 2.0, "connect": 7.0, "send": 1.0, "wait": 9.0,
                       "receive": 5.0, "ssl": 5.0}
    assert summed(timings) == 25.0
    assert timings["ssl"] <= timings["connect"]  # ssl is inside connect, not added to time


def test_dns_inside_connect_is_not_counted_twice() -> None:
    ex = make_exchange(t_connect_start=at(1), t_dns_start=at(1.5), t_dns_end=at(3),
                       t_tls_start=at(4), t_connect_end=at(6), t_send_start=at(6),
                       t_send_end=at(7), t_response=at(10), t_end=at(11))
    entry = build(ex)
    assert entry["timings"] == {"blocked": 1.0, "dns": 2.0, "connect": 3.0, "send": 1.0,
                                "wait": 3.0, "receive": 1.0, "ssl": 2.0}
    assert entry["time"] == 11.0


def test_timings_round_to_microseconds_and_sum_exactly() -> None:
    ex = make_exchange(t_send_start=at(0.1234567), t_send_end=at(0.2345678),
                       t_response=at(7.7777777), t_end=at(9.9999999))
    time, timings = har_timings(ex)
    assert timings["blocked"] == 0.123 and timings["send"] == 0.112
    assert all(round(v, 3) == v for v in timings.values())
    assert abs(summed(timings) - time) < 1e-9
    assert time == 10.0


def test_out_of_order_marks_never_give_negative_phases() -> None:
    ex = make_exchange(t_send_start=at(5), t_send_end=at(3), t_response=at(2), t_end=at(1))
    time, timings = har_timings(ex)
    assert all(v >= 0 for k, v in timings.items() if k not in ("dns", "connect", "ssl"))
    assert summed(timings) == time == 5.0


def test_missing_marks_are_absorbed_by_the_next_phase() -> None:
    ex = make_exchange(t_send_start=None, t_send_end=None, t_response=at(4), t_end=at(6))
    time, timings = har_timings(ex)
    assert timings == {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 4.0,
                       "receive": 2.0, "ssl": -1}
    assert time == 6.0


def test_failed_exchange_is_all_blocked() -> None:
    ex = failed_exchange(ConnectionRefusedError(111, "Connection refused"),
                         t_connect_start=at(1))
    time, timings = har_timings(ex)
    assert timings == {"blocked": 30.0, "dns": -1, "connect": -1, "send": 0, "wait": 0,
                       "receive": 0, "ssl": -1}
    assert time == 30.0


# --- failures ------------------------------------------------------------------------------


def test_failure_before_any_response() -> None:
    error = ConnectionRefusedError(111, "Connection refused")
    entry = build(failed_exchange(error))
    response = entry["response"]
    assert response["status"] == 0 and response["statusText"] == ""
    assert response["headers"] == [] and response["cookies"] == []
    assert response["content"] == {"size": 0, "mimeType": "x-unknown"}
    assert response["headersSize"] == -1 and response["bodySize"] == -1
    assert response["_transferSize"] == -1
    assert response["_error"] == "net::ERR_CONNECTION_REFUSED"
    assert response["comment"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert entry["_resourceType"] == "other"
    assert entry["request"]["httpVersion"] == "HTTP/1.1"
    assert entry["time"] == entry["timings"]["blocked"] == 30.0


def test_failure_while_reading_the_body() -> None:
    error = http.client.IncompleteRead(b"par", 10)
    ex = make_exchange(body=b"par", error=error)
    ex.body_complete = False
    entry = build(ex)
    response = entry["response"]
    assert response["status"] == 200
    assert response["_error"] == "net::ERR_CONNECTION_CLOSED"
    assert response["content"]["size"] == -1 and response["bodySize"] == -1
    assert response["content"]["text"] == "par"
    assert entry["timings"]["wait"] == 8.0  # normal timings: the response had started
    assert entry["_resourceType"] == "fetch"


class ConnectTimeout(Exception):
    """Named like requests' and httpx's exception (matched by name)."""


class NameResolutionError(Exception):
    """Named like urllib3's."""


class ReadTimeout(Exception):
    pass


class ProtocolError(Exception):
    pass


class ServerDisconnectedError(Exception):
    pass


class MaxRetryError(Exception):
    def __init__(self, reason: BaseException):
        super().__init__("Max retries exceeded")
        self.reason = reason


class ClientConnectorError(Exception):
    def __init__(self, os_error: BaseException):
        super().__init__("Cannot connect")
        self.os_error = os_error


def grouped(group: BaseException, *members: BaseException) -> BaseException:
    """``group`` shaped as an exception group (``.exceptions``), on every Python version."""
    group.exceptions = members  # type: ignore[attr-defined]
    return group


def caused(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize("error, started, name", [
    (ConnectionRefusedError(111, "refused"), False, "net::ERR_CONNECTION_REFUSED"),
    (caused(OSError("wrapper"), ConnectionRefusedError()), False, "net::ERR_CONNECTION_REFUSED"),
    (MaxRetryError(caused(OSError("new conn"), ConnectionRefusedError())), False,
     "net::ERR_CONNECTION_REFUSED"),
    (ClientConnectorError(ConnectionRefusedError()), False, "net::ERR_CONNECTION_REFUSED"),
    (OSError("x", ConnectionRefusedError()), False, "net::ERR_CONNECTION_REFUSED"),
    (socket.gaierror(-2, "Name or service not known"), False, "net::ERR_NAME_NOT_RESOLVED"),
    (MaxRetryError(NameResolutionError("no")), False, "net::ERR_NAME_NOT_RESOLVED"),
    (caused(ConnectTimeout("slow"), socket.timeout("timed out")), False,
     "net::ERR_CONNECTION_TIMED_OUT"),
    (ReadTimeout("read"), True, "net::ERR_TIMED_OUT"),
    (TimeoutError(), False, "net::ERR_TIMED_OUT"),
    (asyncio.TimeoutError(), False, "net::ERR_TIMED_OUT"),
    (ProtocolError("aborted", ConnectionResetError(104, "reset")), True,
     "net::ERR_CONNECTION_RESET"),
    (ConnectionAbortedError(), False, "net::ERR_CONNECTION_ABORTED"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer "
                                     "certificate"), False, "net::ERR_CERT_AUTHORITY_INVALID"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed: Hostname mismatch, "
                                     "certificate is not valid for 'x'."), False,
     "net::ERR_CERT_COMMON_NAME_INVALID"),
    (caused(ssl.SSLError("outer"), ssl.SSLCertVerificationError(1, "bad")), False,
     "net::ERR_CERT_AUTHORITY_INVALID"),
    (ssl.SSLError(1, "wrong version number"), False, "net::ERR_SSL_PROTOCOL_ERROR"),
    (http.client.RemoteDisconnected("closed"), False, "net::ERR_EMPTY_RESPONSE"),
    (ServerDisconnectedError(), False, "net::ERR_EMPTY_RESPONSE"),
    (ProtocolError("incomplete"), True, "net::ERR_CONNECTION_CLOSED"),
    (ValueError("odd"), False, "net::ERR_FAILED"),
    (asyncio.CancelledError(), True, "net::ERR_ABORTED"),
    # urllib3 wraps a send that timed out: not a closed connection
    (ProtocolError("Connection aborted.", TimeoutError("timed out")), False, "net::ERR_TIMED_OUT"),
    # an exception group's members (trio's nursery around a connect): searched too
    (grouped(BaseException("Exceptions from Trio nursery"),
             type("Cancelled", (BaseException,), {})()), False, "net::ERR_ABORTED"),
    (grouped(Exception("unhandled errors in a TaskGroup"), ConnectionRefusedError()), False,
     "net::ERR_CONNECTION_REFUSED"),
    (KeyboardInterrupt(), False, "net::ERR_ABORTED"),
    (caused(asyncio.CancelledError(), ConnectionResetError()), False, "net::ERR_CONNECTION_RESET"),
    # a body that does not decode: not a closed connection, whatever class carries it
    (type("ClientPayloadError", (Exception,), {})("Can not decode content-encoding: gzip"),
     True, "net::ERR_CONTENT_DECODING_FAILED"),
    (type("ContentDecodingError", (Exception,), {})("bad gzip"), True,
     "net::ERR_CONTENT_DECODING_FAILED"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), True, "net::ERR_FAILED"),
])
def test_net_error_names(error: BaseException, started: bool, name: str) -> None:
    assert net_error(error, started) == name


def test_net_error_survives_cycles() -> None:
    first, second = OSError("a"), OSError("b")
    first.__context__, second.__context__ = second, first
    assert net_error(first, False) == "net::ERR_FAILED"


def test_describe_qualifies_and_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(Broken()).endswith("test_describe_qualifies_and_survives_a_broken_str."
                                       "<locals>.Broken")
    assert len(describe(ValueError("x" * 5000))) == 2000


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_real_requests_refusal_is_named() -> None:
    requests = pytest.importorskip("requests")
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{_closed_port()}/", timeout=5)
    assert net_error(caught.value, False) == "net::ERR_CONNECTION_REFUSED"
    entry = build(failed_exchange(caught.value))
    assert entry["response"]["comment"].startswith("requests.exceptions.ConnectionError: ")


def test_real_aiohttp_refusal_is_named() -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def fetch() -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.get(f"http://127.0.0.1:{_closed_port()}/")
            except aiohttp.ClientError as exc:
                return exc
        raise AssertionError("the request should have failed")

    assert net_error(asyncio.run(fetch()), False) == "net::ERR_CONNECTION_REFUSED"


# --- response bodies -----------------------------------------------------------------------


def test_gzip_compression_math() -> None:
    plain = b'{"items": [' + b'"abc", ' * 200 + b'"end"]}'
    wire = len(gzip.compress(plain))
    ex = make_exchange(body=plain, response_wire_size=wire, response_headers=[
        ("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
    response = build(ex)["response"]
    assert response["content"]["size"] == len(plain)
    assert response["bodySize"] == wire
    assert response["content"]["compression"] == len(plain) - wire
    assert response["content"]["text"] == plain.decode()


def test_compressed_body_without_wire_size() -> None:
    ex = make_exchange(response_headers=[("Content-Type", "application/json"),
                                         ("Content-Encoding", "br")])
    response = build(ex)["response"]
    assert response["bodySize"] == -1 and response["_transferSize"] == -1
    assert "compression" not in response["content"]
    assert response["content"]["size"] == 12


def test_identity_encoding_is_no_compression() -> None:
    ex = make_exchange(response_headers=[("Content-Type", "application/json"),
                                         ("Content-Encoding", "identity")])
    response = build(ex)["response"]
    assert response["bodySize"] == 12 and "compression" not in response["content"]


def test_binary_body_is_base64() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
    ex = make_exchange(body=png, response_headers=[("Content-Type", "image/png")])
    entry = build(ex)
    content = entry["response"]["content"]
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == png
    assert content["mimeType"] == "image/png"
    assert entry["_resourceType"] == "image"


def test_latin1_charset() -> None:
    ex = make_exchange(body="café crème".encode("latin-1"), response_headers=[
        ("Content-Type", "text/html; charset=ISO-8859-1")])
    entry = build(ex)
    assert entry["response"]["content"]["text"] == "café crème"
    assert entry["response"]["content"]["size"] == 10
    assert entry["response"]["content"]["mimeType"] == "text/html; charset=ISO-8859-1"
    assert entry["_resourceType"] == "document"


def test_text_that_does_not_decode_is_base64() -> None:
    ex = make_exchange(body=b"caf\xe9", response_headers=[("Content-Type", "text/plain")])
    content = build(ex)["response"]["content"]
    assert content["encoding"] == "base64" and base64.b64decode(content["text"]) == b"caf\xe9"


@pytest.mark.parametrize("charset", ["nonsense", "base64", '"utf-8"'])
def test_unusable_charset_falls_back_to_utf8(charset: str) -> None:
    ex = make_exchange(body="é".encode(), response_headers=[
        ("Content-Type", f"text/plain; charset={charset}")])
    assert build(ex)["response"]["content"]["text"] == "é"


def test_body_without_content_type_is_sniffed() -> None:
    text = build(make_exchange(body=b"plain words", response_headers=[]))
    assert text["response"]["content"] == {"size": 11, "mimeType": "x-unknown",
                                           "text": "plain words"}
    binary = build(make_exchange(body=b"a\x00b", response_headers=[]))
    assert binary["response"]["content"]["encoding"] == "base64"


def test_empty_body_has_no_text() -> None:
    content = build(make_exchange(body=b""))["response"]["content"]
    assert content == {"size": 0, "mimeType": "application/json"}


def test_response_truncation_keeps_true_sizes() -> None:
    ex = make_exchange(body=None, body_limit=10)
    ex.add_response_chunk(b'{"data": "0123456789abcdef"}')
    ex.body_complete = True
    content = build(ex, Settings(max_body_size=10))["response"]["content"]
    assert content["text"] == '{"data": "'
    assert content["size"] == 28
    assert content["_truncated"] is True
    assert content["comment"] == "body truncated to its first 10 of 28 bytes"


def test_truncation_inside_a_utf8_character_drops_the_partial_character() -> None:
    ex = make_exchange(body="ééé".encode(), response_headers=[("Content-Type", "text/plain")])
    content = build(ex, Settings(max_body_size=3))["response"]["content"]
    assert content["text"] == "é" and content["_truncated"] is True and content["size"] == 6


def test_settings_with_a_smaller_limit_than_the_capture() -> None:
    ex = make_exchange(body=b"x" * 100, response_headers=[("Content-Type", "text/plain")])
    small = build(ex, Settings(max_body_size=40))["response"]["content"]
    assert len(small["text"]) == 40 and small["_truncated"] is True
    whole = build(ex)["response"]["content"]
    assert len(whole["text"]) == 100 and "_truncated" not in whole


def test_bodies_off_records_no_text() -> None:
    ex = make_exchange(method="POST", request_body=b'{"a": 1}', request_headers=[
        ("Content-Type", "application/json")])
    entry = build(ex, Settings(bodies=False))
    assert entry["response"]["content"] == {"size": 12, "mimeType": "application/json",
                                            "_truncated": True, "comment": "body not recorded"}
    assert entry["request"]["postData"] == {"mimeType": "application/json", "text": "",
                                            "_truncated": True, "comment": "body not recorded"}
    assert entry["request"]["bodySize"] == 8


def test_partial_exchange() -> None:
    ex = make_exchange(body=None, t_end=None)
    started = now() - 1.0  # a second ago: the unread body's receive phase runs until now
    ex.t_start, ex.t_send_start, ex.t_send_end, ex.t_response = (
        started, started + 0.001, started + 0.002, started + 0.010)
    ex.add_response_chunk(b'{"stream": [1, 2')
    entry = build(ex, partial=True)
    response = entry["response"]
    assert response["content"]["size"] == -1 and response["bodySize"] == -1
    assert response["_transferSize"] == -1
    assert response["content"]["text"] == '{"stream": [1, 2'
    assert response["comment"] == "body not read by the program"
    assert entry["timings"]["receive"] >= 990  # measured up to now
    assert summed(entry["timings"]) == pytest.approx(entry["time"])


def test_an_answer_whole_before_its_exchange_ended_is_not_partial() -> None:
    """An ASGI application still running after the 5xx it sent in full when the recording
    stopped: the client got the whole answer, so the entry has it whole."""
    ex = make_exchange(status=503, reason="Service Unavailable")
    assert ex.body_complete and ex.t_end is not None
    response = build(ex, partial=True)["response"]
    assert response["content"]["size"] == len(b'{"ok": true}') and "comment" not in response


def test_a_request_still_waiting_for_its_answer() -> None:
    """In flight when the recording stopped, no response yet: status 0 needs an ``_error``,
    and the time so far is waiting, not receiving a body that never began."""
    started = now() - 1.0
    ex = make_exchange(body=None, t_end=None, t_response=None, status=0, reason="",
                       response_headers=[], http_version="", t_start=started,
                       t_send_start=started + 0.001, t_send_end=started + 0.002)
    entry = build(ex, partial=True)
    response = entry["response"]
    assert response["status"] == 0
    assert response["_error"] == "net::ERR_IO_PENDING"
    assert response["comment"] == "no response yet when the recording stopped"
    assert response["content"] == {"size": 0, "mimeType": "x-unknown"}
    timings = entry["timings"]
    assert timings["wait"] >= 990 and timings["receive"] == 0
    assert summed(timings) == pytest.approx(entry["time"])


@pytest.mark.parametrize("phase, fields", [
    ("blocked", dict(t_send_start=None, t_send_end=None)),
    ("dns", dict(t_dns_start=at(1), t_send_start=None, t_send_end=None)),
    ("connect", dict(t_dns_start=at(1), t_dns_end=at(2), t_connect_start=at(2),
                     t_send_start=None, t_send_end=None)),
    ("send", dict(t_send_end=None)),
])
def test_a_request_cut_short_ends_in_the_phase_it_was_in(phase: str, fields: Any) -> None:
    ex = make_exchange(body=None, t_end=None, t_response=None, status=0, reason="",
                       response_headers=[], **fields)
    timings = build(ex, partial=True)["timings"]
    later = ["blocked", "dns", "connect", "send", "wait", "receive"]
    assert timings[phase] > 0
    assert all(timings[name] in (0, -1) for name in later[later.index(phase) + 1:])


def test_a_url_fragment_is_left_out() -> None:
    """HAR 1.2: "fragments are not included" (a fragment never goes on the wire)."""
    request = build(make_exchange(url="http://example.com/docs?x=1#part-2"))["request"]
    assert request["url"] == "http://example.com/docs?x=1"
    assert request["queryString"] == [{"name": "x", "value": "1"}]
    assert build(make_exchange(url="http://example.com/#"))["request"]["url"] == \
        "http://example.com/"


def test_characters_a_uri_cannot_hold_are_percent_encoded_in_the_url_only() -> None:
    """httpx sends "[", "]", "|" and a stray "%" as they are: ``request.url`` must still be a
    URI (HAR consumers and the schema's "uri" format check it); the request line's size counts
    what was sent, and the query string reads as the program wrote it."""
    ex = make_exchange(url="http://[::1]:8080/items|all?filter[name]=ada&pct=5%&ok=%41")
    request = build(ex)["request"]
    assert request["url"] == \
        "http://[::1]:8080/items%7Call?filter%5Bname%5D=ada&pct=5%25&ok=%41"
    assert request["queryString"] == [{"name": "filter[name]", "value": "ada"},
                                      {"name": "pct", "value": "5%"},
                                      {"name": "ok", "value": "A"}]
    sent = "GET /items|all?filter[name]=ada&pct=5%&ok=%41 HTTP/1.1\r\n"
    head = "Host: example.com\r\nAccept: */*\r\n\r\n"
    assert request["headersSize"] == len(sent + head)


def test_an_entry_built_after_a_failure_is_valid_and_leaks_nothing() -> None:
    from harlem.har.build import fallback_entry

    for url, kept in [("https://user:pw@example.com:8443/a/b?token=s3cret#x",
                       "https://example.com:8443/a/b"),
                      ("http://[::1]:8080/items?key=s3cret", "http://[::1]:8080/items")]:
        ex = make_exchange(url=url)
        entry = fallback_entry(ex, OverflowError("a bug"))
        check_entry(entry)
        assert entry["request"]["url"] == kept
        assert entry["response"]["status"] == 200
        assert "OverflowError" in entry["response"]["comment"]
        assert "s3cret" not in str(entry) and "pw" not in str(entry)


# --- request bodies ------------------------------------------------------------------------


def test_json_post_data() -> None:
    body = '{"name": "Zoë"}'.encode()
    ex = make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    request = build(ex)["request"]
    assert request["postData"] == {"mimeType": "application/json", "text": '{"name": "Zoë"}'}
    assert request["bodySize"] == len(body)


def test_form_post_data_has_text_and_params() -> None:
    body = b"name=J%C3%BCrgen+M&empty=&tag=a&tag=b"
    ex = make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", "application/x-www-form-urlencoded")])
    post = build(ex)["request"]["postData"]
    assert post["text"] == body.decode()
    assert post["params"] == [{"name": "name", "value": "Jürgen M"},
                              {"name": "empty", "value": ""},
                              {"name": "tag", "value": "a"}, {"name": "tag", "value": "b"}]


MULTIPART = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="title"\r\n\r\n'
    b"Hello w\xc3\xb6rld\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
    b"line 1\nline 2\r\n"
    b"--XyZ\r\n"
    b"Content-Disposition: form-data; name=\"doc\"; filename*=UTF-8''na%C3%AFve.bin\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n"
    b"abc\r\n"
    b"--XyZ--\r\n"
)


def multipart_exchange(body: bytes = MULTIPART, **fields: Any) -> Exchange:
    return make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", 'multipart/form-data; boundary="XyZ"')], **fields)


def test_multipart_params() -> None:
    post = build(multipart_exchange())["request"]["postData"]
    assert post["mimeType"] == 'multipart/form-data; boundary="XyZ"'
    assert post["text"] == MULTIPART.decode()
    assert post["params"] == [
        {"name": "title", "value": "Hello wörld"},
        {"name": "file", "fileName": "notes.txt", "contentType": "text/plain"},
        {"name": "doc", "fileName": "naïve.bin", "contentType": "application/octet-stream"},
    ]


def test_multipart_with_binary_content_is_base64() -> None:
    body = MULTIPART.replace(b"abc", b"\xff\x00\xfe")
    post = build(multipart_exchange(body))["request"]["postData"]
    assert post["encoding"] == "base64" and base64.b64decode(post["text"]) == body
    assert [p["name"] for p in post["params"]] == ["title", "file", "doc"]


def test_cut_multipart_keeps_the_parts_it_has() -> None:
    post = build(multipart_exchange(), Settings(max_body_size=60))["request"]["postData"]
    assert post["_truncated"] is True
    assert post["params"][0]["name"] == "title"


def test_binary_post_data_and_missing_content_type() -> None:
    binary = build(make_exchange(method="PUT", request_body=b"\x00\x01\x02",
                                 request_headers=[]))["request"]
    assert binary["postData"] == {"mimeType": "application/octet-stream",
                                  "text": "AAEC", "encoding": "base64"}
    text = build(make_exchange(method="PUT", request_body=b"hello", request_headers=[]))
    assert text["request"]["postData"] == {"mimeType": "application/octet-stream",
                                           "text": "hello"}


def test_request_truncation() -> None:
    ex = make_exchange(method="POST", request_body=b"a" * 50, request_headers=[
        ("Content-Type", "text/plain")])
    request = build(ex, Settings(max_body_size=20))["request"]
    assert request["postData"]["text"] == "a" * 20
    assert request["postData"]["_truncated"] is True
    assert request["bodySize"] == 50


@pytest.mark.parametrize("headers, size", [
    ([("Content-Length", "42")], 42), ([("Transfer-Encoding", "chunked")], -1), ([], 0)])
def test_unseen_request_body_size(headers: Any, size: int) -> None:
    entry = build(make_exchange(method="POST", request_body=None, request_headers=headers))
    assert entry["request"]["bodySize"] == size and "postData" not in entry["request"]


# --- cookies ---------------------------------------------------------------------------------


def test_request_cookies_from_every_cookie_header() -> None:
    ex = make_exchange(request_headers=[("Cookie", "a=1; b=x=y"), ("Cookie", " c = 3 ;;")])
    cookies = build(ex, Settings(redact=False))["request"]["cookies"]
    assert cookies == [{"name": "a", "value": "1"}, {"name": "b", "value": "x=y"},
                       {"name": "c", "value": "3"}]


def test_response_cookie_attributes() -> None:
    headers = [
        ("Set-Cookie", "sid=abc; Path=/; Domain=.example.com; Secure; HttpOnly; SameSite=Strict;"
                       " Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        ("Set-Cookie", "old=1; expires=Wednesday, 21-Oct-26 07:28:00 GMT"),
        ("Set-Cookie", "age=2; Max-Age=60; Expires=Wed, 21 Oct 2026 07:28:00 GMT; samesite=none"),
        ("Set-Cookie", "gone=; Max-Age=0"),
        ("Set-Cookie", "plain=3; SameSite=bogus"),
    ]
    cookies = build(make_exchange(response_headers=headers), Settings(redact=False))[
        "response"]["cookies"]
    assert cookies[0] == {"name": "sid", "value": "abc", "path": "/", "domain": ".example.com",
                          "sameSite": "Strict", "expires": "2026-10-21T07:28:00.000Z",
                          "httpOnly": True, "secure": True}
    assert cookies[1]["expires"] == "2026-10-21T07:28:00.000Z"
    assert cookies[2]["expires"] == "2023-11-14T22:14:20.250Z"  # Max-Age wins, from the start
    assert cookies[2]["sameSite"] == "None"
    assert cookies[3]["expires"] == "1970-01-01T00:00:00.000Z"
    assert cookies[4] == {"name": "plain", "value": "3", "httpOnly": False, "secure": False}


@pytest.mark.parametrize("text, iso", [
    ("Wed, 21 Oct 2026 07:28:00 GMT", "2026-10-21T07:28:00"),
    ("Wed, 21-Oct-26 07:28:00 GMT", "2026-10-21T07:28:00"),
    ("Wed, 21-Oct-1999 07:28:00 GMT", "1999-10-21T07:28:00"),
    ("Wed Oct 21 07:28:00 2026", "2026-10-21T07:28:00"),
    ("Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00"),
    ("not a date", None), ("Wed, 32 Oct 2026 07:28:00 GMT", None),
    ("Wed, 21 Oct 2026 25:28:00 GMT", None), ("", None),
])
def test_cookie_dates(text: str, iso: Optional[str]) -> None:
    import datetime

    stamp = cookie_date(text)
    if iso is None:
        assert stamp is None
    else:
        assert stamp is not None
        utc = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
        assert utc.replace(tzinfo=None).isoformat() == iso


def test_cookie_parsers_on_odd_input() -> None:
    assert request_cookies([""]) == []
    # a lone token is a nameless cookie's value, as clients send it back (RFC 6265bis)
    assert request_cookies(["=v", "novalue", " ; "]) == [{"name": "", "value": "v"},
                                                        {"name": "", "value": "novalue"}]
    lone = response_cookie("token", WALL)
    assert lone["name"] == "" and lone["value"] == "token"
    far = response_cookie("a=1; Max-Age=99999999999999", WALL)
    assert far["expires"] == "9999-12-31T23:59:59.000Z"
    # any number of digits a server sends (past float range, past int() of a str's limit)
    for digits in (400, 5000):
        assert response_cookie(f"a=1; Max-Age={'9' * digits}", WALL)["expires"] == \
            "9999-12-31T23:59:59.000Z"
        assert response_cookie(f"a=1; Max-Age=-{'9' * digits}", WALL)["expires"] == \
            "1970-01-01T00:00:00.000Z"
    # a date that does not exist is no date (RFC 6265 5.1.1): a session cookie
    assert "expires" not in response_cookie("a=1; Expires=Sat, 31 Feb 2027 10:00:00 GMT", WALL)
    assert response_cookie("a=1; Expires=Mon, 29 Feb 2028 10:00:00 GMT", WALL)["expires"] == \
        "2028-02-29T10:00:00.000Z"
    assert "expires" not in response_cookie("a=1; Max-Age=soon; Expires=never", WALL)


# --- initiator and resource types ------------------------------------------------------------


def _user_code() -> Any:
    return capture_frames(2)  # skip capture_frames' and this function's own frames


def test_initiator_from_captured_frames() -> None:
    frames = _user_code()
    entry = build(make_exchange(frames=frames))
    initiator = entry["_initiator"]
    assert initiator["type"] == "script"
    first = initiator["stack"]["callFrames"][0]
    assert first["functionName"] == "test_initiator_from_captured_frames"
    assert first["url"] == Path(__file__).resolve().as_uri()
    lines = Path(__file__).read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if text == "    frames = _user_code()")
    assert first["lineNumber"] == line - 1
    source_line = lines[line - 1]
    if sys.version_info >= (3, 11):
        assert source_line[first["columnNumber"]:].startswith("_user_code()")
    else:
        assert first["columnNumber"] == 0
    again = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"][0]
    assert again["scriptId"] == first["scriptId"]


def test_an_async_stack_ends_with_its_task() -> None:
    """Past a task's outermost coroutine are the event loop and whatever started it: the same
    for every request, so the walk stops there; a synchronous caller keeps its callers."""
    async def request() -> Any:
        return _user_code()

    async def task() -> Any:
        return await request()

    async def main() -> Any:
        return await asyncio.create_task(task())

    names = [code.co_name for code in asyncio.run(main())[::2]]
    assert names == ["request", "task"]
    sync = [code.co_name for code in _user_code()[::2]]
    assert sync[0] == "test_an_async_stack_ends_with_its_task" and len(sync) > 1


def test_library_frames_are_captured_raw_and_left_out_by_the_builder() -> None:
    """The request path keeps every frame as it is; which are a library's is decided when the
    entry is built, and the initiator starts at the program's own line."""
    import harlem.capture as capture

    library_file = str(Path(capture.__file__).with_name("pretend_library.py"))
    scope: Dict[str, Any] = {"capture_frames": capture_frames}
    exec(compile("def library_call():\n    return capture_frames(1)\n", library_file, "exec"),
         scope)
    frames = scope["library_call"]()
    assert frames[0].co_filename == library_file  # captured, not judged, on the request path
    call_frames = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"]
    assert call_frames[0]["functionName"] == \
        "test_library_frames_are_captured_raw_and_left_out_by_the_builder"
    assert all(not frame["url"].endswith("pretend_library.py") for frame in call_frames)


def test_a_stack_seen_before_is_shown_again_until_a_library_is_hidden(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder remembers what each whole stack shows; hiding a library's frames later (a
    recorder instrumenting it) must not leave that stack showing them."""
    import types

    import harlem.capture as capture

    # Whatever hiding the pretend library changes is put back after the test.
    for name in ("_hidden_tuple", "_hidden_codes", "_stacks"):
        monkeypatch.setattr(capture, name, getattr(capture, name))
    monkeypatch.setattr(capture, "_HIDDEN_PREFIXES", list(capture._HIDDEN_PREFIXES))
    library_file = str(tmp_path / "later_library.py")
    scope: Dict[str, Any] = {"capture_frames": capture_frames}
    exec(compile("def library_call():\n    return capture_frames(1)\n", library_file, "exec"),
         scope)
    frames = scope["library_call"]()

    def names() -> List[str]:
        call_frames = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"]
        return [frame["functionName"].rsplit(".", 1)[-1] for frame in call_frames]

    this_test = "test_a_stack_seen_before_is_shown_again_until_a_library_is_hidden"
    assert names()[:2] == ["library_call", this_test]
    assert names() == names()  # from the remembered stack
    capture.register_library_path(types.SimpleNamespace(__file__=library_file))
    assert names()[0] == this_test


def test_a_package_not_imported_yet_can_be_hidden_without_importing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx hides anyio's frames when it is instrumented: anyio imported after httpx was
    shown in _initiator (a task group's frame), imported before it was not."""
    import sys

    import harlem.capture as capture

    for name in ("_hidden_tuple", "_hidden_codes", "_stacks"):
        monkeypatch.setattr(capture, name, getattr(capture, name))
    monkeypatch.setattr(capture, "_HIDDEN_PREFIXES", list(capture._HIDDEN_PREFIXES))
    package = tmp_path / "later_loop_layer"
    package.mkdir()
    (package / "__init__.py").write_text("def step(call):\n    return call()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    capture.register_library_package("later_loop_layer")
    assert "later_loop_layer" not in sys.modules  # found, not imported
    import later_loop_layer  # type: ignore[import-not-found]

    monkeypatch.delitem(sys.modules, "later_loop_layer")
    frames = later_loop_layer.step(lambda: capture_frames(1))
    call_frames = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"]
    assert [frame["functionName"].rsplit(".", 1)[-1] for frame in call_frames[:2]] == [
        "<lambda>", "test_a_package_not_imported_yet_can_be_hidden_without_importing_it"]
    assert not any("later_loop_layer" in frame["url"] for frame in call_frames)


async def _task_body() -> Any:
    return capture_frames(1)


def _run_by_hand(coroutine: Any) -> Any:
    """An event loop of one's own, as trio's and uvloop's are to harlem: a plain function that
    steps the task's coroutine (no asyncio Handle._run frame to stop at)."""
    try:
        while True:
            coroutine.send(None)
    except StopIteration as stop:
        return stop.value


def test_the_initiator_ends_at_the_tasks_outermost_coroutine_whatever_the_loop() -> None:
    """docs/har-fields.md: the stack of a call made by a task ends with its outermost
    coroutine. Under uvloop and trio the frames past it (the loop's own, and the line that
    started it) were kept: there was only asyncio's frame to stop at."""
    frames = _run_by_hand(_task_body())
    call_frames = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"]
    assert [frame["functionName"] for frame in call_frames] == ["_task_body"]


def test_frames_are_taken_when_the_event_loop_step_is_not_a_python_function(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A program (or a tool) may replace asyncio's Handle._run: the walk still works."""
    import asyncio.events

    import harlem.capture as capture

    monkeypatch.setattr(asyncio.events.Handle, "_run", staticmethod(len), raising=True)
    monkeypatch.setattr(capture, "_loop_step", None)
    frames = _user_code()
    assert frames[0].co_name == \
        "test_frames_are_taken_when_the_event_loop_step_is_not_a_python_function"


def test_a_deep_stack_is_walked_and_shown_within_bounds() -> None:
    from harlem.capture import MAX_FRAMES, MAX_WALK

    def down(depth: int) -> Any:
        return down(depth - 1) if depth else _user_code()

    frames = down(MAX_WALK + 20)
    assert len(frames) == 2 * MAX_WALK
    call_frames = build(make_exchange(frames=frames))["_initiator"]["stack"]["callFrames"]
    assert len(call_frames) == MAX_FRAMES
    assert {frame["functionName"].rsplit(".", 1)[-1] for frame in call_frames} == {"down"}


def test_initiator_module_level_and_relative_names() -> None:
    code = compile("import sys\nframe = sys._getframe()", "<stdin>", "exec")
    scope: Dict[str, Any] = {}
    exec(code, scope)
    frame = scope["frame"]
    entry = build(make_exchange(frames=(frame.f_code, frame.f_lasti)))
    call = entry["_initiator"]["stack"]["callFrames"][0]
    assert call["functionName"] == ""
    assert call["url"] == "<stdin>"
    assert call["lineNumber"] == 1


@pytest.mark.parametrize("mime, failed, kind", [
    ("text/html", False, "document"), ("text/css", False, "stylesheet"),
    ("application/javascript", False, "script"), ("text/javascript", False, "script"),
    ("image/svg+xml", False, "image"), ("font/woff2", False, "font"),
    ("application/font-woff", False, "font"), ("video/mp4", False, "media"),
    ("application/json", False, "fetch"), ("", False, "fetch"), ("text/html", True, "other"),
])
def test_resource_types(mime: str, failed: bool, kind: str) -> None:
    assert resource_type(mime, failed) == kind


def test_a_switch_to_websocket_is_a_websocket_entry_as_in_chrome() -> None:
    ex = make_exchange(url="ws://example.com/socket", status=101, reason="Switching Protocols",
                       response_headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")],
                       body=None)
    assert build(ex)["_resourceType"] == "websocket"


# --- never crash on odd input --------------------------------------------------------------


def test_odd_header_values_become_json_safe() -> None:
    ex = make_exchange(
        request_headers=[("X-Raw", b"bytes\xff"), ("X-Num", 5)],  # type: ignore[list-item]
        response_headers=[("Content-Type", "text/plain"), ("X-Bad", "caf\udce9"),
                          ("X-Lone", "a\ud800b")],
        reason="Ok\udcff", body=b"text")
    entry = build(ex)
    orjson.dumps(entry)
    assert entry["request"]["headers"][0]["value"] == "bytes\ufffd"
    assert entry["request"]["headers"][1]["value"] == "5"
    assert entry["response"]["headers"][1]["value"] == "caf\ufffd"
    assert entry["response"]["headers"][2]["value"] == "a\ufffdb"


def test_non_ascii_headers_count_their_utf8_bytes() -> None:
    headers = [("X-Name", "Zoë")]
    ex = make_exchange(request_headers=headers)
    assert build(ex)["request"]["headersSize"] == header_bytes("GET /api?x=1 HTTP/1.1", headers)


def test_a_fresh_exchange_builds() -> None:
    """An Exchange straight from the constructor (nothing filled in) still gives valid HAR."""
    ex = Exchange("requests", "GET", "http://example.com/")
    ex.t_end = ex.t_start
    entry = build_entry(ex, DEFAULTS, partial=True)
    orjson.dumps(entry)
    assert entry["response"]["status"] == 0 and entry["response"]["bodySize"] == -1


@pytest.mark.parametrize("body, size, text", [
    ("héllo", 6, "héllo"), (bytearray(b"abc"), 3, "abc"), (memoryview(b"abc"), 3, "abc"),
    (iter([b"a"]), 0, None)])
def test_request_bodies_that_are_not_bytes(body: Any, size: int, text: Optional[str]) -> None:
    ex = make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", "text/plain")])
    request = build(ex)["request"]
    assert request["bodySize"] == size
    assert request.get("postData", {}).get("text") == text


def test_random_exchanges_always_build() -> None:
    """Whatever a recorder hands over, the builder returns JSON-able HAR with consistent time."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    text = st.text(max_size=30)
    header = st.tuples(st.sampled_from(["Content-Type", "Set-Cookie", "Cookie", "Location",
                                        "Content-Encoding", "Authorization", "X-Any"]), text)
    mark = st.one_of(st.none(), st.floats(min_value=-5, max_value=50))
    mime = st.sampled_from(["", "application/json", "text/plain; charset=utf-16",
                            "multipart/form-data; boundary=b", "application/x-www-form-urlencoded",
                            "image/png", "text/html; charset=bogus"])

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(url=text, headers=st.lists(header, max_size=6), mime=mime,
                      body=st.binary(max_size=60), request_body=st.one_of(st.none(), st.binary(max_size=60)),
                      marks=st.lists(mark, min_size=9, max_size=9), status=st.integers(0, 599),
                      complete=st.booleans(), partial=st.booleans(), failed=st.booleans(),
                      limit=st.integers(0, 80), server_ip=text,
                      redact=st.booleans())
    def check(url: str, headers: Any, mime: str, body: bytes, request_body: Optional[bytes],
              marks: Any, status: int, complete: bool, partial: bool, failed: bool, limit: int,
              server_ip: str, redact: bool) -> None:
        ex = make_exchange(url=url, body=None, status=status, server_ip=server_ip,
                           request_body=request_body, error=OSError("x") if failed else None,
                           request_headers=headers + [("Content-Type", mime)],
                           response_headers=[("Content-Type", mime)] + headers)
        ex.add_response_chunk(body)
        ex.body_complete = complete
        (ex.t_dns_start, ex.t_dns_end, ex.t_connect_start, ex.t_tls_start, ex.t_connect_end,
         ex.t_send_start, ex.t_send_end, ex.t_response, ex.t_end) = [
            None if m is None else at(m) for m in marks]
        if ex.t_end is None:
            ex.t_end = at(60)
        settings = Settings.from_kwargs(max_body_size=limit, redact=redact,
                                        redact_json_field=["a"], redact_pattern=["x+"])
        entry = build_entry(ex, settings, partial=partial)
        orjson.dumps(entry)
        assert abs(summed(entry["timings"]) - entry["time"]) < 1e-6
        assert all(v >= 0 or v == -1 for v in entry["timings"].values())

    check()


@pytest.mark.parametrize("text, expected", [
    ("2024-01-01T00:00:01.500Z", 1704067201500.0),
    ("2024-01-01T00:00:01.5000000Z", 1704067201500.0),  # Fiddler
    ("2024-01-01T00:00:01.5Z", 1704067201500.0),
    ("2024-01-01T00:00:01Z", 1704067201000.0),
    ("2024-01-01T02:00:01.5+02:00", 1704067201500.0),
    ("2024-01-01T05:30:01.5+0530", 1704067201500.0),
    ("2023-12-31T19:00:01.5-05", 1704067201500.0),
    ("2024-01-01 00:00:01.5", 1704067201500.0),  # no zone: UTC
    ("yesterday", None), ("2024-01-01", None), (None, None), (17, None),
])
def test_dates_are_read_as_har_writers_write_them(text: Any, expected: Any) -> None:
    """On every Python version (datetime.fromisoformat reads few of these before 3.11)."""
    from harlem.har.dates import epoch_ms

    assert epoch_ms(text) == expected
