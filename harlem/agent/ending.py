"""The top process's last words when it recorded nothing: an empty HAR file and the summary.

A program that never imports an HTTP library must not pay for harlem's exporters at exit
either (they import orjson, tempfile and more: tens of milliseconds in a fresh interpreter), so
this module writes the empty document itself, with the standard library's ``os`` only.
"""

import os

from .._version import __version__

__all__ = ["summary_line", "write_empty_har"]


def summary_line(entries: int, failed: int, target: str,
                 retention: "float | None" = None) -> str:
    """``harlem: N entries (K failed) -> target``, the line printed on stderr at the end.

    With ``retention``, N counts what was recorded, not what the file still holds."""
    failures = f" ({failed} failed)" if failed else ""
    plural = "entry" if entries == 1 else "entries"
    kept = f" (retention: the last {retention:g} s)" if retention else ""
    return f"harlem: {entries} {plural}{failures} -> {target}{kept}"


def empty_har(indent: "int | None" = None) -> bytes:
    """A valid HAR with the default page and no entry, compact or indented like harlem's."""
    import time

    now = time.time()
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    creator = (("name", "harlem"), ("version", __version__))
    page = (("startedDateTime", started), ("id", "page_0"), ("title", "harlem recording"),
            ("pageTimings", (("onContentLoad", -1), ("onLoad", -1))))
    log = (("version", "1.2"), ("creator", creator), ("pages", [page]), ("entries", []))
    return (_dump((("log", log),), indent or 0, 0) + "\n").encode()


def _dump(members: tuple, indent: int, depth: int) -> str:
    """A JSON object of plain strings, ints, nested objects (tuples of pairs) and arrays of
    objects (lists): all that an empty HAR needs, and nothing that needs escaping."""
    items = [f'"{key}":{" " if indent else ""}{_value(value, indent, depth + 1)}' for key, value in members]
    return _join("{", items, "}", indent, depth)


def _value(value: object, indent: int, depth: int) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return _join("[", [_dump(item, indent, depth + 1) for item in value], "]", indent, depth) \
            if value else "[]"
    return _dump(value, indent, depth)  # type: ignore[arg-type]


def _join(opening: str, items: list, closing: str, indent: int, depth: int) -> str:
    if not indent:
        return opening + ",".join(items) + closing
    inner = "\n" + " " * (indent * (depth + 1))
    return opening + inner + ("," + inner).join(items) + "\n" + " " * (indent * depth) + closing


def write_empty_har(path: str, indent: "int | None" = None) -> None:
    """Write an empty HAR at ``path`` atomically (temporary file + rename), mode 0600; into
    ``/dev/null`` or a named pipe as it is (see :func:`harlem._fds.open_stream`)."""
    from .._fds import open_stream

    stream = open_stream(path)
    if stream is not None:
        with open(stream, "wb") as file:
            file.write(empty_har(indent))
        return
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, 0o600)
    if descriptor <= 2:  # a closed standard stream's number (checked here: no import otherwise)
        from .._fds import above_std_streams

        descriptor = above_std_streams(descriptor)
    try:
        with open(descriptor, "wb") as file:
            file.write(empty_har(indent))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
