"""Metadata lives in setup.cfg. This file only ships ``harlem.pth`` at the root of the wheel,
so that installing harlem puts it into site-packages (see docs/agent.md)."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "harlem.pth"


class BuildWithPth(build_py):
    """build_py that also copies harlem.pth into the build root (which becomes site-packages)."""

    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), PTH),
                       os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildWithPth})
