"""The recorder base: reference-counted patching of one HTTP library.

A recorder subclass knows how to read one library (which functions to wrap, where the raw
facts are); this base knows everything else: patching is installed when the first recorder of
a library starts and removed when the last one stops, so two recordings at once both receive
every entry and stopping the last one leaves the library exactly as it was.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Type, TypeVar

from .. import pipeline
from ..settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from ..exporters.base import HarExporter

__all__ = ["HarRecorder", "unwrap_all"]

_patch_lock = threading.RLock()
#: The recorder's own class, for type checkers: ``RequestsHarRecorder(...).start()`` is one.
_Self = TypeVar("_Self", bound="HarRecorder")


class HarRecorder:
    """Records one HTTP library's exchanges into ``exporter`` while started.

    Use as a context manager or call :meth:`start`/:meth:`stop` (any number of times).
    ``settings`` (or keyword options such as ``redact=False``) shape the entries built for
    this recorder.
    """

    #: The library's import name; also the name used by ``--recorders``.
    library: ClassVar[str] = ""
    #: The module whose presence means the library is installed.
    module_name: ClassVar[str] = ""

    def __init__(self, exporter: "HarExporter", settings: Optional[Settings] = None,
                 **options: Any):
        from ..exporters.base import HarExporter

        if not isinstance(exporter, HarExporter):
            raise TypeError(f"exporter must be a HarExporter, not {type(exporter).__name__}")
        self.exporter = exporter
        base = settings or Settings()
        self.settings: Settings = base.replace(**options) if options else base
        self.receiving = False

    @classmethod
    def is_available(cls) -> bool:
        """True when the library this recorder reads is installed (without importing it)."""
        try:
            return importlib.util.find_spec(cls.module_name or cls.library) is not None
        except (ImportError, ValueError):
            return False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self: _Self) -> _Self:
        """Patch the library (if no other recorder of it did), start the exporter, and
        receive the library's exchanges from now on; return the recorder."""
        if self.receiving:
            return self
        self.exporter.start()  # first: if it cannot start, the library stays untouched
        cls = type(self)
        try:
            with _patch_lock:
                if _users_of(cls) == 0:
                    cls._instrument()
                _add_user(cls, 1)
        except BaseException:
            self.exporter.stop()
            raise
        self.receiving = True
        try:
            pipeline.attach(self)
        except BaseException:  # undone whole: the library unpatched, the exporter stopped
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Export what is owed (exchanges still in flight as they stand), stop the exporter,
        and unpatch the library once no recorder of it is left."""
        if not self.receiving:
            return
        self.receiving = False
        pipeline.detach(self)
        cls = type(self)
        with _patch_lock:
            _add_user(cls, -1)
            if _users_of(cls) == 0:
                cls._uninstrument()
        self.exporter.stop()

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- what a library's recorder provides ------------------------------------------------

    @classmethod
    def _instrument(cls) -> None:
        """Install this library's patches (called once, when the first recorder starts)."""
        raise NotImplementedError

    @classmethod
    def _uninstrument(cls) -> None:
        """Remove every patch :meth:`_instrument` installed."""
        unwrap_all(cls)

    @classmethod
    def _wrap_all(cls, patches: List[Any]) -> None:
        """Wrap every ``(owner, name, wrapper)``, all or nothing: if one fails, the ones
        this call installed are removed, so the library is never left half patched."""
        before = len(_patches_of(cls))
        try:
            for owner, name, wrapper in patches:
                cls._wrap(owner, name, wrapper)
        except BaseException:
            unwrap_all(cls, keep=before)
            raise

    @classmethod
    def _wrap_more(cls, patches: List[Any]) -> bool:
        """Install patches found to be needed while recording (removed with the others at
        the last stop). ``False`` when no recorder of the library is started any more."""
        with _patch_lock:
            if _users_of(cls) == 0:
                return False
            cls._wrap_all(patches)
            return True

    @classmethod
    def _wrap(cls, owner: Any, name: str, wrapper: Any) -> None:
        """Wrap ``owner.name`` with a ``wrapt`` wrapper and remember how to undo it."""
        import wrapt

        from ..capture import register_library_path

        register_library_path(wrapt)
        own = _own_attribute(owner, name)
        patches, stranded = _patches_of(cls), _stranded_of(cls)
        for patch in stranded:
            if patch[0] is owner and patch[1] == name and patch[3] is own:
                # Our own wrapper from an earlier recording, put back by whoever had replaced
                # it (a mock that saved it): taken back as it is, not wrapped a second time,
                # which would record each exchange twice.
                stranded.remove(patch)
                patches.append(patch)
                return
        target = getattr(owner, name) if own is _INHERITED else own
        patched = wrapt.FunctionWrapper(target, wrapper)
        setattr(owner, name, patched)
        patches.append((owner, name, own, patched))


_INHERITED = object()  # marks a patched attribute that the owner only inherited


def _own_attribute(owner: Any, name: str) -> Any:
    """What ``owner`` (a class, or a module) holds as ``name`` itself: ``_INHERITED`` for a
    class attribute it only inherits."""
    return vars(owner).get(name, _INHERITED) if isinstance(owner, type) \
        else getattr(owner, name, _INHERITED)

# Reference counts and patch lists live per library's recorder class, not on the shared base.
_users: Dict[Type[HarRecorder], int] = {}
_patch_lists: Dict[Type[HarRecorder], List[Any]] = {}
#: Patches that could not be undone because someone else's replacement stood in their place
#: (a test's mock, another instrumentation): that someone may put ours back later.
_stranded_lists: Dict[Type[HarRecorder], List[Any]] = {}


def _users_of(cls: Type[HarRecorder]) -> int:
    return _users.get(_library_root(cls), 0)


def _add_user(cls: Type[HarRecorder], delta: int) -> None:
    root = _library_root(cls)
    _users[root] = _users.get(root, 0) + delta


def _library_root(cls: Type[HarRecorder]) -> Type[HarRecorder]:
    """The class that owns the patches for ``cls.library`` (subclasses share it)."""
    for klass in reversed(cls.__mro__):
        if issubclass(klass, HarRecorder) and getattr(klass, "library", "") == cls.library \
                and klass.__dict__.get("_instrument") is not None:
            return klass
    return cls


def _patches_of(cls: Type[HarRecorder]) -> List[Any]:
    return _patch_lists.setdefault(_library_root(cls), [])


def _stranded_of(cls: Type[HarRecorder]) -> List[Any]:
    return _stranded_lists.setdefault(_library_root(cls), [])


def unwrap_all(cls: Type[HarRecorder], keep: int = 0) -> None:
    """Put back every original that ``cls`` wrapped, newest first (all but the first
    ``keep`` patches).

    Where someone else has replaced our wrapper since (another instrumentation, a test's
    monkeypatch), theirs stays: ours, left underneath, does nothing once nobody records. It
    is remembered as stranded: if its replacement later puts it back (a mock that ends), the
    next start takes it back instead of wrapping it again, and a later unwrap removes it.
    """
    patches = _patches_of(cls)
    stranded = _stranded_of(cls)
    for patch in list(stranded):  # put back since: removed now
        if _unwrap(*patch):
            stranded.remove(patch)
    while len(patches) > keep:
        patch = patches.pop()
        if not _unwrap(*patch):
            stranded.append(patch)


def _unwrap(owner: Any, name: str, original: Any, patched: Any) -> bool:
    """Put ``original`` back where ``patched`` stands; ``False`` when something else does."""
    if _own_attribute(owner, name) is not patched:
        return False
    if original is _INHERITED:
        delattr(owner, name)
    else:
        setattr(owner, name, original)
    return True
