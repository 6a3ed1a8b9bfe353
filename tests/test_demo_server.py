"""The loopback demo server's routes, exercised with the standard library over real sockets."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request
import zlib
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

import pytest

from harlem.demo.server import (
    COMPRESSIBLE_TEXT,
    HAS_BROTLI,
    JSON_BODY,
    LATIN1_TEXT,
    PNG_BYTES,
    TEXT_BODY,
    LoopbackServer,
    closed_port,
    deterministic_bytes,
)
from tests.helpers import TlsServer


def fetch(
    server: LoopbackServer,
    path: str,
    method: str = "GET",
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[http.client.HTTPResponse, bytes]:
    """One request with http.client: no redirect following, no decompression, raw headers."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_url_and_port(server: LoopbackServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0
    assert server.url_for("/json").endswith("/json")


def test_json(server: LoopbackServer) -> None:
    with urllib.request.urlopen(server.url + "/json", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert json.loads(response.read()) == JSON_BODY


def test_text_is_utf8(server: LoopbackServer) -> None:
    response, body = fetch(server, "/text")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body.decode("utf-8") == TEXT_BODY
    assert len(body) > len(TEXT_BODY)


def test_latin1(server: LoopbackServer) -> None:
    response, body = fetch(server, "/latin1")
    assert response.headers["Content-Type"] == "text/plain; charset=iso-8859-1"
    assert body == LATIN1_TEXT.encode("iso-8859-1")


def test_binary_is_deterministic(server: LoopbackServer) -> None:
    response, body = fetch(server, "/binary?size=3000")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert body == deterministic_bytes(3000) and len(body) == 3000
    assert fetch(server, "/binary")[1] == deterministic_bytes(1024)
    assert fetch(server, "/binary?size=10&seed=2")[1] == deterministic_bytes(10, 2) != deterministic_bytes(10)
    assert fetch(server, "/binary?size=nope")[0].status == 400


def test_png(server: LoopbackServer) -> None:
    response, body = fetch(server, "/image.png")
    assert response.headers["Content-Type"] == "image/png"
    assert body == PNG_BYTES and body.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", body[16:24])
    assert (width, height) == (1, 1)


@pytest.mark.parametrize(
    "path, encoding, decode",
    [
        ("/gzip", "gzip", gzip.decompress),
        ("/deflate", "deflate", zlib.decompress),
    ],
)
def test_compressed(server: LoopbackServer, path: str, encoding: str, decode: Any) -> None:
    response, body = fetch(server, path)
    assert response.headers["Content-Encoding"] == encoding
    assert int(response.headers["Content-Length"]) == len(body)
    assert len(body) < len(COMPRESSIBLE_TEXT)
    assert decode(body).decode() == COMPRESSIBLE_TEXT


def test_brotli(server: LoopbackServer) -> None:
    response, body = fetch(server, "/br")
    if not HAS_BROTLI:
        assert response.status == 404
        return
    import brotli

    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(body).decode() == COMPRESSIBLE_TEXT


def test_gzip_chunked(server: LoopbackServer) -> None:
    response, body = fetch(server, "/gzip-chunked")
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Length"] is None
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode() == COMPRESSIBLE_TEXT


def test_redirect_chain(server: LoopbackServer) -> None:
    response, _ = fetch(server, "/redirect/3")
    assert response.status == 302 and response.headers["Location"] == "/redirect/2"
    assert fetch(server, "/redirect/1")[0].headers["Location"] == "/json"
    with urllib.request.urlopen(server.url + "/redirect/3", timeout=10) as followed:
        assert followed.url == server.url + "/json"
        assert json.loads(followed.read()) == JSON_BODY


def test_redirect_absolute(server: LoopbackServer) -> None:
    response, _ = fetch(server, "/redirect-absolute")
    assert response.status == 302
    assert response.headers["Location"] == server.url + "/json"
    response, _ = fetch(server, "/redirect-absolute?to=http://example.invalid/x")
    assert response.headers["Location"] == "http://example.invalid/x"


def test_cookies_set(server: LoopbackServer) -> None:
    response, _ = fetch(server, "/cookies/set")
    cookies = response.headers.get_all("Set-Cookie") or []
    assert len(cookies) == 2
    session, theme = cookies
    for attribute in ("Path=/", "Max-Age=3600", "HttpOnly", "Secure", "SameSite=Lax"):
        assert attribute in session
    assert "Domain" not in session
    assert "Expires=Wed, 21 Oct 2037 07:28:00 GMT" in theme
    response, _ = fetch(server, "/cookies/set?domain=localhost")
    assert "Domain=localhost" in (response.headers.get_all("Set-Cookie") or [""])[0]


def test_cookies_echo(server: LoopbackServer) -> None:
    _, body = fetch(server, "/cookies", headers={"Cookie": "a=1; b=two"})
    assert json.loads(body) == {"a": "1", "b": "two"}


def test_duplicate_headers(server: LoopbackServer) -> None:
    response, _ = fetch(server, "/dup-headers")
    assert response.headers.get_all("X-Dup") == ["one", "two"]
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_echo(server: LoopbackServer, method: str) -> None:
    payload = "é✓".encode() + b"\x00\xff"
    _, body = fetch(
        server, "/echo?x=1&x=2&empty=", method=method, body=payload, headers={"X-Test": "yes"}
    )
    echoed = json.loads(body)
    assert echoed["method"] == method
    assert echoed["path"] == "/echo"
    assert echoed["query"] == [["x", "1"], ["x", "2"], ["empty", ""]]
    assert echoed["raw_query"] == "x=1&x=2&empty="
    assert ["X-Test", "yes"] in echoed["headers"]
    assert echoed["body_size"] == len(payload)
    assert echoed["body_text"] is None  # not UTF-8
    import base64

    assert base64.b64decode(echoed["body_base64"]) == payload


def test_echo_text_body(server: LoopbackServer) -> None:
    _, body = fetch(server, "/echo", method="POST", body='{"a": "é"}'.encode())
    assert json.loads(body)["body_text"] == '{"a": "é"}'


def test_stream(server: LoopbackServer) -> None:
    started = time.perf_counter()
    response, body = fetch(server, "/stream?chunks=4&size=100&delay=0.05")
    elapsed = time.perf_counter() - started
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert body == b"".join(bytes([i]) * 100 for i in range(4))
    assert elapsed >= 0.15


def test_status(server: LoopbackServer) -> None:
    for code in (200, 201, 404, 500, 503):
        response, body = fetch(server, f"/status/{code}")
        assert response.status == code
        assert body == f"status {code}".encode()
    response, body = fetch(server, "/status/304")
    assert response.status == 304 and body == b""
    assert fetch(server, "/status/42")[0].status == 400


def test_slow(server: LoopbackServer) -> None:
    started = time.perf_counter()
    _, body = fetch(server, "/slow?delay=0.2")
    assert time.perf_counter() - started >= 0.2
    assert json.loads(body) == {"slept": 0.2}


def test_unicode_headers(server: LoopbackServer) -> None:
    response, _ = fetch(server, "/unicode-headers")
    # http.client decodes header bytes as latin-1; the server sent UTF-8.
    assert response.headers["X-Unicode"].encode("latin-1").decode("utf-8") == "héllo ✓"
    assert "filename*=UTF-8''" in response.headers["Content-Disposition"]


def test_empty(server: LoopbackServer) -> None:
    response, body = fetch(server, "/empty")
    assert response.status == 204 and body == b""


def test_large(server: LoopbackServer) -> None:
    size = 3 * 65536 + 123
    response, body = fetch(server, f"/large?size={size}")
    assert int(response.headers["Content-Length"]) == size
    assert response.headers["Transfer-Encoding"] is None
    assert len(body) == size and body[:256] == bytes(range(256))


def test_page_and_resources(server: LoopbackServer) -> None:
    response, body = fetch(server, "/page")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = body.decode()
    for resource in ("/style.css", "/app.js", "/image.png"):
        assert resource in html
        assert fetch(server, resource)[0].status == 200
    _, script = fetch(server, "/app.js")
    assert b"fetch('/json')" in script
    assert fetch(server, "/style.css")[0].headers["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("after", ["none", "headers", "body"])
def test_reset(server: LoopbackServer, after: str) -> None:
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        fetch(server, f"/reset?after={after}")


def test_requests_are_noted(server: LoopbackServer) -> None:
    fetch(server, "/json?noted=1")
    assert ("GET", "/json?noted=1") in server.requests


def test_closed_port_refuses() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_start_stop_restart() -> None:
    server = LoopbackServer()
    with server:
        first = server.port
        assert fetch(server, "/empty")[0].status == 204
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first), timeout=5).close()
    with server:
        assert fetch(server, "/empty")[0].status == 204


def test_start_failure_is_reported() -> None:
    with LoopbackServer() as running, pytest.raises(RuntimeError, match="could not start"):
        LoopbackServer(port=running.port).start()


def test_ipv6_server() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = LoopbackServer(host="::1").start()
    except RuntimeError:
        pytest.skip("::1 is not available")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        with urllib.request.urlopen(server.url + "/json", timeout=10) as response:
            assert json.loads(response.read()) == JSON_BODY


def test_tls(tls: TlsServer) -> None:
    assert tls.url == f"https://127.0.0.1:{tls.port}"
    context = ssl.create_default_context(cafile=tls.ca_file)
    with urllib.request.urlopen(tls.url + "/json", context=context, timeout=10) as response:
        assert json.loads(response.read()) == JSON_BODY
    with urllib.request.urlopen(tls.localhost_url + "/text", context=tls.client_context(), timeout=10) as response:
        assert response.read().decode() == TEXT_BODY


def test_tls_is_verified(tls: TlsServer) -> None:
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(tls.url + "/json", context=ssl.create_default_context(), timeout=10)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_tls_redirect_absolute_keeps_scheme(tls: TlsServer) -> None:
    host = urlsplit(tls.url)
    connection = http.client.HTTPSConnection(host.hostname, host.port, context=tls.client_context(), timeout=10)
    try:
        connection.request("GET", "/redirect-absolute")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.headers["Location"] == tls.url + "/json"
