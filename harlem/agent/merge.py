"""Merge HAR files into one: what ``harlem merge`` and the agent's top process do.

The output lists every page once and every entry once, in ``startedDateTime`` order (an entry
identical to one already taken, from an input given twice or a merge run again, is left out;
a leading UTF-8 BOM is allowed). Inputs are
read one at a time and their entries spooled, compact, to an anonymous file beside the output;
only a small index (start time, offset, length) stays in memory, and the output is streamed
from the spool. An input that is a torn live file (its writer was killed mid-write) is cut back
to its last complete entry.

Pages: every harlem process has the default page ``page_0``; the merged file keeps one, the
earliest. Other pages with the same id and the same start and title are the same page (a forked
child inherits the pages its parent had open) and are kept once; a different page whose id is
already taken is renamed ``<id>-<pid>`` (the pid of the file's entries), and so are the
``pageref`` of that file's entries.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import orjson

from .._fds import open_anonymous
from ..exporters.files import atomic_write
from ..exporters.layout import Layout, RepairError, repair
from ..har.dates import epoch_ms
from ..har.lenient import loads
from ..pipeline import DEFAULT_PAGE_ID, DEFAULT_PAGE_TITLE

__all__ = ["MergeError", "merge_files", "read_har"]


class MergeError(ValueError):
    """An input that cannot be read as a HAR file; ``str()`` is one line naming the file."""

    def __init__(self, path: str, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


def read_har(path: str) -> Dict[str, Any]:
    """The HAR document in ``path``; a torn live file is cut back to its last complete entry."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise MergeError(path, exc.strerror or str(exc)) from None
    data = data.removeprefix(codecs.BOM_UTF8)  # some tools save HAR files with one
    try:
        document = loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            raise MergeError(path, "its JSON is nested too deeply to read") from None
        try:
            document = orjson.loads(repair(data)[0])
        except RepairError:
            raise MergeError(path, "not a HAR file (nor a torn harlem live file)") from None
    log = document.get("log") if isinstance(document, dict) else None
    if not isinstance(log, dict) or not _objects(log.get("entries", [])) \
            or not _objects(log.get("pages", [])):
        raise MergeError(path, "not a HAR file")
    return document


def _dumps(entry: Dict[str, Any], path: str) -> bytes:
    """``entry`` as JSON: orjson stops at 255 levels of nesting (a long chain of Chrome's
    ``_initiator`` parents), where Python's json module goes on."""
    try:
        return orjson.dumps(entry)
    except TypeError:
        import json

        try:
            return json.dumps(entry, separators=(",", ":")).encode("ascii")
        except (RecursionError, ValueError, TypeError):
            raise MergeError(path, "an entry is nested too deeply to write") from None


def _objects(items: Any) -> bool:
    """An array of objects, as HAR's pages and entries are."""
    return isinstance(items, list) and all(isinstance(item, dict) for item in items)


def merge_files(inputs: Sequence[str], output: str, indent: Optional[int] = None,
                on_bad_input: Optional[Callable[[MergeError], None]] = None,
                keep_since: Optional[float] = None) -> Tuple[int, int]:
    """Write the HAR file ``output`` from ``inputs``; return ``(entries, failed entries)``.
    With ``keep_since`` (a Unix time), entries that started before it are left out.

    ``output`` may be one of the inputs (it is replaced atomically at the end). An unreadable
    input raises :class:`MergeError`, or is left out after ``on_bad_input(error)`` when given.
    """
    folder = os.path.dirname(os.path.abspath(output))
    pages: Dict[str, Dict[str, Any]] = {}
    index: List[Tuple[float, int, int, int]] = []  # (start, order, offset, length)
    seen: Set[bytes] = set()  # a digest of each entry taken
    failed = 0
    with open_anonymous(folder, ".harlem-merge-") as spool:
        for path in inputs:
            try:
                log = read_har(path)["log"]
            except MergeError as exc:
                if on_bad_input is None:
                    raise
                on_bad_input(exc)
                continue
            entries = log.get("entries") or []
            renamed = _add_pages(pages, log.get("pages") or [], _owner(entries, path))
            for entry in entries:
                started = _timestamp(entry)
                if keep_since is not None and started < keep_since:
                    continue
                if renamed and entry.get("pageref") in renamed:
                    entry["pageref"] = renamed[entry["pageref"]]
                data = _dumps(entry, path)
                digest = hashlib.blake2b(data, digest_size=16).digest()
                if digest in seen:  # the same entry again: an input given twice, a merge rerun
                    continue
                seen.add(digest)
                index.append((started, len(index), spool.tell(), len(data)))
                spool.write(data)
                failed += _is_failed(entry)
            del log, entries  # one input in memory at a time
        index.sort()

        def spooled() -> Any:
            for _, _, offset, length in index:
                spool.seek(offset)
                yield spool.read(length)

        ordered = sorted(pages.values(), key=_timestamp)
        # (no page is made up: HAR's pages are optional, and many tools write none)
        atomic_write(output, lambda write: Layout(indent).write(write, ordered, spooled(),
                                                                default_page=False))
    return len(index), failed


def _add_pages(pages: Dict[str, Dict[str, Any]], incoming: List[Dict[str, Any]],
               owner: str) -> Dict[str, str]:
    """Add ``incoming`` pages to ``pages``; return the renames (old id -> new id)."""
    renamed: Dict[str, str] = {}
    for page in incoming:
        page_id = str(page.get("id"))
        kept = pages.get(page_id)
        if kept is None:
            pages[page_id] = page
        elif _is_default(page) and _is_default(kept):  # every harlem recording has one
            if _timestamp(page) < _timestamp(kept):
                pages[page_id] = page
        elif not _same_page(kept, page):
            new_id = f"{page_id}-{owner}"
            number = 1
            while new_id in pages and not _same_page(pages[new_id], page):
                number += 1
                new_id = f"{page_id}-{owner}-{number}"
            pages.setdefault(new_id, dict(page, id=new_id))  # (renamed by an earlier merge)
            renamed[page_id] = new_id
    return renamed


def _is_default(page: Dict[str, Any]) -> bool:
    """harlem's default page; another tool's ``page_0`` (the HAR spec's example has one) is a
    page like any other."""
    return page.get("id") == DEFAULT_PAGE_ID and page.get("title") == DEFAULT_PAGE_TITLE


def _same_page(one: Dict[str, Any], other: Dict[str, Any]) -> bool:
    """Pages with the same start and title are one page, whatever their ids."""
    return (one.get("startedDateTime"), one.get("title")) == \
        (other.get("startedDateTime"), other.get("title"))


def _owner(entries: List[Dict[str, Any]], path: str) -> str:
    """What tells this file's pages apart: its process id, else its file name."""
    for entry in entries:
        if isinstance(entry, dict) and entry.get("_pid") is not None:
            return str(entry["_pid"])
    return os.path.basename(path).split(".")[0]


def _timestamp(item: Dict[str, Any]) -> float:
    """``startedDateTime`` as a Unix time; unreadable dates sort last."""
    started = epoch_ms(item.get("startedDateTime")) if isinstance(item, dict) else None
    return float("inf") if started is None else started / 1000


def _is_failed(entry: Dict[str, Any]) -> bool:
    try:
        return entry["response"]["status"] == 0
    except (KeyError, TypeError):
        return False

