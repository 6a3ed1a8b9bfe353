"""Server side: HarlemMiddleware and AsgiHarRecorder record the requests an ASGI app serves.

Real parts only: FastAPI/Starlette applications served by uvicorn (in a thread, and as a real
``uvicorn`` process under ``harlem-run`` or ``HARLEM_OUTPUT``), hypercorn for HTTP/2, and
``httpx.ASGITransport`` for in-process checks of what the application and the client see.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

httpx = pytest.importorskip("httpx")
starlette = pytest.importorskip("starlette")
fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware.gzip import GZipMiddleware  # noqa: E402

from harlem import pipeline  # noqa: E402
from harlem.asgi import HarlemMiddleware  # noqa: E402
from harlem.demo.server import COMPRESSIBLE_TEXT, JSON_BODY  # noqa: E402
from harlem.exporters.model import ModelHarExporter  # noqa: E402
from harlem.recorders.asgi import AsgiHarRecorder  # noqa: E402
from tests.helpers import recorders_of, REPO_ROOT, check_har  # noqa: E402

# --- ASGI servers in a thread (also used by tests/test_httpx_recorder.py) -------------------


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 from a thread; yields the base URL."""
    sock = _bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def hypercorn_tls_server(app: Any, tmp_path: Path) -> Iterator[Tuple[str, str]]:
    """Serve ``app`` with hypercorn over TLS (ALPN h2, http/1.1) on 127.0.0.1 from a thread.

    Yields ``(base URL, client SSL context)``; skips when hypercorn, h2 or trustme is missing.
    """
    pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")
    trustme = pytest.importorskip("trustme")
    hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio",
                                            reason="an HTTP/2 server needs hypercorn")
    from hypercorn.config import Config

    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    sock = _bound_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket
    config.certfile = config.keyfile = str(pem)
    config.loglevel = "WARNING"
    loop = asyncio.new_event_loop()
    # A future of the server's loop, not an asyncio.Event: on Python 3.9 an Event binds to the
    # loop current where it is made, and this thread has none.
    stopping = loop.create_future()
    ready = threading.Event()

    async def shutdown_trigger() -> None:
        await stopping

    async def run() -> None:
        ready.set()
        await hypercorn_asyncio.serve(app, config, shutdown_trigger=shutdown_trigger)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait(10)
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:  # hypercorn binds lazily: wait until it answers
        try:
            httpx.get(url + "/", verify=client_context, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "hypercorn did not start"
            time.sleep(0.05)
    try:
        yield url, client_context
    finally:
        loop.call_soon_threadsafe(stopping.set_result, None)
        thread.join(10)


# --- applications ---------------------------------------------------------------------------


def make_fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: int, q: str = "") -> Dict[str, Any]:
        return {"item": item, "q": q}

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await request.body(), headers={"X-Dup": "1"})

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("boom")

    @app.get("/stream")
    async def stream(chunks: int = 3, delay: float = 0.0) -> StreamingResponse:
        async def parts() -> Any:
            for index in range(chunks):
                if index and delay:
                    await asyncio.sleep(delay)
                yield bytes([65 + index]) * 100

        return StreamingResponse(parts(), media_type="application/octet-stream")

    @app.get("/compressible")
    async def compressible() -> PlainTextResponse:
        return PlainTextResponse(COMPRESSIBLE_TEXT)

    return app


async def bare_app(scope: Dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """A plain ASGI application (no framework): echoes the body; ``/fail`` raises first."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        raise KeyError("no such thing")
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain"), (b"x-dup", b"a"), (b"x-dup", b"b")]})
    await send({"type": "http.response.body", "body": b"got:", "more_body": True})
    await send({"type": "http.response.body", "body": body})


# --- recording --------------------------------------------------------------------------------


@pytest.fixture
def record() -> Iterator[Callable[..., Any]]:
    """``with record(**options) as rec:`` records into ``rec`` until the block ends."""
    with recorders_of(AsgiHarRecorder) as start:
        yield start


def asgi_client(app: Any, raise_app_exceptions: bool = True) -> Any:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def header(message: Dict[str, Any], name: str) -> List[str]:
    return [h["value"] for h in message["headers"] if h["name"].lower() == name.lower()]


def body_bytes(content: Dict[str, Any]) -> bytes:
    text = content.get("text", "")
    return base64.b64decode(text) if content.get("encoding") == "base64" else text.encode("utf-8")


def assert_timings_ordered(entry: Dict[str, Any]) -> None:
    timings = entry["timings"]
    phases = [timings[k] for k in ("blocked", "dns", "connect", "send", "wait", "receive")]
    assert entry["time"] == pytest.approx(sum(p for p in phases if p > 0), abs=1e-6)
    assert timings["dns"] == -1 and timings["connect"] == -1 and timings["ssl"] == -1


# --- in process: FastAPI through httpx.ASGITransport -----------------------------------------


def test_fastapi_requests_are_recorded_as_incoming_entries(record: Any) -> None:
    app = make_fastapi_app()

    async def calls() -> Tuple[Any, Any]:
        async with asgi_client(app) as client:
            got = await client.get("/items/7?q=a%20b", headers={"X-Trace": "t1"})
            echoed = await client.post("/echo", content=b"payload \xff", headers={"Content-Type": "application/octet-stream"})
            return got, echoed

    with record() as rec:
        got, echoed = run(calls())
    assert got.json() == {"item": 7, "q": "a b"} and echoed.content == b"payload \xff"
    first, second = rec.entries
    assert first["_direction"] == "incoming" and first["_initiator"] == {"type": "other"}
    request = first["request"]
    assert request["method"] == "GET" and request["url"] == "http://testserver/items/7?q=a%20b"
    assert {"name": "q", "value": "a b"} in request["queryString"]
    assert header(request, "x-trace") == ["t1"] and header(request, "host") == ["testserver"]
    response = first["response"]
    assert response["status"] == 200 and response["statusText"] == "OK"
    assert json.loads(response["content"]["text"]) == {"item": 7, "q": "a b"}
    assert response["content"]["size"] == len(got.content) == response["bodySize"]
    assert header(response, "content-type") == ["application/json"]
    assert first["request"]["httpVersion"] == "HTTP/1.1"
    assert first["connection"] == "123"  # httpx.ASGITransport's client port
    assert_timings_ordered(first)
    assert first["timings"]["send"] == 0  # no request body: whole on arrival

    post = second["request"]
    assert post["method"] == "POST" and post["bodySize"] == len(b"payload \xff")
    assert base64.b64decode(post["postData"]["text"]) == b"payload \xff"
    assert body_bytes(second["response"]["content"]) == b"payload \xff"


def test_recording_stops_cleanly_and_nothing_is_recorded_after(record: Any) -> None:
    original = vars(Starlette)["__call__"]
    app = make_fastapi_app()

    async def one() -> None:
        async with asgi_client(app) as client:
            assert (await client.get("/items/1")).status_code == 200

    with record() as rec:
        assert vars(Starlette)["__call__"] is not original
        run(one())
    assert vars(Starlette)["__call__"] is original
    run(one())
    assert len(rec.entries) == 1


def test_unhandled_exception_is_the_500_the_client_got_and_still_propagates(record: Any) -> None:
    app = make_fastapi_app()

    async def boom() -> Any:
        async with asgi_client(app) as client:
            return await client.get("/boom")

    with record() as rec:
        with pytest.raises(ZeroDivisionError, match="boom"):  # Starlette re-raises to the server
            run(boom())
    entry = rec.only_entry()
    response = entry["response"]
    assert response["status"] == 500 and response["statusText"] == "Internal Server Error"
    assert body_bytes(response["content"]) == b"Internal Server Error"  # ServerErrorMiddleware's
    assert response["_error"].startswith("net::ERR_")
    assert "ZeroDivisionError: boom" in response["comment"]


def test_exception_before_any_response_is_recorded_as_500_and_reraised_unchanged(record: Any) -> None:
    app = HarlemMiddleware(bare_app)
    raised: List[BaseException] = []

    async def fail() -> None:
        async with asgi_client(app) as client:
            try:
                await client.post("/fail", content=b"x")
            except KeyError as exc:
                raised.append(exc)

    with record() as rec:
        run(fail())
    assert len(raised) == 1 and raised[0].args == ("no such thing",)
    response = rec.only_entry()["response"]
    assert response["status"] == 500 and response["headers"] == []
    assert response["content"]["size"] == -1  # the server's own 500 body is not seen
    assert "KeyError" in response["comment"]


def test_streamed_response_keeps_its_pace_and_is_recorded_whole(record: Any) -> None:
    arrivals: List[float] = []
    data = b""
    with record() as rec, uvicorn_server(make_fastapi_app()) as url:
        with httpx.Client() as client:
            with client.stream("GET", url + "/stream?chunks=4&delay=0.1") as response:
                for chunk in response.iter_raw():
                    arrivals.append(time.monotonic())
                    data += chunk
    assert data == b"A" * 100 + b"B" * 100 + b"C" * 100 + b"D" * 100
    assert len(arrivals) == 4 and all(b - a >= 0.08 for a, b in zip(arrivals, arrivals[1:]))
    entry = rec.only_entry()
    assert body_bytes(entry["response"]["content"]) == data
    assert entry["timings"]["receive"] >= 280


def test_client_leaving_mid_stream_leaves_an_entry_of_unknown_size(record: Any) -> None:
    with record() as rec, uvicorn_server(make_fastapi_app()) as url:
        with httpx.Client() as client:
            with client.stream("GET", url + "/stream?chunks=50&delay=0.02") as response:
                assert next(response.iter_raw()) == b"A" * 100
        deadline = time.monotonic() + 5
        while not rec.entries and time.monotonic() < deadline:  # the server notices the close
            time.sleep(0.05)
    response = rec.only_entry()["response"]
    assert response["status"] == 200 and response["content"]["size"] == -1


def test_app_returning_without_a_response_is_the_servers_500(record: Any) -> None:
    async def silent(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        return None

    with record() as rec, uvicorn_server(HarlemMiddleware(silent)) as url:
        assert httpx.get(url + "/").status_code == 500
    response = rec.only_entry()["response"]
    assert response["status"] == 500
    assert "returned without sending a response" in response["comment"]


def test_gzip_middleware_body_is_recorded_decoded_with_its_wire_size(record: Any) -> None:
    app = make_fastapi_app()
    app.add_middleware(GZipMiddleware, minimum_size=100)

    async def get() -> Any:
        async with asgi_client(app) as client:
            return await client.get("/compressible", headers={"Accept-Encoding": "gzip"})

    with record() as rec:
        response = run(get())
    assert response.text == COMPRESSIBLE_TEXT
    recorded = rec.only_entry()["response"]
    assert header(recorded, "content-encoding") == ["gzip"]
    assert recorded["content"]["text"] == COMPRESSIBLE_TEXT
    assert recorded["content"]["size"] == len(COMPRESSIBLE_TEXT.encode())
    assert 0 < recorded["bodySize"] < recorded["content"]["size"]
    assert recorded["content"]["compression"] == recorded["content"]["size"] - recorded["bodySize"]


def test_a_body_labelled_gzip_that_is_not_keeps_its_wire_size(record: Any) -> None:
    """The bytes sent are known even when they do not decode as Content-Encoding says."""
    async def mislabelled(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-encoding", b"gzip"), (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b"not gzipped"})

    async def get() -> Any:
        async with asgi_client(HarlemMiddleware(mislabelled)) as client:
            return await client.get("/", headers={"Accept-Encoding": "identity"})

    with record() as rec:
        with pytest.raises(httpx.DecodingError):
            run(get())
    recorded = rec.only_entry()["response"]
    assert recorded["content"]["size"] == -1 and "text" not in recorded["content"]
    assert recorded["bodySize"] == 11
    assert recorded["_transferSize"] == recorded["headersSize"] + 11


def test_explicit_middleware_in_a_patched_app_records_once(record: Any) -> None:
    app = make_fastapi_app()
    app.add_middleware(HarlemMiddleware)
    inner = Starlette()
    inner.add_route("/hi", lambda request: PlainTextResponse("hi"))
    app.mount("/sub", inner)

    async def calls() -> None:
        async with asgi_client(app) as client:
            assert (await client.get("/items/3")).status_code == 200
            assert (await client.get("/sub/hi")).text == "hi"

    with record() as rec:
        run(calls())
    urls = [e["request"]["url"] for e in rec.entries]
    assert urls == ["http://testserver/items/3", "http://testserver/sub/hi"]


LATE_IMPORT = """
import asyncio, sys
from harlem.exporters.model import ModelHarExporter
from harlem.recorders.asgi import AsgiHarRecorder
from harlem import pipeline

exporter = ModelHarExporter()
with AsgiHarRecorder(exporter):
    assert "starlette" not in sys.modules, "the recorder imported Starlette itself"
    import httpx
    from fastapi import FastAPI

    app = FastAPI()
    app.get("/late")(lambda: {"late": True})

    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/late")).json()

    assert asyncio.run(call()) == {"late": True}
    pipeline.flush()
from starlette.applications import Starlette
assert not hasattr(vars(Starlette)["__call__"], "__wrapped__"), "still patched"
print(",".join(e["request"]["url"] for e in exporter.entries))
"""


def test_starlette_imported_after_the_recorder_started_is_patched_then(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", LATE_IMPORT], capture_output=True, text=True,
                          cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://t/late"


def test_middleware_records_nothing_without_a_recorder() -> None:
    async def call() -> Any:
        async with asgi_client(HarlemMiddleware(bare_app)) as client:
            return await client.post("/x", content=b"1")

    response = run(call())
    assert response.status_code == 201 and response.content == b"got:1"
    assert not pipeline.is_recording("asgi")


def test_incoming_credentials_are_redacted(record: Any) -> None:
    app = make_fastapi_app()

    async def call() -> None:
        async with asgi_client(app) as client:
            await client.get("/items/1", headers={"Authorization": "Bearer s3cret"})

    with record() as rec:
        run(call())
    entry = rec.only_entry()
    assert header(entry["request"], "authorization") != ["Bearer s3cret"]
    assert "s3cret" not in json.dumps(entry)


def test_a_request_body_past_the_limit_keeps_its_first_bytes_and_its_size(record: Any) -> None:
    """As for every recorder: the first ``max_body_size`` bytes, ``_truncated``, and the true
    size, with a Content-Length or without (chunked)."""
    app = make_fastapi_app()
    payload = b"z" * 5000

    async def pieces() -> Any:
        for start in range(0, len(payload), 700):
            yield payload[start:start + 700]

    async def call() -> None:
        async with asgi_client(app) as client:
            assert (await client.post("/echo", content=payload)).content == payload
            assert (await client.post("/echo", content=pieces())).content == payload

    with record(max_body_size=1000) as rec:
        run(call())
    for entry in rec.entries:
        request = entry["request"]
        assert request["bodySize"] == 5000
        assert request["postData"]["_truncated"] is True
        assert base64.b64decode(request["postData"]["text"]) == payload[:1000] \
            or request["postData"]["text"] == payload[:1000].decode()


def test_an_app_called_in_process_from_a_handler_is_recorded_too(record: Any) -> None:
    """A gateway whose handler calls another application in process (httpx.ASGITransport):
    two requests, two entries; a mounted app serving the same request stays one."""
    backend = make_fastapi_app()
    gateway = make_fastapi_app()

    @gateway.get("/via")
    async def via() -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=backend),
                                     base_url="http://backend") as client:
            return (await client.get("/items/3")).json()

    gateway.mount("/mounted", make_fastapi_app())

    async def call() -> Any:
        async with asgi_client(gateway) as client:
            via_answer = (await client.get("/via")).json()
            mounted = (await client.get("/mounted/items/4")).json()
            return via_answer, mounted

    with record() as rec:
        assert run(call()) == ({"item": 3, "q": ""}, {"item": 4, "q": ""})
    incoming = [e["request"]["url"] for e in rec.entries if e["_direction"] == "incoming"]
    assert sorted(incoming) == ["http://backend/items/3", "http://testserver/mounted/items/4",
                                "http://testserver/via"]


@pytest.mark.parametrize("path, url", [("/docs", "http://h/api/docs"),
                                       ("/api/docs", "http://h/api/docs"),
                                       ("/apidocs", "http://h/api/apidocs"),
                                       ("/api", "http://h/api")])
def test_the_root_path_prefixes_paths_that_do_not_begin_with_it_as_a_segment(path: str,
                                                                             url: str) -> None:
    from harlem.recorders.asgi import _url

    scope = {"type": "http", "scheme": "http", "path": path, "root_path": "/api",
             "headers": [(b"host", b"h")]}
    assert _url(scope) == url


def test_a_request_naming_no_host_on_a_unix_socket_still_has_a_valid_url() -> None:
    from harlem.recorders.asgi import _url

    scope = {"type": "http", "scheme": "http", "path": "/x", "headers": [],
             "server": ("/tmp/app.sock", None)}
    assert _url(scope) == "http://localhost/x"


# --- over the network: uvicorn and hypercorn in a thread -----------------------------------


def test_uvicorn_served_bare_app_with_middleware_names_the_connection(record: Any) -> None:
    with record() as rec, uvicorn_server(HarlemMiddleware(bare_app)) as url:
        with httpx.Client() as client:
            response = client.post(url + "/path%20x?a=1", content=b"hello")
            client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    assert response.status_code == 201 and response.content == b"got:hello"
    entry = rec.only_entry()
    port = url.rsplit(":", 1)[1]
    assert entry["request"]["url"] == f"http://127.0.0.1:{port}/path%20x?a=1"
    assert entry["serverIPAddress"] == "127.0.0.1"
    assert entry["connection"] == str(client_port)
    assert entry["response"]["status"] == 201 and entry["response"]["statusText"] == "Created"
    assert header(entry["response"], "x-dup") == ["a", "b"]
    assert entry["request"]["postData"]["text"] == "hello"
    assert body_bytes(entry["response"]["content"]) == b"got:hello"
    assert_timings_ordered(entry)


def _raw_exchange(url: str, data: bytes, responses: int) -> List[bytes]:
    """Send ``data`` on one connection; read until ``responses`` status lines came back."""
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < responses:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return [line for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def test_every_request_of_a_kept_alive_connection_is_recorded(record: Any) -> None:
    """uvicorn starts a connection's next request from inside this one's receive/send (after a
    large upload, or pipelined requests): that request is recorded too, not taken for an
    application nested in this one."""
    with record() as rec, uvicorn_server(HarlemMiddleware(bare_app)) as url:
        with httpx.Client() as client:
            assert client.post(url + "/upload", content=b"x" * 300_000).status_code == 201
            for number in range(3):
                assert client.get(f"{url}/after?n={number}").status_code == 201
        pipelined = b"".join(f"GET /pipelined-{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                             for n in range(2))
        assert len(_raw_exchange(url, pipelined, 2)) == 2
    paths = [entry["request"]["url"].split("/", 3)[3] for entry in rec.entries]
    assert paths == ["upload", "after?n=0", "after?n=1", "after?n=2", "pipelined-0",
                     "pipelined-1"]


def test_what_any_client_sends_still_makes_a_valid_url(record: Any) -> None:
    """A Host header or request target with characters a URI cannot hold: percent-encoded;
    the absolute form a proxy receives is the URL; "OPTIONS *" is the server's."""
    with record() as rec, uvicorn_server(HarlemMiddleware(bare_app)) as url:
        requests_sent = (b"GET /a HTTP/1.1\r\nHost: exa mple\r\n\r\n"
                         b"GET http://absolute.example/f?x=1 HTTP/1.1\r\nHost: ok\r\n\r\n"
                         b"OPTIONS * HTTP/1.1\r\nHost: ok\r\n\r\n"
                         # a path that holds a URL (web archives, image proxies): not a target
                         # in absolute form
                         b"GET /web/2020/http://example.com/p HTTP/1.1\r\nHost: ok\r\n\r\n"
                         # Host headers a scanner sends: not a host and port a URI allows
                         b"GET /x HTTP/1.1\r\nHost: [zz\r\n\r\n"
                         b"GET /x HTTP/1.1\r\nHost: a%zz\r\n\r\n"
                         b"GET /x HTTP/1.1\r\nHost: h:abc\r\n\r\n"
                         b"GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
                         b"GET http://abs%zz.example/f HTTP/1.1\r\nHost: ok\r\n\r\n")
        assert len(_raw_exchange(url, requests_sent, 9)) == 9
    assert [entry["request"]["url"] for entry in rec.entries] == [  # (checked valid by rec)
        "http://exa%20mple/a", "http://absolute.example/f?x=1", "http://ok",
        "http://ok/web/2020/http://example.com/p", "http://%5Bzz/x", "http://a%25zz/x",
        "http://h%3Aabc/x", "http://[::1]:8080/x", "http://abs%25zz.example/f"]


def test_an_upload_the_client_gave_up_is_a_failure_with_what_arrived(record: Any) -> None:
    """5 000 of 100 000 announced bytes, then the client closes: not a request served whole.
    The body is what arrived, sending lasted until the client left, and the entry failed."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request: Any) -> Any:
        return JSONResponse({"size": len(await request.body())})

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    with record() as rec, uvicorn_server(HarlemMiddleware(app)) as url:
        host, port = url.split("//", 1)[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                         + b"x" * 5000)
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # (the app answers once uvicorn sees the close)
            pipeline.flush()
            if rec.exporter.entries:
                break
            time.sleep(0.05)
    (entry,) = rec.entries
    request, response = entry["request"], entry["response"]
    assert request["bodySize"] == 5000 and request["postData"]["text"] == "x" * 5000
    assert response["_error"] == "net::ERR_CONNECTION_CLOSED"
    assert "ClientDisconnect" in response["comment"]
    assert entry["timings"]["send"] >= 250  # the upload, until the client left


def test_a_bodiless_request_still_served_when_recording_stops_is_waiting(record: Any) -> None:
    """Its request was whole when the app was called: the time so far is wait, not send."""
    async def slow(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario(rec: Any) -> None:
        async with asgi_client(HarlemMiddleware(slow)) as client:
            pending = asyncio.ensure_future(client.get("/slow"))
            await asyncio.sleep(0.2)
            rec.recorder.stop()
            assert (await pending).status_code == 204

    with record() as rec:
        run(scenario(rec))
    (entry,) = rec.entries
    assert entry["response"]["_error"] == "net::ERR_IO_PENDING"
    assert entry["timings"]["send"] == 0 and entry["timings"]["wait"] > 0


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")  # (Starlette 1.x)
def test_a_test_clients_websocket_is_not_an_http_entry(record: Any) -> None:
    """Starlette's TestClient switches to WebSocket by raising its own exception out of the
    handshake request: not a failed exchange."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient

    from harlem.recorders.httpx import HttpxHarRecorder

    async def hello(websocket: Any) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    with recorders_of(HttpxHarRecorder) as start_httpx, start_httpx() as outgoing, \
            record() as incoming:
        with TestClient(Starlette(routes=[WebSocketRoute("/ws", hello)])) as client:
            with client.websocket_connect("/ws") as websocket:
                assert websocket.receive_text() == "hi"
    assert outgoing.entries == [] and incoming.entries == []


def test_hypercorn_http2_requests_are_http2_entries(record: Any, tmp_path: Path) -> None:
    app = make_fastapi_app()
    with record() as rec, hypercorn_tls_server(app, tmp_path) as (url, context):
        with httpx.Client(http2=True, verify=context) as client:
            response = client.get(url + "/items/5")
        assert response.http_version == "HTTP/2"
    # (The server's readiness probe is recorded too.)
    (entry,) = [e for e in rec.entries if e["request"]["url"].endswith("/items/5")]
    assert entry["request"]["httpVersion"] == entry["response"]["httpVersion"] == "http/2.0"
    assert entry["request"]["url"] == url + "/items/5"
    assert json.loads(entry["response"]["content"]["text"]) == {"item": 5, "q": ""}


def test_outgoing_calls_made_by_the_app_land_in_the_same_har(server: Any, tmp_path: Path) -> None:
    from harlem.recorders.httpx import HttpxHarRecorder

    app = FastAPI()

    @app.get("/proxy")
    async def proxy() -> Any:
        async with httpx.AsyncClient() as client:
            return (await client.get(server.url + "/json")).json()

    exporter = ModelHarExporter()
    with AsgiHarRecorder(exporter), HttpxHarRecorder(exporter):
        async def call() -> Any:
            async with asgi_client(app) as client:
                return (await client.get("/proxy")).json()

        assert run(call()) == JSON_BODY
    pipeline.flush()
    entries = check_har(exporter.to_dict())["log"]["entries"]
    directions = {(e["_direction"], e["request"]["url"].split("/", 3)[3]) for e in entries}
    assert ("incoming", "proxy") in directions and ("outgoing", "json") in directions
    # The httpx.ASGITransport call that drove the app is an outgoing httpx request too.
    assert ("outgoing", "proxy") in directions


# --- a real uvicorn process under the agent ----------------------------------------------------

APP_SOURCE = '''
import asyncio, os
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

app = FastAPI()

@app.get("/items/{item}")
async def item(item: int, q: str = ""):
    return {"item": item, "q": q}

@app.post("/echo")
async def echo(request: Request):
    return PlainTextResponse(await request.body())

@app.get("/boom")
async def boom():
    raise ZeroDivisionError("boom")

@app.get("/stream")
async def stream():
    async def parts():
        for index in range(3):
            yield b"%d" % index * 50
            await asyncio.sleep(0.05)
    return StreamingResponse(parts(), media_type="text/plain")

@app.get("/outgoing")
async def outgoing():
    async with httpx.AsyncClient() as client:
        return (await client.get(os.environ["UPSTREAM"] + "/json")).json()
'''


def _launchers(out: Path, fd: int) -> Dict[str, Tuple[List[str], Dict[str, str]]]:
    serve = [sys.executable, "-m", "uvicorn", "app:app", "--fd", str(fd), "--log-level", "warning"]
    path = os.pathsep.join([str(REPO_ROOT / "harlem_bootstrap"), str(REPO_ROOT)])
    return {
        "harlem-run": ([sys.executable, "-m", "harlem.cli.run", "-o", str(out), "--", *serve],
                       {"PYTHONPATH": str(REPO_ROOT)}),
        "HARLEM_OUTPUT": (serve, {"PYTHONPATH": path, "HARLEM_OUTPUT": str(out)}),
    }


def _get(url: str, data: Optional[bytes] = None) -> Tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("launcher", ["harlem-run", "HARLEM_OUTPUT"])
def test_uvicorn_process_under_the_agent(launcher: str, server: Any, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP_SOURCE))
    out = tmp_path / "service.har"
    sock = _bound_socket()
    command, extra = _launchers(out, sock.fileno())[launcher]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(extra, UPSTREAM=server.url)
    process = subprocess.Popen(command, cwd=str(tmp_path), env=env, pass_fds=(sock.fileno(),),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # the server process holds its own copy
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(base + "/items/1?q=x") == (200, b'{"item":1,"q":"x"}')
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert _get(base + "/echo", data=b"posted body") == (200, b"posted body")
        assert _get(base + "/boom") == (500, b"Internal Server Error")
        assert _get(base + "/stream") == (200, b"0" * 50 + b"1" * 50 + b"2" * 50)
        assert json.loads(_get(base + "/outgoing")[1]) == JSON_BODY
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then (0.29+) dies of the signal it caught, as it should.
    assert process.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert b"harlem: warning" not in stderr, stderr.decode()

    entries = check_har(out)["log"]["entries"]
    served = [e for e in entries if e["_direction"] == "incoming"]
    by_path = {e["request"]["url"][len(base):]: e for e in served}
    assert list(by_path) == ["/items/1?q=x", "/echo", "/boom", "/stream", "/outgoing"]
    for entry in served:
        assert entry["serverIPAddress"] == "127.0.0.1" and int(entry["connection"]) > 0
        assert entry["request"]["httpVersion"] == "HTTP/1.1"
        assert header(entry["request"], "user-agent")[0].startswith("Python-urllib")
        assert_timings_ordered(entry)
    assert by_path["/items/1?q=x"]["response"]["content"]["text"] == '{"item":1,"q":"x"}'
    assert by_path["/echo"]["request"]["postData"]["text"] == "posted body"
    boom = by_path["/boom"]["response"]
    assert boom["status"] == 500 and "ZeroDivisionError: boom" in boom["comment"]
    assert by_path["/stream"]["response"]["content"]["size"] == 150
    assert by_path["/stream"]["timings"]["receive"] >= 90
    upstream = [e for e in entries if e["_direction"] == "outgoing"]
    assert [e["request"]["url"] for e in upstream] == [server.url + "/json"]
    assert json.loads(upstream[0]["response"]["content"]["text"]) == JSON_BODY
    # The outgoing call happened while /outgoing was being served, inside its time span.
    outer = by_path["/outgoing"]
    assert outer["startedDateTime"] <= upstream[0]["startedDateTime"]



def test_a_head_response_has_no_body_whatever_the_application_sent(record: Any) -> None:
    """An application may answer HEAD as it answers GET; the server sends no body for it (a
    HEAD response has none), so the entry has none either."""
    with record() as rec, uvicorn_server(HarlemMiddleware(bare_app)) as url:
        with httpx.Client() as client:
            head = client.head(url + "/thing")
            get = client.get(url + "/thing")
    assert head.status_code == get.status_code == 201
    assert head.content == b"" and get.content == b"got:"
    head_entry, get_entry = rec.entries  # (checked)
    assert head_entry["request"]["method"] == "HEAD"
    content = head_entry["response"]["content"]
    assert content["size"] == 0 and not content.get("text")
    assert head_entry["response"]["bodySize"] == 0
    assert body_bytes(get_entry["response"]["content"]) == b"got:"
