"""``harlem pkg.module:func out.har [options]`` and its subcommands (show, merge, repair).

Runs a function under a recording of every installed HTTP library and writes the HAR when it
returns, raises or is interrupted (Ctrl-C, SIGTERM, SIGHUP). Bad input (an unknown module, a
bad option value, an unwritable output) is one line on stderr and exit code 2; the function's
own exceptions keep their traceback and exit code, after the HAR is written.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from typing import Any, Callable, List, Optional

from ..agent.signals import ExportOnce, export_before_death
from ..settings import OPTIONS, Settings, SettingsError, add_arguments
from . import ArgumentParser, fail

PROG = "harlem"
REDACTION_OFF_NOTE = ("harlem: note: redaction is off: the HAR will hold credentials "
                      "(Authorization, cookies, API keys) in clear text")
#: Subcommand name -> module with ``register(subparsers)``.
SUBCOMMANDS = {
    "show": "harlem.cli.show",
    "merge": "harlem.cli.merge",
    "repair": "harlem.cli.repair",
}


def run_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Run a Python function and record its HTTP traffic into a HAR file. "
        "Other commands: " + ", ".join(f"'{PROG} {name} --help'" for name in SUBCOMMANDS) + ".",
    )
    parser.add_argument("target", metavar="pkg.module:func",
                        help="the function to run, resolved like 'python -m' (current folder first)")
    parser.add_argument("output", metavar="out.har", help="where to write the HAR file")
    add_arguments(parser, [o.name for o in OPTIONS if o.name != "output"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def _version() -> str:
    from .._version import __version__

    return __version__


def main(argv: Optional[List[str]] = None) -> Any:
    from ..agent.bootstrap import stand_down

    stand_down()  # a HARLEM_OUTPUT left in the shell is not for harlem's own commands
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        parser = ArgumentParser(prog=PROG)
        subparsers = parser.add_subparsers(dest="command")
        importlib.import_module(SUBCOMMANDS[argv[0]]).register(subparsers)
        args = parser.parse_args(argv)
        return args.func(args)
    return run(run_parser().parse_args(argv))


class TargetError(Exception):
    """The target cannot be found: bad input. Not what its module raises while importing,
    which is the program's own failure (its traceback, exit status 1)."""


def resolve(target: str) -> Callable[..., Any]:
    """``pkg.module:func`` (or ``pkg.module:obj.method``) -> the callable."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise TargetError(f"target: {target!r} is not of the form pkg.module:func")
    if module_name.startswith("."):  # relative to nothing: importlib would raise TypeError
        raise TargetError(f"target: {target!r} names a relative module; give its full name")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as 'python -m' does
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(f"target: cannot find module {module_name!r}") from None
        raise
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TargetError(f"target: module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(value):
        raise TargetError(f"target: {target!r} is not callable")
    return value


def run(args: Any) -> Any:
    from ..exporters.files import check_writable
    from ..recording import Recording, file_exporter

    try:
        # (the output is the positional argument: a HARLEM_OUTPUT left in the shell is not it)
        from ..agent.bootstrap import OUTPUT_VARIABLE

        environ = {k: v for k, v in os.environ.items() if k != OUTPUT_VARIABLE}
        options = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "output"})
        settings = Settings.from_args(options, environ)
    except SettingsError as exc:
        return fail(PROG, str(exc))
    try:
        settings = settings.replace(output=args.output)
    except SettingsError as exc:  # named as --help shows it: this command has no --output
        return fail(PROG, f"out.har: invalid value {exc.value!r} ({exc.expected})")
    try:
        check_writable(settings.output)
    except OSError as exc:
        return fail(PROG, f"output: cannot write {settings.output!r}: {exc}")
    try:
        function = resolve(args.target)
    except TargetError as exc:
        return fail(PROG, str(exc))
    if not settings.redact:
        sys.stderr.write(REDACTION_OFF_NOTE + "\n")

    recording = Recording(file_exporter(settings), settings)
    try:
        recording.start()
    except OSError as exc:
        return fail(PROG, f"output: cannot write {settings.output!r}: {exc}")
    ending = ExportOnce(_stopper(recording, settings))
    restore_signals = export_before_death(ending)
    try:
        result = function()
        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_await(result))
    finally:
        ending.run()
        restore_signals()
    # An int is the exit code, as with console scripts; any other return value means success.
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _stopper(recording: Any, settings: Settings) -> Callable[[], None]:
    """What ends the recording, once: when the function ends, or before SIGTERM or SIGHUP
    ends the process (the file is written, then the signal kills it as it would have: 143 in
    a shell). The handler does not unwind the function (an ``except BaseException`` in it
    would swallow that, and the program would go on where it would have died): it exports
    where it is."""

    pid = os.getpid()

    def stop() -> None:
        recording.stop()
        # (a process the function forked ends here too: it wrote nothing, so it says nothing)
        if not settings.quiet and not recording.export_failed and os.getpid() == pid:
            sys.stderr.write(recording.summary(settings.output) + "\n")

    return stop


async def _await(awaitable: Any) -> Any:
    return await awaitable
