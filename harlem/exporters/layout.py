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
from typing import Any, Dict, Iterable, List, Optional

import orjson

from .base import creator

_PLACEHOLDER = "__harlem_entries__"


class Layout:
    """Serialises heads, entries and tails for one ``indent`` setting."""

    first_separator = b"\n"
    separator = b",\n"

    def __init__(self, indent: Optional[int] = None, comment: Optional[str] = None):
        self.indent = indent or None
        self.comment = comment
        self._pad = " " * (3 * self.indent) if self.indent else ""
        self.tail = self._split([])[1]

    def head(self, pages: List[Dict[str, Any]]) -> bytes:
        return self._split(pages)[0]

    def _split(self, pages: List[Dict[str, Any]]) -> "tuple[bytes, bytes]":
        log: Dict[str, Any] = {"version": "1.2", "creator": creator(), "pages": pages}
        if self.comment:
            log["comment"] = self.comment
        log["entries"] = [_PLACEHOLDER]
        text = self._dumps({"log": log})
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
            return orjson.dumps(entry)
        return self.reindent(orjson.dumps(entry))

    def reindent(self, compact: bytes) -> bytes:
        """A compact entry (as spooled) in this layout."""
        if not self.indent:
            return compact
        text = self._dumps(orjson.loads(compact))
        pad = self._pad.encode()
        return pad + text.replace(b"\n", b"\n" + pad)

    def _dumps(self, value: Any) -> bytes:
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
