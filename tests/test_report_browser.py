"""The HTML report in a real browser (Chromium through Playwright's sync API).

Skipped when Playwright or Debian's /usr/bin/chromium is missing (``apt-get install chromium``;
Playwright's own browser download is not used).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

CHROMIUM = "/usr/bin/chromium"
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from harlem.report import render_html  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
XSS_BODY = "</script><script>window.__xss = 1; alert(1)</script>"
XSS_HEADER = '"><img src=x onerror="window.__xss = 2; alert(2)">'
T0 = dt.datetime(2024, 5, 17, 9, 30, 12, 250000, tzinfo=dt.timezone.utc)


# ------------------------------------------------------------------ a realistic HAR


def _png(width: int = 48, height: int = 48) -> bytes:
    """A small real PNG: a diagonal blue-green gradient."""
    rows = b""
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes([40 + 3 * x, 110 + 2 * y, 220 - 2 * x, 255])
        rows += bytes(row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _headers(pairs: List[tuple]) -> List[Dict[str, str]]:
    return [{"name": n, "value": v} for n, v in pairs]


def _stack(*frames: tuple) -> Dict[str, Any]:
    return {
        "type": "script",
        "stack": {
            "callFrames": [
                {"functionName": fn, "url": url, "lineNumber": line - 1, "columnNumber": 0}
                for url, line, fn in frames
            ]
        },
    }


def make_entry(
    offset_ms: float,
    method: str,
    url: str,
    status: int,
    *,
    mime: str = "application/json",
    text: Any = None,
    encoding: str = "",
    size: int = -1,
    req_headers: Any = None,
    resp_headers: Any = None,
    post: Any = None,
    timings: Any = None,
    page: Any = "page_1",
    **extra: Any,
) -> Dict[str, Any]:
    timings = dict(
        timings
        or {"blocked": 0.4, "dns": -1, "connect": -1, "ssl": -1, "send": 0.2, "wait": 38.0, "receive": 2.1}
    )
    total = sum(v for k, v in timings.items() if k != "ssl" and v > 0)
    if size < 0:
        size = len(base64.b64decode(text)) if encoding == "base64" else len((text or "").encode())
    query = []
    if "?" in url:
        for part in url.split("?", 1)[1].split("&"):
            name, _, value = part.partition("=")
            query.append({"name": name, "value": value})
    content: Dict[str, Any] = {"size": size, "mimeType": mime}
    if text is not None:
        content["text"] = text
    if encoding:
        content["encoding"] = encoding
    resp_hdrs = _headers(resp_headers or [("Content-Type", mime), ("Content-Length", str(size))])
    entry: Dict[str, Any] = {
        "startedDateTime": (T0 + dt.timedelta(milliseconds=offset_ms)).isoformat(timespec="microseconds"),
        "time": total,
        "request": {
            "method": method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(
                req_headers
                or [
                    ("Host", url.split("/")[2]),
                    ("User-Agent", "python-requests/2.32.3"),
                    ("Accept", "*/*"),
                    ("Accept-Encoding", "gzip, deflate"),
                ]
            ),
            "queryString": query,
            "headersSize": 180,
            "bodySize": len(post["text"].encode()) if post and "text" in post else 0,
        },
        "response": {
            "status": status,
            "statusText": {
                200: "OK",
                201: "Created",
                204: "No Content",
                302: "Found",
                404: "Not Found",
                503: "Service Unavailable",
                0: "",
            }.get(status, ""),
            "httpVersion": "HTTP/1.1" if status else "",
            "cookies": [],
            "headers": resp_hdrs,
            "content": content,
            "redirectURL": "",
            "headersSize": 150 if status else -1,
            "bodySize": size if status else -1,
        },
        "cache": {},
        "timings": timings,
        "serverIPAddress": "93.184.215.14",
        "connection": "52110",
        "_pid": 4242,
        "_resourceType": "fetch",
        "_initiator": _stack(
            ("file:///home/dev/shop/client.py", 88, "get_json"),
            ("file:///home/dev/shop/sync.py", 41, "sync_users"),
            ("file:///home/dev/shop/main.py", 12, "<module>"),
        ),
    }
    if page:
        entry["pageref"] = page
    if post is not None:
        entry["request"]["postData"] = post
    entry.update(extra)
    return entry


def realistic_har() -> Dict[str, Any]:
    png = base64.b64encode(_png()).decode()
    binary = base64.b64encode(bytes(range(256)) * 12 + b"\x00tail").decode()
    users = {
        "page": 1,
        "per_page": 3,
        "total": 57,
        "users": [
            {"id": 41, "name": "Ada Lovelace", "email": "ada@example.com", "active": True, "score": 98.5},
            {"id": 42, "name": "Grace Hopper", "email": "grace@example.com", "active": True, "score": 97.25},
            {"id": 43, "name": "Alan Turing", "email": "alan@example.com", "active": False, "score": None},
        ],
    }
    cold = {
        "blocked": 1.2,
        "dns": 14.8,
        "connect": 61.5,
        "ssl": 38.9,
        "send": 0.3,
        "wait": 92.4,
        "receive": 6.3,
    }
    entries = [
        make_entry(
            0,
            "GET",
            "https://api.example.com/v1/users?page=1&per_page=3",
            200,
            text=json.dumps(users),
            timings=cold,
            _transferSize=812,
            resp_headers=[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Encoding", "gzip"),
                ("X-Request-Id", "3f2a9c1e"),
                ("X-Forward", XSS_HEADER),
            ],
        ),
        make_entry(
            182,
            "GET",
            "https://api.example.com/v1/users/42/avatar.png",
            200,
            mime="image/png",
            text=png,
            encoding="base64",
            _resourceType="image",
            timings={
                "blocked": 0.3,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 41.0,
                "receive": 3.8,
            },
        ),
        make_entry(
            230,
            "POST",
            "https://api.example.com/v1/orders",
            201,
            text=json.dumps({"id": "ord_7Hq2", "status": "created"}),
            post={
                "mimeType": "application/json",
                "text": json.dumps({"sku": "BK-1024", "qty": 2, "gift": False}),
            },
            timings={
                "blocked": 0.2,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.4,
                "wait": 120.7,
                "receive": 1.1,
            },
        ),
        make_entry(
            365,
            "POST",
            "https://example.com/login",
            302,
            mime="text/html",
            text="",
            post={
                "mimeType": "application/x-www-form-urlencoded",
                "text": "user=ada&password=%2A%2A%2A",
                "params": [{"name": "user", "value": "ada"}, {"name": "password", "value": "***"}],
            },
            resp_headers=[
                ("Location", "https://example.com/dashboard"),
                ("Set-Cookie", "sid=abc123; HttpOnly; Secure"),
            ],
            timings={
                "blocked": 0.5,
                "dns": 9.1,
                "connect": 44.0,
                "ssl": 27.2,
                "send": 0.2,
                "wait": 35.2,
                "receive": 0.3,
            },
        ),
        make_entry(
            452,
            "GET",
            "https://example.com/dashboard",
            200,
            mime="text/html; charset=utf-8",
            text="<!doctype html><title>Dashboard</title><p>hello</p>" + XSS_BODY,
            _resourceType="document",
            timings={
                "blocked": 0.3,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 58.0,
                "receive": 4.2,
            },
        ),
        make_entry(
            520,
            "GET",
            "https://cdn.example.net/assets/model.bin",
            200,
            mime="application/octet-stream",
            text=binary,
            encoding="base64",
            _resourceType="other",
            timings={
                "blocked": 0.2,
                "dns": 11.0,
                "connect": 30.0,
                "ssl": 18.0,
                "send": 0.1,
                "wait": 22.0,
                "receive": 64.0,
            },
        ),
        make_entry(
            610,
            "GET",
            "https://api.example.com/v1/reports/slow",
            0,
            mime="",
            text=None,
            timings={
                "blocked": 0.2,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 1000.0,
                "receive": -1,
            },
        ),
        make_entry(
            700,
            "GET",
            "https://api.example.com/v1/users/999",
            404,
            text=json.dumps({"error": "not found", "id": 999}),
            timings={
                "blocked": 0.2,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 30.0,
                "receive": 0.4,
            },
        ),
        make_entry(
            1250,
            "GET",
            "https://api.example.com/v1/health",
            503,
            mime="text/plain",
            text="upstream unavailable\n",
            page="page_2",
            timings={
                "blocked": 0.2,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 12.0,
                "receive": 0.2,
            },
        ),
        make_entry(
            1300,
            "GET",
            "https://worker.internal.example/jobs/7?include=steps",
            200,
            text=json.dumps({"job": 7, "state": "running", "steps": [1, 2, 3]}),
            page="page_2",
            _pid=4311,
            timings={
                "blocked": 0.6,
                "dns": 3.0,
                "connect": 5.0,
                "ssl": -1,
                "send": 0.2,
                "wait": 80.0,
                "receive": 1.0,
            },
        ),
        make_entry(
            1420,
            "POST",
            "http://127.0.0.1:8000/webhooks/payment",
            204,
            mime="",
            text="",
            page="page_2",
            _direction="incoming",
            _resourceType="incoming",
            post={
                "mimeType": "application/json",
                "text": json.dumps({"event": "payment.succeeded", "amount": 1999}),
            },
            timings={
                "blocked": -1,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.5,
                "wait": 9.0,
                "receive": 0.1,
            },
        ),
        make_entry(
            1500,
            "GET",
            "https://example.com/search?q=%3Cscript%3Ewindow.__xss%3D3%3C/script%3E",
            200,
            mime="image/svg+xml",
            page="page_2",
            _resourceType="image",
            text='<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="window.__xss=4">'
            '<script>window.__xss=5</script><rect width="10" height="10" fill="red"/></svg>',
            timings={
                "blocked": 0.2,
                "dns": -1,
                "connect": -1,
                "ssl": -1,
                "send": 0.1,
                "wait": 20.0,
                "receive": 0.4,
            },
        ),
    ]
    failed = entries[6]
    failed["response"]["_error"] = (
        "ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Read timed out. (read timeout=1)"
    )
    redirect = entries[3]
    redirect["response"]["redirectURL"] = "https://example.com/dashboard"
    redirect["response"]["cookies"] = [
        {"name": "sid", "value": "abc123", "path": "/", "httpOnly": True, "secure": True}
    ]
    entries[4]["request"]["cookies"] = [{"name": "sid", "value": "abc123"}]
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "harlem", "version": "0.1.0"},
            "pages": [
                {
                    "startedDateTime": T0.isoformat(),
                    "id": "page_1",
                    "title": "sync_users()",
                    "pageTimings": {"onContentLoad": -1, "onLoad": 820},
                },
                {
                    "startedDateTime": (T0 + dt.timedelta(milliseconds=1250)).isoformat(),
                    "id": "page_2",
                    "title": "background jobs",
                    "pageTimings": {},
                },
            ],
            "entries": entries,
        }
    }


def big_har(n: int = 10_000) -> Dict[str, Any]:
    hosts = [
        "api.example.com",
        "cdn.example.net",
        "auth.example.org",
        "search.example.com",
        "img.example.net",
    ]
    statuses = [200] * 14 + [201, 204, 301, 304, 404, 500]
    entries = []
    for i in range(n):
        host = hosts[i % len(hosts)]
        status = statuses[(i * 7) % len(statuses)]
        body = json.dumps({"i": i, "items": list(range(i % 7)), "host": host})
        e = make_entry(
            i * 3.7,
            "GET" if i % 5 else "POST",
            f"https://{host}/v2/items/{i}?expand=owner&n={i % 13}",
            status,
            text=body,
            page=None,
            timings={
                "blocked": 0.3,
                "dns": 2.0 if i % 50 == 0 else -1,
                "connect": 9.0 if i % 50 == 0 else -1,
                "ssl": 5.0 if i % 50 == 0 else -1,
                "send": 0.1,
                "wait": 10 + (i * 13) % 90,
                "receive": 1 + i % 9,
            },
        )
        if i % 97 == 0:
            e["response"]["status"] = 0
            e["response"]["_error"] = "ConnectionResetError: [Errno 104] Connection reset by peer"
        entries.append(e)
    return {"log": {"version": "1.2", "creator": {"name": "harlem", "version": "0.1.0"}, "entries": entries}}


# ------------------------------------------------------------------ browser fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page with every console error, page error, dialog and non-local request recorded."""

    def __init__(self, browser: Any):
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.console_errors: List[str] = []
        self.page_errors: List[str] = []
        self.dialogs: List[str] = []
        self.outside: List[str] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", self._request)
        self.context.route("**/*", self._route)

    @staticmethod
    def _local(url: str) -> bool:
        return url.startswith(("file:", "data:", "blob:"))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        if not self._local(request.url):
            self.outside.append(request.url)

    def _route(self, route: Any) -> None:
        if self._local(route.request.url):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("blockedbyclient")

    def open(self, path: Path, timeout: float = 60_000) -> float:
        started = time.perf_counter()
        self.page.goto(path.as_uri(), wait_until="load", timeout=timeout)
        self.page.wait_for_function("() => document.documentElement.dataset.ready === '1'", timeout=timeout)
        return time.perf_counter() - started

    def assert_clean(self) -> None:
        assert self.page_errors == []
        assert self.console_errors == []
        assert self.dialogs == []
        assert self.outside == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    try:
        yield w
    finally:
        w.close()


def _write(tmp_path: Path, har: Dict[str, Any], name: str = "report.html") -> Path:
    out = tmp_path / name
    out.write_text(render_html(har, title="test.har"), encoding="utf-8")
    return out


def _row(page: Any, url_part: str) -> Any:
    return page.locator("#vbody .row.e", has_text=url_part).first


def _tab(page: Any, name: str) -> None:
    page.locator(f"#d-tabs button[data-tab='{name}']").click()


# ------------------------------------------------------------------ tests


def test_rows_details_and_no_network(tmp_path: Path, watched: Watched) -> None:
    har = realistic_har()
    watched.open(_write(tmp_path, har))
    page = watched.page
    n = len(har["log"]["entries"])
    assert page.locator("#vbody .row.e").count() == n
    assert page.locator("#vbody .row.group").count() == 2
    assert page.evaluate("window.harlemReport.entryCount") == n
    assert page.evaluate("window.harlemReport.rowCount") == n

    # labels: child process, incoming, failure
    assert "pid 4311" in _row(page, "worker.internal.example").text_content()
    assert "incoming" in _row(page, "webhooks/payment").text_content()
    assert "ReadTimeout" in _row(page, "reports/slow").text_content()
    summary = page.locator("#summary").text_content()
    assert "Failed1" in summary and "Requests12" in summary

    # JSON body, pretty-printed once selected
    _row(page, "/v1/users?page=1").click()
    _tab(page, "response")
    body = page.locator("#d-body pre.body").inner_text()
    assert '"name": "Grace Hopper"' in body
    _tab(page, "initiator")
    frames = page.locator("#d-body ol.frames").inner_text()
    assert "/home/dev/shop/client.py:88" in frames and "get_json" in frames
    assert "file://" not in frames
    _tab(page, "headers")
    assert XSS_HEADER in page.locator("#d-body").inner_text()

    # image body: a data: URL image that decodes
    _row(page, "avatar.png").click()
    _tab(page, "response")
    img = page.locator("#d-body img")
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    page.wait_for_function("() => document.querySelector('#d-body img').naturalWidth === 48")

    # binary body: size and hex preview
    _row(page, "model.bin").click()
    body = page.locator("#d-body").inner_text()
    assert "Binary body" in body and "00000000  00 01 02 03" in body

    # XSS body shown as text
    _row(page, "/dashboard").click()
    assert XSS_BODY in page.locator("#d-body pre.body").inner_text()

    # SVG with script, as an <img>: inert
    _row(page, "search?q=").click()
    page.wait_for_timeout(200)

    # redirect, post data params
    _row(page, "/login").click()
    _tab(page, "headers")
    assert "https://example.com/dashboard" in page.locator("#d-body").inner_text()
    _tab(page, "payload")
    assert "password" in page.locator("#d-body").inner_text()
    _tab(page, "cookies")
    assert "abc123" in page.locator("#d-body").inner_text()
    _tab(page, "timing")
    assert "TLS" in page.locator("#d-body").inner_text()

    assert page.evaluate("typeof window.__xss") == "undefined"
    watched.assert_clean()


def test_filters_sort_and_keyboard(tmp_path: Path, watched: Watched) -> None:
    har = realistic_har()
    watched.open(_write(tmp_path, har))
    page = watched.page
    rows = page.locator("#vbody .row.e")

    page.fill("#filter", "api.example.com/v1/users")
    page.wait_for_function("() => window.harlemReport.rowCount === 3")
    assert rows.count() == 3
    page.fill("#filter", "")
    page.wait_for_function(f"() => window.harlemReport.rowCount === {len(har['log']['entries'])}")

    page.select_option("#method-filter", "POST")
    assert page.evaluate("window.harlemReport.rowCount") == 3
    page.select_option("#method-filter", "")
    page.select_option("#status-filter", "failed")
    assert page.evaluate("window.harlemReport.rowCount") == 1
    assert "reports/slow" in rows.first.inner_text()
    page.select_option("#status-filter", "4xx")
    assert page.evaluate("window.harlemReport.rowCount") == 1
    page.select_option("#status-filter", "")

    # sort by time, descending first: the 1 s timeout comes first
    page.locator("#thead .c-tm").click()
    assert "reports/slow" in rows.first.inner_text()
    page.locator("#thead .c-n").click()
    assert "v1/users?page=1" in rows.first.inner_text()

    # keyboard: j/k/arrows move, Enter opens, Escape closes
    page.locator("#list").focus()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("k")
    assert page.evaluate("window.harlemReport.selectedIndex") == 2
    assert page.locator("#detail").is_hidden()
    page.keyboard.press("Enter")
    assert page.locator("#detail").is_visible()
    assert "/v1/orders" in page.locator("#d-url").inner_text()
    page.keyboard.press("ArrowDown")
    assert "/login" in page.locator("#d-url").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#detail").is_hidden()
    watched.assert_clean()


def test_ten_thousand_entries(tmp_path: Path, watched: Watched) -> None:
    har = big_har(10_000)
    started = time.perf_counter()
    path = _write(tmp_path, har)
    render_s = time.perf_counter() - started
    load_s = watched.open(path)
    page = watched.page
    script_ms = page.evaluate("window.harlemReport.loadMs")
    print(
        f"\n10k-entry HAR: {path.stat().st_size / 1e6:.1f} MB, render_html {render_s:.2f} s, "
        f"browser load {load_s:.2f} s (report script {script_ms:.0f} ms)"
    )
    assert page.evaluate("window.harlemReport.entryCount") == 10_000
    assert page.evaluate("window.harlemReport.rowCount") == 10_000
    assert "10000 requests" in page.locator("#count").inner_text()
    # virtualised: only the rows in view exist, and scrolling to the end shows the last one
    assert page.locator("#vbody .row").count() < 200
    page.locator("#list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_function("() => document.querySelector('#vbody').textContent.includes('/v2/items/9999?')")
    _row(page, "/v2/items/9999?").click()
    _tab(page, "response")
    assert '"i": 9999' in page.locator("#d-body pre.body").inner_text()
    page.fill("#filter", "items/99")
    page.wait_for_function("() => window.harlemReport.rowCount === 111")
    watched.assert_clean()


def test_fifty_mebibyte_har(tmp_path: Path, watched: Watched) -> None:
    har = big_har(200)
    chunk = base64.b64encode(bytes(range(256)) * 768).decode()  # 196 608 bytes -> 262 144 chars
    for entry in har["log"]["entries"]:
        content = entry["response"]["content"]
        content.update(mimeType="application/octet-stream", encoding="base64", text=chunk, size=196_608)
    big_text = "x" * (3 << 20)
    har["log"]["entries"][5]["response"]["content"] = {
        "mimeType": "text/plain",
        "size": len(big_text),
        "text": big_text,
    }
    path = _write(tmp_path, har)
    assert path.stat().st_size > 50 * 1024 * 1024
    load_s = watched.open(path, timeout=120_000)
    print(f"\n{path.stat().st_size / 2**20:.0f} MiB HAR: browser load {load_s:.2f} s")
    page = watched.page
    assert page.evaluate("window.harlemReport.entryCount") == 200
    _row(page, "/v2/items/5?").click()
    _tab(page, "response")
    assert page.locator("#d-body button.more").count() == 1
    page.locator("#d-body button.more").click()
    assert page.evaluate("document.querySelector('#d-body pre.body').textContent.length") == len(big_text)
    watched.assert_clean()


def test_the_wire_size_of_a_chrome_export_is_shown(tmp_path: Path, watched: Watched) -> None:
    """Chrome writes ``_transferSize`` on the response (HTTP/2: headersSize and bodySize -1)."""
    har = realistic_har()
    first = har["log"]["entries"][0]
    for chosen in har["log"]["entries"]:
        chosen["response"].pop("_transferSize", None)
        chosen.pop("_transferSize", None)
        chosen["response"].update(headersSize=-1, bodySize=-1)
    first["response"]["_transferSize"] = 3000
    watched.open(_write(tmp_path, har))
    summary = watched.page.locator("#summary").text_content()
    assert "3.0 kB" in summary, summary
    watched.assert_clean()


def test_a_json_body_shows_its_numbers_as_written(tmp_path: Path, watched: Watched) -> None:
    """Pretty-printed without going through JavaScript numbers: a 64-bit id read
    1234567890123456800, 1.10 read 1.1 and 1e400 read null."""
    har = realistic_har()
    text = '{"id": 1234567890123456789, "price": 1.10, "limit": 1e400, "name": "caf\\u00e9"}'
    for chosen in har["log"]["entries"]:
        if "/v1/users?page=1" in chosen["request"]["url"]:
            chosen["response"]["content"].update(text=text, size=len(text))
    watched.open(_write(tmp_path, har))
    page = watched.page
    _row(page, "/v1/users?page=1").click()
    _tab(page, "response")
    body = page.locator("#d-body pre.body").inner_text()
    assert body == ('{\n  "id": 1234567890123456789,\n  "price": 1.10,\n  "limit": 1e400,\n'
                    '  "name": "caf\u00e9"\n}'), body
    watched.assert_clean()


def test_an_unknown_time_is_shown_as_unknown(tmp_path: Path, watched: Watched) -> None:
    """``time`` -1 and every phase -1 (Playwright's minimal mode): a dash, not "0.0 ms"."""
    har = realistic_har()
    for chosen in har["log"]["entries"]:
        chosen["time"] = -1
        chosen["timings"] = {"send": -1, "wait": -1, "receive": -1}
    watched.open(_write(tmp_path, har))
    times = watched.page.locator("#vbody .c-tm").all_text_contents()
    assert times and all(text == "\u2014" for text in times), times
    watched.assert_clean()


def test_a_page_opened_before_its_first_request_shows_its_offset(tmp_path: Path,
                                                                 watched: Watched) -> None:
    """Page rows say when the page began against the first request: before it, a negative
    offset (it read "at +\u2014")."""
    har = realistic_har()
    har["log"]["pages"][0]["startedDateTime"] = (T0 - dt.timedelta(milliseconds=1500)).isoformat()
    watched.open(_write(tmp_path, har))
    rows = watched.page.locator("#vbody .row.group")
    first, second = rows.nth(0).text_content(), rows.nth(1).text_content()
    assert "at \u22121.50 s" in first, first
    assert "at +1.25 s" in second, second
    watched.assert_clean()
