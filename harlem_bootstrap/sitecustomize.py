"""harlem's agent, started by Python's ``site`` module: ``harlem-run`` puts this folder first on
``PYTHONPATH``. It activates the agent, then runs the program's own ``sitecustomize`` (the next
one along ``sys.path``) exactly as Python would have without harlem, failures included."""

import os
import sys


def _activate() -> None:
    try:
        from harlem.agent.bootstrap import activate
    except Exception as exc:  # harlem is not importable by this interpreter
        sys.stderr.write(f"harlem: warning: not recording: {type(exc).__name__}: {exc}\n")
    else:
        activate()


def _run_next_sitecustomize() -> None:
    from importlib.machinery import PathFinder

    here = os.path.dirname(os.path.abspath(__file__))
    folders = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    start = folders.index(here) + 1 if here in folders else 0
    later = [entry for entry, folder in zip(sys.path[start:], folders[start:]) if folder != here]
    spec = PathFinder.find_spec("sitecustomize", later)
    if spec is None or spec.loader is None:
        return
    from importlib.util import module_from_spec

    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # the import system keeps it once this module ends
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("sitecustomize", None)
        raise


if os.environ.get("HARLEM_OUTPUT"):  # else not even harlem is imported
    _activate()
_run_next_sitecustomize()
