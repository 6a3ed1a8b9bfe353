"""Render a HAR as a plain terminal table: method, status, size, time and URL per entry.

Values from the HAR are stripped of control characters before they reach the terminal, so
a recorded URL or error message cannot move the cursor, change colours or set the title.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from ..har.dates import epoch_ms

__all__ = ["render_text", "format_bytes", "format_ms"]

_RESET = "\x1b[0m"
_STYLE = {
    "1xx": "\x1b[34m",
    "2xx": "\x1b[32m",
    "3xx": "\x1b[36m",
    "4xx": "\x1b[33m",
    "5xx": "\x1b[31m",
    "failed": "\x1b[1;31m",
    "other": "",
    "head": "\x1b[1m",
    "dim": "\x1b[2m",
    "badge": "\x1b[35m",
}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ELLIPSIS = "\u2026"
_MIN_URL = 12


def format_bytes(n: Optional[float]) -> str:
    """``1234`` -> ``"1.2 kB"``; a negative or missing size -> ``"-"``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0:
        return "-"
    if n < 1000:
        return f"{int(n)} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    if n < 1e9:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e9:.2f} GB"


def format_ms(v: Optional[float]) -> str:
    """Milliseconds for people: ``"4.2 ms"``, ``"350 ms"``, ``"1.25 s"``, ``"2 min 05 s"``."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or v != v:
        return "-"
    if v < 10:
        return f"{v:.1f} ms"
    if v < 1000:
        return f"{math.floor(v + 0.5)} ms"  # half up, as the HTML page rounds
    if v < 60000:
        return f"{v / 1000:.2f} s"
    minutes, rest = divmod(int(v), 60000)
    return f"{minutes} min {rest // 1000:02d} s"


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return _CONTROL.sub("?", text)


def _num(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return -1.0


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _error_text(value: Any) -> str:
    if value is None or value is False or value == "":
        return ""
    if isinstance(value, dict):
        return _clean(value.get("message") or value.get("type") or value)
    return _clean(value)


class _Row:
    __slots__ = (
        "index",
        "start",
        "method",
        "url",
        "status",
        "cls",
        "error",
        "wire",
        "decoded",
        "time",
        "pid",
        "incoming",
        "page",
    )

    def __init__(self, index: int, entry: Dict[str, Any]):
        request = _dict(entry.get("request"))
        response = _dict(entry.get("response"))
        content = _dict(response.get("content"))
        self.index = index
        self.start = epoch_ms(entry.get("startedDateTime"))
        self.method = _clean(request.get("method") or "?").upper()
        self.url = _clean(request.get("url"))
        status = _num(response.get("status"))
        self.status = int(status) if status > 0 else 0
        self.error = _error_text(response.get("_error")) or _error_text(entry.get("_error"))
        if self.status <= 0 or self.error:
            self.cls = "failed"
        elif 100 <= self.status < 600:
            self.cls = f"{self.status // 100}xx"
        else:
            self.cls = "other"
        # Chrome, Playwright and harlem write it on the response; some tools on the entry
        wire = _num(response.get("_transferSize"))
        if wire < 0:
            wire = _num(entry.get("_transferSize"))
        if wire < 0:
            headers_size = _num(response.get("headersSize"))
            body_size = _num(response.get("bodySize"))
            if headers_size >= 0 or body_size >= 0:
                wire = max(headers_size, 0) + max(body_size, 0)
        self.wire = wire
        self.decoded = _num(content.get("size"))
        time = _num(entry.get("time"))
        if time < 0:  # the phases that are known; none (Playwright's minimal mode): unknown
            timings = _dict(entry.get("timings"))
            known = [value for value in (_num(timings.get(p)) for p in
                                         ("blocked", "dns", "connect", "send", "wait", "receive"))
                     if value >= 0]
            time = sum(known) if known else -1.0
        self.time = time
        pid = entry.get("_pid")
        self.pid = "" if pid is None else _clean(pid)
        self.incoming = entry.get("_direction") == "incoming"
        self.page = _clean(entry.get("pageref")) if entry.get("pageref") is not None else ""

    @property
    def failed(self) -> bool:
        return self.cls == "failed"

    @property
    def size(self) -> float:
        return self.wire if self.wire >= 0 else self.decoded


def _truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, an ellipsis marking the cut: East Asian
    wide characters take two columns, combining marks none."""
    if width <= 0:
        return ""
    if text.isascii():
        return text if len(text) <= width else text[: width - 1] + _ELLIPSIS
    if _columns(text) <= width:
        return text
    room, kept = width - 1, 0
    for index, char in enumerate(text):
        kept += _char_columns(char)
        if kept > room:
            return text[:index] + _ELLIPSIS
    return text  # (not reached: the text is wider than width)


def _columns(text: str) -> int:
    return len(text) if text.isascii() else sum(map(_char_columns, text))


def _char_columns(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _summary(rows: List[_Row]) -> str:
    failed = sum(1 for r in rows if r.failed)
    wires = [r.wire for r in rows if r.wire >= 0]
    decodeds = [r.decoded for r in rows if r.decoded >= 0]
    wire = sum(wires) if wires else -1
    decoded = sum(decodeds) if decodeds else -1
    starts = [(r.start, r.start + max(r.time, 0)) for r in rows if r.start is not None]
    parts = [
        f"{len(rows)} request{'s' if len(rows) != 1 else ''}",
        f"{failed} failed",
        f"{format_bytes(wire)} transferred" if wire >= 0 else "transferred size unknown",
        f"{format_bytes(decoded)} decoded" if decoded >= 0 else "decoded size unknown",
    ]
    if starts:
        span = max(end for _, end in starts) - min(start for start, _ in starts)
        parts.append(f"{format_ms(span)} span")
    hosts: Counter = Counter()
    for r in rows:
        m = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]*)", r.url, re.IGNORECASE)
        hosts[m.group(1).lower() if m else ""] += 1
    named = [h for h in hosts if h]
    if named:
        parts.append(f"{len(named)} host{'s' if len(named) != 1 else ''}")
    return ", ".join(parts)


def render_text(har: Dict[str, Any], *, color: bool, width: Optional[int] = None) -> str:
    """The entries of ``har`` as a terminal table, in ``startedDateTime`` order.

    Columns: method, status (``ERR`` for failures, whose error follows the URL), size on the
    wire, time and URL. ``width`` is the terminal width: the URL column is cut to fit it
    (``None``: no cut). ``color`` adds ANSI colours (status classes; failures in red). The last
    line is a one-line summary. Entries of several pages are grouped under a page line.
    """
    log = _dict(_dict(har).get("log"))
    raw = log.get("entries")
    entries = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    rows = [_Row(i, e) for i, e in enumerate(entries)]
    rows.sort(key=lambda r: (r.start is None, r.start or 0.0, r.index))

    pids = Counter(r.pid for r in rows if r.pid)
    main_pid = pids.most_common(1)[0][0] if pids else ""

    def paint(text: str, style: str) -> str:
        code = _STYLE.get(style, "") if color else ""
        return f"{code}{text}{_RESET}" if code and text else text

    method_w = max([6] + [min(len(r.method), 7) for r in rows])
    status_w, size_w, time_w = 6, 9, 9
    fixed = method_w + 1 + status_w + 1 + size_w + 1 + time_w + 2
    url_w = None if width is None else max(width - fixed, _MIN_URL)

    def cells(method: str, status: str, size: str, time: str) -> Tuple[str, str, str]:
        return (
            f"{_truncate(method, method_w):<{method_w}} ",
            f"{status:>{status_w}}",
            f" {size:>{size_w}} {time:>{time_w}}  ",
        )

    out: List[str] = []
    out.append(paint("".join(cells("METHOD", "STATUS", "SIZE", "TIME")) + "URL", "head"))

    raw_pages = log.get("pages")
    pages = [p for p in raw_pages if isinstance(p, dict)] if isinstance(raw_pages, list) else []
    titles = {_clean(p.get("id")): _clean(p.get("title") or p.get("id")) for p in pages}
    grouped = bool(titles) or any(r.page for r in rows)
    groups: List[Tuple[str, List[_Row]]] = []
    if grouped:
        by_page: Dict[str, List[_Row]] = {}
        for r in rows:
            if r.page not in by_page:
                by_page[r.page] = []
                groups.append((r.page, by_page[r.page]))
            by_page[r.page].append(r)
    else:
        groups.append(("", rows))

    for page, members in groups:
        if grouped:
            name = titles.get(page) or page or "(not in a page)"
            header = f"-- {name} ({len(members)} request{'s' if len(members) != 1 else ''})"
            out.append(paint(_truncate(header, width) if width else header, "dim"))
        for r in members:
            flags = []
            if r.incoming:
                flags.append("[in]")
            if r.pid and r.pid != main_pid:
                flags.append(f"[pid {r.pid}]")
            url = " ".join(flags + [r.url]) if flags else r.url
            if r.failed:
                url += f"  ({r.error or 'no response'})"
            if url_w is not None:
                url = _truncate(url, url_w)
            left, status, right = cells(
                r.method, "ERR" if r.failed else str(r.status), format_bytes(r.size), format_ms(r.time)
            )
            if r.failed:
                out.append(paint(left + status + right + url, "failed"))
            else:
                out.append(left + paint(status, r.cls) + right + url)

    summary = _summary(rows)
    out.append(paint(_truncate(summary, width) if width else summary, "head"))
    return "\n".join(out) + "\n"
