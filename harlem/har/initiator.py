"""Caller frames -> Chrome's ``_initiator``: which line of the user's code made the request.

Chrome writes ``{"type": "script", "stack": {"callFrames": [...]}}`` with 0-based line and
column numbers, a ``url`` per script and a ``scriptId``; harlem fills it from the
``code, lasti`` pairs the recorder captured per frame (one flat tuple), innermost first: which
of them are the program's own (:func:`~harlem.capture.visible_frames`) and the line and
column of each call are worked out here, not on the request path. Files become ``file://``
URLs (names such as ``<stdin>`` stay as they are); module-level code has the empty function
name, as top-level script code has in Chrome;
``scriptId`` is a small number per file, stable within the process. The column exists on
Python 3.11+ (``co_positions``), else 0. Exchanges without frames (served requests) get
``{"type": "other"}``.
"""

from __future__ import annotations

import dis
import itertools
import os
import pathlib
import sys
from typing import Any, Dict, List, Sequence, Tuple

from ..capture import _MAX_STACKS, visible_frames
from .bodies import clean_str

__all__ = ["initiator"]

_script_ids: Dict[str, str] = {}
_next_id = itertools.count(1)


def initiator(frames: Sequence[Any]) -> Dict[str, Any]:
    shown = visible_frames(frames)
    if not shown:
        return {"type": "other"}
    # visible_frames gives one list per distinct stack, kept while it is cached: its call
    # frames are looked up once for it (held here, the list's id is not reused meanwhile).
    known = _stacks.get(id(shown))
    if known is None or known[0] is not shown:
        if len(_stacks) >= _MAX_STACKS:  # no more than visible_frames keeps lists for
            _stacks.clear()
        known = _stacks[id(shown)] = (shown, [_call_frame(code, lasti) for code, lasti in shown])
    # Copies: an entry's consumers may change theirs.
    return {"type": "script", "stack": {"callFrames": [frame.copy() for frame in known[1]]}}


#: The call frames of each list :func:`visible_frames` returned, by the list's id.
_stacks: Dict[int, Tuple[Any, List[Dict[str, Any]]]] = {}


def _call_frame(code: Any, lasti: int) -> Dict[str, Any]:
    known = _call_frames.get((id(code), lasti))
    if known is None or known[0] is not code:
        known = _remember(code, lasti)
    return known[1]


#: Chrome's call frame for each (code, instruction) seen, keyed by ``id(code)``: a code
#: object's own hash is recomputed from its contents at every look-up. The entry holds the
#: code object, so its id is not reused while cached; emptied past _MAX_FRAMES.
_call_frames: Dict[Tuple[int, int], Tuple[Any, Dict[str, Any]]] = {}
_MAX_FRAMES = 4096


def _remember(code: Any, lasti: int) -> Tuple[Any, Dict[str, Any]]:
    if len(_call_frames) >= _MAX_FRAMES:
        _call_frames.clear()
    function, url, script_id = _code_info(code)
    line, column = _position(code, lasti)
    known = _call_frames[(id(code), lasti)] = (code, {
        "functionName": function,
        "scriptId": script_id,
        "url": url,
        "lineNumber": max(0, line - 1),
        "columnNumber": column,
    })
    return known


def _code_info(code: Any) -> Tuple[str, str, str]:
    """(function name, script URL, script id) of a code object."""
    name = getattr(code, "co_qualname", code.co_name)
    filename = code.co_filename
    script_id = _script_ids.get(filename)
    if script_id is None:
        script_id = _script_ids.setdefault(filename, str(next(_next_id)))
    return ("" if name == "<module>" else clean_str(name)), _file_url(filename), script_id


def _file_url(filename: str) -> str:
    if os.path.isabs(filename):
        try:
            return pathlib.Path(filename).as_uri()
        except ValueError:
            pass
    return clean_str(filename)


if sys.version_info >= (3, 11):

    def _position(code: Any, lasti: int) -> Tuple[int, int]:
        """(1-based line, 0-based column) of the instruction at byte offset ``lasti`` (one code
        unit is 2 bytes), as the frame's ``f_lineno`` would have said."""
        position = None
        if lasti >= 0:
            position = next(itertools.islice(code.co_positions(), lasti // 2, None), None)
        if position is None or position[0] is None:
            return code.co_firstlineno, 0
        return position[0], position[2] or 0

else:  # pragma: no cover - exercised on Python < 3.11

    def _position(code: Any, lasti: int) -> Tuple[int, int]:
        line = code.co_firstlineno
        for offset, start in dis.findlinestarts(code):
            if offset > lasti:
                break
            line = start
        return line, 0
