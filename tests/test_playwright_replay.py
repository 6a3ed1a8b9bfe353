"""A harlem HAR replayed by Playwright in Chromium renders the page its program fetched.

A Python program (requests) fetches the demo web page and everything it references (style
sheet, script, image, and the JSON the script fetches), plus a few POSTs, a redirect chain
and compressed, binary and latin-1 bodies, under ``record_to_file``. Then the server stops,
and Chromium loads the page through ``context.route_from_har(har, not_found="abort")``: every
answer comes from the HAR, anything not in it fails.

Skipped when Playwright or Debian's /usr/bin/chromium is missing (``apt-get install
chromium``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator, List, Tuple
from urllib.parse import urljoin, urlsplit

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")

CHROMIUM = "/usr/bin/chromium"
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

import requests  # noqa: E402

from harlem import record_to_file  # noqa: E402
from harlem.demo.server import (  # noqa: E402
    COMPRESSIBLE_TEXT,
    JSON_BODY,
    LATIN1_TEXT,
    LoopbackServer,
    deterministic_bytes,
)
from tests.helpers import check_har  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic"]
#: Two POSTs to the same URL that only their bodies tell apart.
POST_BODIES = ('{"n": 1}', '{"n": 2}')
#: A POST body that is not text: harlem writes it base64, and Playwright must decode it to match.
POST_BINARY = bytes(range(256))
COMPRESSED = ("/gzip", "/deflate", "/gzip-chunked")
BINARY = "/binary?size=4096&seed=5"
_FETCH_RE = re.compile(r"""fetch\(['"]([^'"]+)['"]\)""")


class _References(HTMLParser):
    """The ``href`` and ``src`` attributes of a page, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Any]]) -> None:
        self.found += [value for name, value in attrs if name in ("href", "src") and value]


def _browse(base: str) -> None:
    """What the recorded program does: load /page like a browser would, then the extras."""
    with requests.Session() as session:
        page_url = base + "/page"
        references = _References()
        references.feed(session.get(page_url).text)
        for reference in references.found:
            body = session.get(urljoin(page_url, reference)).text
            if reference.endswith(".js"):
                for fetched in _FETCH_RE.findall(body):
                    session.get(urljoin(page_url, fetched))
        for text in POST_BODIES:
            session.post(base + "/echo", data=text.encode(),
                         headers={"Content-Type": "application/json"})
        session.post(base + "/echo", data=POST_BINARY,
                     headers={"Content-Type": "application/octet-stream"})
        session.post(base + "/echo", data={"field": "value"},
                     files={"upload": ("hello.txt", b"hello file", "text/plain")})
        for path in ("/redirect/2", *COMPRESSED, BINARY, "/latin1"):
            session.get(base + path)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, str]:
    """(HAR path, base URL): recorded from a server that is stopped once recording ends."""
    har = tmp_path_factory.mktemp("replay") / "page.har"
    with LoopbackServer() as server, record_to_file(har):
        _browse(server.url)
    check_har(har)
    with pytest.raises(ConnectionRefusedError):  # nothing can answer but the HAR
        socket.create_connection((server.host, server.port), timeout=2).close()
    return har, server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Any, replay: Tuple[Path, str]) -> Iterator[Any]:
    """A browser context whose every request is answered from the HAR, or aborted."""
    opened = browser.new_context()
    opened.route_from_har(replay[0], not_found="abort")
    yield opened
    opened.close()


@pytest.fixture
def page(context: Any, replay: Tuple[Path, str]) -> Any:
    """A page showing the recorded /page, so that ``fetch('/...')`` goes to its origin."""
    opened = context.new_page()
    opened.goto(replay[1] + "/page")
    return opened


def _fetch_text(page: Any, path: str) -> str:
    return str(page.evaluate("path => fetch(path).then(r => r.text())", path))


def test_the_page_renders_completely_from_the_har(context: Any, replay: Tuple[Path, str]) -> None:
    page = context.new_page()
    answered: List[Tuple[str, int]] = []
    failed: List[Tuple[str, Any]] = []
    page.on("response", lambda response: answered.append(
        (urlsplit(response.url).path, response.status)))
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
    page.goto(replay[1] + "/page")
    page.wait_for_function("document.getElementById('out').textContent.startsWith('{')")
    assert json.loads(page.inner_text("#out")) == JSON_BODY  # the script ran, its fetch answered
    style = page.evaluate("""() => {
        const h1 = getComputedStyle(document.querySelector('h1'));
        const body = getComputedStyle(document.body);
        return [h1.color, body.marginTop, body.fontFamily];
    }""")
    assert style == ["rgb(170, 0, 0)", "32px", "sans-serif"]  # the style sheet applied
    image = page.evaluate("""() => { const img = document.images[0];
        return img.decode().then(() => [img.complete, img.naturalWidth, img.naturalHeight]); }""")
    assert image == [True, 1, 1]
    assert failed == []
    assert sorted(answered) == [("/app.js", 200), ("/image.png", 200), ("/json", 200),
                                ("/page", 200), ("/style.css", 200)]


def test_a_post_is_answered_by_the_entry_with_the_same_body(page: Any) -> None:
    for text in reversed(POST_BODIES):
        echoed = page.evaluate("""body => fetch('/echo', {method: 'POST', body: body,
            headers: {'Content-Type': 'application/json'}}).then(r => r.json())""", text)
        assert echoed["body_text"] == text


def test_a_binary_post_is_matched_byte_for_byte(page: Any) -> None:
    echoed = page.evaluate("""bytes => fetch('/echo', {method: 'POST', body: new Uint8Array(bytes),
        headers: {'Content-Type': 'application/octet-stream'}}).then(r => r.json())""",
                           list(POST_BINARY))
    assert base64.b64decode(echoed["body_base64"]) == POST_BINARY


def test_a_multipart_post_matches_whatever_its_boundary(page: Any) -> None:
    echoed = page.evaluate("""() => { const form = new FormData();
        form.append('field', 'value');
        form.append('upload', new Blob(['hello file'], {type: 'text/plain'}), 'hello.txt');
        return fetch('/echo', {method: 'POST', body: form}).then(r => r.json()); }""")
    assert 'name="upload"; filename="hello.txt"' in echoed["body_text"]


def test_a_redirect_chain_is_followed(page: Any, replay: Tuple[Path, str]) -> None:
    assert json.loads(_fetch_text(page, "/redirect/2")) == JSON_BODY
    page.goto(replay[1] + "/redirect/2")
    assert page.url == replay[1] + "/json"
    assert json.loads(page.inner_text("body")) == JSON_BODY


@pytest.mark.parametrize("path", COMPRESSED)
def test_a_compressed_body_is_served_decoded(page: Any, path: str) -> None:
    assert _fetch_text(page, path) == COMPRESSIBLE_TEXT


def test_binary_and_latin1_bodies_come_back_byte_for_byte(page: Any) -> None:
    data = page.evaluate("""path => fetch(path).then(r => r.arrayBuffer())
        .then(buffer => Array.from(new Uint8Array(buffer)))""", BINARY)
    assert bytes(data) == deterministic_bytes(4096, seed=5)
    assert _fetch_text(page, "/latin1") == LATIN1_TEXT
