"""Redaction: secrets are replaced by a marker before an entry leaves the builder.

HAR files get shared (bug reports, CI artefacts), so by default (``redact=True``) harlem removes
credentials: the values of :data:`CREDENTIAL_HEADERS`, every cookie value and the user-info
part of URLs. The user adds more with ``redact_header``, ``redact_query``,
``redact_json_field`` and ``redact_pattern``. ``redact=False`` switches off the built-in rules
only: rules the user named explicitly still apply.

Output conventions (a reader can always see *that* something was there):

* Header values become :data:`REDACTED` (``"[REDACTED]"``); header names stay. Cookie arrays
  keep names and attributes, values become :data:`REDACTED`.
* In URLs the marker is percent-encoded, :data:`URL_REDACTED` (``%5BREDACTED%5D``), so the
  URL stays a valid URI and its query still decodes to ``queryString`` (which then holds
  ``"[REDACTED]"``): ``https://%5BREDACTED%5D:%5BREDACTED%5D@host/?token=%5BREDACTED%5D``.
  The user name is redacted too (tokens are often passed as user names). This applies to the
  request URL, ``redirectURL`` and the ``Location``, ``Content-Location`` and ``Referer``
  header values (which are URL-redacted rather than replaced).
* Named body fields (matched case-insensitively, like header and query names): in JSON (any
  depth) the value, even an object or array, becomes the string ``"[REDACTED]"`` and the text
  is re-serialised compactly; JSON that does not parse (a cut body) is redacted lexically
  (any value; one cut short, to the end of the text). In form bodies the field is redacted
  as in URLs; in multipart bodies the part's content becomes ``[REDACTED]``.
* ``redact_pattern``: each match becomes the marker, or only the pattern's capture groups when
  it has any (``token=(\\w+)`` keeps ``token=``). Patterns apply to URLs (as sent,
  percent-encoded), header and cookie values, text bodies, error messages, and to base64
  bodies through their raw bytes (seen as Latin-1) before encoding.
* Sizes never change: they describe what went over the wire.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple
from urllib.parse import unquote, unquote_plus

import orjson

from .cookies import cookie_pair, request_cookies

__all__ = ["REDACTED", "URL_REDACTED", "CREDENTIAL_HEADERS", "Rules", "rules_for"]

REDACTED = "[REDACTED]"
URL_REDACTED = "%5BREDACTED%5D"
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-auth-token", "api-key", "x-access-token", "x-csrf-token", "x-amz-security-token",
})
#: Headers whose value is a URL: redacted like the request URL instead of replaced.
URL_HEADERS = frozenset({"location", "content-location", "referer"})
#: A query parameter of a URL inside a header value: ``?name=value`` or ``&name=value``.
#: (a value runs to the next pair, fragment, space or bracket: commas and semicolons are a
#: value's own inside a URL, and taking one too many hides nothing)
_QUERY_PAIR = re.compile(r"([?&])([^=&#\s<>\"']+)=([^&#\s<>\"']+)")
_JSON_START = re.compile(r"\s*[\[{]")
# Secrets shorter than this are not searched for in free text (they would mangle it).
_MIN_SCRUB = 3


class Rules:
    """The compiled redaction rules of one :class:`~harlem.settings.Settings`."""

    __slots__ = ("headers", "credentials", "query", "fields", "patterns", "header_names",
                 "_field_re")

    def __init__(self, defaults: bool, headers: Iterable[str], query: Iterable[str],
                 fields: Iterable[str], patterns: Iterable[str]):
        #: Lowercased header names whose values are replaced.
        self.headers: FrozenSet[str] = frozenset(
            [h.lower() for h in headers] + (list(CREDENTIAL_HEADERS) if defaults else []))
        self.credentials = defaults
        self.query: FrozenSet[str] = frozenset(q.lower() for q in query)
        self.fields: FrozenSet[str] = frozenset(f.lower() for f in fields)
        self.patterns: Tuple["re.Pattern[str]", ...] = tuple(re.compile(p) for p in patterns)
        #: Lowercased header names whose values :meth:`header` may change; with patterns or
        #: query parameters (a URL may be in any header: Link, Refresh...), all.
        self.header_names: Optional[FrozenSet[str]] = (
            None if self.patterns or self.query else self.headers | URL_HEADERS)
        self._field_re = None
        if self.fields:
            names = "|".join(re.escape(f) for f in sorted(self.fields))
            self._field_re = re.compile(r'"(?:' + names + r')"\s*:\s*', re.IGNORECASE)

    # -- headers and cookies ---------------------------------------------------------------

    def header(self, lname: str, value: str) -> str:
        """The value to write for header ``lname`` (lowercased name)."""
        if lname in self.headers:
            return REDACTED
        if lname in URL_HEADERS:
            return self.url(value)
        if self.query and "=" in value:  # URLs inside other values (Link: <...?token=...>)
            value = _QUERY_PAIR.sub(self._query_pair, value)
        return self.text(value) if self.patterns else value

    def _query_pair(self, match: "re.Match[str]") -> str:
        if unquote_plus(match[2]).lower() in self.query:
            return match[1] + match[2] + "=" + URL_REDACTED
        return match[0]

    def cookie(self, value: str, header: str) -> str:
        """A cookie value from a Cookie (``header="cookie"``) or Set-Cookie header."""
        if header in self.headers:
            return REDACTED
        return self.text(value) if self.patterns else value

    # -- URLs ----------------------------------------------------------------------------

    def url(self, url: str) -> str:
        if self.credentials and "@" in url:
            url = _strip_userinfo(url)
        if self.query:
            question = url.find("?")
            if question != -1:
                hash_ = url.find("#", question)
                end = len(url) if hash_ == -1 else hash_
                query = url[question + 1:end]
                redacted = self._pairs(query)
                if redacted is not query:
                    url = url[:question + 1] + redacted + url[end:]
        if self.patterns:
            start = _authority_end(url)
            head = url[:start]
            span = None if self.credentials else _userinfo_span(head)
            if span is not None:  # (the built-in rule, off, would have taken it all)
                head = head[:span[0]] + self._patterns(head[span[0]:span[1]], URL_REDACTED) \
                    + head[span[1]:]
            url = head + self._patterns(url[start:], URL_REDACTED)
        return url

    def _pairs(self, query: str, names: Optional[FrozenSet[str]] = None) -> str:
        """Redact ``name=value`` pairs of a query string; the same object when nothing matched."""
        names = self.query if names is None else names
        pairs = query.split("&")
        changed = False
        for i, pair in enumerate(pairs):
            key, eq, value = pair.partition("=")
            if eq and value and unquote_plus(key).lower() in names:
                pairs[i] = key + "=" + URL_REDACTED
                changed = True
        return "&".join(pairs) if changed else query

    # -- bodies ----------------------------------------------------------------------------

    def is_field(self, name: str) -> bool:
        return name.lower() in self.fields

    def body(self, text: str, mime: str) -> str:
        """A text body (``mime`` lowercased): named JSON fields, then patterns."""
        if self.fields and ("json" in mime or _JSON_START.match(text)):
            text = self._json(text)
        return self.text(text) if self.patterns else text

    def form(self, text: str) -> str:
        """A form-urlencoded body: named fields, then patterns."""
        if self.fields:
            text = self._pairs(text, self.fields)
        return self.text(text) if self.patterns else text

    def binary(self, data: bytes, mime: str = "") -> bytes:
        """A body written as base64: patterns, on the raw bytes. A JSON or form body (``mime``)
        written so because it does not decode with its charset (Latin-1 bytes labelled UTF-8)
        loses its named fields first: read byte for byte as Latin-1, so that every other byte
        stays as it was."""
        if self.fields and ("json" in mime or mime == "application/x-www-form-urlencoded"):
            text = data.decode("latin-1")
            fields = self._json(text) if "json" in mime else self._pairs(text, self.fields)
            if fields is not text:
                data = fields.encode("latin-1", "backslashreplace")
        if not self.patterns:
            return data
        return self._patterns(data.decode("latin-1"), REDACTED).encode("latin-1")

    def text(self, text: str) -> str:
        """Free text (header values, bodies, messages): patterns only."""
        return self._patterns(text, REDACTED) if self.patterns else text

    def _json(self, text: str) -> str:
        for loads, dumps in _JSON_CODECS:
            try:
                data = loads(text)
            except (ValueError, RecursionError):
                continue
            if not _scrub_json(data, self.fields):
                return text
            try:
                return dumps(data)
            except (TypeError, ValueError, RecursionError):
                continue
        return _redact_fields_lexically(text, self._field_re) if self._field_re else text

    def _patterns(self, text: str, marker: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(_replacer(pattern, marker), text)
        return text

    # -- free text -------------------------------------------------------------------------

    def scrub(self, message: str, url: str, headers: Iterable[Tuple[str, str]]) -> str:
        """An error message with every secret of this exchange removed.

        Exception texts quote URLs and sometimes header values; the secrets the rules would
        take out of ``url`` and ``headers`` are searched for and replaced, then patterns run.
        """
        secrets = [form for name, value in headers if name.lower() in self.headers
                   for form in _printed_forms(value)]
        # A cookie's value alone: an application looks a session up by it and fails
        # (KeyError: 'the-session-id'), and that message is the entry's comment.
        secrets += [form for name, value in headers if name.lower() in _COOKIE_HEADERS
                    and name.lower() in self.headers
                    for cookie in _cookie_values(name.lower(), value)
                    if len(cookie) >= _MIN_COOKIE_SCRUB for form in _printed_forms(cookie)]
        secrets += _url_secrets(url, self.credentials, self.query)
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= _MIN_SCRUB:
                message = message.replace(secret, REDACTED)
        if self.credentials and "@" in message:  # another URL's (a proxy's) user and password
            message = _TEXT_USERINFO.sub(r"\1" + REDACTED + "@", message)
        return self.text(message)


_compiled: Dict[int, Tuple[Any, Optional[Rules]]] = {}


def rules_for(settings: Any) -> Optional[Rules]:
    """The compiled rules of ``settings``, ``None`` when there is no rule at all.

    Cached by identity: a recorder keeps one settings object for its whole life, and hashing
    a whole :class:`~harlem.settings.Settings` would cost more than the lookup saves.
    """
    cached = _compiled.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    rules = _compile(bool(settings.redact), tuple(settings.redact_header),
                     tuple(settings.redact_query), tuple(settings.redact_json_field),
                     tuple(settings.redact_pattern))
    if len(_compiled) >= 64:
        _compiled.clear()
    _compiled[id(settings)] = (settings, rules)
    return rules


@functools.lru_cache(maxsize=64)
def _compile(defaults: bool, headers: Tuple[str, ...], query: Tuple[str, ...],
             fields: Tuple[str, ...], patterns: Tuple[str, ...]) -> Optional[Rules]:
    if not (defaults or headers or query or fields or patterns):
        return None
    return Rules(defaults, headers, query, fields, patterns)


def _replacer(pattern: "re.Pattern[str]", marker: str) -> Callable[["re.Match[str]"], str]:
    """What replaces a match: the marker, or the marker in place of each capture group."""
    groups = pattern.groups

    def replace(match: "re.Match[str]") -> str:
        whole = match.group(0)
        if not whole:  # an empty match: nothing to hide, and no marker between characters
            return whole
        if not groups:
            return marker
        base = match.start()
        out = []
        pos = 0
        for index in range(1, groups + 1):
            start, end = match.span(index)
            if start < 0 or start - base < pos or start == end:
                continue
            out.append(whole[pos:start - base])
            out.append(marker)
            pos = end - base
        out.append(whole[pos:])
        return "".join(out)

    return replace


def _printed_forms(value: str) -> List[str]:
    """How a header value may appear in an exception's message: as it is, trimmed, escaped
    the way Python prints it (h11 quotes a value with a newline as ``b'...\\n'``), and its
    credential alone (``Bearer <token>``: the token)."""
    forms = [value, value.strip(), repr(value)[1:-1],
             repr(value.encode("utf-8", "surrogateescape"))[2:-1]]
    words = value.split()
    if len(words) > 1:
        forms.append(words[-1])
    return forms


_COOKIE_HEADERS = ("cookie", "set-cookie")
#: A cookie's value alone is searched for from this length: a session id, not lang=eng, whose
#: "eng" would be taken out of "Content-Length" in an unrelated message.
_MIN_COOKIE_SCRUB = 8


def _cookie_values(name: str, value: str) -> List[str]:
    """The values of a Cookie header's cookies, or a Set-Cookie header's cookie value, read as
    the entry's cookies are (quotes off: a program quotes the value without them)."""
    if name == "cookie":
        values = [cookie["value"] for cookie in request_cookies([value])]
    else:
        values = [cookie_pair(value.partition(";")[0])[1]]
    return [text.strip('"') for text in values]


#: ``scheme://user:password@`` in free text (an error message quoting a proxy's URL).
_TEXT_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"<>]+@")


def _redact_fields_lexically(text: str, field: "re.Pattern[str]") -> str:
    """Named fields of JSON that does not parse (a cut body): each value, string, scalar,
    object or array, becomes the marker; one cut short runs to the end of the text."""
    out = []
    position = 0
    while True:
        match = field.search(text, position)
        if match is None:
            break
        start = match.end()
        end = _json_value_end(text, start)
        out.append(text[position:start] + '"' + REDACTED + '"')
        position = end
    return "".join(out) + text[position:] if out else text


def _json_value_end(text: str, start: int) -> int:
    """Where the JSON value starting at ``start`` ends (the end of ``text`` if it is cut)."""
    if start >= len(text):
        return start
    first = text[start]
    if first == '"':
        index = start + 1
        while index < len(text):
            if text[index] == "\\":
                index += 2
                continue
            if text[index] == '"':
                return index + 1
            index += 1
        return len(text)
    if first in "{[":
        depth = 0
        index = start
        while index < len(text):
            char = text[index]
            if char == '"':
                index = _json_value_end(text, index)
                continue
            if char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return index + 1
            index += 1
        return len(text)
    scalar = re.match(r"-?[\w.+-]+", text[start:])
    return start + (scalar.end() if scalar else 0)


def _authority(url: str) -> Optional[Tuple[int, int]]:
    """Where ``user:password@host:port`` sits in ``scheme://...`` or a scheme-relative
    ``//...``: ``(start, end)``, or ``None`` when ``url`` has no authority."""
    if url.startswith("//"):
        start = 2
    else:
        scheme_end = url.find("://")
        if scheme_end <= 0:
            return None
        start = scheme_end + 3
    end = len(url)
    for char in "/?#":
        index = url.find(char, start, end)
        if index != -1:
            end = index
    return start, end


def _userinfo_span(url: str) -> Optional[Tuple[int, int]]:
    """Where ``user:password`` sits in ``scheme://user:password@host/...`` (or in a
    scheme-relative ``//user:password@host/...``), if anywhere."""
    authority = _authority(url)
    if authority is None:
        return None
    start, end = authority
    scheme = "" if start == 2 else url[:start - 3]  # (none in a scheme-relative URL)
    if scheme and not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None
    at = url.rfind("@", start, end)
    return (start, at) if at != -1 else None


def _authority_end(url: str) -> int:
    """Where the path starts: patterns leave ``scheme://user@host:port`` alone (the user
    info has its own rule), so that the URL stays a URL."""
    authority = _authority(url)
    return 0 if authority is None else authority[1]


def _strip_userinfo(url: str) -> str:
    span = _userinfo_span(url)
    if span is None:
        return url
    start, at = span
    has_password = ":" in url[start:at]
    return url[:start] + URL_REDACTED + (":" + URL_REDACTED if has_password else "") + url[at:]


def _url_secrets(url: str, credentials: bool, query: FrozenSet[str]) -> List[str]:
    found: List[str] = []
    span = _userinfo_span(url) if credentials else None
    if span is not None:
        for part in url[span[0]:span[1]].split(":", 1):
            found += [part, unquote(part)]
    question = url.find("?")
    if query and question != -1:
        for pair in url[question + 1:].split("#", 1)[0].split("&"):
            key, eq, value = pair.partition("=")
            if eq and unquote_plus(key).lower() in query:
                found += [value, unquote_plus(value)]
    return found


def _scrub_json(data: Any, fields: FrozenSet[str]) -> bool:
    """Replace named fields in parsed JSON in place (iteratively: depth is unbounded)."""
    changed = False
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.lower() in fields:
                    node[key] = REDACTED
                    changed = True
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, (dict, list)))
    return changed


def _orjson_dumps(data: Any) -> str:
    return orjson.dumps(data).decode("utf-8")


def _json_dumps(data: Any) -> str:
    # ASCII escapes: the standard library accepts lone surrogates ("\\ud800"), JSON output can't.
    return json.dumps(data, separators=(",", ":"))


# orjson first (fast); the standard library for what orjson refuses (integers past 64 bits,
# NaN, deep nesting).
_JSON_CODECS = ((orjson.loads, _orjson_dumps), (json.loads, _json_dumps))
