"""Raw :class:`~harlem.capture.Exchange` -> one HAR 1.2 entry dict.

This runs in the builder thread for every exchange, so it makes one pass over each header list
(collecting output, sizes, cookies and the headers it needs) and caches everything that
depends only on settings or on repeated values (redaction rules, content types, code frames).

Conventions beyond HAR 1.2 (Chrome's names where Chrome has one):

* entry: ``_initiator``, ``_resourceType``, ``_priority`` (always ``"High"``: a program's own
  requests), ``_pid`` and ``_direction`` (``"outgoing"`` client call, ``"incoming"`` served).
* response: ``_transferSize`` = headersSize + bodySize (-1 when either is unknown) and, for a
  failure, ``_error`` (Chrome's net error name) with the Python exception in ``comment``
  (see :mod:`.errors`).
* sizes describe the traffic, never the recording: ``headersSize`` counts the request or status
  line, each ``Name: value`` line and the CRLFs as sent or received (-1 when nothing is known);
  ``content.size`` is the decoded body size (-1 when the body was not read to its end);
  ``bodySize`` the bytes on the wire (the decoded size when no Content-Encoding applied, else
  -1 when the library could not measure it), known also when only the decoding is unknown (a
  body the program read still encoded, or that did not decode as labelled: ``content.size``
  -1); ``compression`` = size - bodySize when both are known and a Content-Encoding applied.
* an exchange that failed before any response: status 0, empty statusText, no headers,
  ``content.size`` 0, ``mimeType`` ``x-unknown``, ``headersSize``/``bodySize`` -1.
* ``partial`` (recording stopped while the program had not finished reading a body): sizes -1,
  the part read so far as text, ``response.comment`` "body not read by the program"; one
  with no response yet: status 0, ``_error`` :data:`PENDING_ERROR`, timings up to now.
* a body longer than ``max_body_size`` keeps its first bytes: ``_truncated: true`` and a
  ``comment`` on ``content``/``postData``.
* ``serverIPAddress`` (bare address: IPv6 without brackets or zone) and ``connection`` (the
  local port) are left out when unknown.

Bodies follow :mod:`.bodies`, cookies :mod:`.cookies`, redaction :mod:`.redact`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from ..capture import Exchange, content_encoded, header_text
from ..pipeline import DEFAULT_PAGE_ID, iso_time
from ..settings import Settings
from .bodies import (NOT_RECORDED, body_text, clean_str, content_type_info, post_data,
                     set_text, truncation_comment)
from .cookies import request_cookies, response_cookie
from .errors import describe, net_error
from .initiator import initiator
from .redact import CREDENTIAL_HEADERS, Rules, rules_for
from .resource_type import resource_type
from .timings import har_timings

__all__ = ["build_entry"]

DEFAULT_HTTP_VERSION = "HTTP/1.1"
UNKNOWN_MIME = "x-unknown"
PARTIAL_COMMENT = "body not read by the program"
#: An exchange still waiting for its answer when its recording stopped: Chrome's name for an
#: operation not complete yet (status 0 says no response; ``_error`` says why).
PENDING_ERROR = "net::ERR_IO_PENDING"
PENDING_COMMENT = "no response yet when the recording stopped"
_REQUEST_WANTED = frozenset({"cookie", "content-type", "content-length", "transfer-encoding"})
_RESPONSE_WANTED = frozenset({"set-cookie", "content-type", "content-encoding", "location"})


def build_entry(ex: Exchange, settings: Settings, partial: bool = False) -> Dict[str, Any]:
    """The HAR entry of ``ex`` as ``settings`` shape it (see the module conventions)."""
    rules = rules_for(settings)
    # A response sent or received whole, whose exchange only waited for its end when the
    # recording stopped (an ASGI application still running after the 5xx it sent), is whole.
    partial = partial and not (ex.body_complete and ex.t_end is not None)
    total, timings = har_timings(ex)
    version = clean_str(ex.http_version) if ex.http_version else DEFAULT_HTTP_VERSION
    response, mime = _response(ex, settings, rules, version, partial)
    entry: Dict[str, Any] = {
        "pageref": ex.page_id or DEFAULT_PAGE_ID,
        "startedDateTime": iso_time(ex.wall_start),
        "time": total,
        "request": _request(ex, settings, rules, version),
        "response": response,
        "cache": {},
        "timings": timings,
    }
    address = _server_address(ex.server_ip) if ex.server_ip else None
    if address:
        entry["serverIPAddress"] = address
    if ex.local_port:
        entry["connection"] = str(ex.local_port)
    entry["_initiator"] = initiator(ex.frames)
    entry["_priority"] = "High"
    entry["_resourceType"] = resource_type(mime, not _response_started(ex), ex.status)
    entry["_pid"] = ex.pid
    entry["_direction"] = ex.direction
    return entry


#: The comment of an entry harlem could not build in full.
FALLBACK_COMMENT = "harlem could not build this entry in full ({}): only what it could not leak"


def fallback_entry(ex: Exchange, error: BaseException) -> Dict[str, Any]:
    """What can be kept of an exchange :func:`build_entry` failed on (a bug of harlem's, which
    must not lose the entry): when it began, the method, the URL without its query or
    credentials, the status, the time. Nothing that might hold a secret (headers, bodies,
    the query) is written, since redaction may be what failed."""
    try:
        parts = urlsplit(clean_str(ex.url))
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # (an IPv6 address keeps its brackets)
        url = _as_uri(f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
                      + (parts.path or "/"))
    except Exception:
        url = "about:blank"
    status = ex.status if type(ex.status) is int and 100 <= ex.status <= 999 else 0
    try:
        total, timings = har_timings(ex)
    except Exception:
        total, timings = 0.0, {"send": 0.0, "wait": 0.0, "receive": 0.0}
    version = DEFAULT_HTTP_VERSION
    response: Dict[str, Any] = {
        "status": status, "statusText": "", "httpVersion": version, "cookies": [],
        "headers": [], "content": {"size": -1 if status else 0, "mimeType": UNKNOWN_MIME},
        "redirectURL": "", "headersSize": -1, "bodySize": -1, "_transferSize": -1,
    }
    if not status:
        response["_error"] = "net::ERR_FAILED"
    response["comment"] = FALLBACK_COMMENT.format(type(error).__name__)
    wall = ex.wall_start if isinstance(ex.wall_start, float) else 0.0
    return {
        "pageref": ex.page_id if isinstance(ex.page_id, str) else DEFAULT_PAGE_ID,
        "startedDateTime": iso_time(wall),
        "time": total,
        "request": {"method": clean_str(ex.method) or "GET", "url": url, "httpVersion": version,
                    "cookies": [], "headers": [], "queryString": [], "headersSize": -1,
                    "bodySize": -1},
        "response": response,
        "cache": {},
        "timings": timings,
        "_pid": ex.pid,
        "_direction": ex.direction,
    }


def _response_started(ex: Exchange) -> bool:
    return ex.status != 0 or bool(ex.response_headers)


def _headers(raw: Any, rules: Optional[Rules], wanted: frozenset
             ) -> Tuple[List[Dict[str, str]], int, Dict[str, List[str]]]:
    """One pass over a header list: HAR headers (redacted), the bytes their lines take on the
    wire, and the raw values of the ``wanted`` (lowercased) names.

    A recorder's headers come as ``(name, value)`` pairs (``str``, or ``bytes`` as they were
    on the wire, see :func:`header_text`), as a library's multidict held as it was, or as the
    ``b"Name: value"`` lines http.client wrote."""
    out = []
    size = 0
    found: Dict[str, List[str]] = {}
    # The names whose values redaction may change (None: every one, as patterns apply to all).
    touched = rules.header_names if rules is not None else frozenset()
    cache = _header_cache
    if len(cache) > _MAX_HEADERS:
        cache.clear()
    for item in _items(raw):
        try:
            text = cache.get(item)
        except TypeError:  # a pair that is a list: decoded each time
            text = _header_text(item)
        else:
            if text is None:
                text = _header_text(item)
                if touched is not None and text[2] not in touched \
                        and text[2] not in CREDENTIAL_HEADERS:
                    cache[item] = text
        name, value, lname, wire = text
        size += wire
        if lname in wanted:
            found.setdefault(lname, []).append(value)
        if touched is None or lname in touched:
            value = rules.header(lname, value)  # type: ignore[union-attr]
        out.append({"name": name, "value": value})
    return out, size, found


# Decoded headers by their raw form (a pair, or an http.client line): most of an exchange's
# headers are the same as the previous exchange's (Server, Content-Type, Accept...), and
# decoding them was about half of building an entry. What redaction may change (credentials,
# URLs, the names the settings add; everything when patterns are set) is never kept here, and
# the cache is emptied past _MAX_HEADERS (a Date or a Content-Length makes new values).
_header_cache: Dict[Any, Tuple[str, str, str, int]] = {}
_MAX_HEADERS = 2048


def _header_text(item: Any) -> Tuple[str, str, str, int]:
    if type(item) is bytes:  # a line as http.client wrote it
        name, _, value = item.partition(b": ")
    else:
        name, value = item
    if type(name) is bytes and type(value) is bytes:
        size = len(name) + len(value) + 4  # ": " and CRLF
        name = header_text(name)
        value = header_text(value)
    elif type(name) is str and type(value) is str and name.isascii() and value.isascii():
        size = len(name) + len(value) + 4
    else:  # non-ASCII text, or a library's str subclass (aiohttp's istr names)
        name = clean_str(name)
        value = clean_str(value)
        size = _byte_len(name) + _byte_len(value) + 4
    return name, value, name.lower(), size


def _decoded(raw: Any) -> List[Tuple[str, str]]:
    """``raw``'s headers as ``(name, value)`` text, unredacted (and so kept out of the cache)."""
    return [_header_text(item)[:2] for item in _items(raw)]


def _items(raw: Any) -> Any:
    return raw if isinstance(raw, (list, tuple)) else raw.items()


def _byte_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _request(ex: Exchange, settings: Settings, rules: Optional[Rules], version: str
             ) -> Dict[str, Any]:
    wire_url = clean_str(ex.url)
    if "#" in wire_url:  # HAR 1.2: fragments are not included (nor are they ever sent)
        wire_url = wire_url.partition("#")[0]
    sent_url = _as_uri(wire_url)
    url = rules.url(sent_url) if rules is not None else sent_url
    method = clean_str(ex.method)
    headers, lines_size, found = _headers(ex.request_headers, rules, _REQUEST_WANTED)
    cookies = request_cookies(found.get("cookie", ()))
    if rules is not None:
        for cookie in cookies:
            cookie["value"] = rules.cookie(cookie["value"], "cookie")
    split = urlsplit(url)
    body = _body_bytes(ex.request_body)
    request: Dict[str, Any] = {
        "method": method,
        "url": url,
        "httpVersion": version,
        "cookies": cookies,
        "headers": headers,
        "queryString": _query_string(split.query),
        "headersSize": -1,
        "bodySize": ex.request_size if ex.request_size is not None
        else len(body) if body is not None else _declared_body_size(found),
    }
    if headers:
        if ex.absolute_target:  # to a plain-HTTP proxy: "GET http://host/path HTTP/1.1"
            target = wire_url
        else:
            sent = split if url is wire_url else urlsplit(wire_url)
            target = (sent.path or "/") + ("?" + sent.query if sent.query else "")
        request["headersSize"] = _byte_len(f"{method} {target} {version}") + 2 + lines_size + 2
    # With bodies off, recorders may not keep the bytes: a sent body still gets its postData
    # (empty, marked not recorded), whatever library sent it.
    if body or (not settings.bodies and request["bodySize"] > 0):
        content_type = found.get("content-type")
        request["postData"] = post_data(body or b"", content_type[0] if content_type else None,
                                        settings.bodies, settings.max_body_size, rules,
                                        ex.request_size)
    return request


#: After the authority: what a URI may not hold (RFC 3986), or a "%" that starts no escape.
#: httpx sends ``[]|{}^`\`` and stray "%" in paths and queries as they are (``?page[size]=10``).
_NOT_IN_URI = re.compile(r"[^A-Za-z0-9\-._~:/?@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})")


#: What no part of a URI holds (brackets may be an IPv6 host's): most URLs have none.
_NOWHERE_IN_URI = re.compile(r"[^A-Za-z0-9\-._~:/?@!$&'()*+,;=%\[\]]")


def _as_uri(url: str) -> str:
    """``url`` as a valid URI: what a library sent that a URI cannot hold, percent-encoded
    (UTF-8) after the host (where an IPv6 address keeps its brackets). Most URLs are valid."""
    if "[" not in url and _NOWHERE_IN_URI.search(url) is None and (
            "%" not in url or _NOT_IN_URI.search(url) is None):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        rest, scheme = url, ""
    slash = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    tail = rest[slash:]
    if _NOT_IN_URI.search(tail) is None:
        return url
    tail = _NOT_IN_URI.sub(lambda found: "".join(
        f"%{byte:02X}" for byte in found.group().encode("utf-8", "surrogateescape")), tail)
    return f"{scheme}{sep}{rest[:slash]}{tail}"


def _body_bytes(body: Any) -> Optional[bytes]:
    """The request body as bytes: recorders hand over bytes, but a library may have kept a
    ``str`` (requests' ``data="..."``) or a buffer; anything else is a stream nobody saw."""
    if body is None or type(body) is bytes:
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    return None


def _query_string(query: str) -> List[Dict[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)`` as HAR pairs, without decoding plain pairs."""
    pairs = []
    for part in query.split("&") if query else ():
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name = unquote(name.replace("+", " "))
            value = unquote(value.replace("+", " "))
        pairs.append({"name": name, "value": value})
    return pairs


def _declared_body_size(found: Dict[str, List[str]]) -> int:
    """A body the recorder could not see (a stream): Content-Length, else unknown or none."""
    length = found.get("content-length", ("",))[0].strip()
    if length.isdecimal():
        return int(length)
    return -1 if "transfer-encoding" in found else 0


def _response(ex: Exchange, settings: Settings, rules: Optional[Rules], version: str,
              partial: bool) -> Tuple[Dict[str, Any], str]:
    """The HAR response and the lowercased media type (for ``_resourceType``)."""
    headers, lines_size, found = _headers(ex.response_headers, rules, _RESPONSE_WANTED)
    wall = ex.wall_start
    cookies = [response_cookie(value, wall) for value in found.get("set-cookie", ())]
    if rules is not None:
        for cookie in cookies:
            cookie["value"] = rules.cookie(cookie["value"], "set-cookie")
    content_type = found.get("content-type", (None,))[0]
    mime, codec, _ = content_type_info(content_type or "")
    location = found.get("location", ("",))[0]
    reason = clean_str(ex.reason)
    started = _response_started(ex)
    headers_size = -1
    if started:
        headers_size = _byte_len(f"{version} {ex.status} {reason}") + 2 + lines_size + 2
    content, body_size = _content(ex, settings, rules, content_type, mime, codec, found,
                                  started, partial)
    response: Dict[str, Any] = {
        "status": ex.status,
        "statusText": reason,
        "httpVersion": version,
        "cookies": cookies,
        "headers": headers,
        "content": content,
        # (Location named by redact_header is replaced here too, not only URL-redacted)
        "redirectURL": rules.header("location", location) if rules is not None and location
        else location,
        "headersSize": headers_size,
        "bodySize": body_size,
        "_transferSize": headers_size + body_size if headers_size >= 0 and body_size >= 0 else -1,
    }
    comments = []
    if ex.error is not None:
        response["_error"] = net_error(ex.error, started)
        message = clean_str(describe(ex.error))
        if rules is not None:
            message = rules.scrub(message, str(ex.url), _decoded(ex.request_headers)
                                  + _decoded(ex.response_headers or ()))
        comments.append(message)
    elif partial and not started:
        response["_error"] = PENDING_ERROR
        comments.append(PENDING_COMMENT)
    if partial and started:
        comments.append(PARTIAL_COMMENT)
    if comments:
        response["comment"] = "; ".join(comments)
    return response, mime


def _content(ex: Exchange, settings: Settings, rules: Optional[Rules],
             content_type: Optional[str], mime: str, codec: str,
             found: Dict[str, List[str]], started: bool, partial: bool
             ) -> Tuple[Dict[str, Any], int]:
    """``response.content`` and ``response.bodySize``."""
    mime_type = clean_str(content_type) if content_type is not None else UNKNOWN_MIME
    if not started:
        return {"size": 0, "mimeType": mime_type}, -1
    complete = ex.body_complete and not partial
    size = ex.response_size if complete else -1
    encodings = found.get("content-encoding")
    encoded = encodings is not None and _content_encoded(encodings)
    wire = ex.response_wire_size
    if complete:
        body_size = (-1 if encoded else size) if wire is None else wire
    elif partial or ex.error is not None or wire is None:
        body_size = -1
    else:  # whole on the wire, but not decoded as the program received it: size unknown
        body_size = wire
    content: Dict[str, Any] = {"size": size}
    if encoded and size >= 0 and body_size >= 0:
        content["compression"] = size - body_size
    content["mimeType"] = mime_type
    if not settings.bodies:
        if ex.response_size:  # cut to nothing, like postData
            content["_truncated"] = True
            content["comment"] = NOT_RECORDED
        return content, body_size

    data = bytes(ex.response_body)
    limit = settings.max_body_size
    if len(data) > limit:
        data = data[:limit]
    truncated = ex.response_size > len(data)
    if data:
        set_text(content, *body_text(data, mime, codec, complete and not truncated, rules))
    if truncated:
        content["_truncated"] = True
        content["comment"] = truncation_comment(len(data), ex.response_size)
    return content, body_size


def _content_encoded(values: Any) -> bool:
    return any(map(content_encoded, values))


@functools.lru_cache(maxsize=256)
def _server_address(raw: str) -> Optional[str]:
    """``raw`` as a bare IP address (``[::1]`` -> ``::1``), or None when it is not one."""
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is local to this host
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text
