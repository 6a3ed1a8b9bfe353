"""Reports of a recorded HAR: a self-contained HTML page and a terminal table.

:func:`render_html` returns one offline HTML document (summary, waterfall, per-request details)
and :func:`render_text` a plain table for the terminal. Both take a parsed HAR 1.2 ``dict``.
"""

from __future__ import annotations

from .html import render_html
from .text import render_text

__all__ = ["render_html", "render_text"]
