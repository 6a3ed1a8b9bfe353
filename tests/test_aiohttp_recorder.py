"""The aiohttp recorder against real loopback servers: what the entries say, and that the
program sees exactly what it would see without harlem."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import warnings
import zlib
from typing import Any, Dict, Iterator, List

import aiohttp
import pytest
from multidict import CIMultiDict

import harlem._warn
from harlem import pipeline
from harlem.demo.server import (COMPRESSIBLE_TEXT, HAS_BROTLI, JSON_BODY, LATIN1_TEXT, PNG_BYTES,
                                TEXT_BODY, closed_port, deterministic_bytes)
from harlem.exporters import ModelHarExporter
from harlem.recorders import aiohttp as recorder_module
from harlem.recorders.aiohttp import AiohttpHarRecorder
from tests.helpers import one_answer_server


@pytest.fixture
def record(check_har: Any) -> Iterator[Any]:
    """``with record() as rec:`` records aiohttp into ``rec.entries`` (credentials kept);
    every HAR recorded in the test is validated at its end."""
    exporters: List[ModelHarExporter] = []

    @contextlib.contextmanager
    def recording(**options: Any) -> Iterator[ModelHarExporter]:
        exporter = ModelHarExporter()
        exporters.append(exporter)
        options.setdefault("redact", False)
        with AiohttpHarRecorder(exporter, **options):
            yield exporter
            # Entries already finished must be built while the recorder still receives (as
            # in the other recorders' tests, until HarRecorder.stop does this itself).
            pipeline.flush()

    yield recording
    for exporter in exporters:
        check_har(exporter.to_dict())


def content_bytes(content: Dict[str, Any]) -> bytes:
    text = content.get("text", "")
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def header_list(headers: List[Dict[str, str]]) -> List[List[str]]:
    return [[h["name"], h["value"]] for h in headers]


def only(entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    assert len(entries) == 1, [e["request"]["url"] for e in entries]
    return entries[0]


# --- requests and responses ---------------------------------------------------------------


async def test_one_entry_with_headers_exactly_as_sent(server: Any, record: Any) -> None:
    sent = CIMultiDict([("X-Twice", "one"), ("X-Custom", "value"), ("X-Twice", "two")])
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/echo?a=1&b=x%20y", headers=sent) as resp:
                echoed = await resp.json()
    entry = only(rec.entries)
    request = entry["request"]
    assert request["method"] == "GET"
    assert request["url"] == server.url + "/echo?a=1&b=x%20y"
    assert request["queryString"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "x y"}]
    # What the server received, in order, duplicates kept, aiohttp's own headers included.
    assert header_list(request["headers"]) == echoed["headers"]
    names = [name for name, _ in echoed["headers"]]
    assert {"Host", "Accept", "Accept-Encoding", "User-Agent"} <= set(names)
    assert names.count("X-Twice") == 2
    assert request["httpVersion"] == "HTTP/1.1"
    assert entry["response"]["httpVersion"] == "HTTP/1.1"
    assert entry["response"]["status"] == 200
    assert entry["response"]["statusText"] == "OK"
    assert entry["serverIPAddress"] == "127.0.0.1"
    assert int(entry["connection"]) > 0
    assert entry["_initiator"]["stack"]["callFrames"][0]["url"].endswith("test_aiohttp_recorder.py")


async def test_response_headers_in_order_with_duplicates(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/dup-headers") as resp:
                raw = [(k.decode(), v.decode()) for k, v in resp.raw_headers]
                assert await resp.text() == "duplicate headers"
    response = only(rec.entries)["response"]
    assert [tuple(h) for h in header_list(response["headers"])] == raw
    assert [h["value"] for h in response["headers"] if h["name"] == "X-Dup"] == ["one", "two"]
    assert [c["name"] for c in response["cookies"]] == ["a", "b"]


async def test_cookies_sent_and_received(server: Any, record: Any) -> None:
    with record() as rec:
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address host
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(server.url + "/cookies/set") as resp:
                await resp.read()
            async with session.get(server.url + "/cookies", cookies={"extra": "1"}) as resp:
                seen = await resp.json()
    setter, reader = rec.entries
    assert {c["name"] for c in setter["response"]["cookies"]} == {"session", "theme"}
    sent = {c["name"]: c["value"] for c in reader["request"]["cookies"]}
    assert sent == seen
    assert sent["theme"] == "dark" and sent["extra"] == "1"


@pytest.mark.parametrize("path, text",
                         [("/json", None), ("/text", TEXT_BODY), ("/latin1", LATIN1_TEXT)])
async def test_text_bodies(server: Any, record: Any, path: str, text: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + path) as resp:
                received = await resp.read()
    content = only(rec.entries)["response"]["content"]
    assert content["size"] == len(received)
    assert only(rec.entries)["response"]["bodySize"] == len(received)
    if text is None:
        assert json.loads(content["text"]) == JSON_BODY
    else:
        assert content["text"] == text
    assert "encoding" not in content


@pytest.mark.parametrize("path, expected",
                         [("/binary?size=5000&seed=7", deterministic_bytes(5000, 7)),
                          ("/image.png", PNG_BYTES)])
async def test_binary_bodies_are_base64(server: Any, record: Any, path: str,
                                        expected: bytes) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + path) as resp:
                assert await resp.read() == expected
    content = only(rec.entries)["response"]["content"]
    assert content["encoding"] == "base64"
    assert content_bytes(content) == expected
    assert content["size"] == len(expected)


COMPRESSED = {
    "/gzip": gzip.compress(COMPRESSIBLE_TEXT.encode(), mtime=0),
    "/gzip-chunked": gzip.compress(COMPRESSIBLE_TEXT.encode(), mtime=0),
    "/deflate": zlib.compress(COMPRESSIBLE_TEXT.encode()),
}
if HAS_BROTLI:
    import brotli

    COMPRESSED["/br"] = brotli.compress(COMPRESSIBLE_TEXT.encode())


@pytest.mark.parametrize("path", sorted(COMPRESSED))
async def test_compressed_bodies(server: Any, record: Any, path: str) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + path) as resp:
                assert await resp.text() == COMPRESSIBLE_TEXT
    response = only(rec.entries)["response"]
    decoded = len(COMPRESSIBLE_TEXT.encode())
    assert response["content"]["size"] == decoded
    assert response["bodySize"] == len(COMPRESSED[path])
    assert response["content"]["compression"] == decoded - len(COMPRESSED[path])
    assert response["content"]["text"] == COMPRESSIBLE_TEXT


async def test_compressed_body_read_in_pieces(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/gzip-chunked") as resp:
                pieces = [piece async for piece in resp.content.iter_chunked(100)]
    assert b"".join(pieces) == COMPRESSIBLE_TEXT.encode()
    response = only(rec.entries)["response"]
    assert response["bodySize"] == len(COMPRESSED["/gzip-chunked"])
    assert response["content"]["text"] == COMPRESSIBLE_TEXT


async def test_status_without_body(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            for method, path in (("GET", "/empty"), ("GET", "/status/304"), ("HEAD", "/json")):
                async with session.request(method, server.url + path) as resp:
                    assert await resp.read() == b""
    assert [e["response"]["status"] for e in rec.entries] == [204, 304, 200]
    for entry in rec.entries:
        assert entry["response"]["content"]["size"] == 0
        assert entry["response"]["bodySize"] == 0


# --- request bodies -----------------------------------------------------------------------


async def echo(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> Dict[str, Any]:
    async with session.post(url + "/echo", **kwargs) as resp:
        return await resp.json()


def sent_body(entry: Dict[str, Any], echoed: Dict[str, Any]) -> bytes:
    """The entry's request body, checked against what the server received."""
    request = entry["request"]
    received = base64.b64decode(echoed["body_base64"])
    assert request["bodySize"] == len(received)
    assert content_bytes(request["postData"]) == received
    assert header_list(request["headers"]) == echoed["headers"]
    return received


async def test_json_form_and_bytes_request_bodies(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            as_json = await echo(session, server.url, json={"name": "ünï", "n": [1, 2]})
            as_form = await echo(session, server.url, data={"a": "1", "b": "two words"})
            as_bytes = await echo(session, server.url, data=deterministic_bytes(3000, 3))
    json_entry, form_entry, bytes_entry = rec.entries
    assert json.loads(sent_body(json_entry, as_json)) == {"name": "ünï", "n": [1, 2]}
    assert json_entry["request"]["postData"]["mimeType"] == "application/json"
    sent_body(form_entry, as_form)
    assert form_entry["request"]["postData"]["params"] == [
        {"name": "a", "value": "1"}, {"name": "b", "value": "two words"}]
    assert sent_body(bytes_entry, as_bytes) == deterministic_bytes(3000, 3)
    assert bytes_entry["request"]["postData"]["encoding"] == "base64"


async def test_multipart_request_body(server: Any, record: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("field", "value")
    form.add_field("file", PNG_BYTES, filename="pixel.png", content_type="image/png")
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            echoed = await echo(session, server.url, data=form)
    entry = only(rec.entries)
    received = sent_body(entry, echoed)
    assert PNG_BYTES in received
    params = entry["request"]["postData"]["params"]
    assert (params[0]["name"], params[0]["value"]) == ("field", "value")
    assert params[1]["name"] == "file" and params[1]["fileName"] == "pixel.png"


async def test_streamed_request_body(server: Any, record: Any) -> None:
    async def pieces() -> Any:
        for index in range(5):
            yield f"piece {index};".encode()
            await asyncio.sleep(0)

    with record() as rec:
        async with aiohttp.ClientSession() as session:
            echoed = await echo(session, server.url, data=pieces())
    entry = only(rec.entries)
    assert sent_body(entry, echoed) == b"".join(f"piece {i};".encode() for i in range(5))
    assert ["Transfer-Encoding", "chunked"] in header_list(entry["request"]["headers"])


async def test_request_body_larger_than_the_limit(server: Any, record: Any) -> None:
    with record(max_body_size=1000) as rec:
        async with aiohttp.ClientSession() as session:
            await echo(session, server.url, data=b"x" * 5000)
    request = only(rec.entries)["request"]
    assert request["bodySize"] == 5000  # the true size, though only the first 1000 bytes are kept
    post = request["postData"]
    assert post["_truncated"] is True
    assert post["encoding"] == "base64"  # aiohttp sends bytes as application/octet-stream
    assert base64.b64decode(post["text"]) == b"x" * 1000


async def test_bodies_off_keeps_sizes(server: Any, record: Any) -> None:
    with record(bodies=False) as rec:
        async with aiohttp.ClientSession() as session:
            await echo(session, server.url, data=b"y" * 300)
    entry = only(rec.entries)
    assert entry["request"]["bodySize"] == 300
    assert "text" not in entry["response"]["content"]
    assert entry["response"]["content"]["size"] > 0


# --- redirects, connections, timings ----------------------------------------------------------


async def test_one_entry_per_redirect_hop(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/redirect/3") as resp:
                assert await resp.json() == JSON_BODY
                assert len(resp.history) == 3
    urls = [e["request"]["url"] for e in rec.entries]
    assert urls == [server.url + p for p in ("/redirect/3", "/redirect/2", "/redirect/1", "/json")]
    assert [e["response"]["status"] for e in rec.entries] == [302, 302, 302, 200]
    assert [e["response"]["redirectURL"] for e in rec.entries] == [
        "/redirect/2", "/redirect/1", "/json", ""]
    for entry in rec.entries[:3]:
        # aiohttp lets go of a 3xx body without reading it: known only if it came in time.
        size = len(f"redirecting to {entry['response']['redirectURL']}")
        assert entry["response"]["content"]["size"] in (size, -1)
    # Every hop comes from the same line of the program; a hop reuses the connection when the
    # previous one's body had come whole (else aiohttp closed it).
    assert len({json.dumps(e["_initiator"]) for e in rec.entries}) == 1
    for previous, entry in zip(rec.entries, rec.entries[1:]):
        reused = previous["response"]["content"]["size"] >= 0
        assert (entry["connection"] == previous["connection"]) is reused
        assert (entry["timings"]["connect"] == -1) is reused


async def test_redirect_to_unreachable_host_fails_that_hop(server: Any, record: Any) -> None:
    target = f"http://127.0.0.1:{closed_port()}/json"
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(server.url + "/redirect-absolute?to=" + target)
    first, second = rec.entries
    assert first["response"]["status"] == 302
    assert second["request"]["url"] == target
    assert second["response"]["status"] == 0
    assert second["response"]["_error"] == "net::ERR_CONNECTION_REFUSED"


async def test_keep_alive_reuse(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(server.url + "/json") as resp:
                    await resp.read()
    first, second = rec.entries
    assert first["connection"] == second["connection"]
    assert first["timings"]["connect"] >= 0
    assert first["timings"]["dns"] == -1  # an IP address: nothing to resolve
    assert second["timings"]["connect"] == -1 and second["timings"]["dns"] == -1
    assert second["timings"]["blocked"] >= 0


async def test_waiting_for_a_connection_is_blocked_time(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            async def fetch() -> bytes:
                async with session.get(server.url + "/slow?delay=0.1") as resp:
                    return await resp.read()

            await asyncio.gather(*(fetch() for _ in range(3)))
    assert len(rec.entries) == 3
    assert len({e["connection"] for e in rec.entries}) == 1
    assert max(e["timings"]["blocked"] for e in rec.entries) >= 150  # waited for two others


async def test_timings_tile_the_exchange(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/stream?chunks=3&size=100&delay=0.05") as resp:
                await resp.read()
    timings = only(rec.entries)["timings"]
    assert timings["receive"] >= 90
    phases = [timings[k] for k in ("blocked", "dns", "connect", "send", "wait", "receive")]
    assert only(rec.entries)["time"] == pytest.approx(sum(p for p in phases if p > 0), abs=1e-6)


def _times_tls() -> bool:
    """aiohttp >= 3.10 connects TCP before TLS, so the handshake can be timed apart."""
    from aiohttp import connector

    return hasattr(connector, "aiohappyeyeballs")


async def test_tls_connection(tls: Any, record: Any) -> None:
    context = tls.client_context()  # one context: connections are pooled per context
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(tls.localhost_url + "/json", ssl=context) as resp:
                    assert await resp.json() == JSON_BODY
    first, second = rec.entries
    timings = first["timings"]
    assert first["request"]["url"].startswith("https://localhost:")
    assert first["serverIPAddress"] in ("127.0.0.1", "::1")
    assert timings["dns"] >= 0  # "localhost" is resolved
    if _times_tls():
        assert 0 <= timings["ssl"] <= timings["connect"]
    else:
        assert timings["ssl"] == -1
    # aiohttp usually reuses the connection (3.9 sometimes opens another one by itself).
    reused = second["connection"] == first["connection"]
    assert (second["timings"]["connect"] == -1) is reused
    if reused:
        assert second["timings"]["ssl"] == -1 and second["timings"]["dns"] == -1


@contextlib.asynccontextmanager
async def connect_proxy() -> Any:
    """A minimal HTTP proxy that only tunnels (CONNECT), on 127.0.0.1; yields its URL."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        host, port = head.split()[1].decode().rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    finally:
        proxy.close()


async def test_tls_through_a_proxy_tunnel(tls: Any, record: Any) -> None:
    context = tls.client_context()
    with record() as rec:
        async with connect_proxy() as proxy:
            async with aiohttp.ClientSession() as session:
                for _ in range(2):
                    async with session.get(tls.url + "/json", ssl=context, proxy=proxy) as resp:
                        assert await resp.json() == JSON_BODY
    first, second = rec.entries  # the proxy's answer to CONNECT is no entry of its own
    assert [e["response"]["status"] for e in rec.entries] == [200, 200]
    size = len(json.dumps(JSON_BODY).encode())
    assert all(e["response"]["content"]["size"] == size for e in rec.entries)
    assert 0 <= first["timings"]["ssl"] <= first["timings"]["connect"]
    assert second["timings"]["connect"] == -1


# --- reading the body, and leaving it unread --------------------------------------------------


async def read_all_ways(url: str) -> Dict[str, Any]:
    """The same streamed body read in every way aiohttp offers."""
    stream = url + "/stream?chunks=4&size=3000&delay=0.01"
    results: Dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        async with session.get(stream) as resp:
            results["read"] = await resp.read()
        async with session.get(url + "/text") as resp:
            results["text"] = await resp.text()
        async with session.get(url + "/json") as resp:
            results["json"] = await resp.json()
        async with session.get(stream) as resp:
            results["iter_chunked"] = b"".join([c async for c in resp.content.iter_chunked(1000)])
        async with session.get(stream) as resp:
            results["iter_any"] = b"".join([c async for c in resp.content.iter_any()])
        async with session.get(stream) as resp:
            parts = []
            while True:
                part = await resp.content.readany()
                if not part:
                    break
                parts.append(part)
            results["readany"] = b"".join(parts)
        async with session.get(url + "/text") as resp:
            results["lines"] = [line async for line in resp.content]
    return results


async def test_every_way_of_reading_gets_whole_bodies(server: Any, record: Any) -> None:
    plain = await read_all_ways(server.url)
    with record() as rec:
        recorded = await read_all_ways(server.url)
    assert recorded == plain
    stream_body = b"".join(bytes([i]) * 3000 for i in range(4))
    assert plain["iter_chunked"] == stream_body
    bodies = [content_bytes(e["response"]["content"]) for e in rec.entries]
    assert bodies[0] == bodies[3] == bodies[4] == bodies[5] == stream_body
    assert bodies[1].decode() == bodies[6].decode() == TEXT_BODY
    assert all(e["response"]["content"]["size"] == len(b) for e, b in zip(rec.entries, bodies))


async def test_body_unread_when_recording_stops(server: Any) -> None:
    exporter = ModelHarExporter()
    recorder = AiohttpHarRecorder(exporter).start()
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.url + "/stream?chunks=3&size=10&delay=0.3")
        recorder.stop()
        assert exporter.entries, "the unfinished exchange is exported at stop"
        assert await resp.read() == b"\x00" * 10 + b"\x01" * 10 + b"\x02" * 10
        resp.release()
    entry = only(exporter.entries)
    assert entry["response"]["status"] == 200
    assert entry["response"]["content"]["size"] == -1
    assert entry["response"]["bodySize"] == -1
    assert recorder_module._readers == {}


async def test_body_given_up_before_its_end(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/stream?chunks=3&size=10&delay=0.3") as resp:
                assert resp.status == 200
            async with session.get(server.url + "/large?size=20000000") as resp:
                await resp.content.readexactly(1000)
    for entry in rec.entries:
        assert entry["response"]["content"]["size"] == -1
        assert entry["response"]["bodySize"] == -1
        assert "_error" not in entry["response"]


async def test_a_total_timeout_during_the_body_is_the_entrys_error(server: Any,
                                                                   record: Any) -> None:
    """``ClientTimeout(total=...)`` cancels the reading task without telling the body reader:
    the program gets TimeoutError, and so does the entry."""
    with record() as rec:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.get(server.url + "/stream?chunks=3&size=10&delay=2") as resp:
                    await resp.read()
    response = only(rec.entries)["response"]
    assert response["status"] == 200 and response["_error"] == "net::ERR_TIMED_OUT"
    assert response["content"]["size"] == -1


async def test_bodies_left_encoded_have_an_unknown_decoded_size(server: Any, record: Any) -> None:
    """``auto_decompress=False``: the program gets the gzip bytes; they are not the decoded
    body, whose size is then unknown (as with requests' ``decode_content=False``)."""
    with record() as rec:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(server.url + "/gzip") as resp:
                data = await resp.read()
            async with session.get(server.url + "/json") as resp:
                plain = await resp.read()
    assert gzip.decompress(data).decode() == COMPRESSIBLE_TEXT
    encoded, identity = rec.entries
    assert encoded["response"]["content"]["size"] == -1
    assert "text" not in encoded["response"]["content"]
    # what came off the wire is known all the same
    assert encoded["response"]["bodySize"] == len(data)
    assert encoded["response"]["_transferSize"] == encoded["response"]["headersSize"] + len(data)
    assert identity["response"]["content"]["size"] == len(plain)  # nothing to decode


async def test_a_body_the_server_refused_to_take_was_not_sent(record: Any) -> None:
    """``expect100=True`` and an answer without "100 Continue": no body went out, whatever
    Content-Length announced."""
    answer = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
    with one_answer_server(answer) as port, record() as rec:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/up", data=b"x" * 5000,
                                    expect100=True) as resp:
                assert resp.status == 401 and await resp.read() == b"no"
    request = only(rec.entries)["request"]
    assert request["bodySize"] == 0 and "postData" not in request


# --- concurrency ------------------------------------------------------------------------------


async def test_fifty_concurrent_requests(server: Any, record: Any) -> None:
    async def fetch(session: aiohttp.ClientSession, index: int) -> bytes:
        url = f"{server.url}/binary?size={100 + index}&seed={index}"
        async with session.get(url) as resp:
            return await resp.read()

    async def upload(session: aiohttp.ClientSession, index: int) -> Dict[str, Any]:
        async with session.post(f"{server.url}/echo?i={index}", data=f"body {index}") as resp:
            return await resp.json()

    with record() as rec:
        async with aiohttp.ClientSession() as session:
            got = await asyncio.gather(*(fetch(session, i) for i in range(50)),
                                       *(upload(session, i) for i in range(50)))
    assert [len(b) for b in got[:50]] == [100 + i for i in range(50)]
    assert len(rec.entries) == 100
    seen = set()
    for entry in rec.entries:
        url = entry["request"]["url"]
        assert url not in seen
        seen.add(url)
        query = {q["name"]: q["value"] for q in entry["request"]["queryString"]}
        body = content_bytes(entry["response"]["content"])
        if "seed" in query:
            index = int(query["seed"])
            assert body == deterministic_bytes(100 + index, index)
        else:
            index = int(query["i"])
            assert entry["request"]["postData"]["text"] == f"body {index}"
            assert json.loads(body)["body_text"] == f"body {index}"
        assert entry["response"]["content"]["size"] == len(body)


async def test_two_recorders_at_once(server: Any, record: Any) -> None:
    with record() as outer:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/json") as resp:
                await resp.read()
            with record() as inner:
                async with session.get(server.url + "/text") as resp:
                    await resp.read()
            async with session.get(server.url + "/image.png") as resp:
                await resp.read()
    def names(entries: List[Dict[str, Any]]) -> List[str]:
        return [e["request"]["url"].rsplit("/", 1)[1] for e in entries]

    assert names(outer.entries) == ["json", "text", "image.png"]
    assert names(inner.entries) == ["text"]


async def test_session_created_before_recording(server: Any, record: Any) -> None:
    mine = aiohttp.TraceConfig()
    starts: List[str] = []

    async def on_start(session: Any, ctx: Any, params: Any) -> None:
        starts.append(str(params.url))

    mine.on_request_start.append(on_start)
    configs = [mine]
    async with aiohttp.ClientSession(trace_configs=configs) as session:
        with record() as rec:
            async with session.get(server.url + "/json") as resp:
                await resp.read()
        assert session.trace_configs == [mine]  # harlem's own config is gone again
        async with session.get(server.url + "/text") as resp:
            await resp.read()
    assert configs == [mine]
    assert len(starts) == 2
    assert only(rec.entries)["request"]["url"].endswith("/json")


# --- failures ---------------------------------------------------------------------------------


async def failure(coro: Any) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # noqa: BLE001 - what the program would see
        return exc
    raise AssertionError("no exception")


async def get_and_read(url: str, **kwargs: Any) -> bytes:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **kwargs) as resp:
            return await resp.read()


def failure_cases(server: Any) -> Dict[str, Any]:
    port = closed_port()
    return {
        "refused": (f"http://127.0.0.1:{port}/", {}, aiohttp.ClientConnectorError,
                    "net::ERR_CONNECTION_REFUSED"),
        "dns": ("http://nonexistent.invalid/", {}, aiohttp.ClientConnectorError,
                "net::ERR_NAME_NOT_RESOLVED"),
        "timeout": (server.url + "/slow?delay=2", {"timeout": aiohttp.ClientTimeout(total=0.2)},
                    asyncio.TimeoutError, "net::ERR_TIMED_OUT"),
        # A reset before any answer: ServerDisconnectedError or ClientOSError(ECONNRESET),
        # depending on whether the reset or the orderly close is seen first.
        "reset": (server.url + "/reset", {}, aiohttp.ClientConnectionError, None),
        "reset-in-body": (server.url + "/reset?after=body", {}, aiohttp.ClientPayloadError, None),
    }


@pytest.mark.parametrize("case", ["refused", "dns", "timeout", "reset", "reset-in-body"])
async def test_failures(server: Any, record: Any, case: str) -> None:
    url, kwargs, kind, net_error = failure_cases(server)[case]
    plain = await failure(get_and_read(url, **kwargs))
    received = len(server.requests)
    with record() as rec:
        recorded = await failure(get_and_read(url, **kwargs))
    received = len(server.requests) - received
    assert isinstance(recorded, kind) and isinstance(plain, kind)
    if case not in ("timeout", "reset"):  # a timeout's message may name the timed-out phase
        assert type(recorded) is type(plain) and str(recorded) == str(plain)
    # aiohttp >= 3.10 sends a GET again once when the connection dies before any answer:
    # each attempt is an exchange of its own.
    assert len(rec.entries) == max(1, received)
    for entry in rec.entries[:-1]:
        assert entry["response"]["status"] == 0 and entry["response"]["_error"].startswith("net::")
    entry = rec.entries[-1]
    response = entry["response"]
    assert response["_error"].startswith("net::")
    if net_error:
        assert response["_error"] == net_error
    if case == "reset-in-body":  # failed after the response started
        assert response["status"] == 200
        assert response["content"]["size"] == -1
    else:
        assert response["status"] == 0
        assert entry["timings"]["blocked"] == entry["time"]
    assert type(recorded).__name__ in response["comment"]


async def test_tls_verification_failure(tls: Any, record: Any) -> None:
    url = tls.url + "/json"
    plain = await failure(get_and_read(url))
    with record() as rec:
        recorded = await failure(get_and_read(url))
    assert isinstance(recorded, aiohttp.ClientConnectorCertificateError)
    assert type(recorded) is type(plain) and str(recorded) == str(plain)
    response = only(rec.entries)["response"]
    assert response["status"] == 0
    assert "CERT" in response["_error"] or "SSL" in response["_error"]


async def test_raise_for_status_keeps_the_response(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession(raise_for_status=True) as session:
            with pytest.raises(aiohttp.ClientResponseError) as caught:
                await session.get(server.url + "/status/503")
    assert caught.value.status == 503
    response = only(rec.entries)["response"]
    assert response["status"] == 503
    assert "_error" not in response


async def test_cancelled_request(server: Any, record: Any) -> None:
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            task = asyncio.ensure_future(session.get(server.url + "/slow?delay=2"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    response = only(rec.entries)["response"]
    assert response["status"] == 0 and response["_error"] == "net::ERR_ABORTED"
    assert "CancelledError" in response["comment"]


@pytest.mark.parametrize("how", ["cancel", "wait_for"])
async def test_a_request_cancelled_while_its_body_is_read_is_aborted(server: Any, record: Any,
                                                                    how: str) -> None:
    """Not "given up by the program" with no error: its task was cancelled (by the program,
    or by wait_for's timeout, which the program sees as TimeoutError)."""
    async def read(session: Any) -> None:
        async with session.get(server.url + "/stream?chunks=5&size=1000&delay=0.3") as response:
            await response.read()

    with record() as rec:
        async with aiohttp.ClientSession() as session:
            if how == "cancel":
                task = asyncio.ensure_future(read(session))
                await asyncio.sleep(0.4)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(read(session), 0.4)
    response = only(rec.entries)["response"]
    assert response["status"] == 200 and response["_error"] == "net::ERR_ABORTED"
    assert "CancelledError" in response["comment"] and response["bodySize"] == -1


# --- harlem stays out of the way --------------------------------------------------------------


async def program_observations(url: str) -> List[Any]:
    """What a program sees: statuses, headers, bodies, histories, errors."""
    seen: List[Any] = []
    async with aiohttp.ClientSession() as session:
        paths = ("/json", "/gzip", "/redirect/2", "/dup-headers", "/empty", "/binary?size=70000")
        for path in paths:
            async with session.get(url + path) as resp:
                body = await resp.read()
                headers = [(k, v) for k, v in resp.raw_headers if k.lower() != b"date"]
                seen.append((resp.status, resp.reason, headers, body, str(resp.url),
                             [str(r.url) for r in resp.history], resp.version))
        async with session.post(url + "/echo", data={"k": "v"}) as resp:
            echoed = await resp.json()
            seen.append(echoed["headers"][1:])  # after Host (the port)
        async with session.get(url + "/stream?chunks=3&size=5") as resp:
            seen.append([line async for line in resp.content])
    seen.append(repr(await failure(get_and_read(url + "/reset"))))
    return seen


async def test_program_sees_the_same_with_and_without_recording(server: Any, record: Any) -> None:
    plain = await program_observations(server.url)
    received = len(server.requests)
    with record() as rec:
        recorded = await program_observations(server.url)
    assert recorded == plain
    assert len(rec.entries) == len(server.requests) - received  # one per exchange, retries too


async def test_a_finished_response_is_freed_as_without_recording(server: Any,
                                                                 record: Any) -> None:
    """Nothing harlem keeps holds the program's request or response objects once read: aiohttp's
    cancelled timeout handles keep the call's context, and with it harlem's state, for minutes;
    had that state still named the request, every exchange's objects would stay alive for the
    garbage collector to walk (the exchange itself keeps copies of what it needs)."""
    import gc
    import weakref

    async def response_left_alive(session: aiohttp.ClientSession) -> bool:
        async with session.get(server.url + "/json") as resp:
            await resp.read()
        left = weakref.ref(resp)
        del resp
        return left() is not None

    gc.disable()  # freed by reference counting alone, as they are unrecorded
    try:
        async with aiohttp.ClientSession() as session:
            plain = await response_left_alive(session)
            with record() as rec:
                recorded = [await response_left_alive(session) for _ in range(3)]
    finally:
        gc.enable()
    assert len(rec.entries) == 3
    assert recorded == [plain] * 3 == [False] * 3


async def test_a_response_dropped_before_its_body_ended_is_let_go(server: Any,
                                                                   record: Any) -> None:
    """Read the start, never release, close the session: the body is never fed to its end,
    and harlem kept the response (its connection, the body so far) and the exchange until the
    recording stopped. It lets go when the program does, the entry given up (sizes -1)."""
    import gc
    import weakref

    with record() as rec:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(server.url + "/stream?chunks=40&size=1000&delay=0.05")
            async for _ in resp.content.iter_chunked(100):
                break
            left = weakref.ref(resp)
            del resp
        gc.collect()
        assert left() is None, "the response was kept alive"
        assert not pipeline._in_flight
        pipeline.flush()
        (entry,) = rec.entries  # (exported while the recording runs)
    response = entry["response"]
    assert response["status"] == 200 and response["content"]["size"] == -1
    assert response["bodySize"] == -1


async def test_body_readers_are_patched_once_a_body_outlives_its_headers(server: Any,
                                                                         record: Any) -> None:
    """Every response's reader runs feed_data/feed_eof: while all bodies arrive with their
    headers, those stay unpatched (five wrapped calls a request saved)."""
    from aiohttp import client_reqrep, streams

    methods = [(streams.StreamReader, "feed_data"), (streams.StreamReader, "feed_eof"),
               (streams.StreamReader, "set_exception"), (client_reqrep.ClientResponse, "release"),
               (client_reqrep.ClientResponse, "close")]
    plain = [vars(owner)[name] for owner, name in methods]
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(server.url + "/json") as resp:
                    await resp.read()
            assert [vars(owner)[name] for owner, name in methods] == plain
            async with session.get(server.url + "/stream?chunks=3&size=5&delay=0.05") as resp:
                chunks = [chunk async for chunk in resp.content.iter_any()]
            assert all(vars(owner)[name] is not original
                       for (owner, name), original in zip(methods, plain))
            async with session.get(server.url + "/stream?chunks=2&size=4&delay=0.05") as resp:
                first = await resp.content.readexactly(4)  # then given up
    assert [vars(owner)[name] for owner, name in methods] == plain
    assert len(rec.entries) == 4
    streamed, given_up = rec.entries[2]["response"], rec.entries[3]["response"]
    assert streamed["content"]["size"] == len(b"".join(chunks)) == 15
    assert given_up["content"]["size"] == -1 and len(first) == 4  # sizes unknown, no error
    assert "_error" not in given_up


async def test_patches_are_removed_at_the_last_stop(server: Any, record: Any) -> None:
    from aiohttp import client_reqrep, connector, http_parser, streams

    owners = [(aiohttp.ClientSession, "_request"), (connector.BaseConnector, "connect"),
              (client_reqrep.ClientResponse, "start"), (client_reqrep.ClientResponse, "release"),
              (client_reqrep.ClientResponse, "close"), (streams.StreamReader, "feed_data"),
              (streams.StreamReader, "feed_eof"), (streams.StreamReader, "set_exception"),
              (http_parser.DeflateBuffer, "feed_data")]
    before = [vars(owner)[name] for owner, name in owners]
    eyeballs = getattr(connector, "aiohappyeyeballs", None)
    start_connection = getattr(eyeballs, "start_connection", None)
    with record():
        with record():
            assert vars(aiohttp.ClientSession)["_request"] is not before[0]
        assert vars(aiohttp.ClientSession)["_request"] is not before[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/json") as resp:
                await resp.read()
            async with session.get(server.url + "/stream?chunks=3&size=5&delay=0.05") as resp:
                await resp.read()  # a body that outlives start: the readers get patched
        assert vars(streams.StreamReader)["feed_data"] is not before[5]
    assert [vars(owner)[name] for owner, name in owners] == before
    assert getattr(eyeballs, "start_connection", None) is start_connection
    assert pipeline.is_recording("aiohttp") is False


async def test_harlem_failure_never_breaks_the_request(server: Any, record: Any, monkeypatch: Any,
                                                       capsys: Any) -> None:
    monkeypatch.setattr(harlem._warn, "_seen", set())

    def broken(reader: Any) -> int:
        raise RuntimeError("boom")

    # a helper of the step that notes the response (harlem's bookkeeping, inside its guard)
    monkeypatch.setattr(recorder_module, "_claim_early_wire", broken)
    with record():
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(server.url + "/json") as resp:
                    assert await resp.json() == JSON_BODY
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harlem:")]
    assert len(lines) == 1
    assert "aiohttp recorder failed" in lines[0] and "boom" in lines[0]


async def test_harlem_failure_in_a_trace_callback(server: Any, record: Any, monkeypatch: Any,
                                                  capsys: Any) -> None:
    monkeypatch.setattr(harlem._warn, "_seen", set())

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("begin failed")

    monkeypatch.setattr(pipeline, "begin", broken)
    with record() as rec:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.post(server.url + "/echo", data=b"data") as resp:
                    assert (await resp.json())["body_text"] == "data"
    assert rec.entries == []
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harlem:")]
    # Once per failing step (the first hop begins in a trace callback, later ones on connect).
    assert lines and len(lines) == len(set(lines)) <= 2
    assert all("begin failed" in line for line in lines)


def test_module_level_request_and_never_awaited_warning(server: Any, record: Any) -> None:
    async def main() -> bytes:
        async with aiohttp.request("GET", server.url + "/json") as resp:
            return await resp.read()

    with record() as rec:
        assert json.loads(asyncio.run(main())) == JSON_BODY

        async def forget() -> List[str]:
            async with aiohttp.ClientSession() as session:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    session.get(server.url + "/json")  # never awaited
                    import gc

                    gc.collect()
                return [str(w.message) for w in caught]

        messages = asyncio.run(forget())
    assert only(rec.entries)["request"]["url"].endswith("/json")
    assert any("coroutine 'ClientSession._request' was never awaited" in m for m in messages)
    assert not any("harlem" in m for m in messages)


async def test_sessions_in_two_threads(server: Any, record: Any) -> None:
    def in_thread(path: str) -> bytes:
        return asyncio.run(get_and_read(server.url + path))

    with record() as rec:
        results = await asyncio.gather(asyncio.to_thread(in_thread, "/json"),
                                       asyncio.to_thread(in_thread, "/text"),
                                       get_and_read(server.url + "/image.png"))
    assert results[2] == PNG_BYTES
    assert sorted(e["request"]["url"].rsplit("/", 1)[1] for e in rec.entries) == [
        "image.png", "json", "text"]




@pytest.mark.skipif(not hasattr(aiohttp, "ClientHandlerType"), reason="client middlewares: aiohttp 3.12+")
async def test_a_request_a_middleware_sends_again_keeps_each_hops_headers(server: Any,
                                                                         record: Any) -> None:
    """A client middleware may change a request's headers and send the same request again
    (a retry, digest auth): each entry has the headers of its own hop."""
    async def attempts(request: Any, handler: Any) -> Any:
        response = None
        for number in (1, 2, 3):
            request.headers["X-Attempt"] = str(number)
            response = await handler(request)
            if number < 3:
                await response.read()
        return response

    with record() as rec:
        async with aiohttp.ClientSession(middlewares=(attempts,)) as session:
            async with session.get(server.url + "/json") as response:
                await response.read()
    sent = [[h["value"] for h in entry["request"]["headers"] if h["name"] == "X-Attempt"]
            for entry in rec.entries]
    assert sent == [["1"], ["2"], ["3"]]


@pytest.mark.skipif(not hasattr(aiohttp, "ClientHandlerType"), reason="client middlewares: aiohttp 3.12+")
async def test_a_middleware_that_falls_back_after_a_refused_connection_keeps_its_error(
        server: Any, record: Any) -> None:
    """The first replica refuses, the middleware catches that and sends the request to
    another: the refused attempt is ERR_CONNECTION_REFUSED with what the middleware caught,
    not aiohttp's own retry on a dead kept-alive connection."""
    caught: List[BaseException] = []

    async def fallback(request: Any, handler: Any) -> Any:
        try:
            return await handler(request)
        except aiohttp.ClientConnectorError as exc:
            caught.append(exc)
            request.url = request.url.with_port(server.port)
            return await handler(request)

    with record() as rec:
        async with aiohttp.ClientSession(middlewares=(fallback,)) as session:
            async with session.get(f"http://127.0.0.1:{closed_port()}/json") as response:
                assert response.status == 200
    refused, served = rec.entries
    assert refused["response"]["_error"] == "net::ERR_CONNECTION_REFUSED"
    assert refused["response"]["comment"].startswith("aiohttp.client_exceptions.ClientConnectorError")
    assert served["response"]["status"] == 200 and len(caught) == 1
