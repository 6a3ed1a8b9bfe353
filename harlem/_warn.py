"""Warn once on stderr (and through ``logging``) when harlem itself fails.

harlem runs inside other people's programs: a failure of ours must never raise into theirs,
and must not flood their stderr either. Each distinct problem is reported once per process.
"""

from __future__ import annotations

import sys
import threading

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
