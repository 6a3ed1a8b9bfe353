"""harlem.report (HTML page and terminal table) and the ``harlem show`` command, without a browser."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from harlem.report import render_html, render_text
from harlem.report.html import CSP, embed_json

ROOT = Path(__file__).resolve().parents[1]
XSS_BODY = "</script><script>alert(1)</script>"
XSS_HEADER = '"><img src=x onerror=alert(1)>'
POSIX = os.name == "posix"


def entry(
    url: str,
    status: int = 200,
    *,
    method: str = "GET",
    start: str = "2024-03-01T10:00:00.000Z",
    time: float = 50.0,
    body: Optional[str] = None,
    mime: str = "application/json",
    headers: Optional[List[Dict[str, str]]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    e: Dict[str, Any] = {
        "startedDateTime": start,
        "time": time,
        "request": {
            "method": method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "queryString": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": headers or [],
            "redirectURL": "",
            "headersSize": 100,
            "bodySize": len(body or ""),
            "content": {
                "size": len(body or ""),
                "mimeType": mime,
                **({"text": body} if body is not None else {}),
            },
        },
        "cache": {},
        "timings": {"blocked": 1, "dns": -1, "connect": -1, "send": 1, "wait": time - 3, "receive": 1},
    }
    e.update(extra)
    return e


def sample_har() -> Dict[str, Any]:
    failed = entry("https://api.example.com/down", 0, start="2024-03-01T10:00:00.300Z", time=1000)
    failed["response"]["_error"] = "ConnectionError: connection refused"
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "harlem", "version": "0.0"},
            "entries": [
                entry("https://api.example.com/users?page=1", body='{"users": []}', _pid=100),
                entry(
                    "https://example.com/page",
                    body="<p>hi</p>" + XSS_BODY,
                    mime="text/html",
                    start="2024-03-01T10:00:00.100Z",
                    headers=[{"name": "X-Evil", "value": XSS_HEADER}],
                    _pid=100,
                ),
                failed,
                entry("https://api.example.com/missing", 404, start="2024-03-01T10:00:00.200Z", _pid=100),
                entry(
                    "http://127.0.0.1:8000/hook",
                    204,
                    method="POST",
                    start="2024-03-01T10:00:00.400Z",
                    _direction="incoming",
                    _pid=100,
                ),
                entry("https://worker.example/jobs", 500, start="2024-03-01T10:00:00.500Z", _pid=222),
            ],
        }
    }


def data_block(page: str) -> str:
    m = re.search(r'<script type="application/json" id="har-data">(.*?)</script>', page, re.DOTALL)
    assert m, "no HAR data block"
    return m.group(1)


# ------------------------------------------------------------------ HTML


def test_xss_payloads_only_appear_escaped() -> None:
    page = render_html(sample_har())
    assert XSS_BODY not in page
    assert "<script>alert(1)" not in page
    assert "<img src=x onerror" not in page
    assert "onerror=alert(1)" in page  # the text is there, but only inside the JSON block...
    block = data_block(page)
    assert "onerror=alert(1)" in block
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in block
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in block
    # ...and the page has exactly its own three script elements
    assert len(re.findall(r"<script\b", page, re.IGNORECASE)) == 3
    assert len(re.findall(r"</script", page, re.IGNORECASE)) == 3


@pytest.mark.parametrize(
    "text",
    ["</script>", "</SCRIPT >", "<!--", "<script>", "a & b > c", "\u2028\u2029", "]]>", "\\u003c", "\"'`"],
)
def test_json_block_round_trips(text: str) -> None:
    har = sample_har()
    har["log"]["entries"][0]["response"]["content"]["text"] = text
    har["log"]["entries"][0]["request"]["headers"] = [{"name": text, "value": text}]
    har["log"]["comment"] = "snow \u2603 and \U0001f600"
    page = render_html(har)
    block = data_block(page)
    for raw in "<>&\u2028\u2029":
        assert raw not in block
    assert json.loads(block) == har


def test_embed_json_fallback_for_values_orjson_refuses() -> None:
    value = {"big": 2**70, "lone": "\udcff", "tag": "</script>"}
    text = embed_json(value)
    assert "<" not in text and ">" not in text
    assert json.loads(text) == value


def test_page_is_self_contained_with_strict_csp() -> None:
    page = render_html(sample_har(), title="run.har")
    assert CSP.startswith(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data: blob:"
    )
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    head = page[: page.index("<style>")]
    assert head.index("Content-Security-Policy") < head.index("<title>")
    shell = page.replace(data_block(page), "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", shell, re.IGNORECASE)
    assert not re.search(
        r"<[a-z][^>]*\s(src|href|action)\s*=\s*[\"']?(?!data:)[^\"'\s>]|<link[^>]+stylesheet|@import|\burl\(",
        shell,
        re.IGNORECASE,
    )
    assert "innerHTML" not in shell and "outerHTML" not in shell and "insertAdjacentHTML" not in shell
    assert "document.write" not in shell and "eval(" not in shell
    assert "<title>run.har</title>" in page


def test_title_is_escaped() -> None:
    page = render_html({"log": {"entries": []}}, title="<b>x</b> & </title><script>")
    assert "<title>&lt;b&gt;x&lt;/b&gt; &amp; &lt;/title&gt;&lt;script&gt;</title>" in page
    assert len(re.findall(r"<script\b", page)) == 3


def test_renders_odd_hars() -> None:
    for har in (
        {},
        {"log": {}},
        {"log": {"entries": "nope"}},
        {"log": {"entries": [None, 1, {"request": 3}]}},
    ):
        page = render_html(har)
        assert json.loads(data_block(page)) == har
        assert (
            render_text(har, color=False)
            .strip()
            .splitlines()[-1]
            .startswith(("0 requests", "1 request", "3 requests"))
        )


# ------------------------------------------------------------------ text


def test_text_table_contents() -> None:
    out = render_text(sample_har(), color=False)
    lines = out.rstrip("\n").splitlines()
    assert lines[0].split() == ["METHOD", "STATUS", "SIZE", "TIME", "URL"]
    body = lines[1:-1]
    assert len(body) == 6
    # startedDateTime order
    assert body[0].split() == ["GET", "200", "113", "B", "50", "ms", "https://api.example.com/users?page=1"]
    assert "example.com/page" in body[1]
    assert re.match(r"GET\s+404\s", body[2])
    assert "ERR" in body[3] and "(ConnectionError: connection refused)" in body[3]
    assert "[in]" in body[4] and "POST" in body[4] and "204" in body[4]
    assert "[pid 222]" in body[5] and "500" in body[5]
    assert "[pid 100]" not in out
    assert "\x1b" not in out
    summary = lines[-1]
    assert summary.startswith("6 requests, 1 failed,")  # a 500 is an answer, not a failure
    assert "transferred" in summary and "decoded" in summary and "span" in summary


def test_text_colour_and_width() -> None:
    har = sample_har()
    coloured = render_text(har, color=True)
    assert "\x1b[32m" in coloured and "\x1b[1;31m" in coloured and "\x1b[0m" in coloured
    narrow = render_text(har, color=False, width=60)
    for line in narrow.splitlines()[1:-1]:
        assert len(line) <= 60, line
    assert "\u2026" in narrow
    wide = render_text(har, color=False, width=None)
    assert "https://api.example.com/users?page=1" in wide


def test_text_reads_the_transfer_size_where_chrome_writes_it() -> None:
    """Chrome, Playwright and harlem put ``_transferSize`` on the response (an HTTP/2 export
    has headersSize and bodySize -1 beside it)."""
    chrome = entry("https://h2.example/", 200, body="x" * 30)
    chrome["response"].update(headersSize=-1, bodySize=-1, _transferSize=3000)
    out = render_text({"log": {"entries": [chrome]}}, color=False)
    assert "3.0 kB" in out.splitlines()[1] and "3.0 kB transferred" in out


def test_text_shows_an_unknown_time_as_unknown() -> None:
    """Playwright's minimal mode writes ``time`` and every phase as -1: not "0.0 ms"."""
    minimal = entry("http://localhost:8080/api/a", 200)
    minimal["time"] = -1
    minimal["timings"] = {"send": -1, "wait": -1, "receive": -1}
    partly = entry("http://localhost:8080/api/b", 200)
    partly["time"] = -1
    partly["timings"] = {"send": 0, "wait": 4, "receive": -1}
    rows = render_text({"log": {"entries": [minimal, partly]}}, color=False).splitlines()
    assert rows[1].split()[4] == "-" and " ms" not in rows[1], rows[1]
    assert "4.0 ms" in rows[2], rows[2]


def test_text_width_counts_terminal_columns() -> None:
    """Wide (CJK) characters take two columns: rows and the summary fit the terminal."""
    from harlem.report.text import _columns

    har = {"log": {"entries": [entry("http://例え.jp/" + "漢字" * 40, 200)]}}
    for width in (60, 80):
        for line in render_text(har, color=False, width=width).splitlines():
            assert _columns(line) <= width, line


def test_text_strips_terminal_escapes() -> None:
    har = {
        "log": {
            "entries": [
                entry("https://x.example/\x1b]0;pwned\x07\x1b[2J", 200),
                entry("https://y.example/", 0, _error="bad\x1b[31m\r\nnews"),
            ]
        }
    }
    out = render_text(har, color=False)
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert len(out.splitlines()) == 4


def test_text_groups_pages() -> None:
    har = sample_har()
    har["log"]["pages"] = [
        {"id": "p1", "title": "first page", "startedDateTime": "2024-03-01T10:00:00Z", "pageTimings": {}}
    ]
    for e in har["log"]["entries"][:3]:
        e["pageref"] = "p1"
    out = render_text(har, color=False)
    assert "-- first page (3 requests)" in out
    assert "-- (not in a page) (3 requests)" in out


# ------------------------------------------------------------------ harlem show


def run_show(argv: List[str]) -> int:
    from harlem.cli.show import register

    parser = argparse.ArgumentParser(prog="harlem")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["show", *argv])
    assert args.func.__name__ == "run"
    return args.func(args)


@pytest.fixture
def har_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.har"
    path.write_text(json.dumps(sample_har()), encoding="utf-8")
    return path


@pytest.fixture
def browser_calls(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    import webbrowser

    calls: List[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: calls.append(url) or True)
    return calls


def test_show_writes_private_report(
    har_file: Path, capsys: pytest.CaptureFixture, browser_calls: List[str]
) -> None:
    assert run_show([str(har_file), "--no-open"]) == 0
    out = har_file.with_name("trace.html")
    assert out.exists()
    page = out.read_text(encoding="utf-8")
    assert json.loads(data_block(page)) == sample_har()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(out) in captured.err
    assert browser_calls == []
    if POSIX:
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not [p for p in har_file.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not POSIX, reason="file modes are POSIX")
def test_show_tightens_an_existing_report(
    har_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "custom" / "out.html"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    assert run_show([str(har_file), "-o", str(target), "--no-open"]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "<!DOCTYPE html>" in target.read_text()
    assert capsys.readouterr().out == ""


def test_show_opens_browser_only_with_a_display(
    har_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, browser_calls: List[str]
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_show([str(har_file)]) == 0
    assert browser_calls == []
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert run_show([str(har_file)]) == 0
    assert browser_calls == [har_file.with_name("trace.html").resolve().as_uri()]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "No such file or directory"),
        (b"{not json", ""),
        (b"[1, 2]", 'not a HAR file (no "log" object)'),
        (b'{"log": {"entries": {}}}', 'not a HAR file ("log.entries" is not a list)'),
    ],
)
def test_show_unreadable_har(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: Optional[bytes], reason: str
) -> None:
    path = tmp_path / "x.har"
    if content is not None:
        path.write_bytes(content)
    assert run_show([str(path), "--no-open"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"harlem show: cannot read '{path}': ")
    assert lines[0].endswith(reason)
    assert not (tmp_path / "x.html").exists()


def test_show_directory_and_unwritable_output(
    tmp_path: Path, har_file: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run_show([str(tmp_path), "--no-open"]) == 2
    assert capsys.readouterr().err.startswith(f"harlem show: cannot read '{tmp_path}': ")
    missing = tmp_path / "no" / "such" / "dir" / "r.html"
    assert run_show([str(har_file), "-o", str(missing), "--no-open"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"harlem show: cannot write '{missing}': ") and captured.out == ""


def test_show_text(har_file: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert run_show(["--text", str(har_file)]) == 0
    captured = capsys.readouterr()
    assert captured.out == render_text(sample_har(), color=False)  # not a TTY: no colour, no cut
    assert captured.err == ""
    assert not har_file.with_name("trace.html").exists()


def test_show_text_colour_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from harlem.cli import show

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert show._stdout_color() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert show._stdout_color() is False


def test_python_dash_m(har_file: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    text = subprocess.run(
        [sys.executable, "-m", "harlem.cli.show", "--text", str(har_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert text.returncode == 0, text.stderr
    assert "users?page=1" in text.stdout and text.stderr == ""
    html = subprocess.run(
        [sys.executable, "-m", "harlem.cli.show", str(har_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert html.returncode == 0, html.stderr
    assert html.stdout == ""
    assert "trace.html" in html.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "harlem.cli.show", str(har_file) + ".missing"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1
