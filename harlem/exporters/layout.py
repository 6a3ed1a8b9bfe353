"""The byte layout of every HAR file harlem writes, shared by all file-like exporters.

A document is ``head``, then entries separated by ``",\\n"`` (the first preceded by ``"\\n"``),
then ``tail``. ``"entries"`` is the last member of the log, so that:

* a whole file can be streamed entry by entry (no list of every entry in memory);
* a live file grows by overwriting the tail with ``",\\n" + entry + tail`` in one write;
* after a torn write, cutting back to the last complete entry and re-adding the tail repairs it.

Compact entries are one line each (orjson escapes newlines inside strings). With ``indent``,
each entry is pretty-printed and shifted to its depth, so the file reads as one indented JSON.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterable, List, Optional

from .base import creator

_PLACEHOLDER = "__harlem_entries__"
#: The ``orjson`` module, imported when the first entry is serialised, not with this module
#: (the agent imports it at start-up); an import statement per entry would cost a microsecond.
_orjson: Any = None


def _fast_json() -> Any:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


def compact_entry(entry: Dict[str, Any]) -> bytes:
    """One entry as compact JSON: what spools and live files hold."""
    return _fast_json().dumps(entry)


class Layout:
    """Serialises heads, entries and tails for one ``indent`` setting."""

    first_separator = b"\n"
    separator = b",\n"

    def __init__(self, indent: Optional[int] = None):
        self.indent = indent or None
        self._pad = " " * (3 * self.indent) if self.indent else ""
        self._created = time.time()
        self.tail = self._split([])[1]

    def head(self, pages: List[Dict[str, Any]]) -> bytes:
        """The document up to the entries; a HAR always has a page, so the default one is
        written when none was given."""
        if not pages:
            from ..pipeline import default_page

            pages = [default_page(self._created)]
        return self._split(pages)[0]

    def _split(self, pages: List[Dict[str, Any]]) -> "tuple[bytes, bytes]":
        log: Dict[str, Any] = {"version": "1.2", "creator": creator(), "pages": pages,
                               "entries": [_PLACEHOLDER]}
        # The standard library's json, which the programs harlem records have imported
        # already: a few small dicts do not need orjson, whose import costs ~20 ms (it imports
        # dataclasses, uuid...), and a recording that saw no entry then never pays for it.
        separators = (",", ":") if not self.indent else (",", ": ")
        text = json.dumps({"log": log}, indent=self.indent, separators=separators,
                          ensure_ascii=False).encode("utf-8")
        marker = b'"' + _PLACEHOLDER.encode() + b'"'
        at = text.index(marker)
        head = text[:at].rstrip()  # ends with "["
        tail = text[at + len(marker):].lstrip()  # starts with "]"
        if self.indent:
            return head, b"\n" + b" " * (2 * self.indent) + tail + b"\n"
        return head, b"\n" + tail + b"\n"

    def entry(self, entry: Dict[str, Any]) -> bytes:
        """One entry, serialised (and indented to its depth when ``indent`` is set)."""
        if not self.indent:
            return compact_entry(entry)
        if self.indent == 2:  # orjson indents it straight from the dict
            return self._padded(self._dumps(entry))
        # The standard library indents, and it needs the plain types orjson makes (it would
        # write a NaN that orjson writes as null): through compact JSON first, as spooled.
        return self.reindent(compact_entry(entry))

    def reindent(self, compact: bytes) -> bytes:
        """A compact entry (as spooled) in this layout."""
        if not self.indent:
            return compact
        return self._padded(self._dumps(_fast_json().loads(compact)))

    def _padded(self, text: bytes) -> bytes:
        """``text`` indented to an entry's depth in the document (as it is, when compact)."""
        if not self.indent:
            return text
        pad = self._pad.encode()
        return pad + text.replace(b"\n", b"\n" + pad)

    def _dumps(self, value: Any) -> bytes:
        orjson = _fast_json()
        if not self.indent:
            return orjson.dumps(value)
        if self.indent == 2:
            return orjson.dumps(value, option=orjson.OPT_INDENT_2)
        return json.dumps(value, indent=self.indent, ensure_ascii=False).encode("utf-8")

    def write(self, write: Any, pages: List[Dict[str, Any]], entries: Iterable[bytes],
              compact_entries: bool = True) -> int:
        """Stream a whole document through ``write``; return the number of entries written.

        ``entries`` yields serialised entries; compact ones (from a spool) are re-indented.
        """
        write(self.head(pages))
        count = 0
        for data in entries:
            write(self.first_separator if count == 0 else self.separator)
            write(self.reindent(data) if compact_entries else data)
            count += 1
        write(self.tail)
        return count


class RepairError(ValueError):
    """The file is not a harlem-layout HAR that can be cut back to a valid state."""


def repair(data: bytes) -> "tuple[bytes, int]":
    """Cut a torn live file back to its last complete entry; return ``(document, entries)``.

    A live file only ever grows by overwriting its tail with ``separator + entry + tail``, so
    the entries array holds whole entries, then at most one torn write. The entries are read
    one by one from the start; the document is rebuilt from the head, every entry that parsed
    whole (a non-empty object: bytes of an old tail can look like ``{}``) and the tail. A
    file that already parses is returned unchanged. Either way the result must be a HAR: a
    ``log`` with ``version``, ``creator`` and an array of entry objects.
    """
    import orjson as _orjson

    from ..har.lenient import loads

    try:
        document = loads(data)
    except ValueError:
        pass
    else:
        return data, _entry_count(document)
    marker = data.find(b'"entries":')
    if marker < 0:
        raise RepairError("no \"entries\" array found: not a HAR written by harlem")
    start = data.find(b"[", marker)
    if start < 0:
        raise RepairError("the \"entries\" array is cut off before it starts")
    text = data.decode("latin-1")  # one character per byte: offsets stay byte offsets
    decoder = json.JSONDecoder()
    cut = position = start + 1
    count = 0
    while True:
        position = _skip_space(text, position)
        try:
            entry, end = decoder.raw_decode(text, position)
        except ValueError:
            break
        except RecursionError:  # whole, maybe, but unreadable here: cut nothing
            raise RepairError("an entry is nested too deeply to read; left as it is") from None
        if not isinstance(entry, dict) or not entry:
            break
        cut, count = end, count + 1
        position = _skip_space(text, end)
        if text[position:position + 1] != ",":
            break
        position += 1
    candidate = data[:cut] + Layout(_detected_indent(data)).tail
    try:
        document = _orjson.loads(candidate)
    except ValueError:
        raise RepairError("no valid state found: the head of the file is damaged") from None
    _entry_count(document)
    return candidate, count


def _entry_count(document: Any) -> int:
    """How many entries the parsed HAR ``document`` has; :class:`RepairError` if it is none."""
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries) \
            or not isinstance(log.get("version"), str) or not isinstance(log.get("creator"), dict):
        raise RepairError("not a HAR file (no log with version, creator and entry objects)")
    return len(entries)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _detected_indent(data: bytes) -> Optional[int]:
    """The ``indent`` a harlem file was written with (its second line's leading spaces)."""
    newline = data.find(b"\n")
    if newline < 0 or not data.startswith(b"{\n"):
        return None
    line = data[newline + 1:data.find(b"\n", newline + 1)]
    return (len(line) - len(line.lstrip(b" "))) or None
