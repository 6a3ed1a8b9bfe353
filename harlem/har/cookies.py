"""Cookie and Set-Cookie headers -> HAR cookie objects, with small dedicated parsers.

``http.cookies`` rejects much of what real servers send and ``email`` is slow; browsers follow
RFC 6265, and so do these parsers: split on ``;``, the first ``=`` separates name and value,
attribute names are case-insensitive, unknown attributes are ignored. Expiry dates are read
with the RFC 6265 date algorithm, which accepts every HTTP-date form seen in the wild
(``Wed, 21 Oct 2026 07:28:00 GMT``, ``Wed, 21-Oct-26 07:28:00 GMT``, asctime). ``Max-Age``
wins over ``Expires`` and counts from the exchange's start; ``expires`` is written as ISO 8601.
"""

from __future__ import annotations

import calendar
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..pipeline import iso_time

__all__ = ["request_cookies", "response_cookie", "cookie_date", "cookie_pair"]

_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# RFC 6265 5.1.1: date tokens are runs of non-delimiter characters.
_DATE_TOKEN = re.compile(r"[^\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\D|$)")
_DAY = re.compile(r"(\d{1,2})(?:\D|$)")
_YEAR = re.compile(r"(\d{2,4})(?:\D|$)")
_MAX_AGE = re.compile(r"-?\d+")
# The latest instant ISO 8601 with a four-digit year can express.
_LAST_TIMESTAMP = 253402300799.0


def cookie_pair(pair: str) -> Tuple[str, str]:
    """``(name, value)`` of one ``name=value`` of a Cookie or Set-Cookie header, trimmed; a
    lone token is a value with an empty name (RFC 6265)."""
    name, eq, value = pair.partition("=")
    if not eq:
        name, value = "", name
    return name.strip(), value.strip()


def request_cookies(values: Iterable[str]) -> List[Dict[str, str]]:
    """The cookies of one or more Cookie header values, in order."""
    cookies = []
    for value in values:
        for pair in value.split(";"):
            name, cookie_value = cookie_pair(pair)
            if name or cookie_value:
                cookies.append({"name": name, "value": cookie_value})
    return cookies


def response_cookie(value: str, now: float) -> Dict[str, Any]:
    """One Set-Cookie header value as a HAR cookie; ``now`` is the wall time Max-Age counts from."""
    pair, _, attributes = value.partition(";")
    name, cookie_value = cookie_pair(pair)
    cookie: Dict[str, Any] = {"name": name, "value": cookie_value}
    expires: Optional[float] = None
    max_age: Optional[float] = None
    http_only = secure = False
    for attribute in attributes.split(";") if attributes else ():
        key, _, attr_value = attribute.partition("=")
        key = key.strip().lower()
        attr_value = attr_value.strip()
        if key == "path":
            cookie["path"] = attr_value
        elif key == "domain":
            cookie["domain"] = attr_value
        elif key == "expires":
            parsed = cookie_date(attr_value)
            expires = parsed if parsed is not None else expires
        elif key == "max-age" and _MAX_AGE.fullmatch(attr_value):
            # (any number of digits: past the last date a HAR can hold, it is that date)
            seconds = int(attr_value) if len(attr_value) <= 15 else \
                (-1 if attr_value.startswith("-") else _LAST_TIMESTAMP)
            max_age = min(now + seconds, _LAST_TIMESTAMP) if seconds > 0 else 0.0
        elif key == "httponly":
            http_only = True
        elif key == "secure":
            secure = True
        elif key == "samesite" and attr_value.lower() in _SAME_SITE:
            cookie["sameSite"] = _SAME_SITE[attr_value.lower()]
    moment = max_age if max_age is not None else expires
    if moment is not None:
        cookie["expires"] = iso_time(min(max(moment, 0.0), _LAST_TIMESTAMP))
    cookie["httpOnly"] = http_only
    cookie["secure"] = secure
    return cookie


def cookie_date(text: str) -> Optional[float]:
    """An Expires value as a UTC timestamp, or ``None`` when it is not a date (RFC 6265 5.1.1)."""
    clock = day = month = year = None
    for token in _DATE_TOKEN.findall(text):
        if clock is None:
            match = _TIME.match(token)
            if match:
                clock = tuple(int(part) for part in match.groups())
                continue
        if day is None:
            match = _DAY.match(token)
            if match:
                day = int(match.group(1))
                continue
        if month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS[token[:3].lower()]
            continue
        if year is None:
            match = _YEAR.match(token)
            if match:
                year = int(match.group(1))
    if clock is None or day is None or month is None or year is None:
        return None
    if year < 70:
        year += 2000
    elif year < 100:
        year += 1900
    hour, minute, second = clock
    if not (1 <= day <= 31 and year >= 1601 and hour <= 23 and minute <= 59 and second <= 59):
        return None
    try:
        if day > calendar.monthrange(year, month)[1]:  # 31 February: no such date
            return None
        return float(calendar.timegm((year, month, day, hour, minute, second)))
    except (OverflowError, ValueError):
        return None
