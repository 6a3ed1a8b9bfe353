"""Activation: turn a program's start into a recording without touching its code.

:func:`activate` runs during the interpreter's start-up, from ``harlem_bootstrap/sitecustomize.py``
(``harlem-run`` puts that folder first on ``PYTHONPATH``) or from ``harlem.pth`` (installed into
site-packages; it acts only when ``HARLEM_OUTPUT`` is set). Every program pays for it, so it does
little and imports next to nothing: it reads the settings, then installs a post-import finder for
the HTTP libraries, an ``atexit`` handler, SIGTERM/SIGHUP handlers and an ``os._exit`` wrapper.
The recording itself (exporter, recorders, wrapt) is created when the program first imports an
HTTP library, or at exit when it imported none (the HAR file is then empty but valid).

The first process to activate is the *top* process: it writes the HAR file, and tells its
descendants so through ``HARLEM_TOP_PID``. Every other process (a subprocess, a multiprocessing
worker, a forked copy) writes a part file that the top merges at its exit: see
:mod:`harlem.agent.children`.
"""

import atexit
import os
import sys

from .signals import ExportOnce

TYPE_CHECKING = False  # typing costs start-up time; type checkers read the block below
if TYPE_CHECKING:
    from typing import Any, Dict, NoReturn, Optional, Tuple

    from ..recording import Recording
    from ..settings import Settings

__all__ = ["activate", "stand_down", "active_agent", "parts_folder", "TOP_PID_VARIABLE",
           "TOP_OUTPUT_VARIABLE", "OUTPUT_VARIABLE"]

#: Set by the top process for its descendants: the pid that writes the HAR file, and that file.
#: A descendant whose own ``HARLEM_OUTPUT`` is another file starts a recording of its own.
TOP_PID_VARIABLE = "HARLEM_TOP_PID"
TOP_OUTPUT_VARIABLE = "HARLEM_TOP_OUTPUT"
#: Set by a top process that replaces itself with ``os.exec*``: the HAR file it wrote, which
#: the program that follows (the same pid, so the top again) takes over if it is recorded.
EXEC_OUTPUT_VARIABLE = "HARLEM_EXEC_OUTPUT"
OUTPUT_VARIABLE = "HARLEM_OUTPUT"
#: Set by the first process that found the ``HARLEM_*`` settings bad: the message it will give.
#: Its descendants, which inherit the same settings, say nothing more (one line in all).
BAD_SETTINGS_VARIABLE = "HARLEM_BAD_SETTINGS"

#: Beside the output, the folder where the processes other than the top write their parts.
PARTS_SUFFIX = ".parts"

_activated = False
_agent: "Optional[Agent]" = None
_real_exit = os._exit
_real_execv = os.execv
_real_execve = os.execve


#: How long the top, ended by a signal, waits for its children's parts (see Agent.on_signal).
PARTS_WAIT_SECONDS = 2.0


class Agent:
    """One process's recording, created lazily and finished once, whatever the ending."""

    def __init__(self, settings: "Settings", output: str, top_pid: int) -> None:
        self.settings = settings
        self.output = output  # absolute, as settings.output
        self.top_pid = top_pid
        self.recording: "Optional[Recording]" = None
        #: Exports once, signals held meanwhile; its lock also keeps a library from starting
        #: to record while the export runs.
        self.ending = ExportOnce(self._export)
        #: True once the recording could not be made (its output cannot be written): said
        #: once then, not a second time at exit.
        self.broken = False
        #: What :func:`stand_down` undoes: the signal handlers and the post-import finder.
        self.installed: "Tuple[Any, ...]" = ()
        #: True once a terminating signal ends this process (see :meth:`on_signal`).
        self.signalled = False
        from ..settings import KNOWN_RECORDERS, trigger_modules

        self.triggers: "Dict[str, str]" = trigger_modules(settings.recorders or KNOWN_RECORDERS)

    @property
    def is_top(self) -> bool:
        return os.getpid() == self.top_pid

    def library_imported(self, module: str) -> None:
        """The post-import callback: record the library that ``module`` belongs to."""
        name = self.triggers[module]
        if self.broken:  # the recording could not be made: said once, not once a library
            return
        try:
            from ..recorders import RECORDERS, recorder_class

            if name not in RECORDERS:  # no recorder for it in this version of harlem
                return
            cls = recorder_class(name)
            with self.ending.lock:
                if not self.ending.done:
                    self._recording().start_library(cls)
        except Exception as exc:
            self.broken = self.broken or self.recording is None
            _warn(f"agent-{name}", f"not recording {name}", exc)

    def _recording(self) -> "Recording":
        if self.recording is None:
            from .children import new_recording

            self.recording = new_recording(self.settings, self.is_top)
            if not self.is_top:  # a pool worker's SIGTERM must not be lost (see signals.watch)
                from .signals import watch

                watch()
        return self.recording

    def finish(self) -> None:
        """Export what this process recorded: the HAR file (top) or the part (child). Once."""
        self.ending.run()

    def on_signal(self, signum: int) -> bool:
        """The signal handlers' way in: to the ending of the moment (a forked child and a
        failed exec start a new one). A signal often reaches a whole process group (a closed
        terminal, ``timeout``, a service stopped): the top then gives its children, exporting
        at the same moment, a moment to finish their parts before it merges them."""
        self.signalled = True
        return self.ending.on_signal(signum)

    def _export(self) -> None:
        if self.broken and self.recording is None:
            return  # its warning said so already: no second one for the same file
        try:
            counts = None
            if self.recording is not None or (self.is_top and os.path.isdir(
                    parts_folder(self.output))):
                from .children import finish

                counts = finish(self.recording, self.settings, self.is_top,
                                wait_for_parts=PARTS_WAIT_SECONDS if self.signalled else 0.0)
            failed = self.recording is not None and self.recording.export_failed
            if self.is_top and not failed:  # (the failure was said: no success line)
                self._last_words(counts)
        except Exception as exc:
            _warn("agent-finish", f"could not write {self.output}", exc)
        finally:
            _keep_ctrl_c_status()

    def before_exec(self, environ: "Any") -> "Any":
        """``os.exec*`` is about to replace this program: nothing of it runs afterwards, so its
        file is written now (a child's part, the top's HAR). The top's file is then handed to
        the program that follows, through ``environ``, the environment it will start with."""
        self.finish()
        if self.is_top and environ.get(OUTPUT_VARIABLE) == self.output \
                and os.path.isfile(self.output):
            if environ is not os.environ:
                environ = dict(environ)
            environ[EXEC_OUTPUT_VARIABLE] = self.output
        return environ

    def after_failed_exec(self) -> None:
        """The exec failed (``OSError``) and the program goes on: what was written stays, and
        recording starts again, from the same libraries. The top's file becomes a finished
        part, merged back into it with what follows at the exit, as after an exec that worked
        (:func:`.children.adopt`)."""
        self.recording = None
        self.ending = ExportOnce(self._export)
        try:
            if self.is_top:
                from .children import adopt

                adopt(self.output)
        except Exception as exc:
            _warn("agent-exec", "not recording after a failed exec", exc)
            return
        for module in self.triggers:  # the libraries imported so far
            if module in sys.modules:
                self.library_imported(module)

    def _last_words(self, counts: "Optional[Tuple[int, int]]") -> None:
        """The top's summary line; first an empty HAR if nothing was recorded nor merged.

        Without an HTTP library, nothing heavy is imported, at exit either.
        """
        from .ending import summary_line, write_empty_har

        if counts is None:
            write_empty_har(self.output, self.settings.indent)
            counts = (0, 0)
        if not self.settings.quiet:
            sys.stderr.write(summary_line(*counts, self.output, self.settings.retention_seconds)
                             + "\n")
            sys.stderr.flush()

    def after_fork_in_child(self) -> None:
        """A forked child records its own traffic, into its own part, from the same libraries.

        Runs after :mod:`harlem.pipeline` dropped the parent's listeners and backlog.
        """
        self.ending = ExportOnce(self._export)  # (its lock may have been held by a thread)
        from .signals import forget_watch

        forget_watch()
        inherited, self.recording = self.recording, None
        if inherited is None:
            return
        libraries = [type(recorder) for recorder in inherited.recorders]
        inherited.stop()  # in a forked child this only lets go: the parent owns that file
        try:
            for cls in libraries:
                self._recording().start_library(cls)
        except Exception as exc:
            _warn("agent-fork", "not recording this forked process", exc)


def activate() -> None:
    """Start the agent in this process, at most once; never raises.

    Does nothing when ``HARLEM_OUTPUT`` is unset. Any failure (a bad ``HARLEM_*`` value, for
    example) is one ``harlem: warning:`` line on stderr and the program runs unrecorded.
    """
    global _activated, _agent
    if _activated:
        return
    _activated = True
    try:
        _agent = _start(os.environ)
    except Exception as exc:
        _warn("agent", "not recording", exc)


def parts_folder(output: str) -> str:
    """Where the processes recording into ``output`` write their parts."""
    return output + PARTS_SUFFIX


def active_agent() -> "Optional[Agent]":
    """This process's agent, or None when the agent is not recording."""
    return _agent


def _start(environ: "Any") -> "Optional[Agent]":
    if not environ.get(OUTPUT_VARIABLE):
        return None
    from ..settings import Settings, SettingsError

    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        return _refuse(environ, exc)
    if settings.output is None:
        return None
    output = os.path.abspath(settings.output)
    from .._fds import check_writable

    try:  # (before any library is imported: a missing folder is one line, not one a library)
        check_writable(output)
    except OSError as exc:
        return _refuse(environ, exc)
    try:
        top_pid = int(environ.get(TOP_PID_VARIABLE) or 0)
    except ValueError:
        top_pid = 0
    if environ.get(TOP_OUTPUT_VARIABLE) != output:
        top_pid = 0  # a recorded program runs another with its own HARLEM_OUTPUT: a new top
    if top_pid <= 0:  # the first process: descendants write parts beside our output
        top_pid = os.getpid()
        environ[TOP_PID_VARIABLE] = str(top_pid)
        environ[TOP_OUTPUT_VARIABLE] = output
        environ[OUTPUT_VARIABLE] = output
    if environ.get(EXEC_OUTPUT_VARIABLE):
        if environ.pop(EXEC_OUTPUT_VARIABLE) == output and top_pid == os.getpid():
            from .children import adopt  # (a rare start: it may import more)

            adopt(output)
    agent = Agent(settings.replace(output=output), output, top_pid)
    from . import hooks, signals

    atexit.register(agent.finish)
    os._exit = _exit
    os.execv, os.execve = _execv, _execve
    try:
        restore_signals = signals.install(agent.on_signal)
    except ValueError:  # activated from a thread: signals can only be handled in the main one
        restore_signals = None
    agent.installed = (restore_signals, hooks.install(agent.triggers, agent.library_imported))
    return agent


def _refuse(environ: "Any", problem: Exception) -> None:
    """Record nothing: ``problem`` (a bad ``HARLEM_*`` value, an output that cannot be
    written) is one warning at exit, from the first process that met it. Its descendants,
    which inherit the same environment, say nothing more."""
    message = f"not recording: {problem}"
    if environ.get(BAD_SETTINGS_VARIABLE) == message:
        return  # a process above this one says it
    environ[BAD_SETTINGS_VARIABLE] = message
    # Said at exit, not now: a launcher in the same environment (harlem-run itself, run
    # with a variable its own flag overrides) replaces itself by exec and must stay silent.
    atexit.register(_warn, "agent", message)


def stand_down() -> None:
    """No agent in this process: it runs one of harlem's own commands.

    A ``HARLEM_OUTPUT`` left set in the shell must not make ``harlem show out.har`` end by
    writing an empty recording over ``out.har``, nor ``harlem app:main out.har`` record its
    traffic twice. Child processes still get the variables they inherit.
    """
    global _agent
    agent, _agent = _agent, None
    atexit.unregister(_warn)  # a bad HARLEM_* value: the command says it itself, once
    if agent is None:
        return
    atexit.unregister(agent.finish)
    os._exit = _real_exit
    os.execv, os.execve = _real_execv, _real_execve
    restore_signals, finder = agent.installed
    if restore_signals is not None:
        restore_signals()
    from .hooks import uninstall

    uninstall(finder)
    if os.environ.get(TOP_PID_VARIABLE) == str(agent.top_pid) and agent.is_top:
        # not the top of anything: a child may be its own
        for variable in (TOP_PID_VARIABLE, TOP_OUTPUT_VARIABLE):
            os.environ.pop(variable, None)


def _keep_ctrl_c_status() -> None:
    """After an uncaught ``KeyboardInterrupt``, let the process still die of SIGINT.

    CPython notes that the program ended on Ctrl-C and, once ``atexit`` is done, ends the
    process by SIGINT (status -2, 130 in a shell). But running a string of code (``exec`` or
    ``eval`` of text, as importing ``dataclasses`` does, and orjson imports it) clears the note,
    and the export at exit may import. So when the program's own unhandled exception was a
    ``KeyboardInterrupt``, the note is set again the only way Python offers: by running a
    string that raises it.
    """
    value = getattr(sys, "last_value", None)
    trace = getattr(sys, "last_traceback", None)
    if type(value) is not KeyboardInterrupt or trace is None:
        return
    if trace.tb_frame.f_globals.get("__name__") not in ("__main__", "runpy"):
        return  # shown by an interactive console (``code``), not the end of the program
    try:
        exec("raise KeyboardInterrupt")  # noqa: S102 - a constant string
    except KeyboardInterrupt:
        pass


def _exit(status: int) -> "NoReturn":
    """``os._exit`` (multiprocessing's way out of a child, among others), after the export."""
    agent = _agent
    if agent is not None:
        agent.finish()
    _real_exit(status)


def _execv(path: "Any", argv: "Any") -> "NoReturn":
    """``os.execv`` (and through it ``execl``, ``execlp``, ``execvp``), after the export."""
    _before_exec(path, os.environ)
    try:
        _real_execv(path, argv)
    finally:  # only when the exec failed: the program goes on, its environment as it was
        os.environ.pop(EXEC_OUTPUT_VARIABLE, None)
        _after_failed_exec()


def _execve(path: "Any", argv: "Any", env: "Any") -> "NoReturn":
    """``os.execve`` (and through it ``execle``, ``execlpe``, ``execvpe``), after the export."""
    try:
        _real_execve(path, argv, _before_exec(path, env))
    finally:
        _after_failed_exec()


def _after_failed_exec() -> None:
    agent = _agent
    if agent is not None and agent.ending.done:  # (written for this exec: record again)
        agent.after_failed_exec()


def _before_exec(path: "Any", environ: "Any") -> "Any":
    agent = _agent
    if agent is None:
        return environ
    try:
        # execvp tries each folder of PATH in turn: only the one that can run is the exec
        if not isinstance(path, int) and not (os.access(path, os.X_OK)
                                              and not os.path.isdir(path)):
            return environ
        return agent.before_exec(environ)
    except Exception as exc:
        _warn("agent-exec", "could not write the recording before exec", exc)
        return environ


def _warn(key: str, message: str, exc: "Optional[BaseException]" = None) -> None:
    from .._warn import warn_once

    warn_once(key, message, exc)
