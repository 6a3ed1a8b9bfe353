"""What Chrome's and Firefox's DevTools need to import a HAR, restated as Python checks.

Chrome (devtools-frontend, ``front_end/models/har/HARFormat.ts``) turns the JSON into typed
objects before the Network panel shows anything, and gives up on the whole file at the first
object that is missing, number that JavaScript's ``Number()`` makes NaN, or date that
``new Date()`` cannot parse. ``Importer.ts`` then reads Chrome's own extensions and silently
ignores values it does not know (a ``_priority`` outside its enum, an unknown
``_resourceType``). Firefox (``devtools/client/netmonitor/src/har/har-importer.js``) walks
the JSON directly and fails on a missing ``log.pages``, ``entry.cache``, ``entry.timings`` or
``response.content``.

The checks are stricter than the browsers in one way: where a browser would coerce a value
(``Number("12")``, ``String(undefined)``), they ask for the JSON type the HAR spec names,
because the other consumers (mitmproxy, haralyzer, Playwright) do not coerce. Each problem
is one string, ``<JSON path>: <what is wrong>``, like :mod:`harlem.har.validate`'s.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Dict, List, Optional

__all__ = [
    "CHROME_INITIATOR_TYPES",
    "CHROME_PRIORITIES",
    "CHROME_RESOURCE_TYPES",
    "chrome_extension_problems",
    "chrome_import_problems",
    "firefox_import_problems",
    "parse_date",
]

#: ``Protocol.Network.ResourcePriority``: any other ``_priority`` is ignored.
CHROME_PRIORITIES = frozenset({"VeryLow", "Low", "Medium", "High", "VeryHigh"})
#: The names of ``Common.ResourceType.resourceTypes``: any other ``_resourceType`` is ignored
#: and the type guessed from the MIME type and the URL.
CHROME_RESOURCE_TYPES = frozenset({
    "document", "stylesheet", "image", "media", "font", "script", "texttrack", "xhr", "fetch",
    "prefetch", "eventsource", "websocket", "webtransport", "wasm", "manifest",
    "signed-exchange", "ping", "csp-violation-report", "other", "preflight", "sm-script",
    "sm-stylesheet", "webbundle",
})
#: ``Protocol.Network.Initiator.type``.
CHROME_INITIATOR_TYPES = frozenset({
    "parser", "script", "preload", "SignedExchange", "preflight", "FedCM", "other",
})
#: Firefox sums these (``TIMING_KEYS``) into the request's total time.
FIREFOX_TIMING_KEYS = ("blocked", "dns", "connect", "ssl", "send", "wait", "receive")

# ISO 8601 as JavaScript's Date parses it reliably: a date, a time and a zone designator.
_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})")
_MISSING = object()


class _Problems(list):
    """The problems found so far, with one small check per JSON type."""

    def object(self, value: Any, path: str) -> bool:
        if isinstance(value, dict):
            return True
        self.append(f"{path}: must be an object, not {_kind(value)}")
        return False

    def member(self, holder: Dict[str, Any], key: str, path: str) -> Optional[Dict[str, Any]]:
        """``holder[key]`` when it is an object (else a problem and None)."""
        value = holder.get(key, _MISSING)
        return value if self.object(value, f"{path}.{key}") else None

    def array(self, holder: Dict[str, Any], key: str, path: str,
              required: bool = True) -> List[Any]:
        value = holder.get(key, _MISSING)
        if value is _MISSING and not required:
            return []
        if isinstance(value, list):
            return value
        self.append(f"{path}.{key}: must be an array, not {_kind(value)}")
        return []

    def number(self, holder: Dict[str, Any], key: str, path: str, required: bool = True) -> None:
        value = holder.get(key, _MISSING)
        if value is _MISSING and not required:
            return
        if not _is_number(value):
            self.append(f"{path}.{key}: must be a number, not {_kind(value)}")

    def string(self, holder: Dict[str, Any], key: str, path: str, required: bool = True) -> None:
        value = holder.get(key, _MISSING)
        if value is _MISSING and not required:
            return
        if not isinstance(value, str):
            self.append(f"{path}.{key}: must be a string, not {_kind(value)}")

    def date(self, holder: Dict[str, Any], key: str, path: str) -> None:
        value = holder.get(key, _MISSING)
        if not isinstance(value, str) or parse_date(value) is None:
            shown = _kind(value) if value is _MISSING else repr(value)
            self.append(f"{path}.{key}: must be an ISO 8601 date-time with a zone, not {shown}")

    def strings(self, holder: Dict[str, Any], keys: str, path: str, required: bool = True) -> None:
        for key in keys.split():
            self.string(holder, key, path, required)

    def numbers(self, holder: Dict[str, Any], keys: str, path: str, required: bool = True) -> None:
        for key in keys.split():
            self.number(holder, key, path, required)


def _kind(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    return {bool: "a boolean", dict: "an object", list: "an array", str: "a string"}.get(
        type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_date(text: str) -> Optional[dt.datetime]:
    """``text`` as an aware datetime when it is an ISO 8601 date-time with a zone, else None."""
    match = _DATE_RE.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = dt.timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        return dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                           int(second or 0), int((fraction or "0")[:6].ljust(6, "0")),
                           tzinfo=dt.timezone(offset))
    except ValueError:  # 2024-02-30, 25:00...
        return None


# --------------------------------------------------------------------------- Chrome


def chrome_import_problems(har: Any) -> List[str]:
    """What would make Chrome DevTools refuse ``har`` (``HARFormat.ts``'s constructors)."""
    problems = _Problems()
    log = problems.member(har, "log", "(root)") if problems.object(har, "(root)") else None
    if log is None:
        return problems
    problems.string(log, "version", "log")
    creator = problems.member(log, "creator", "log")
    if creator is not None:
        problems.strings(creator, "name version", "log.creator")
    if log.get("browser"):
        problems.object(log["browser"], "log.browser")
    for index, page in enumerate(problems.array(log, "pages", "log", required=False)):
        _chrome_page(page, f"log.pages[{index}]", problems)
    for index, entry in enumerate(problems.array(log, "entries", "log")):
        _chrome_entry(entry, f"log.entries[{index}]", problems)
    return problems


def _chrome_page(page: Any, path: str, problems: _Problems) -> None:
    if not problems.object(page, path):
        return
    problems.date(page, "startedDateTime", path)
    problems.strings(page, "id title", path)
    page_timings = problems.member(page, "pageTimings", path)
    if page_timings is not None:
        problems.numbers(page_timings, "onContentLoad onLoad", f"{path}.pageTimings",
                         required=False)


def _chrome_entry(entry: Any, path: str, problems: _Problems) -> None:
    if not problems.object(entry, path):
        return
    problems.date(entry, "startedDateTime", path)
    problems.number(entry, "time", path)
    problems.strings(entry, "pageref serverIPAddress connection comment _connectionId _fromCache "
                            "_priority _resourceType", path, required=False)
    request = problems.member(entry, "request", path)
    if request is not None:
        _chrome_request(request, f"{path}.request", problems)
    response = problems.member(entry, "response", path)
    if response is not None:
        _chrome_response(response, f"{path}.response", problems)
    timings = problems.member(entry, "timings", path)
    if timings is not None:
        problems.numbers(timings, "send wait receive", f"{path}.timings")
        problems.numbers(timings, "blocked dns connect ssl _blocked_queueing _blocked_proxy",
                         f"{path}.timings", required=False)
    # typeof null is "object" in JavaScript: a null _initiator is built, and throws.
    initiator = entry.get("_initiator", _MISSING)
    if initiator is None or isinstance(initiator, dict):  # any other type is ignored
        _chrome_initiator(initiator, f"{path}._initiator", problems)
    for index, message in enumerate(entry.get("_webSocketMessages") or []):
        if message is None:
            problems.append(f"{path}._webSocketMessages[{index}]: must be an object, not null")


def _chrome_request(request: Dict[str, Any], path: str, problems: _Problems) -> None:
    problems.strings(request, "method url httpVersion", path)
    problems.numbers(request, "headersSize bodySize", path)
    _chrome_pairs(request, "headers queryString", path, problems)
    _chrome_cookies(request, path, problems)
    post = request.get("postData")
    if post and problems.object(post, f"{path}.postData"):  # a falsy postData is skipped
        problems.strings(post, "mimeType text", f"{path}.postData")
        _chrome_pairs(post, "params", f"{path}.postData", problems)


def _chrome_response(response: Dict[str, Any], path: str, problems: _Problems) -> None:
    problems.number(response, "status", path)
    problems.strings(response, "statusText httpVersion redirectURL", path)
    problems.numbers(response, "headersSize bodySize", path)
    problems.number(response, "_transferSize", path, required=False)
    problems.string(response, "_error", path, required=False)
    _chrome_pairs(response, "headers", path, problems)
    _chrome_cookies(response, path, problems)
    content = problems.member(response, "content", path)
    if content is not None:
        problems.number(content, "size", f"{path}.content")
        problems.number(content, "compression", f"{path}.content", required=False)
        problems.string(content, "mimeType", f"{path}.content")
        problems.strings(content, "text encoding", f"{path}.content", required=False)


def _chrome_pairs(holder: Dict[str, Any], keys: str, path: str, problems: _Problems) -> None:
    """Headers, query strings and params: arrays of objects with a string name."""
    for key in keys.split():
        for index, pair in enumerate(problems.array(holder, key, path, required=False)):
            where = f"{path}.{key}[{index}]"
            if problems.object(pair, where):
                problems.string(pair, "name", where)
                problems.string(pair, "value", where, required=key != "params")


def _chrome_cookies(holder: Dict[str, Any], path: str, problems: _Problems) -> None:
    for index, cookie in enumerate(problems.array(holder, "cookies", path, required=False)):
        where = f"{path}.cookies[{index}]"
        if problems.object(cookie, where):
            problems.strings(cookie, "name value", where)
            problems.strings(cookie, "path domain", where, required=False)
            if cookie.get("expires"):
                problems.date(cookie, "expires", where)


def _chrome_initiator(initiator: Any, path: str, problems: _Problems) -> None:
    if not problems.object(initiator, path):
        return
    problems.strings(initiator, "type url requestId", path, required=False)
    problems.number(initiator, "lineNumber", path, required=False)
    if initiator.get("stack"):
        _chrome_stack(initiator["stack"], f"{path}.stack", problems)


def _chrome_stack(stack: Any, path: str, problems: _Problems) -> None:
    if not problems.object(stack, path):
        return
    for index, frame in enumerate(stack.get("callFrames") or []):
        if frame:
            where = f"{path}.callFrames[{index}]"
            if problems.object(frame, where):
                problems.strings(frame, "functionName scriptId url", where, required=False)
                problems.numbers(frame, "lineNumber columnNumber", where, required=False)
    if stack.get("parent"):
        _chrome_stack(stack["parent"], f"{path}.parent", problems)
    if stack.get("parentId"):
        problems.object(stack["parentId"], f"{path}.parentId")


def chrome_extension_problems(har: Dict[str, Any]) -> List[str]:
    """Where harlem's Chrome extensions would be ignored or misread by ``Importer.ts``.

    Every entry must carry ``_initiator`` (an object with a known ``type``; a stack's frames
    with 0-based numbers), ``_priority`` and ``_resourceType`` from Chrome's lists, and its
    response ``_transferSize`` (Chrome falls back to headersSize + bodySize, which is -2 for
    a failure); a failed exchange (status 0) its ``_error``, a ``net::`` error name.
    ``connection`` is the remote port Chrome shows beside ``serverIPAddress`` (a whole
    number); Chrome subtracts ``ssl`` from ``connect``, so connect must include it.
    """
    problems = _Problems()
    for index, entry in enumerate(har["log"]["entries"]):
        path = f"log.entries[{index}]"
        initiator = entry.get("_initiator", _MISSING)
        if problems.object(initiator, f"{path}._initiator"):
            if initiator.get("type") not in CHROME_INITIATOR_TYPES:
                problems.append(f"{path}._initiator.type: {initiator.get('type')!r} is not one "
                                f"of Chrome's initiator types")
            for number, frame in enumerate((initiator.get("stack") or {}).get("callFrames", [])):
                for key in ("lineNumber", "columnNumber"):
                    if not (_is_number(frame.get(key)) and frame[key] >= 0):
                        problems.append(f"{path}._initiator.stack.callFrames[{number}].{key}: "
                                        f"must be a 0-based number, not {frame.get(key)!r}")
        if entry.get("_priority") not in CHROME_PRIORITIES:
            problems.append(f"{path}._priority: {entry.get('_priority')!r} is not a Chrome "
                            f"resource priority")
        if entry.get("_resourceType") not in CHROME_RESOURCE_TYPES:
            problems.append(f"{path}._resourceType: {entry.get('_resourceType')!r} is not a "
                            f"Chrome resource type")
        response = entry["response"]
        problems.number(response, "_transferSize", f"{path}.response")
        if response.get("status") == 0 and not str(response.get("_error", "")).startswith("net::"):
            problems.append(f"{path}.response._error: a failed exchange needs Chrome's net error "
                            f"name, not {response.get('_error', _MISSING)!r}")
        connection = entry.get("connection")
        if connection is not None and not (isinstance(connection, str) and connection.isdigit()
                                           and 0 < int(connection) < 65536):
            problems.append(f"{path}.connection: must be a port number, not {connection!r}")
        timings = entry["timings"]
        if timings.get("ssl", -1) >= 0 and timings.get("connect", -1) < timings["ssl"]:
            problems.append(f"{path}.timings: connect ({timings.get('connect')}) must include "
                            f"ssl ({timings['ssl']})")
    return problems


# --------------------------------------------------------------------------- Firefox


def firefox_import_problems(har: Any) -> List[str]:
    """What would make Firefox's HAR importer throw (``har-importer.js``)."""
    problems = _Problems()
    log = problems.member(har, "log", "(root)") if problems.object(har, "(root)") else None
    if log is None:
        return problems
    for index, page in enumerate(problems.array(log, "pages", "log")):
        if problems.object(page, f"log.pages[{index}]"):
            problems.string(page, "id", f"log.pages[{index}]")
    for index, entry in enumerate(problems.array(log, "entries", "log")):
        path = f"log.entries[{index}]"
        if not problems.object(entry, path):
            continue
        problems.date(entry, "startedDateTime", path)
        problems.member(entry, "cache", path)
        timings = problems.member(entry, "timings", path)
        if timings is not None:
            problems.numbers(timings, " ".join(FIREFOX_TIMING_KEYS), f"{path}.timings",
                             required=False)
        request = problems.member(entry, "request", path)
        if request is not None:
            problems.strings(request, "method url httpVersion", f"{path}.request")
            problems.array(request, "headers", f"{path}.request")
            problems.array(request, "cookies", f"{path}.request")
        response = problems.member(entry, "response", path)
        if response is not None:
            problems.array(response, "headers", f"{path}.response")
            problems.array(response, "cookies", f"{path}.response")
            content = problems.member(response, "content", f"{path}.response")
            if content is not None:
                problems.number(content, "size", f"{path}.response.content")
    return problems
