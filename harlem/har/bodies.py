"""Bodies and content types: bytes as the program sent or received them -> HAR text.

A body becomes ``text`` when its media type says it is text (``text/*``, JSON, XML, JavaScript,
form data, SVG) and it decodes with the declared charset (UTF-8 when none is declared). Anything
else, or text that does not decode, is written base64 with ``"encoding": "base64"``. A body
without any Content-Type is sniffed: valid UTF-8 without NUL bytes is text.

Request bodies become ``postData`` (see :func:`post_data`). Conventions, chosen so that every
HAR reader (mitmproxy requires ``postData.text``) can load the file:

* ``mimeType`` is the Content-Type header as sent, or ``application/octet-stream`` when the
  request had none.
* ``text`` is always present. A body that is not text is base64 with ``"encoding": "base64"``
  on ``postData`` (an extension: HAR 1.2 only defines it on ``content``).
* Form bodies carry both ``text`` and decoded ``params``; multipart bodies carry ``params``
  (``name``, ``value`` for text parts, ``fileName``, ``contentType``) and the whole body as text.
* With ``bodies=False`` the body is cut to nothing: ``"text": ""``, ``"_truncated": true`` and
  ``"comment": "body not recorded"`` (``response.content`` likewise, without ``text``).
* Past ``max_body_size`` the first bytes are kept, with ``"_truncated": true`` and a comment;
  sizes elsewhere always describe the whole body.
* When redaction changed the text, ``"_redacted": true`` (on ``postData`` and ``content``)
  says that the text's length no longer matches the body's size.

All strings leaving this module are safe to serialise as JSON (no lone surrogates).
"""

from __future__ import annotations

import base64
import codecs
import functools
import re
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote

from .redact import REDACTED, Rules

__all__ = ["clean_str", "content_type_info", "is_text_mime", "body_text", "post_data",
           "set_text", "truncation_comment", "DEFAULT_POST_MIME", "NOT_RECORDED"]

DEFAULT_POST_MIME = "application/octet-stream"
NOT_RECORDED = "body not recorded"
_TEXT_MARKERS = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "svg")
# Decoders that can only return text JSON can hold; others get their result checked.
_SAFE_CODECS = frozenset({"utf-8", "ascii", "iso8859-1", "cp1252"})
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR_RE = re.compile(r"\\(.)")


def clean_str(value: Any) -> str:
    """``value`` as a string that JSON can hold.

    Recorders hand over ``str``, but aiohttp decodes undecodable header bytes to lone
    surrogates, which orjson refuses; those bytes become U+FFFD here.
    """
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8", "replace")
        value = str(value)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)


def split_params(value: str) -> Tuple[str, Dict[str, str]]:
    """``'type/sub; a=1; b="x y"'`` -> ``('type/sub', {'a': '1', 'b': 'x y'})``, keys lowercased."""
    main, _, rest = value.partition(";")
    params: Dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        raw = match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1])
        params.setdefault(match.group(1).lower(), raw)
    return main.strip(), params


@functools.lru_cache(maxsize=256)
def content_type_info(value: str) -> Tuple[str, str, str]:
    """A Content-Type value -> (media type lowercased, codec name, multipart boundary).

    The codec is the declared charset when Python knows it as a text encoding, else UTF-8 (also
    the default for JSON and for text without a charset).
    """
    main, params = split_params(value)
    return main.lower(), _codec(params.get("charset", "")), params.get("boundary", "")


@functools.lru_cache(maxsize=64)
def _codec(charset: str) -> str:
    try:
        name = codecs.lookup(charset.strip().strip('"')).name
    except LookupError:
        return "utf-8"
    try:
        b"0".decode(name)  # bytes-to-bytes codecs such as base64 raise LookupError
    except UnicodeDecodeError:  # a text encoding that needs more bytes (UTF-16...)
        pass
    except LookupError:
        return "utf-8"
    return name


@functools.lru_cache(maxsize=256)
def is_text_mime(mime: str) -> bool:
    return mime.startswith("text/") or any(marker in mime for marker in _TEXT_MARKERS)


def _decode(data: bytes, codec: str, whole: bool) -> Optional[str]:
    """Decode ``data`` strictly, or ``None``. A cut body (``whole`` False) may end mid-character:
    the incomplete tail is dropped instead of failing."""
    try:
        if whole:
            text = data.decode(codec)
        else:
            text = codecs.getincrementaldecoder(codec)().decode(data, False)
    except UnicodeError:  # incremental UTF-16 without a byte-order mark raises the base class
        return None
    return text if codec in _SAFE_CODECS else clean_str(text)


def _looks_textual(data: bytes) -> bool:
    return b"\x00" not in data


def body_text(data: bytes, mime: str, codec: str, whole: bool,
              rules: Optional[Rules]) -> Tuple[str, bool, bool]:
    """A body as HAR text: ``(text, is_base64, redacted)``, redacted by ``rules``.

    ``mime`` is the lowercased media type ("" when the message had no Content-Type: then the
    bytes are sniffed). ``redacted`` tells that redaction changed the text, so its length no
    longer matches the body's size.
    """
    if is_text_mime(mime) or (not mime and _looks_textual(data)):
        text = _decode(data, codec, whole)
        if text is not None:
            if rules is None:
                return text, False, False
            redacted = rules.body(text, mime)
            return redacted, False, redacted != text
    if rules is not None:
        original, data = data, rules.binary(data, mime)
        return base64.b64encode(data).decode("ascii"), True, data != original
    return base64.b64encode(data).decode("ascii"), True, False


def truncation_comment(kept: int, total: int) -> str:
    return f"body truncated to its first {kept} of {total} bytes"


def post_data(body: bytes, content_type: Optional[str], bodies: bool, limit: int,
              rules: Optional[Rules], size: Optional[int] = None) -> Dict[str, Any]:
    """The ``postData`` of a request with a non-empty ``body`` (see the module conventions).

    ``size`` is the body's true size when the recorder kept only its first bytes.
    """
    result: Dict[str, Any] = {
        "mimeType": clean_str(content_type) if content_type else DEFAULT_POST_MIME}
    if not bodies:  # kept: the first 0 bytes
        result["text"] = ""
        result["_truncated"] = True
        result["comment"] = NOT_RECORDED
        return result
    size = len(body) if size is None else max(size, len(body))
    truncated = size > min(limit, len(body))
    data = body[:limit]
    mime, codec, boundary = content_type_info(content_type or "")
    if mime == "multipart/form-data" and boundary:
        _multipart(result, data, boundary, not truncated, rules)
    elif mime == "application/x-www-form-urlencoded":
        _form(result, data, codec, not truncated, rules)
    else:
        set_text(result, *body_text(data, mime, codec, not truncated, rules))
    if truncated:
        result["_truncated"] = True
        result["comment"] = truncation_comment(len(data), size)
    return result


def set_text(holder: Dict[str, Any], text: str, is_base64: bool, redacted: bool) -> None:
    """Put a :func:`body_text` result into ``content`` or ``postData``."""
    holder["text"] = text
    if is_base64:
        holder["encoding"] = "base64"
    if redacted:
        holder["_redacted"] = True


def _form(result: Dict[str, Any], data: bytes, codec: str, whole: bool,
          rules: Optional[Rules]) -> None:
    text = _decode(data, codec, whole)
    if text is None:  # (base64: body_text cannot decode it either, and redacts its fields)
        set_text(result, *body_text(data, "application/x-www-form-urlencoded", codec, whole,
                                    rules))
        return
    redacted = False
    if rules is not None:
        original, text = text, rules.form(text)
        redacted = text != original
    params = parse_qsl(text, keep_blank_values=True, encoding=codec, errors="replace")
    if rules is not None and rules.patterns:
        params = [(name, rules.text(value)) for name, value in params]
    set_text(result, text, False, redacted)
    result["params"] = [{"name": name, "value": value} for name, value in params]


def _multipart(result: Dict[str, Any], data: bytes, boundary: str, whole: bool,
               rules: Optional[Rules]) -> None:
    parts = _split_multipart(data, boundary.encode("latin-1", "replace"))
    params = []
    redacted_spans = []
    for headers, start, end in parts:
        disposition = split_params(headers.get("content-disposition", ""))[1]
        name = _disposition(disposition, "name") or ""
        param: Dict[str, Any] = {"name": name}
        filename = _disposition(disposition, "filename")
        part_mime, part_codec, _ = content_type_info(headers.get("content-type", ""))
        if rules is not None and rules.is_field(name):
            redacted_spans.append((start, end))
            param["value"] = REDACTED
        elif filename is None:
            value = _decode(data[start:end], part_codec, True)
            if value is not None:
                param["value"] = value if rules is None else rules.text(value)
        if filename is not None:
            param["fileName"] = filename
        if "content-type" in headers:
            param["contentType"] = headers["content-type"]
        params.append(param)
    if redacted_spans:
        data = _splice(data, redacted_spans, REDACTED.encode())
    text = _decode(data, "utf-8", whole)
    if text is None:
        set_text(result, *body_text(data, "application/octet-stream", "utf-8", whole, rules))
        if redacted_spans:
            result["_redacted"] = True
    else:
        redacted_text = text if rules is None else rules.text(text)
        set_text(result, redacted_text, False, bool(redacted_spans) or redacted_text != text)
    result["params"] = params


def _disposition(disposition: Dict[str, str], key: str) -> Optional[str]:
    """A Content-Disposition parameter, its RFC 5987 form (``name*=utf-8''cl%C3%A9``, which
    aiohttp writes for names and file names that are not ASCII) first."""
    extended = disposition.get(key + "*")
    if extended and "''" in extended:  # RFC 5987: charset'language'percent-encoded
        charset, _, encoded = extended.partition("''")
        return clean_str(unquote(encoded, encoding=_codec(charset), errors="replace"))
    return disposition.get(key)


def _split_multipart(data: bytes, boundary: bytes) -> List[Tuple[Dict[str, str], int, int]]:
    """The parts of a multipart body as ``(headers, content start, content end)``.

    Tolerates a body cut short: the last part then runs to the end of the data.
    """
    delimiter = b"--" + boundary
    parts = []
    pos = data.find(delimiter)
    while pos != -1:
        after = pos + len(delimiter)
        if data.startswith(b"--", after):  # the closing delimiter
            break
        line_end = data.find(b"\r\n", after)
        if line_end == -1:
            break
        head_start = line_end + 2
        if data.startswith(b"\r\n", head_start):
            head_end, start = head_start, head_start + 2
        else:
            head_end = data.find(b"\r\n\r\n", head_start)
            if head_end == -1:
                break
            start = head_end + 4
        headers = {}
        for line in data[head_start:head_end].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower().decode("latin-1")] = \
                    value.strip().decode("utf-8", "replace")
        following = data.find(b"\r\n" + delimiter, start)
        end = len(data) if following == -1 else following
        parts.append((headers, start, end))
        pos = -1 if following == -1 else following + 2
    return parts


def _splice(data: bytes, spans: List[Tuple[int, int]], replacement: bytes) -> bytes:
    out = []
    pos = 0
    for start, end in spans:
        out.append(data[pos:start])
        out.append(replacement)
        pos = end
    out.append(data[pos:])
    return b"".join(out)
