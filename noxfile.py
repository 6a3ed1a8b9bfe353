"""The version matrix: the recorder suites against the oldest and the newest supported release of
every library harlem records or depends on, on the oldest and the newest supported Python.

    pip install nox
    nox -l                                   # the sessions
    nox -s oldest-3.9 newest-3.13            # some of them
    nox                                      # all of them
    nox -s oldest-3.9 -- -x -k aiohttp       # what follows -- goes to pytest

"oldest" installs harlem's test extra under the pins of .ci/constraints-oldest.txt (per Python:
each library's oldest release that installs there); "newest" lets pip take the newest release of
everything. The browser and HAR-consumer tests are not part of the matrix: they test the readers
of HAR files, not the libraries harlem records, and have a CI step of their own.

"newest" also runs on the Pythons in between: ``nox -s newest --force-python 3.11``.

Interpreters: nox looks for ``python3.X`` on PATH. pyenv's shims answer there only for the
versions selected in pyenv, so every Python installed in pyenv's versions folder is put on PATH
first. A Python that cannot be found fails its session (it is not skipped).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List

import nox

nox.needs_version = ">=2025.10.14"  # nox.options.download_python
nox.options.error_on_missing_interpreters = True  # a skipped Python would pass, proving nothing
nox.options.download_python = "never"  # the matrix tests the interpreters of this machine

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / ".ci" / "constraints-oldest.txt"

#: The oldest and the newest Python harlem supports (setup.cfg: python_requires).
PYTHONS = ["3.9", "3.13"]

#: The suites that drive the recorders, the HAR builder and the exporters through real traffic.
SUITES = [
    "tests/test_requests_recorder.py",
    "tests/test_aiohttp_recorder.py",
    "tests/test_httpx_recorder.py",
    "tests/test_asgi.py",
    "tests/test_record.py",
    "tests/test_build.py",
    "tests/test_exporters.py",
    "tests/test_cli.py",
    "tests/test_agent.py",
]

#: Imported before the tests, and their versions printed: the suites skip a library they cannot
#: import, and a matrix that skipped one would pass without testing it.
LIBRARIES = ["wrapt", "orjson", "pydantic", "requests", "urllib3", "aiohttp", "httpx", "httpcore",
             "starlette", "fastapi"]


def _put_pyenv_pythons_on_path() -> None:
    """Put pyenv's ``versions/X.Y.Z/bin`` folders on PATH, the newest patch release first."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    releases = []
    for folder in root.glob("*"):
        if re.fullmatch(r"\d+\.\d+\.\d+", folder.name) and (folder / "bin" / "python").exists():
            releases.append((tuple(int(part) for part in folder.name.split(".")), folder / "bin"))
    folders = [str(path) for _, path in sorted(releases, reverse=True)]
    os.environ["PATH"] = os.pathsep.join(folders + [os.environ.get("PATH", "")])


_put_pyenv_pythons_on_path()

#: Imports each module named after it and prints its distribution's version.
_SHOW_VERSIONS = ("import importlib, importlib.metadata as m, sys; print(', '.join("
                  "importlib.import_module(n) and f'{n} {m.version(n)}' for n in sys.argv[1:]))")


def _run_suites(session: nox.Session, install: List[str]) -> None:
    session.install(*install)
    session.run("python", "-c", _SHOW_VERSIONS, *LIBRARIES)
    session.run("python", "-m", "pytest", "-q", "-rfEs", *SUITES, *session.posargs)


@nox.session(python=PYTHONS)
def oldest(session: nox.Session) -> None:
    """The recorder suites with every library at its oldest supported release."""
    if session.python not in PYTHONS:  # nox --force-python: the pins would not all apply
        session.error(f"{CONSTRAINTS.name} has pins for Python {' and '.join(PYTHONS)} only")
    _run_suites(session, ["-c", str(CONSTRAINTS), f"{ROOT}[test]"])


@nox.session(python=PYTHONS)
def newest(session: nox.Session) -> None:
    """The recorder suites with every library at its newest release."""
    _run_suites(session, [f"{ROOT}[test]"])
