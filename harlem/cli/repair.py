"""``harlem repair FILE``: restore a live HAR torn by a crash to its last valid state.

Live files are written so that a kill at any moment loses at most the entry being written;
this cuts the file back to the last complete entry. The file is replaced atomically.
"""

from __future__ import annotations

import codecs
import sys
from typing import Any

from . import fail

DESCRIPTION = ("Restore a live HAR file torn by a crash: cut it back to its last complete entry. "
               "The file is replaced atomically (or written to -o).")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("repair", help="cut a torn live HAR back to its last complete entry",
                                   description=DESCRIPTION)
    parser.add_argument("har", help="the HAR file to repair")
    parser.add_argument("-o", "--output", help="write the repaired HAR here (default: in place)")
    parser.set_defaults(func=run)


def run(args: Any) -> int:
    from ..exporters.files import atomic_write
    from ..exporters.layout import RepairError, repair

    try:
        with open(args.har, "rb") as source:
            data = source.read()
    except OSError as exc:
        return fail("harlem repair", f"cannot read {args.har!r}: {exc.strerror or exc}")
    data = data.removeprefix(codecs.BOM_UTF8)  # some tools save HAR files with one
    try:
        repaired, entries = repair(data)
    except RepairError as exc:
        return fail("harlem repair", f"{args.har}: {exc}")
    output = args.output or args.har
    if repaired is data and output == args.har:
        sys.stderr.write(f"harlem repair: {args.har} is already valid ({entries} entries)\n")
        return 0
    try:
        atomic_write(output, lambda write: write(repaired))
    except OSError as exc:
        return fail("harlem repair", f"cannot write {output!r}: {exc.strerror or exc}")
    cut = len(data) - len(repaired)
    sys.stderr.write(f"harlem repair: kept {entries} entries, cut {max(cut, 0)} bytes -> {output}\n")
    return 0
