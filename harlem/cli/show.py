"""``harlem show``: turn a HAR file into an offline HTML report (or a terminal table).

``harlem show x.har`` writes ``x.html`` next to the HAR (mode 0600: a HAR holds secrets),
prints its path on stderr and opens it in the default browser when there is a display.
``harlem show --text x.har`` prints a table on stdout instead. Nothing else is ever printed on
stdout, so ``--text`` output can be piped.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

__all__ = ["register", "run"]

_PROG = "harlem show"


def register(subparsers: Any) -> None:
    """Add the ``show`` subcommand to an ``argparse`` subparsers object (sets ``func=run``)."""
    parser = subparsers.add_parser(
        "show",
        help="view a HAR file as an HTML waterfall report or a terminal table",
        description=(
            "Write a self-contained, offline HTML report of a HAR file (summary, waterfall, "
            "request details) and open it in the browser, or print a table with --text."
        ),
    )
    parser.add_argument("har", help="the HAR file to show")
    parser.add_argument(
        "-o",
        "--output",
        metavar="report.html",
        help="where to write the HTML report (default: next to the HAR, <name>.html)",
    )
    parser.add_argument("--no-open", action="store_true", help="write the report but do not open a browser")
    parser.add_argument(
        "--text",
        action="store_true",
        help="print a table on stdout instead of writing an HTML report",
    )
    parser.set_defaults(func=run)


def _fail(action: str, path: str, reason: str) -> int:
    print(f"{_PROG}: cannot {action} '{path}': {reason}", file=sys.stderr)
    return 2


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _read_har(path: str) -> Any:
    from ..har.lenient import loads

    with open(path, "rb") as f:
        data = f.read()
    data = data.removeprefix(codecs.BOM_UTF8)  # some tools save HAR files with one
    har = loads(data)
    if not isinstance(har, dict) or not isinstance(har.get("log"), dict):
        raise ValueError('not a HAR file (no "log" object)')
    if not isinstance(har["log"].get("entries", []), list):
        raise ValueError('not a HAR file ("log.entries" is not a list)')
    return har


def _default_output(har_path: str) -> Path:
    src = Path(har_path)
    out = src.with_name(src.stem + ".html") if src.suffix else src.with_name(src.name + ".html")
    with contextlib.suppress(OSError):
        if out.exists() and out.samefile(src):
            out = src.with_name(src.stem + ".report.html")
    return out


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable and writable by the owner only."""
    from ..exporters.files import atomic_write

    data = text.encode("utf-8")
    atomic_write(path, lambda write: write(data))


def _has_display() -> bool:
    if sys.platform in ("win32", "cygwin", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr meanwhile: a launched browser must not write to stdout."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _open_in_browser(path: Path) -> bool:
    import webbrowser

    try:
        with _stdout_to_stderr():
            return bool(webbrowser.open(path.resolve().as_uri()))
    except Exception:  # noqa: BLE001 - a browser that fails to start is not an error of ours
        return False


def _stdout_color() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _print_stdout(text: str) -> None:
    out = sys.stdout
    if out is None:  # started with its stdout closed (">&-")
        raise OSError(errno.EBADF, "standard output is closed")
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "ascii"
        out.write(text.encode(encoding, "replace").decode(encoding, "replace"))
    out.flush()


def run(args: argparse.Namespace) -> int:
    """Carry out ``harlem show``; returns the exit status (0 done, 2 a file could not be used)."""
    har_path: str = args.har
    try:
        har = _read_har(har_path)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported in one line
        return _fail("read", har_path, _reason(exc))

    if getattr(args, "text", False):
        from harlem.report.text import render_text

        width: Optional[int] = None
        color = _stdout_color()
        try:
            if sys.stdout.isatty():
                width = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = None
        try:
            _print_stdout(render_text(har, color=color, width=width))
        except BrokenPipeError:  # "| head": the reader has what it wanted
            sys.stdout = None  # (no second failure when Python flushes it at exit)
        except OSError as exc:
            return _fail("write the table to", "stdout", _reason(exc))
        return 0

    from harlem.report.html import render_html

    out = Path(args.output) if getattr(args, "output", None) else _default_output(har_path)
    with contextlib.suppress(OSError):
        if out.exists() and out.samefile(har_path):  # one typo would lose the recording
            return _fail("write", str(out), "it is the HAR file being shown; choose another -o")
    try:
        document = render_html(har, title=Path(har_path).name)
    except Exception as exc:  # noqa: BLE001
        return _fail("render", har_path, _reason(exc))
    try:
        _write_private(out, document)
    except OSError as exc:
        return _fail("write", str(out), _reason(exc))
    print(f"{_PROG}: wrote {out}", file=sys.stderr)

    if not getattr(args, "no_open", False):
        if not _has_display():
            print(f"{_PROG}: no display found; open the report in a browser yourself", file=sys.stderr)
        elif not _open_in_browser(out):
            print(f"{_PROG}: could not start a browser; open the report yourself", file=sys.stderr)
    return 0


def _main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="harlem")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["show", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(_main())
