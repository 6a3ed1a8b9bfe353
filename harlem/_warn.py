"""Warn once on stderr (and through ``logging``) when harlem itself fails.

harlem runs inside other people's programs: a failure of ours must never raise into theirs,
and must not flood their stderr either. Each distinct problem is reported once per process.
"""

from __future__ import annotations

import functools
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

_seen: set = set()
_lock = threading.Lock()


def warn_once(key: str, message: str, exc: BaseException | None = None) -> None:
    """Report ``message`` once per ``key``; never raises."""
    try:
        with _lock:
            if key in _seen:
                return
            _seen.add(key)
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        line = f"harlem: warning: {message}{detail}"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:
            pass
        import logging

        logger = logging.getLogger("harlem")
        if logger.hasHandlers():  # else logging's last resort would print the line twice
            logger.warning(line, exc_info=exc)
    except Exception:
        pass


def quietly(recorder: str) -> "Callable[[F], F]":
    """Decorate a recorder's bookkeeping step: a failure becomes one warning, never the
    program's exception, and the step returns ``None``. The request itself is unaffected."""

    def decorate(func: "F") -> "F":
        key = f"{recorder}-{func.__name__}"

        @functools.wraps(func)
        def guarded(*args: "Any", **kwargs: "Any") -> "Any":
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                warn_once(key, f"the {recorder} recorder failed ({func.__name__}); "
                               "the request itself is unaffected", exc)
                return None

        return guarded  # type: ignore[return-value]

    return decorate
