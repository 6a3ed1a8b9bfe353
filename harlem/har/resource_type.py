"""Chrome's ``_resourceType`` from the response's media type.

Viewers filter by it (Doc, CSS, JS, Img, Font, Media, Fetch/XHR). A program's requests are not
page loads, so everything that is not an obvious document, style sheet, script, image, font or
media file counts as ``fetch``; an exchange that failed without a response is ``other``, and
a switch to WebSocket (101) is ``websocket``.
"""

from __future__ import annotations

import functools

__all__ = ["resource_type"]


def resource_type(mime: str, failed: bool, status: int = 0) -> str:
    """``mime`` is the lowercased media type without parameters ("" when unknown); a 101
    (Switching Protocols) is a WebSocket handshake, as Chrome files it."""
    if status == 101:
        return "websocket"
    return _by_media_type(mime, failed)


@functools.lru_cache(maxsize=256)
def _by_media_type(mime: str, failed: bool) -> str:
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
