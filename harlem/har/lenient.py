"""Reading HAR files other tools wrote, which JSON parsers do not all agree on."""

from __future__ import annotations

from typing import Any

__all__ = ["loads"]


def loads(data: bytes) -> Any:
    """``data`` parsed as JSON, with lone UTF-16 surrogate escapes read as U+FFFD, and nested
    deeper than ``orjson`` reads.

    A browser that cuts a body in the middle of an emoji can write ``"\\ud83d"`` alone: valid
    JSON text, which Python's ``json`` and browsers read, but not a Unicode string, so
    ``orjson`` refuses the whole file. A long chain of Chrome's ``_initiator`` parents can
    be deeper than ``orjson`` goes (a few hundred levels, fewer in older releases). What
    ``orjson`` refuses is read with ``json`` (each string made valid: the half character
    becomes U+FFFD); an error ``json`` has too is ``orjson``'s.
    """
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # (its messages differ between releases: any)
        import json

        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            raise exc from None
        try:
            return _valid(document)
        except RecursionError:  # too deep to walk: as it is
            return document


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_valid(item) for item in value]
    if isinstance(value, dict):
        return {_valid(key): _valid(item) for key, item in value.items()}
    return value
