"""A program that makes every kind of exchange harlem records, for the HAR consumer tests.

Consumers (mitmproxy, haralyzer, Chrome's and Firefox's importers) must accept every entry
harlem writes, so the HAR they get comes from real traffic, recorded by harlem itself: text,
latin-1, binary, compressed, chunked, empty and unread bodies; JSON, form, multipart, binary
and latin-1 uploads; redirects; cookies; duplicate and non-ASCII headers; HTTPS; and failures
(connection refused, reset before and after the response started, read timeout). Each HTTP
library harlem has a recorder for makes the same calls, inside a page named after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import harlem
from harlem.demo.server import LATIN1_TEXT, closed_port, deterministic_bytes
from harlem.recorders import RECORDERS
from tests.helpers import TlsServer, check_har

__all__ = ["BINARY_UPLOAD", "CALLS", "VARIANTS", "Call", "record_every_kind"]

#: A body that is not text in any encoding (a NUL byte, invalid UTF-8).
BINARY_UPLOAD = b"\x00\xff\xfe" + deterministic_bytes(300, seed=3)


@dataclass(frozen=True)
class Call:
    """One request of the program.

    ``where``: ``http`` (the loopback server), ``https`` (its TLS twin) or ``closed`` (a port
    where nothing listens). ``body`` names an upload in :func:`_bodies`. ``fails``: the library
    raises, and the program carries on. ``read``: False leaves the body unread (streamed,
    then closed).
    """

    method: str
    path: str
    body: Optional[str] = None
    where: str = "http"
    fails: bool = False
    read: bool = True
    timeout: float = 10.0


CALLS: Sequence[Call] = (
    Call("GET", "/page"),
    Call("GET", "/style.css"),
    Call("GET", "/app.js"),
    Call("GET", "/image.png"),
    Call("GET", "/json?q=har%20lem&q=2&empty="),
    Call("GET", "/text"),
    Call("GET", "/latin1"),
    Call("GET", "/binary?size=2048&seed=7"),
    Call("GET", "/gzip"),
    Call("GET", "/deflate"),
    Call("GET", "/gzip-chunked"),
    Call("GET", "/stream?chunks=3&size=100"),
    Call("GET", "/stream?chunks=50&size=4096", read=False),
    Call("GET", "/empty"),
    Call("HEAD", "/json"),
    Call("GET", "/status/404"),
    Call("GET", "/status/500"),
    Call("GET", "/redirect/2"),
    Call("GET", "/cookies/set"),
    Call("GET", "/cookies"),
    Call("GET", "/dup-headers"),
    Call("GET", "/unicode-headers"),
    Call("POST", "/echo", body="json"),
    Call("POST", "/echo", body="form"),
    Call("POST", "/echo", body="multipart"),
    Call("POST", "/echo", body="binary"),
    Call("PUT", "/echo", body="latin1"),
    Call("POST", "/echo", body="empty"),
    Call("DELETE", "/echo"),
    Call("GET", "/json", where="https"),
    Call("GET", "/", where="closed", fails=True),
    Call("GET", "/reset", fails=True),
    Call("GET", "/reset?after=headers", fails=True),
    Call("GET", "/reset?after=body", fails=True),
    Call("GET", "/slow?delay=2", fails=True, timeout=0.2),
)


def _bodies() -> Dict[str, Dict[str, Any]]:
    """Upload name -> the pieces every library understands: ``json``, ``form`` fields,
    ``files`` (name -> (file name, bytes, content type)), or raw ``content`` + ``type``."""
    return {
        "json": {"json": {"name": "harlem", "list": [1, 2], "unicode": "✓"}},
        "form": {"form": {"field": "välue & more", "empty": ""}},
        "multipart": {"form": {"field": "value"},
                      "files": {"text": ("hello.txt", b"hello file", "text/plain"),
                                "blob": ("blob.bin", BINARY_UPLOAD, "application/octet-stream")}},
        "binary": {"content": BINARY_UPLOAD, "type": "application/octet-stream"},
        "latin1": {"content": LATIN1_TEXT.encode("latin-1"),
                   "type": "text/plain; charset=iso-8859-1"},
        "empty": {"content": b"", "type": "text/plain"},
    }


#: Settings that change what an entry holds: a recording per variant.
VARIANTS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "truncated": {"max_body_size": "1KiB"},
    "no-bodies": {"bodies": False},
}


# --------------------------------------------------------------------------- the drivers
# One function per library: make every call, swallow the failures that were asked for.


def _keywords(body: Dict[str, Any], raw: str) -> Dict[str, Any]:
    """requests' and httpx's keywords for an upload (``raw``: their keyword for bytes)."""
    kwargs: Dict[str, Any] = {}
    if "json" in body:
        kwargs["json"] = body["json"]
    if "form" in body:
        kwargs["data"] = body["form"]
    if "files" in body:
        kwargs["files"] = body["files"]
    if "content" in body:
        kwargs[raw] = body["content"]
        kwargs["headers"] = {"Content-Type": body["type"]}
    return kwargs


def _requests(calls: Sequence[Call], urls: List[str], tls: TlsServer) -> None:
    import requests

    bodies = _bodies()
    with requests.Session() as session:
        for call, url in zip(calls, urls):
            kwargs = _keywords(bodies.get(call.body or "", {}), raw="data")
            # Per request: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
            kwargs["verify"] = tls.ca_file
            try:  # without stream=True, requests reads the whole body before returning
                session.request(call.method, url, timeout=call.timeout, stream=not call.read,
                                **kwargs).close()
            except requests.RequestException:
                if not call.fails:
                    raise


def _aiohttp(calls: Sequence[Call], urls: List[str], tls: TlsServer) -> None:
    import aiohttp

    bodies = _bodies()

    def payload(body: Dict[str, Any]) -> Dict[str, Any]:
        if "json" in body:
            return {"json": body["json"]}
        if "files" in body:
            form = aiohttp.FormData()
            for name, value in body["form"].items():
                form.add_field(name, value)
            for name, (file_name, data, content_type) in body["files"].items():
                form.add_field(name, data, filename=file_name, content_type=content_type)
            return {"data": form}
        if "form" in body:
            return {"data": body["form"]}
        if "content" in body:
            return {"data": body["content"], "headers": {"Content-Type": body["type"]}}
        return {}

    async def run() -> None:
        connector = aiohttp.TCPConnector(ssl=tls.client_context())
        jar = aiohttp.CookieJar(unsafe=True)  # by default it refuses cookies from IP hosts
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
            for call, url in zip(calls, urls):
                timeout = aiohttp.ClientTimeout(total=call.timeout)
                try:
                    async with session.request(call.method, url, timeout=timeout,
                                               **payload(bodies.get(call.body or "", {}))) as r:
                        if call.read:
                            await r.read()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    if not call.fails:
                        raise

    asyncio.run(run())


def _httpx(calls: Sequence[Call], urls: List[str], tls: TlsServer) -> None:
    import httpx

    bodies = _bodies()
    with httpx.Client(verify=tls.client_context(), follow_redirects=True) as client:
        for call, url in zip(calls, urls):
            kwargs = _keywords(bodies.get(call.body or "", {}), raw="content")
            try:
                with client.stream(call.method, url, timeout=call.timeout, **kwargs) as response:
                    if call.read:
                        response.read()
            except httpx.HTTPError:
                if not call.fails:
                    raise


DRIVERS: Dict[str, Callable[[Sequence[Call], List[str], TlsServer], None]] = {
    "requests": _requests,
    "aiohttp": _aiohttp,
    "httpx": _httpx,
}


def _url(call: Call, server: Any, tls: TlsServer) -> str:
    if call.where == "https":
        return tls.url + call.path
    if call.where == "closed":
        return f"http://127.0.0.1:{closed_port()}{call.path}"
    return str(server.url) + call.path


def record_every_kind(path: Path, server: Any, tls: TlsServer, **settings: Any) -> Dict[str, Any]:
    """Make :data:`CALLS` with every library harlem records (one page each) under
    ``record_to_file(path, **settings)``; return the HAR, checked by :func:`check_har`.

    A library joins as soon as harlem lists a recorder for it (``harlem.recorders.RECORDERS``).
    """
    libraries = [name for name in DRIVERS if name in RECORDERS]
    with harlem.record_to_file(path, indent=1, **settings):
        for name in libraries:
            urls = [_url(call, server, tls) for call in CALLS]
            with harlem.page(name):
                DRIVERS[name](CALLS, urls, tls)
    return check_har(path)
