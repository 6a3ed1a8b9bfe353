"""Validate HAR 1.2 documents, harlem's or anyone's.

Three independent layers, all run, so one call reports every problem at once:

1. the strict pydantic model (:mod:`harlem.har.model`): types, required keys, unknown keys,
   bounds, dates, IP addresses;
2. the specification's prose rules that relate several fields, which no schema expresses
   (:func:`check_rules`): the timings sum, ``pageref`` targets, body sizes, the query
   string, redirects...;
3. the community JSON schema (``harlem/har/schema``, ISC licensed), when ``jsonschema`` is
   installed (:func:`check_schema`).

Each problem is one string starting with a JSON path such as ``log.entries[3].timings.time``.

Body size rule (``content.size`` and ``request.bodySize`` against ``text``): the text in a
HAR is decoded, so its byte length is only known when the decoding is. It is checked when

* ``encoding`` is ``"base64"``: exactly the decoded length (invalid base64 is a problem);
* the MIME type names a charset Python knows and the text encodes back into it: exactly
  that length (UTF-16/32 and ``utf-8-sig`` are skipped: their BOM makes the length
  ambiguous);
* there is no charset: ASCII text must be exactly its length; other text must match its
  UTF-8 length (the JSON/modern default) or its windows-1252 length (what browsers assume
  for legacy text), since we cannot know which the producer used.

It is skipped when the size is -1, when the text contains U+FFFD (a lossy decoding: the
original bytes are gone), when any other ``encoding`` is named, and when the body was cut
(``_truncated`` or ``_redacted`` set on the content/postData, its response/request, or the entry).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import functools
import json
import re
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from pydantic import ValidationError

from harlem.har.model import Har

__all__ = [
    "HarValidationError",
    "SCHEMA_DIR",
    "validate_har",
    "validate_har_file",
    "har_problems",
    "check_model",
    "check_rules",
    "check_schema",
    "possible_byte_sizes",
    "format_path",
]

#: The packaged copy of the HAR 1.2 JSON schema.
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

#: Phases summed into ``entry.time``. ``ssl`` is not: it is already part of ``connect``.
SUMMED_PHASES = ("blocked", "dns", "connect", "send", "wait", "receive")
#: Phases that may be -1 ("does not apply").
OPTIONAL_PHASES = ("blocked", "dns", "connect", "ssl")
#: Allowed |time - sum| per summed phase, for producers that round each value separately.
TIME_TOLERANCE_PER_PHASE = 0.01

_MAX_MESSAGE = 300


class HarValidationError(ValueError):
    """A HAR document broke one or more rules; :attr:`problems` lists them all."""

    def __init__(self, problems: List[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        header = f"invalid HAR: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n  ".join([header] + self.problems))


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------


def har_problems(har: Any, schema_dir: Optional[Path] = None) -> List[str]:
    """Every problem of ``har`` found by the model, the prose rules and the JSON schema.

    ``schema_dir`` is a folder of HAR JSON schema files (``har.json`` and the files it
    references); it defaults to the packaged copy. The schema layer is skipped when
    ``jsonschema`` is not installed.
    """
    problems = check_model(har)
    problems += check_rules(har)
    problems += check_schema(har, schema_dir)
    return _unique(problems)


def validate_har(har: Dict[str, Any], schema_dir: Optional[Path] = None) -> None:
    """Raise :class:`HarValidationError` listing every problem of ``har``; see :func:`har_problems`."""
    problems = har_problems(har, schema_dir)
    if problems:
        raise HarValidationError(problems)


def validate_har_file(path: Union[str, Path], schema_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Read, check and return the HAR document in the file at ``path``.

    On top of :func:`validate_har` this checks the bytes: a HAR file is a UTF-8 JSON object
    (first byte ``{``, so no byte-order mark) without ``NaN``/``Infinity``, which Python's
    :mod:`json` would write and accept but which other tools reject.
    """
    data = Path(path).read_bytes()
    problems: List[str] = []
    if data.startswith(codecs.BOM_UTF8):
        problems.append(f"{path}: starts with a UTF-8 byte-order mark; a HAR file starts with '{{'")
    elif not data.startswith(b"{"):
        problems.append(f"{path}: does not start with '{{' (starts with {data[:16]!r})")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8: {exc.reason} at byte {exc.start}")
    if problems:
        raise HarValidationError(problems)
    try:
        har = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if re.match(rb"-?(NaN|Infinity)", data[exc.pos : exc.pos + 9]):
            hint = " (NaN and Infinity are not JSON)"
        raise HarValidationError([f"{path}: not valid JSON: {exc}{hint}"]) from None
    validate_har(har, schema_dir)
    return har  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Layer 1: the model
# ---------------------------------------------------------------------------------------


def check_model(har: Any) -> List[str]:
    """Problems the strict pydantic model finds (types, keys, bounds, dates)."""
    try:
        Har.model_validate(har)
    except ValidationError as exc:
        return [_model_message(error) for error in exc.errors(include_url=False)]
    return []


def _model_message(error: Any) -> str:
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        message = "unknown key (HAR extensions must start with '_')"
    elif kind == "value_error" and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif kind in ("int_type", "float_type", "bool_type", "string_type"):
        message += f", got {_short(error.get('input'))}"
    return f"{format_path(error['loc'])}: {message}"


# ---------------------------------------------------------------------------------------
# Layer 2: the specification's prose rules
# ---------------------------------------------------------------------------------------


def check_rules(har: Any) -> List[str]:
    """Problems with the rules of the HAR 1.2 text that relate fields to each other.

    Written defensively: it runs on documents the model rejected and skips whatever has
    the wrong shape (the model reports that).
    """
    problems: List[str] = []
    log = _get(har, "log")
    if not isinstance(log, dict):
        return problems
    page_ids: Dict[str, int] = {}
    for index, page in _items(log.get("pages")):
        path = f"log.pages[{index}]"
        page_id = page.get("id")
        if isinstance(page_id, str):
            if page_id in page_ids:
                problems.append(
                    f"{path}.id: duplicate page id {page_id!r} (also log.pages[{page_ids[page_id]}])"
                )
            else:
                page_ids[page_id] = index
        timings = page.get("pageTimings")
        for name in ("onContentLoad", "onLoad"):
            _check_minus_one_or_positive(_get(timings, name), f"{path}.pageTimings.{name}", problems)
    for index, entry in _items(log.get("entries")):
        _check_entry(entry, f"log.entries[{index}]", page_ids, problems)
    return problems


def _check_entry(entry: Dict[str, Any], path: str, page_ids: Dict[str, int], problems: List[str]) -> None:
    pageref = entry.get("pageref")
    if isinstance(pageref, str) and pageref not in page_ids:
        problems.append(f"{path}.pageref: {pageref!r} names no page in log.pages")
    _check_timings(entry, path, problems)
    request = entry.get("request")
    if isinstance(request, dict):
        _check_request(request, entry, f"{path}.request", problems)
    response = entry.get("response")
    if isinstance(response, dict):
        _check_response(response, entry, f"{path}.response", problems)


def _check_timings(entry: Dict[str, Any], path: str, problems: List[str]) -> None:
    timings = entry.get("timings")
    if not isinstance(timings, dict):
        return
    for name in OPTIONAL_PHASES:
        _check_minus_one_or_positive(timings.get(name), f"{path}.timings.{name}", problems)
    summed = [_number(timings.get(name)) for name in SUMMED_PHASES]
    values = [value for value in summed if value is not None and value >= 0]
    total = _number(entry.get("time"))
    if total is not None and values:
        allowed = TIME_TOLERANCE_PER_PHASE * len(values)
        if abs(total - sum(values)) > allowed:
            problems.append(
                f"{path}.time: {_num(total)} is not the sum of the timings that apply "
                f"({_num(sum(values))} = blocked+dns+connect+send+wait+receive without -1; "
                "ssl is part of connect)"
            )
    ssl, connect = _number(timings.get("ssl")), _number(timings.get("connect"))
    if ssl is not None and connect is not None and ssl != -1 and connect != -1 and ssl > connect:
        problems.append(
            f"{path}.timings.ssl: {_num(ssl)} exceeds connect ({_num(connect)}); "
            "the TLS handshake is part of connect"
        )


def _check_minus_one_or_positive(value: Any, path: str, problems: List[str]) -> None:
    # The model refuses values below -1; what lies strictly between -1 and 0 is no time.
    number = _number(value)
    if number is not None and -1 < number < 0:
        problems.append(f"{path}: {_num(number)} must be -1 (does not apply) or >= 0")


def _check_request(request: Dict[str, Any], entry: Dict[str, Any], path: str, problems: List[str]) -> None:
    url = request.get("url")
    if isinstance(url, str):
        _check_url(url, request.get("queryString"), path, problems)
    post = request.get("postData")
    body_size = _int(request.get("bodySize"))
    if isinstance(post, dict) and body_size is not None and not _truncated(post, request, entry):
        _check_body_size(post, body_size, f"{path}.bodySize", f"{path}.postData", problems)


def _check_url(url: str, query_string: Any, path: str, problems: List[str]) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        problems.append(f"{path}.url: does not parse: {exc}")
        return
    if not parts.scheme or not parts.netloc:
        problems.append(f"{path}.url: must be absolute (scheme and host): {_short(url)}")
    if parts.fragment or url.endswith("#"):
        problems.append(f"{path}.url: must not include a fragment: {_short(url)}")
    if not isinstance(query_string, list):
        return
    given = [(_get(q, "name"), _get(q, "value")) for q in query_string]
    decoded = parse_qsl(parts.query, keep_blank_values=True)
    raw = [_split_pair(segment) for segment in parts.query.split("&") if segment]
    if len(raw) != len(decoded):
        raw = decoded  # an unusual separator; compare with the decoded form only
    if len(given) == len(decoded) and all(
        pair in {decoded[i], raw[i], (unquote(raw[i][0]), unquote(raw[i][1]))}
        for i, pair in enumerate(given)
    ):
        return
    problems.append(
        f"{path}.queryString: does not match the URL's query: the URL has "
        f"{_short([list(p) for p in decoded])}, queryString has {_short([list(p) for p in given])}"
    )


def _split_pair(segment: str) -> Tuple[str, str]:
    """``"a=b"`` -> ``("a", "b")``, ``"a"`` -> ``("a", "")``: a query pair left undecoded."""
    name, _, value = segment.partition("=")
    return name, value


def _check_response(response: Dict[str, Any], entry: Dict[str, Any], path: str, problems: List[str]) -> None:
    status = _int(response.get("status"))
    if status == 0 and not (response.get("_error") or entry.get("_error")):
        problems.append(
            f"{path}.status: 0 means no response was received; say why in _error "
            "(on the response or the entry)"
        )
    if status is not None and 300 <= status <= 399:
        headers = response.get("headers")
        has_location = isinstance(headers, list) and any(
            isinstance(_get(h, "name"), str) and h["name"].lower() == "location" for h in headers
        )
        redirect = response.get("redirectURL")
        if has_location and not (isinstance(redirect, str) and redirect):
            problems.append(f"{path}.redirectURL: empty although the {status} response has a Location header")
    content = response.get("content")
    if not isinstance(content, dict):
        return
    size = _int(content.get("size"))
    if not _truncated(content, response, entry) and size is not None:
        _check_body_size(content, size, f"{path}.content.size", f"{path}.content", problems)
    compression, body_size = _int(content.get("compression")), _int(response.get("bodySize"))
    if (
        compression is not None
        and size is not None
        and body_size is not None
        and size >= 0
        and body_size >= 0
        and compression != size - body_size
    ):
        problems.append(
            f"{path}.content.compression: {compression} is not content.size - bodySize "
            f"({size} - {body_size} = {size - body_size})"
        )


def _check_body_size(
    holder: Dict[str, Any], size: int, size_path: str, holder_path: str, problems: List[str]
) -> None:
    """Compare a declared byte count with the text in ``holder`` (content or postData)."""
    text = holder.get("text")
    encoding = holder.get("encoding")
    mime_type = holder.get("mimeType")
    if not isinstance(text, str) or (encoding is not None and not isinstance(encoding, str)):
        return
    try:
        sizes = possible_byte_sizes(text, encoding, mime_type if isinstance(mime_type, str) else "")
    except ValueError:
        problems.append(f"{holder_path}.text: not valid base64 although encoding is 'base64'")
        return
    if size != -1 and sizes is not None and size not in sizes:
        shown = " or ".join(str(n) for n in sorted(sizes))
        problems.append(f"{size_path}: {size} but the text holds {shown} bytes")


def possible_byte_sizes(text: str, encoding: Optional[str], mime_type: str) -> Optional[FrozenSet[int]]:
    """The byte lengths the body behind ``text`` can have, or None when unknowable.

    Raises :class:`ValueError` when ``encoding`` is base64 and ``text`` is not. See the
    module docstring for the reasoning.
    """
    if encoding is not None:
        if encoding.lower() != "base64":
            return None
        try:
            return frozenset({len(base64.b64decode(text, validate=True))})
        except (binascii.Error, ValueError):
            raise ValueError("invalid base64") from None
    if "\ufffd" in text:
        return None
    charset = _charset(mime_type)
    if charset:
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            return None
        if codec in ("utf-16", "utf-32", "utf-8-sig"):
            return None
        try:
            return frozenset({len(text.encode(codec))})
        except (UnicodeEncodeError, LookupError):
            return None
    if text.isascii():
        return frozenset({len(text)})
    sizes = {len(text.encode("utf-8", "surrogatepass"))}
    with contextlib.suppress(UnicodeEncodeError):
        sizes.add(len(text.encode("cp1252")))
    return frozenset(sizes)


def _charset(mime_type: str) -> Optional[str]:
    for parameter in mime_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip("'") or None
    return None


def _truncated(*holders: Any) -> bool:
    """True when a body's text no longer matches its size on purpose: cut (``_truncated``)
    or with secrets replaced (``_redacted``); the size stays the real one."""
    return any(isinstance(h, dict) and bool(h.get("_truncated") or h.get("_redacted"))
               for h in holders)


# ---------------------------------------------------------------------------------------
# Layer 3: the JSON schema
# ---------------------------------------------------------------------------------------


def check_schema(har: Any, schema_dir: Optional[Path] = None) -> List[str]:
    """Problems the JSON schema in ``schema_dir`` (default: packaged) finds.

    Empty when ``jsonschema`` is not installed. Formats (date-time, ipv4/6, uri) are
    checked as far as the installed format libraries allow (``jsonschema[format]``).
    """
    validator = _schema_validator(str(Path(schema_dir or SCHEMA_DIR).resolve()))
    if validator is None:
        return []
    errors = sorted(validator.iter_errors(har), key=lambda e: format_path(e.absolute_path))
    return [f"{format_path(e.absolute_path)}: schema: {_clip(e.message)}" for e in errors]


@functools.lru_cache(maxsize=8)
def _schema_validator(schema_dir: str) -> Any:
    """A validator for ``har.json`` in ``schema_dir`` with the other files resolvable."""
    try:
        import jsonschema
        from jsonschema.validators import validator_for
    except ImportError:
        return None
    folder = Path(schema_dir)
    schemas: Dict[str, Any] = {}
    for file in sorted(folder.glob("*.json")):
        contents = json.loads(file.read_text(encoding="utf-8"))
        schemas[contents.get("$id", file.name)] = contents
        schemas.setdefault(file.name, contents)
    root_file = folder / "har.json"
    if not root_file.is_file():
        raise FileNotFoundError(f"no har.json in HAR schema folder {folder}")
    root = json.loads(root_file.read_text(encoding="utf-8"))
    cls = validator_for(root, default=jsonschema.Draft6Validator)
    checker = jsonschema.FormatChecker()
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT6
    except ImportError:  # jsonschema 4.17: the RefResolver
        resolver = jsonschema.RefResolver(base_uri="", referrer=root, store=schemas)
        return cls(root, resolver=resolver, format_checker=checker)
    resources = [
        (uri, Resource.from_contents(contents, default_specification=DRAFT6))
        for uri, contents in schemas.items()
    ]
    return cls(root, registry=Registry().with_resources(resources), format_checker=checker)


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------

_IDENTIFIER_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def format_path(parts: Iterable[Union[str, int]]) -> str:
    """``("log", "entries", 3, "time")`` -> ``log.entries[3].time``; ``()`` -> ``(root)``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER_RE.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "(root)"


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _items(value: Any) -> Iterable[Any]:
    """(index, item) for the dict items of a list; nothing when it is not a list."""
    if isinstance(value, list):
        return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]
    return []


def _number(value: Any) -> Optional[float]:
    """``value`` if it is a JSON number (not a bool, not NaN), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return value
    return None


def _int(value: Any) -> Optional[int]:
    """``value`` if it is a JSON integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _short(value: Any) -> str:
    return _clip(repr(value), 120)


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unique(items: Sequence[str]) -> List[str]:
    return list(dict.fromkeys(items))
