"""A strict pydantic v2 model of HAR 1.2.

Why strict: the model is the first line of the validator, and a HAR file that other tools
load must have the JSON types the specification names. So numbers must be numbers (never
booleans or numeric strings), integers must be integers (``3.0`` is not a byte count),
NaN and infinities are refused, and dates must be ISO 8601 strings that really parse.

Unknown keys are refused too, with one exception: keys starting with ``_`` are the
documented way to extend HAR (Chrome writes ``_initiator``, ``_resourceType``,
``_transferSize``...; harlem writes ``_pid``, ``_direction``, ``_truncated``...). They are
kept verbatim in :attr:`HarObject.extensions` and written back by ``model_dump``.

Python names are snake_case; the HAR (camelCase) names are aliases, and only the aliases
are accepted on input, so that a snake_case key in a HAR file is an unknown key and not a
silent synonym. Dump with ``model_dump(by_alias=True, exclude_none=True)`` (or
:meth:`Har.to_dict`) to get HAR JSON back.

The model checks one field at a time; rules that relate several fields (the sum of the
timings, ``pageref`` targets, body sizes...) live in :mod:`harlem.har.validate`.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Dict, List, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "HarObject",
    "Har",
    "Log",
    "Creator",
    "Browser",
    "Page",
    "PageTimings",
    "Entry",
    "Request",
    "Response",
    "Header",
    "QueryParam",
    "Cookie",
    "PostData",
    "PostParam",
    "Content",
    "Cache",
    "CacheEntry",
    "Timings",
    "DEFAULT_PAGE_ID",
    "DEFAULT_PAGE_TITLE",
    "parse_iso_datetime",
    "format_iso_datetime",
]

#: The page that :meth:`Har.from_entries` creates when the caller gave none.
DEFAULT_PAGE_ID = "page_0"
DEFAULT_PAGE_TITLE = "harlem recording"

# ---------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------

# ISO 8601 extended format. The offset is optional in the regular expression and required
# by the callers that need it (HAR's startedDateTime and cookie expiry are RFC 3339
# date-times, which always carry an offset; the cache entries' dates may omit it).
_ISO_RE = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d\d)-(?P<d>\d\d)"
    r"T(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d\d:\d\d)?"
)


def parse_iso_datetime(value: str, *, require_offset: bool = True) -> datetime:
    """Parse an ISO 8601 date-time such as ``2024-05-01T12:00:00.123+02:00``.

    Written by hand instead of using :meth:`datetime.fromisoformat` because, before
    Python 3.11, that refuses ``Z`` and fractions other than 3 or 6 digits, all of which
    are legal in HAR files. Raises :class:`ValueError` with a readable reason.
    """
    match = _ISO_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss[.fff]±hh:mm): {value!r}")
    tz_text = match.group("tz")
    if tz_text is None:
        if require_offset:
            raise ValueError(f"date-time lacks a time zone offset ('Z' or ±hh:mm): {value!r}")
        tz = None
    elif tz_text == "Z":
        tz = timezone.utc
    else:
        sign = -1 if tz_text[0] == "-" else 1
        hours, minutes = int(tz_text[1:3]), int(tz_text[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad time zone offset in {value!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    frac = match.group("frac") or "0"
    micros = int((frac + "000000")[:6])
    try:
        return datetime(
            int(match.group("y")),
            int(match.group("mo")),
            int(match.group("d")),
            int(match.group("h")),
            int(match.group("mi")),
            int(match.group("s")),
            micros,
            tzinfo=tz,
        )
    except ValueError as exc:  # e.g. month 13, February 30th
        raise ValueError(f"impossible date-time {value!r}: {exc}") from None


def format_iso_datetime(moment: datetime) -> str:
    """Format ``moment`` (naive means UTC) the way browsers write HAR dates: ms and ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _check_datetime(value: str) -> str:
    parse_iso_datetime(value, require_offset=True)
    return value


def _check_loose_datetime(value: str) -> str:
    parse_iso_datetime(value, require_offset=False)
    return value


def _check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"must be a bare IPv4 or IPv6 address (no brackets, no port): {value!r}"
        ) from None
    return value


_DIGITS_RE = re.compile(r"[0-9]+")


def _check_digits(value: str) -> str:
    if not _DIGITS_RE.fullmatch(value):
        raise ValueError(f"must be a string of digits (a connection id or port): {value!r}")
    return value


#: An RFC 3339 date-time string (offset required).
IsoDateTime = Annotated[str, AfterValidator(_check_datetime)]
#: An ISO 8601 date-time string whose offset may be omitted (cache entries).
LooseIsoDateTime = Annotated[str, AfterValidator(_check_loose_datetime)]
IpAddress = Annotated[str, AfterValidator(_check_ip)]
DigitString = Annotated[str, AfterValidator(_check_digits)]
def _compact_number(value: float) -> Any:
    """Dump whole milliseconds as integers (``-1``, not ``-1.0``), as browsers do."""
    return int(value) if value.is_integer() else value


_Number = Annotated[float, PlainSerializer(_compact_number)]

#: A byte count, or -1 when unknown.
Size = Annotated[int, Field(ge=-1)]
#: A timing phase in ms that may be -1 (does not apply).
OptionalPhase = Annotated[_Number, Field(ge=-1)]
#: A timing phase in ms that always applies.
Phase = Annotated[_Number, Field(ge=0)]


# ---------------------------------------------------------------------------------------
# Base class: strictness and ``_`` extensions
# ---------------------------------------------------------------------------------------


def _is_extension(key: object) -> bool:
    return isinstance(key, str) and key.startswith("_")


class HarObject(BaseModel):
    """Common behaviour of every HAR object.

    ``extra="forbid"`` makes pydantic report unknown keys with their exact location; the
    wrap validator takes the ``_`` keys out first, so that only non-extension unknown keys
    are refused, and keeps them in :attr:`extensions`.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        alias_generator=to_camel,
    )

    _extensions: Dict[str, Any] = PrivateAttr(default_factory=dict)

    comment: Optional[str] = None

    @model_validator(mode="wrap")
    @classmethod
    def _split_extensions(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        extensions: Dict[str, Any] = {}
        if isinstance(data, dict):
            extensions = {key: value for key, value in data.items() if _is_extension(key)}
            if extensions:
                data = {key: value for key, value in data.items() if key not in extensions}
        model = handler(data)
        if extensions:
            model._extensions = extensions
        return model

    @model_serializer(mode="wrap")
    def _dump_with_extensions(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Dict[str, Any]:
        out: Dict[str, Any] = handler(self)
        if "comment" in out:  # the spec lists ``comment`` last everywhere; follow it
            out["comment"] = out.pop("comment")
        for key, value in self._extensions.items():
            if value is None and info.exclude_none:
                continue
            out[key] = value
        return out

    @property
    def extensions(self) -> Dict[str, Any]:
        """The ``_``-prefixed keys of this object, exactly as given (a live dict)."""
        return self._extensions


# ---------------------------------------------------------------------------------------
# HAR 1.2 objects (http://www.softwareishard.com/blog/har-12-spec/)
# ---------------------------------------------------------------------------------------


class Creator(HarObject):
    """The program that wrote the log."""

    name: str
    version: str


class Browser(HarObject):
    """The browser that made the requests, when there was one."""

    name: str
    version: str


class PageTimings(HarObject):
    """Page load milestones in ms since ``page.startedDateTime``; -1 when unknown."""

    on_content_load: Optional[OptionalPhase] = None
    on_load: Optional[OptionalPhase] = None


class Page(HarObject):
    """A group of entries (a page load in a browser; a recording session for harlem)."""

    started_date_time: IsoDateTime
    id: str
    title: str
    page_timings: PageTimings


class Header(HarObject):
    """One header line; repeated names are repeated objects, in wire order."""

    name: str
    value: str


class QueryParam(HarObject):
    """One ``name=value`` pair of the URL's query string."""

    name: str
    value: str


class Cookie(HarObject):
    """A cookie sent (request) or set (response)."""

    name: str
    value: str
    path: Optional[str] = None
    domain: Optional[str] = None
    expires: Optional[IsoDateTime] = None
    http_only: Optional[bool] = None
    secure: Optional[bool] = None
    #: Not in HAR 1.2, but Chrome and Firefox write it without a ``_``; accepting it keeps
    #: the validator usable on browser exports.
    same_site: Optional[str] = None


class PostParam(HarObject):
    """One parameter of a form body (url-encoded or multipart)."""

    name: str
    value: Optional[str] = None
    file_name: Optional[str] = None
    content_type: Optional[str] = None


class PostData(HarObject):
    """The request body.

    ``encoding`` is a harlem extension mirroring :attr:`Content.encoding`: ``"base64"``
    when the body is not text.
    """

    mime_type: str
    text: Optional[str] = None
    params: Optional[List[PostParam]] = None
    encoding: Optional[str] = None


class Request(HarObject):
    """The request as sent."""

    method: str
    url: str
    http_version: str
    cookies: List[Cookie]
    headers: List[Header]
    query_string: List[QueryParam]
    post_data: Optional[PostData] = None
    headers_size: Size
    body_size: Size


class Content(HarObject):
    """The response body, decoded (no Content-Encoding); ``text`` may be base64."""

    size: Size
    #: Bytes saved by compression: ``size - response.bodySize``; negative when the
    #: compressed form is larger, which happens with tiny bodies.
    compression: Optional[int] = None
    mime_type: str
    text: Optional[str] = None
    encoding: Optional[str] = None


class Response(HarObject):
    """The response as received; status 0 means none was (see ``_error``)."""

    status: Annotated[int, Field(ge=0, le=999)]
    status_text: str
    http_version: str
    cookies: List[Cookie]
    headers: List[Header]
    content: Content
    redirect_url: str = Field(alias="redirectURL")
    headers_size: Size
    body_size: Size


class CacheEntry(HarObject):
    """The state of a cache entry before or after the request."""

    expires: Optional[LooseIsoDateTime] = None
    last_access: LooseIsoDateTime
    e_tag: str
    hit_count: Annotated[int, Field(ge=0)]


class Cache(HarObject):
    """What the cache knew; usually empty (``{}``) for a program's HTTP client."""

    before_request: Optional[CacheEntry] = None
    after_request: Optional[CacheEntry] = None


class Timings(HarObject):
    """Phases of the exchange in ms; -1 means the phase did not apply.

    ``ssl`` is part of ``connect`` (HAR 1.1 compatibility), so it is not summed into
    ``entry.time``.
    """

    blocked: Optional[OptionalPhase] = None
    dns: Optional[OptionalPhase] = None
    connect: Optional[OptionalPhase] = None
    send: Phase
    wait: Phase
    receive: Phase
    ssl: Optional[OptionalPhase] = None


class Entry(HarObject):
    """One HTTP exchange."""

    pageref: Optional[str] = None
    started_date_time: IsoDateTime
    time: Annotated[_Number, Field(ge=0)]
    request: Request
    response: Response
    cache: Cache
    timings: Timings
    server_ip_address: Optional[IpAddress] = Field(default=None, alias="serverIPAddress")
    connection: Optional[DigitString] = None


class Log(HarObject):
    """The root of the data: creator, pages and entries."""

    version: str
    creator: Creator
    browser: Optional[Browser] = None
    pages: Optional[List[Page]] = None
    entries: List[Entry]


class Har(HarObject):
    """A whole HAR document: ``{"log": {...}}``."""

    log: Log

    def to_dict(self) -> Dict[str, Any]:
        """The HAR JSON object (aliases, no ``None`` values, extensions included)."""
        return self.model_dump(by_alias=True, exclude_none=True)

    @classmethod
    def from_entries(
        cls,
        pages: List[Dict[str, Any]],
        entries: List[Dict[str, Any]],
        creator_version: Optional[str] = None,
    ) -> "Har":
        """Wrap already-built page and entry dicts into a validated HAR 1.2 document.

        Viewers group entries by page and some refuse logs without pages, so this makes
        sure every ``pageref`` names a page and that there is at least one page:

        * no pages given: a default page ``page_0`` is created and entries without a
          ``pageref`` are attached to it;
        * an entry names a page that was not given: a page with that id is created;
        * a page id given twice (two recordings logged into one log both have ``page_0``) is
          kept once, the first time it comes.

        A created page starts at the earliest ``startedDateTime`` of its entries (now, if
        it has none). The input dicts are not modified. Raises
        :class:`pydantic.ValidationError` if the result is not valid HAR.
        """
        if creator_version is None:
            from harlem._version import __version__ as creator_version
        page_list: List[Dict[str, Any]] = []
        for page in pages:
            if all(kept.get("id") != page.get("id") for kept in page_list):
                page_list.append(dict(page))
        entry_list = [dict(entry) for entry in entries]
        if not page_list:
            for entry in entry_list:
                if entry.get("pageref") is None:
                    entry["pageref"] = DEFAULT_PAGE_ID
        known = {page.get("id") for page in page_list}
        missing: List[str] = []
        for entry in entry_list:
            ref = entry.get("pageref")
            if isinstance(ref, str) and ref not in known and ref not in missing:
                missing.append(ref)
        for page_id in missing:
            starts = [e.get("startedDateTime") for e in entry_list if e.get("pageref") == page_id]
            page_list.append(_default_page(page_id, starts))
        if not page_list:
            page_list.append(_default_page(DEFAULT_PAGE_ID, []))
        document = {
            "log": {
                "version": "1.2",
                "creator": {"name": "harlem", "version": creator_version},
                "pages": page_list,
                "entries": entry_list,
            }
        }
        return cls.model_validate(document)


def _earliest(dates: List[Any]) -> Optional[str]:
    """The earliest of the parseable date strings in ``dates`` (as written), or None."""
    best: Optional[str] = None
    best_moment: Optional[datetime] = None
    for text in dates:
        if not isinstance(text, str):
            continue
        try:
            moment = parse_iso_datetime(text)
        except ValueError:
            continue
        if best_moment is None or moment < best_moment:
            best, best_moment = text, moment
    return best


def _default_page(page_id: str, entry_starts: List[Any]) -> Dict[str, Any]:
    """A page for ``page_id`` starting with its first entry (or now, if it has none)."""
    return {
        "startedDateTime": _earliest(entry_starts) or format_iso_datetime(datetime.now(timezone.utc)),
        "id": page_id,
        "title": DEFAULT_PAGE_TITLE,
        "pageTimings": {"onContentLoad": -1, "onLoad": -1},
    }
