"""The byte layout of every HAR file harlem writes, shared by all file-like exporters.

A document is ``head``, then entries separated by ``",\\n"`` (the first preceded by ``"\\n"``),
then ``tail``. ``"entries"`` is the last member of the log, so that:

* a whole file can be streamed entry by entry (no list of every entry in memory);
* a live file grows by overwriting the tail with ``",\\n" + entry + tail`` in one write;
* after a torn write, cutting back to the last complete entry and re-adding the tail repairs it.

The head lists the pages one per line, like the entries, and may leave *room* after the
pages' closing bracket: spaces, which JSON ignores. A live file adds a page by writing it
and the bracket over that room (:meth:`Layout.page`), without moving a byte of the entries.

Compact entries are one line each (orjson escapes newlines inside strings). With ``indent``,
each entry is pretty-printed and shifted to its depth, so the file reads as one indented JSON.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

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
        self.tail = self._split()[1]

    def head(self, pages: List[Dict[str, Any]], default_page: bool = True) -> bytes:
        """The document up to the entries (a live file leaves room after the pages: see
        :meth:`head_parts`)."""
        listed, rest = self.head_parts(pages, default_page)
        return listed + self.pages_close + rest

    def head_parts(self, pages: List[Dict[str, Any]],
                   default_page: bool = True) -> Tuple[bytes, bytes]:
        """The head cut around the pages' closing bracket (:attr:`pages_close`): up to the end
        of the last page, and from after the bracket to the entries' opening one. A harlem
        recording always has a page, so the default one is listed when ``pages`` is empty,
        unless ``default_page`` is False (a merge of other tools' files that have none)."""
        if not pages and default_page:
            from ..pipeline import default_page

            pages = [default_page(self._created)]
        before, after = self._split(pages=True)
        listed = b"".join((self.separator if number else self.first_separator) + self.page(page)
                          for number, page in enumerate(pages))
        return before + listed, after

    def page(self, page: Dict[str, Any]) -> bytes:
        """One page, serialised like an entry (indented to the same depth)."""
        # The standard library's json, which the programs harlem records have imported
        # already: a few small dicts do not need orjson, whose import costs ~20 ms (it imports
        # dataclasses, uuid...), and a recording that saw no entry then never pays for it.
        if not self.indent:
            return json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        text = json.dumps(page, indent=self.indent, ensure_ascii=False)
        return self._padded(text.encode("utf-8"))

    def _split(self, pages: bool = False) -> Tuple[bytes, bytes]:
        """The document around its entries (or, with ``pages``, around its pages: from after
        the pages' opening bracket to the entries' opening one)."""
        log: Dict[str, Any] = {"version": "1.2", "creator": creator(),
                               "pages": [_PLACEHOLDER] if pages else [],
                               "entries": [] if pages else [_PLACEHOLDER]}
        separators = (",", ":") if not self.indent else (",", ": ")
        text = json.dumps({"log": log}, indent=self.indent, separators=separators,
                          ensure_ascii=False).encode("utf-8")
        marker = b'"' + _PLACEHOLDER.encode() + b'"'
        at = text.index(marker)
        before = text[:at].rstrip()  # ends with "["
        after = text[at + len(marker):].lstrip()  # starts with "]"
        if pages:  # from the pages' "]" (pages_close) to the entries' "["
            after = after[1:]
            return before, after[:after.index(b"[", after.index(b'"entries"')) + 1]
        return before, self.pages_close[:-1] + after + b"\n"

    @property
    def pages_close(self) -> bytes:
        """What closes the pages (and, before the document's end, the entries)."""
        return b"\n" + b" " * (2 * (self.indent or 0)) + b"]"

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
        try:
            value = _fast_json().loads(compact)
        except ValueError:  # nested deeper than orjson reads (fewer levels in old releases)
            value = json.loads(compact)
        return self._padded(self._dumps(value))

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
            try:
                return orjson.dumps(value, option=orjson.OPT_INDENT_2)
            except TypeError:  # nested deeper than orjson writes (255 levels: a long chain of
                pass  # Chrome's _initiator parents, in a file harlem merge reads): json goes on
        return json.dumps(value, indent=self.indent, ensure_ascii=False).encode("utf-8")

    def write(self, write: Any, pages: List[Dict[str, Any]], entries: Iterable[bytes],
              compact_entries: bool = True, default_page: bool = True) -> int:
        """Stream a whole document through ``write``; return the number of entries written.

        ``entries`` yields serialised entries; compact ones (from a spool) are re-indented.
        """
        write(self.head(pages, default_page))
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
    layout = Layout(_detected_indent(data))
    candidate = data[:cut] + layout.tail
    try:
        document = _orjson.loads(candidate)
    except ValueError:  # a page torn while it was written into the head's room?
        candidate = _mend_pages(data[:start + 1], text, layout) + data[start + 1:cut] + layout.tail
        try:
            document = _orjson.loads(candidate)
        except ValueError:
            raise RepairError("no valid state found: the head of the file is damaged") from None
    _entry_count(document)
    return candidate, count


def _mend_pages(head: bytes, text: str, layout: Layout) -> bytes:
    """``head`` (up to the entries' "[") with the pages cut back to the last whole one, as a
    live file's head is after a page's write was torn: the page and the pages' "]" were
    being written over the spaces that follow it, and the rest of the head is as it was."""
    key = head.find(b'"pages":')
    opening = head.find(b"[", key)
    entries_key = head.rfind(b'"entries":')
    comma = head.rfind(b",", 0, entries_key)
    if key < 0 or opening < 0 or entries_key < 0 or comma < opening:
        return head
    decoder = json.JSONDecoder()
    pages = text[:comma]  # (the pages' torn end must not run into the rest of the head)
    cut = position = opening + 1
    while True:
        position = _skip_space(pages, position)
        try:
            page, end = decoder.raw_decode(pages, position)
        except (ValueError, RecursionError):
            break
        if not isinstance(page, dict) or not page:
            break
        cut = end
        position = _skip_space(pages, end)
        if pages[position:position + 1] != ",":
            break
        position += 1
    return head[:cut] + layout.pages_close + head[comma:]


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
