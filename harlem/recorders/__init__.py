"""One recorder per HTTP library, found by name and imported only when needed."""

from __future__ import annotations

import importlib
from typing import Dict, Iterable, List, Optional, Type

from .base import HarRecorder

__all__ = ["HarRecorder", "RECORDERS", "recorder_class", "available_recorders"]

#: ``--recorders`` name -> "module:class". The module imports its library only when patching.
RECORDERS: Dict[str, str] = {
    "requests": "harlem.recorders.requests:RequestsHarRecorder",
    "aiohttp": "harlem.recorders.aiohttp:AiohttpHarRecorder",
    "httpx": "harlem.recorders.httpx:HttpxHarRecorder",
    "asgi": "harlem.recorders.asgi:AsgiHarRecorder",
}


def recorder_class(name: str) -> Type[HarRecorder]:
    module, _, attribute = RECORDERS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def available_recorders(names: Optional[Iterable[str]] = None) -> List[Type[HarRecorder]]:
    """The recorder classes for ``names`` (default: all) whose library is installed."""
    chosen = [n for n in (names or RECORDERS) if n in RECORDERS]
    classes = [recorder_class(name) for name in chosen]
    return [cls for cls in classes if cls.is_available()]


def __getattr__(name: str) -> Type[HarRecorder]:
    for key, target in RECORDERS.items():
        if target.endswith(":" + name):
            return recorder_class(key)
    raise AttributeError(name)
