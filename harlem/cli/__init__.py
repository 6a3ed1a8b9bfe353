"""Command-line tools: ``harlem`` (run, show, merge, repair) and ``harlem-run`` (the agent)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def fail(prog: str, message: str, code: int = 2) -> int:
    """Report a bad input as one line on stderr and return the exit code."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code
