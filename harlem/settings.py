"""The one settings schema behind keywords, CLI flags and ``HARLEM_*`` environment variables.

Every option is declared once in :data:`OPTIONS`. The keyword ``foo_bar=``, the flag
``--foo-bar`` and the variable ``HARLEM_FOO_BAR`` are the same option, parsed by the same
function and rejected with the same message, which names the spelling the user typed.
The agent reads it at interpreter start-up, so importing it must stay nearly free: no
``dataclasses``, ``typing``, ``re`` or ``enum`` at import time (each costs milliseconds in a
fresh interpreter); ``re`` is imported only to check a value that needs it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = ["Settings", "SettingsError", "Option", "OPTIONS", "ENV_PREFIX", "KNOWN_RECORDERS",
           "TRIGGER_MODULES", "trigger_modules"]

ENV_PREFIX = "HARLEM_"
KNOWN_RECORDERS = ("requests", "aiohttp", "httpx", "asgi")
#: Recorders whose library is not the module of the same name: recorder name -> the modules
#: whose import starts it. The others start with the module named like them (``requests``...).
#: ``harlem.asgi``: a plain ASGI app that adds ``HarlemMiddleware`` itself is recorded too.
TRIGGER_MODULES = {"asgi": ("starlette", "fastapi", "harlem.asgi")}


def trigger_modules(names: "Iterable[str]") -> "Dict[str, str]":
    """Module name -> the recorder (of ``names``) that starts once that module is imported."""
    return {module: name for name in names for module in TRIGGER_MODULES.get(name, (name,))}


class SettingsError(ValueError):
    """A bad option value. ``str()`` is one line naming the option and the value."""

    def __init__(self, option: str, value: Any, expected: str):
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f"{option}: invalid value {value!r} ({expected})")


# --- parsers: text (from a flag or variable) or a Python value (from a keyword) -> value ----

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}  # (an empty variable counts as unset: _env_values)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true/false, 1/0, yes/no or on/off")


def _whole(minimum: int, maximum: int) -> Callable[[Any], int]:
    expected = f"expected a whole number from {minimum} to {maximum}"

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(expected)
        try:
            number = int(value.strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not minimum <= number <= maximum or not isinstance(value, (str, int)):
            raise ValueError(expected)
        return number

    return parse


#: The longest duration an option takes: a year is "for ever" to a recording, and far below
#: what the clocks and timers that use these values can hold (an overflow past ~292 years).
MAX_SECONDS = 365 * 24 * 3600


def _seconds(value: Any) -> float:
    expected = f"expected a number of seconds > 0 and at most {MAX_SECONDS} (a year)"
    if isinstance(value, bool):
        raise ValueError(expected)
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(expected) from None
    if not 0 < number <= MAX_SECONDS:  # (NaN fails both)
        raise ValueError(expected)
    return number


#: The largest size an option takes: what a length can be in CPython (no body is longer).
MAX_SIZE = sys.maxsize

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def _size(value: Any) -> int:
    expected = (f"expected a whole size in bytes from 0 to {MAX_SIZE}, such as 1048576, "
                "512KiB or 10MiB")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(expected)  # (1.5 bytes is no size: written "1.5KiB", it is one)
    if isinstance(value, int):
        size = value
    else:
        import re
        from decimal import Decimal

        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(expected)
        unit = _SIZE_UNITS[match.group(2).lower()]
        if unit == 1 and "." in match.group(1):
            raise ValueError(expected)
        size = int(Decimal(match.group(1)) * unit)  # (exact however long, unlike a float)
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(expected)
    return size


def _choice(*choices: str) -> Callable[[Any], Optional[str]]:
    def parse(value: Any) -> Optional[str]:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError("expected one of " + ", ".join(choices))

    return parse


def _names(value: Any) -> Tuple[str, ...]:
    """A list of names: a comma-separated string or an iterable of strings."""
    items = value.split(",") if isinstance(value, str) else _strings(value, "names")
    return _unique(item.strip() for item in items)


def _strings(value: Any, what: str) -> List[str]:
    """An iterable of strings (a keyword's list, a repeated flag's values) as a list."""
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"expected a list of {what}") from None
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected a list of {what}")
    return items


def _unique(items: Iterable[str]) -> Tuple[str, ...]:
    """``items`` in order, without blanks or repeats."""
    kept: List[str] = []
    for item in items:
        if item.strip() and item not in kept:
            kept.append(item)
    return tuple(kept)


def _recorders(value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    names = tuple(name.lower() for name in _names(value))
    unknown = [name for name in names if name not in KNOWN_RECORDERS]
    if unknown or not names:
        raise ValueError("expected a comma-separated list of " + ", ".join(KNOWN_RECORDERS))
    return names


def _patterns(value: Any) -> Tuple[str, ...]:
    """Regular expressions, kept exactly as written (spaces are part of a pattern): one per
    line of a string, or one per item of a list (a keyword, a repeated flag)."""
    items = value.split("\n") if isinstance(value, str) else _strings(value, "regular expressions")
    patterns = _unique(items)
    import re

    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        except (OverflowError, RecursionError) as exc:  # a{99999999999}, thousands of "("
            raise ValueError(f"not a regular expression harlem can use: {exc}") from None
    return patterns


def _path(value: Any) -> Optional[str]:
    if value is None:
        return None
    try:
        text = os.fspath(value)
    except TypeError:  # record_to_file(123): named as the option, not as os.fspath's argument
        raise ValueError("expected a file path") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise ValueError("expected a file path")
    return text


class Option:
    """One setting, with its spellings on every surface.

    ``name`` is the keyword; ``--name-with-dashes`` and ``HARLEM_NAME`` derive from it.
    ``negative_flag``: a switch whose default is on, spelled ``--no-<name>`` on the CLI.
    ``repeatable``: values accumulate (``--redact-header A --redact-header B`` or ``A,B``).
    """

    __slots__ = ("name", "parse", "default", "help", "short", "negative_flag", "repeatable",
                 "metavar", "off_help")

    def __init__(self, name: str, parse: Callable[[Any], Any], default: Any, help: str,
                 short: Optional[str] = None, negative_flag: bool = False,
                 repeatable: bool = False, metavar: Optional[str] = None,
                 off_help: Optional[str] = None):
        self.name = name
        self.parse = parse
        self.default = default
        self.help = help
        self.short = short
        self.negative_flag = negative_flag
        self.repeatable = repeatable
        self.metavar = metavar
        #: The CLI help of a ``--no-<name>`` switch, which says what turning it off does.
        self.off_help = off_help or help

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def is_switch(self) -> bool:
        return self.parse is _bool


OPTIONS: "Tuple[Option, ...]" = (
    Option("output", _path, None, "where to write the HAR file", short="-o", metavar="PATH"),
    Option("indent", _whole(0, 64), None, "indent the JSON by this many spaces (default: compact)",
           short="-i", metavar="N"),
    Option("live", _bool, False, "update the file on disk after every entry", short="-l"),
    Option("interval_seconds", _seconds, None,
           "update the file on disk at most every N seconds (implies --live)", short="-n",
           metavar="N"),
    Option("retention_seconds", _seconds, None,
           "with --live/--interval-seconds, keep only entries from the last N seconds",
           short="-r", metavar="N"),
    Option("in_background", _choice("thread", "process"), None,
           "export in a background thread or process", short="-b", metavar="thread|process"),
    Option("recorders", _recorders, None,
           "which libraries to record (default: every installed one): "
           + ",".join(KNOWN_RECORDERS), metavar="NAMES"),
    Option("redact", _bool, True,
           "replace credentials (Authorization, cookies, API keys, URL passwords) by a marker",
           negative_flag=True, off_help="keep credentials in clear text (redaction is on by default)"),
    Option("redact_header", _names, (), "also redact this header's value (repeatable)",
           repeatable=True, metavar="NAME"),
    Option("redact_query", _names, (), "also redact this query parameter's value (repeatable)",
           repeatable=True, metavar="NAME"),
    Option("redact_json_field", _names, (),
           "also redact this field in JSON bodies, at any depth (repeatable)", repeatable=True,
           metavar="NAME"),
    Option("redact_pattern", _patterns, (),
           "also redact every match of this regular expression in URLs, headers and text "
           "bodies (repeatable)", repeatable=True, metavar="REGEX"),
    Option("max_body_size", _size, 10 * 1024 * 1024,
           "keep at most this many bytes of each body; sizes stay true (default 10MiB)",
           metavar="SIZE"),
    Option("bodies", _bool, True, "record bodies (off: headers and timings only)",
           negative_flag=True, off_help="record no bodies, only headers and timings"),
    Option("quiet", _bool, False, "print no summary line on stderr", short="-q"),
    Option("join_timeout", _seconds, 10.0,
           "seconds to wait for a background exporter to finish at exit", metavar="N"),
)

_BY_NAME: "Dict[str, Option]" = {option.name: option for option in OPTIONS}


class Settings:
    """Validated, immutable settings: one attribute per option in :data:`OPTIONS`.

    Build with ``Settings(**keywords)`` (the same as :meth:`from_kwargs`), :meth:`from_env` or
    :meth:`from_args`; ``Settings()`` is every default. Hashable, so the entry builder can
    cache what it derives from them.
    """

    # _hash: computed once, since the builder looks settings up in dicts for every entry.
    __slots__ = tuple(option.name for option in OPTIONS) + ("_hash",)

    if TYPE_CHECKING:  # pragma: no cover
        output: Optional[str]
        indent: Optional[int]
        live: bool
        interval_seconds: Optional[float]
        retention_seconds: Optional[float]
        in_background: Optional[str]
        recorders: Optional[Tuple[str, ...]]
        redact: bool
        redact_header: Tuple[str, ...]
        redact_query: Tuple[str, ...]
        redact_json_field: Tuple[str, ...]
        redact_pattern: Tuple[str, ...]
        max_body_size: int
        bodies: bool
        quiet: bool
        join_timeout: float

    def __init__(self, **keywords: Any):
        """Every default; keywords change them, parsed and checked as :meth:`from_kwargs`
        does (``Settings(indent="x")`` raises :class:`SettingsError`, as ``record_to_file``
        would)."""
        self._fill(Settings.from_kwargs(**keywords)._values_by_name() if keywords else {})

    @classmethod
    def _parsed(cls, values: Dict[str, Any]) -> "Settings":
        """From values already parsed and checked (the ``from_*`` methods, unpickling)."""
        settings = object.__new__(cls)
        settings._fill(values)
        return settings

    def _fill(self, values: Dict[str, Any]) -> None:
        values = dict(values)
        for option in OPTIONS:
            object.__setattr__(self, option.name, values.pop(option.name, option.default))
        if values:
            raise TypeError(f"unexpected keyword argument {next(iter(values))!r}")
        object.__setattr__(self, "_hash", hash(self._values()))

    def _values_by_name(self) -> Dict[str, Any]:
        return {option.name: getattr(self, option.name) for option in OPTIONS}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable: use .replace(...)")

    def _values(self) -> tuple:
        return tuple(getattr(self, option.name) for option in OPTIONS)

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Settings) and self._hash == other._hash
                                 and self._values() == other._values())

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> Any:
        # By value: a string's hash differs from one process to the next, so the cached
        # hash must be computed again where the settings land (a background process).
        return (_rebuild, (tuple((o.name, getattr(self, o.name)) for o in OPTIONS),))

    def __repr__(self) -> str:
        changed = ", ".join(f"{o.name}={getattr(self, o.name)!r}" for o in OPTIONS
                            if getattr(self, o.name) != o.default)
        return f"Settings({changed})"

    # -- construction, one per surface; all end in _build -------------------------------------

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "Settings":
        """Keywords as passed to ``record_to_file(...)``; ``None`` means the default."""
        values = {}
        for key, value in kwargs.items():
            option = _BY_NAME.get(key)
            if option is None:
                raise TypeError(f"unexpected keyword argument {key!r}")
            if value is not None:
                values[key] = _parse(option, value, f"{key}=")
        return cls._build(values, lambda o: f"{o.name}=")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """``HARLEM_*`` variables; an empty variable counts as unset."""
        return cls._build(_env_values(os.environ if environ is None else environ),
                          lambda o: o.env)

    @classmethod
    def from_args(cls, namespace: Any, environ: "Optional[Mapping[str, str]]" = None
                  ) -> "Settings":
        """An ``argparse`` namespace filled by :func:`add_arguments`.

        With ``environ`` (the ``harlem`` command passes ``os.environ``), the ``HARLEM_*``
        variables are the defaults and the flags given win: ``HARLEM_INDENT=2 harlem ...``
        indents, ``--indent 0`` on the same line does not. Options are checked against each
        other once both are in, each named as the user gave it.
        """
        values = _env_values(environ) if environ is not None else {}
        given = set()
        for option in OPTIONS:
            raw = getattr(namespace, option.name, None)
            if raw is None:
                continue
            if option.repeatable:
                raw = [part for item in raw for part in (item.split(",") if option.parse is _names else [item])]
            values[option.name] = _parse(option, raw, option.flag)
            given.add(option.name)
        from_env = set(values) - given
        return cls._build(values, lambda o: o.env if o.name in from_env else o.flag)

    @classmethod
    def _build(cls, values: Dict[str, Any], spell: Callable[[Option], str]) -> "Settings":
        if values.get("interval_seconds") is not None:
            values.setdefault("live", True)
        if values.get("retention_seconds") is not None and not (
            values.get("live") or values.get("interval_seconds")
        ):
            option = _BY_NAME["retention_seconds"]
            raise SettingsError(spell(option), f"{values['retention_seconds']:g}",
                                f"needs live recording: add {spell(_BY_NAME['live'])} or "
                                f"{spell(_BY_NAME['interval_seconds'])}")
        return cls._parsed(values)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with keyword changes, validated like :meth:`from_kwargs`."""
        merged = self._values_by_name()
        for key, value in changes.items():
            option = _BY_NAME.get(key)
            if option is None:
                raise TypeError(f"unexpected keyword argument {key!r}")
            merged[key] = option.default if value is None else _parse(option, value, f"{key}=")
        return Settings._build(merged, lambda o: f"{o.name}=")

    # -- the other direction: settings -> environment, for the agent's launcher -----------------

    def to_env(self) -> Dict[str, str]:
        """The ``HARLEM_*`` variables that reproduce these settings (defaults left out)."""
        env = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if value == option.default:
                continue
            if isinstance(value, bool):
                env[option.env] = "1" if value else "0"
            elif isinstance(value, tuple):
                env[option.env] = ("\n" if option.parse is _patterns else ",").join(value)
            else:
                env[option.env] = str(value)
        return env


def _parse(option: Option, value: Any, spelling: str) -> Any:
    try:
        return option.parse(value)
    except ValueError as exc:
        shown = value if not isinstance(value, list) else ",".join(map(str, value))
        raise SettingsError(spelling, shown, str(exc)) from None


def _env_values(environ: "Mapping[str, str]") -> "Dict[str, Any]":
    """The options set by ``HARLEM_*`` variables in ``environ``, parsed (empty means unset)."""
    values = {}
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw is not None and raw != "":
            values[option.name] = _parse(option, raw, option.env)
    return values


def add_arguments(parser: Any, names: Optional[Iterable[str]] = None, env: bool = True) -> None:
    """Add the options ``names`` (default: all) to an ``argparse`` parser; their help names
    their ``HARLEM_*`` variables unless ``env`` is False (a command that reads flags only).

    Values are kept as text (``type`` is not used) so that :meth:`Settings.from_args` reports
    bad values with the same message as the other surfaces.
    """
    wanted = list(names) if names is not None else [o.name for o in OPTIONS]
    for name in wanted:
        option = _BY_NAME[name]

        def variable(value: str = "") -> str:
            return f" [env {option.env}{value}]" if env else ""

        spellings = [option.flag] + ([option.short] if option.short else [])
        if option.is_switch and option.negative_flag:
            parser.add_argument("--no-" + option.flag[2:], dest=option.name, action="store_const",
                                const="0", default=None, help=option.off_help + variable("=0"))
        elif option.is_switch:
            parser.add_argument(*spellings, dest=option.name, action="store_const", const="1",
                                default=None, help=option.help + variable("=1"))
        elif option.repeatable:
            parser.add_argument(*spellings, dest=option.name, action="append", default=None,
                                metavar=option.metavar, help=option.help + variable())
        else:
            parser.add_argument(*spellings, dest=option.name, default=None,
                                metavar=option.metavar, help=option.help + variable())


def options_table() -> List[Tuple[str, str, str, str]]:
    """``(keyword, flag, variable, help)`` rows, for the docs and ``--help``."""
    rows = []
    for option in OPTIONS:
        flag = ("--no-" + option.flag[2:]) if option.negative_flag else option.flag
        rows.append((option.name, flag, option.env, option.off_help if option.negative_flag else option.help))
    return rows


def _rebuild(items: Tuple[Tuple[str, Any], ...]) -> Settings:
    """Unpickle :class:`Settings` (see ``Settings.__reduce__``)."""
    return Settings._parsed(dict(items))
