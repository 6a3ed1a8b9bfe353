"""Render a HAR as one self-contained, offline HTML page (summary, waterfall, details).

The page makes no request of any kind: its CSS and JavaScript are inline, a strict
Content-Security-Policy forbids everything else, and the HAR travels inside the page as a JSON
``<script type="application/json">`` block in which ``<``, ``>``, ``&``, U+2028 and U+2029 are
escaped, so no body or header can close the block. The script puts HAR values on the page with
``textContent`` and DOM properties only.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["render_html", "embed_json", "CSP"]

#: The page's Content-Security-Policy: nothing may be fetched; inline style and script only;
#: images only from ``data:`` and ``blob:`` URLs (response bodies shown as images).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data: blob:; base-uri 'none'; form-action 'none'"
)

_ASSETS = ("template.html", "report.css", "report.js")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

# Bytes of orjson's UTF-8 output -> JSON escapes that mean the same character.
_BYTE_ESCAPES = (
    (b"&", b"\\u0026"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
_STR_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_STR_ESCAPE_RE = re.compile("[&<>\u2028\u2029]")


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """The text of one file of ``assets/`` (package data next to this module)."""
    try:
        from importlib.resources import files

        return (files(__package__) / "assets" / name).read_text(encoding="utf-8")
    except (ImportError, TypeError, FileNotFoundError, AttributeError):  # pragma: no cover
        return (Path(__file__).parent / "assets" / name).read_text(encoding="utf-8")


def embed_json(value: Any) -> str:
    """``value`` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e`` and ``\\u0026`` (so neither
    ``</script>`` nor ``<!--`` can appear), and U+2028/U+2029 become ``\\u2028``/``\\u2029``.
    The result parses back to ``value`` with any JSON parser.
    """
    try:
        import orjson

        data: bytes = orjson.dumps(value)
    except (ImportError, TypeError, ValueError):
        # orjson refuses some values Python's json accepts (integers beyond 64 bits, lone
        # surrogates from surrogateescape-decoded text); fall back to the slower encoder.
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, default=str, separators=(",", ":"))
        return _STR_ESCAPE_RE.sub(lambda m: _STR_ESCAPES[m.group(0)], text)
    for raw, escaped in _BYTE_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data.decode("utf-8")


def render_html(har: Dict[str, Any], *, title: Optional[str] = None) -> str:
    """Return one self-contained HTML document showing ``har`` (a parsed HAR 1.2 dict).

    ``title`` names the report (the browser tab and the heading); by default "HAR report".
    The document loads nothing: inline CSS and JavaScript, data embedded as escaped JSON.
    """
    template = _asset("template.html")
    css = _asset("report.css")
    js = _asset("report.js")
    for name, text in (("report.css", css), ("report.js", js)):
        if re.search(r"</(style|script)", text, re.IGNORECASE):  # pragma: no cover - asset bug
            raise RuntimeError(f"harlem report asset {name} would close its element early")
    shown_title = title if title else "HAR report"
    values = {
        "csp": html.escape(CSP, quote=False).replace('"', "&quot;"),
        "title": html.escape(shown_title, quote=False),
        "css": css,
        "js": js,
        "meta": embed_json({"title": shown_title, "generator": "harlem"}),
        "har": embed_json(har),
    }
    # One pass over the template: inserted text is never scanned for placeholders again.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
