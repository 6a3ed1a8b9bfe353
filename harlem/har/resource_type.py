"""Chrome's ``_resourceType`` from the response's media type.

Viewers filter by it (Doc, CSS, JS, Img, Font, Media, Fetch/XHR). A program's requests are not
page loads, so everything that is not an obvious document, style sheet, script, image, font or
media file counts as ``fetch``; an exchange that failed without a response is ``other``.
"""

from __future__ import annotations

import functools

__all__ = ["resource_type"]


@functools.lru_cache(maxsize=256)
def resource_type(mime: str, failed: bool) -> str:
    """``mime`` is the lowercased media type without parameters ("" when unknown)."""
    if failed:
        return "other"
    if mime in ("text/html", "application/xhtml+xml"):
        return "document"
    if mime == "text/css":
        return "stylesheet"
    if "javascript" in mime or "ecmascript" in mime:
        return "script"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("font/") or "font-" in mime or "woff" in mime:
        return "font"
    if mime.startswith(("audio/", "video/")):
        return "media"
    return "fetch"
