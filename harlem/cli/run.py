"""``harlem-run [options] [--] command [args...]``: record any program without editing it.

Validates the options (flags first, then the ``HARLEM_*`` variables they override), puts the
agent's ``sitecustomize`` first on ``PYTHONPATH``, and *replaces itself* with the command
(``exec``): the program keeps harlem-run's pid, receives signals directly and exits with its own
status. Every Python process the command starts, directly or not, is recorded; see
docs/agent.md. Options end at the command: ``harlem-run -o out.har python app.py -o x`` gives
``-o x`` to ``app.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import List, Mapping, Optional, Tuple

from ..agent.bootstrap import OUTPUT_VARIABLE, TOP_OUTPUT_VARIABLE, TOP_PID_VARIABLE
from ..settings import OPTIONS, Settings, SettingsError, add_arguments
from . import ArgumentParser, fail

__all__ = ["main", "prepare", "UsageError"]

PROG = "harlem-run"


class UsageError(ValueError):
    """Bad input to harlem-run: one line, nothing started."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG, usage="%(prog)s [options] [--] command [args...]",
        description="Run a program and record the HTTP traffic of every Python process it "
        "starts into a HAR file. Each option can also be set by its HARLEM_* variable.")
    add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the program and its arguments, e.g. 'python app.py'")
    return parser


def _version() -> str:
    from .._version import __version__

    return __version__


def prepare(argv: List[str], environ: Mapping[str, str]) -> Tuple[str, List[str], dict]:
    """``(executable path, argv, environment)`` for the program; :class:`UsageError` if bad."""
    from ..exporters.files import check_writable

    args = build_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("missing command: harlem-run [options] [--] command [args...]")
    env = dict(environ)
    try:
        given = Settings.from_args(args)
        for option in OPTIONS:  # a flag overrides its variable, even with the default value
            if getattr(args, option.name, None) is not None:
                env.pop(option.env, None)
        env.update(given.to_env())
        settings = Settings.from_env(env)  # with the inherited variables, named if bad
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    if not settings.output:
        raise UsageError(f"output: missing: pass -o/--output or set {OUTPUT_VARIABLE}")
    output = os.path.abspath(settings.output)
    try:
        check_writable(output)
    except OSError as exc:
        raise UsageError(f"output: cannot write {output!r}: {exc}") from None
    env[OUTPUT_VARIABLE] = output
    # A new recording: its first Python process (the program, or the first one a launcher such
    # as ``env``, ``timeout`` or ``sh -c`` starts) is the top, whoever started harlem-run.
    env.pop(TOP_PID_VARIABLE, None)
    env.pop(TOP_OUTPUT_VARIABLE, None)
    env["PYTHONPATH"] = _python_path(env.get("PYTHONPATH", ""))
    return _find(command[0], env), command, env


def _python_path(current: str) -> str:
    """``PYTHONPATH`` with the agent's folder first, once (and no empty entry added)."""
    import harlem_bootstrap

    ours = os.path.dirname(os.path.abspath(harlem_bootstrap.__file__))
    rest = [entry for entry in current.split(os.pathsep) if entry != ours] if current else []
    return os.pathsep.join([ours] + rest)


def _find(name: str, env: Mapping[str, str]) -> str:
    """The command's executable: searched on PATH, or a path when it contains a separator."""
    if os.sep in name or (os.altsep and os.altsep in name):
        if not os.path.isfile(name):
            raise UsageError(f"command not found: {name}")
        if not os.access(name, os.X_OK):
            raise UsageError(f"command is not executable: {name}")
        return name
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise UsageError(f"command not found: {name}")
    return found


def main(argv: Optional[List[str]] = None) -> int:
    from ..agent.bootstrap import stand_down

    stand_down()  # this launcher records nothing itself: the program it runs does
    try:
        path, command, env = prepare(sys.argv[1:] if argv is None else list(argv), os.environ)
    except UsageError as exc:
        return fail(PROG, str(exc))
    settings = Settings.from_env(env)
    if not settings.redact and not settings.quiet:
        from .main import REDACTION_OFF_NOTE

        sys.stderr.write(REDACTION_OFF_NOTE + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, command, env)
    except OSError as exc:
        return fail(PROG, f"cannot run {command[0]!r}: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
