"""Reading ``startedDateTime``: ISO 8601 as HAR writers write it, on every Python version.

harlem writes ``2026-12-07T21:20:01.123Z``; other tools write 7 fractional digits (Fiddler),
one or two, none, ``+02:00``, ``+0530`` or a space for the ``T``. ``datetime.fromisoformat``
reads only some of these before Python 3.11, so the tools that order or place entries in
time (``harlem merge``, ``harlem show``, a live file's retention) read them here.
"""

from __future__ import annotations

import calendar
import re
from typing import Any, Optional

__all__ = ["epoch_ms"]

_DATE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


def epoch_ms(value: Any) -> Optional[float]:
    """An ISO 8601 date as Unix time in milliseconds (sub-millisecond precision kept); None
    when ``value`` is not one. A date without a zone is read as UTC."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        seconds = calendar.timegm((int(match[1]), int(match[2]), int(match[3]), int(match[4]),
                                   int(match[5]), int(match[6] or 0), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    ms = seconds * 1000.0 + (float(match[7]) * 1000 if match[7] else 0.0)
    zone = match[8]
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        hours = int(zone[1:3])
        minutes = int(zone[-2:]) if len(zone) > 3 else 0
        ms -= sign * (hours * 60 + minutes) * 60000
    return ms
