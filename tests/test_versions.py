"""The declared version floors (setup.cfg) are the versions the oldest-version matrix installs
(.ci/constraints-oldest.txt, on noxfile.py's Pythons), so that every floor harlem declares is one
that was tested."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path
from typing import Dict, List

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _matrix_pythons() -> List[str]:
    """noxfile.py's ``PYTHONS`` (read, not imported: nox need not be installed)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PYTHONS"
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py has no PYTHONS")


OLDEST_PYTHON = _matrix_pythons()[0]


def _declared() -> Dict[str, List[Requirement]]:
    """setup.cfg's requirements: ``{"install_requires": [...], "<extra>": [...]}``."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    groups = {"install_requires": config["options"]["install_requires"]}
    groups.update(config["options.extras_require"])
    return {group: [Requirement(line) for line in text.splitlines()
                    if line.strip() and not line.strip().startswith("#")]
            for group, text in groups.items()}


def _constraints() -> List[Requirement]:
    lines = (ROOT / ".ci" / "constraints-oldest.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def _pins(python: str) -> Dict[str, Version]:
    """``{name: version}`` the constraints pin on that Python (``X.Y``)."""
    pins = {}
    for requirement in _constraints():
        if requirement.marker is None or requirement.marker.evaluate({"python_version": python}):
            (spec,) = requirement.specifier
            assert spec.operator == "==", requirement
            pins[requirement.name] = Version(spec.version)
    return pins


def _floor(requirement: Requirement) -> Version:
    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(floors) == 1, f"{requirement}: one >= floor expected"
    return floors[0]


def test_the_oldest_python_of_the_matrix_is_the_python_requires_floor() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options"]["python_requires"].strip() == f">={OLDEST_PYTHON}"


def test_every_dependency_and_recorded_library_is_pinned_at_its_floor() -> None:
    pins = _pins(OLDEST_PYTHON)
    checked = set()
    for group, requirements in _declared().items():
        for requirement in requirements:
            if group == "test" and requirement.name not in pins:
                continue  # a test tool: pip takes its newest release that fits
            assert requirement.name in pins, f"{group}: {requirement} has no oldest pin"
            assert _floor(requirement) == pins[requirement.name], \
                f"setup.cfg [{group}] {requirement} but the oldest run tests " \
                f"{requirement.name}=={pins[requirement.name]}"
            checked.add(requirement.name)
    assert {"wrapt", "orjson", "pydantic", "requests", "aiohttp", "httpx", "starlette",
            "fastapi"} <= checked


@pytest.mark.parametrize("python", _matrix_pythons())
def test_every_python_of_the_matrix_pins_the_same_libraries_no_older(python: str) -> None:
    # A library pinned for one Python only would silently run at its newest on the others.
    oldest, pins = _pins(OLDEST_PYTHON), _pins(python)
    assert set(pins) == set(oldest)
    assert all(version >= oldest[name] for name, version in pins.items())


def test_the_constraints_name_only_pythons_of_the_matrix() -> None:
    named = {str(r.marker) for r in _constraints() if r.marker is not None}
    assert named <= {f'python_version == "{python}"' for python in _matrix_pythons()}
