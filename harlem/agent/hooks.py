"""A minimal post-import hook: call back when a chosen module has finished executing.

The agent must not slow a program's start-up, so this uses neither wrapt's import hooks nor
``importlib.util``. One finder at the front of ``sys.meta_path`` answers only for the trigger
modules: it lets the finders behind it find the module, then shadows ``exec_module`` on that
module's loader instance so the callback runs right after the module's own code, still inside
the import. The program therefore never sees the module before it is instrumented, whichever
thread imports it and however late. The loader keeps its type (``isinstance`` checks, resource
readers and ``__loader__`` are unchanged) and loses the shadowing attribute once the module ran.
"""

import sys

TYPE_CHECKING = False  # typing costs start-up time; type checkers read the block below
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from typing import Callable, Iterable, Optional

__all__ = ["PostImportFinder", "install", "uninstall"]


class PostImportFinder:
    """Calls ``callback(name)`` once a module named in ``triggers`` has been executed."""

    def __init__(self, triggers: "Iterable[str]", callback: "Callable[[str], None]") -> None:
        self.triggers = frozenset(triggers)
        self.callback = callback

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> "Optional[ModuleSpec]":
        if fullname not in self.triggers:
            return None
        spec = self._find_elsewhere(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run_module = getattr(loader, "exec_module", None)
        if run_module is None or isinstance(loader, type):
            return spec  # a legacy or class-level loader: shadowing it would affect other modules
        callback = self.callback

        def exec_module(module):
            if getattr(module, "__spec__", None) is not spec:  # a loader shared by several modules
                return run_module(module)
            try:
                run_module(module)
            finally:
                if vars(loader).get("exec_module") is exec_module:
                    del loader.exec_module
            callback(fullname)

        try:
            loader.exec_module = exec_module  # type: ignore[method-assign]  # on this instance
        except (AttributeError, TypeError):
            pass  # a loader without instance attributes: the module is imported unrecorded
        return spec

    def _find_elsewhere(self, fullname: str, path: object,
                        target: object) -> "Optional[ModuleSpec]":
        """The spec the finders behind this one would return (None if they find nothing)."""
        finders = sys.meta_path
        try:
            later = finders[finders.index(self) + 1:]
        except ValueError:  # removed from sys.meta_path meanwhile
            later = [finder for finder in finders if finder is not self]
        for finder in later:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                return spec
        return None


def install(triggers: "Iterable[str]", callback: "Callable[[str], None]") -> PostImportFinder:
    """Watch ``triggers`` (module names): ``callback(name)`` runs when one has been imported,
    right away for those already imported."""
    finder = PostImportFinder(triggers, callback)
    sys.meta_path.insert(0, finder)
    for name in sorted(finder.triggers):
        if name in sys.modules:
            callback(name)
    return finder


def uninstall(finder: "Optional[PostImportFinder]") -> None:
    """Stop watching: take ``finder`` off ``sys.meta_path``, if it is still there (and if
    there is one: at interpreter shutdown a recording may stop after it is gone)."""
    finders = sys.meta_path
    if finder is None or not finders:
        return
    try:
        finders.remove(finder)
    except ValueError:  # taken off already (another thread, the program itself)
        pass
