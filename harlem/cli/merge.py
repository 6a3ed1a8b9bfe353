"""``harlem merge -o out.har in1.har in2.har ...``: several HAR files into one.

Pages are kept once (the default page ``page_0``: the earliest), entries are ordered by
``startedDateTime``, and a torn live file is cut back to its last complete entry. The typical
use: adding the parts of children that outlived the recorded program::

    harlem merge -o out.har out.har out.har.parts/*.har
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..settings import Settings, SettingsError, add_arguments
from . import fail

PROG = "harlem merge"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "merge", help="merge HAR files into one",
        description="Merge HAR files into one: pages once, entries in startedDateTime order.")
    parser.add_argument("inputs", nargs="+", metavar="in.har", help="the HAR files to merge")
    add_arguments(parser, ["output", "indent", "quiet"], env=False)  # (flags only)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..agent.ending import summary_line
    from ..agent.merge import MergeError, merge_files

    try:
        settings = Settings.from_args(args)  # flags only, as documented
    except SettingsError as exc:
        return fail(PROG, str(exc))
    if not settings.output:
        return fail(PROG, "output: missing: pass -o/--output")
    try:
        counts = merge_files(args.inputs, settings.output, settings.indent)
    except MergeError as exc:
        return fail(PROG, str(exc))
    except OSError as exc:
        return fail(PROG, f"output: cannot write {settings.output!r}: {exc.strerror or exc}")
    if not settings.quiet:
        sys.stderr.write(summary_line(*counts, settings.output) + "\n")
    return 0
