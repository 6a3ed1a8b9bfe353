"""The one settings schema: the same option means the same thing on every surface."""

from __future__ import annotations

import argparse

import pytest

from harlem.settings import OPTIONS, Settings, SettingsError, add_arguments


def parse_cli(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Settings.from_args(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    "kwargs, argv, env",
    [
        ({"indent": 2}, ["--indent", "2"], {"HARLEM_INDENT": "2"}),
        ({"indent": 2}, ["-i", "2"], {"HARLEM_INDENT": "2"}),
        ({"live": True}, ["--live"], {"HARLEM_LIVE": "1"}),
        ({"interval_seconds": 2.5}, ["-n", "2.5"], {"HARLEM_INTERVAL_SECONDS": "2.5"}),
        ({"interval_seconds": 1, "retention_seconds": 60}, ["-n", "1", "-r", "60"],
         {"HARLEM_INTERVAL_SECONDS": "1", "HARLEM_RETENTION_SECONDS": "60"}),
        ({"in_background": "thread"}, ["-b", "thread"], {"HARLEM_IN_BACKGROUND": "thread"}),
        ({"recorders": ["requests"]}, ["--recorders", "requests"], {"HARLEM_RECORDERS": "requests"}),
        ({"redact": False}, ["--no-redact"], {"HARLEM_REDACT": "0"}),
        ({"redact_header": ["X-A", "X-B"]}, ["--redact-header", "X-A", "--redact-header", "X-B"],
         {"HARLEM_REDACT_HEADER": "X-A,X-B"}),
        ({"max_body_size": "1MiB"}, ["--max-body-size", "1048576"], {"HARLEM_MAX_BODY_SIZE": "1MiB"}),
        ({"bodies": False}, ["--no-bodies"], {"HARLEM_BODIES": "false"}),
        ({"quiet": True}, ["-q"], {"HARLEM_QUIET": "yes"}),
    ],
)
def test_three_surfaces_agree(kwargs, argv, env):
    from_kwargs = Settings.from_kwargs(**kwargs)
    assert from_kwargs == parse_cli(*argv) == Settings.from_env(env)
    # and the agent's launcher round-trips them through the environment
    assert Settings.from_env(from_kwargs.to_env()) == from_kwargs


@pytest.mark.parametrize(
    "name, bad",
    [
        ("indent", "two"), ("indent", "-1"), ("interval_seconds", "0"), ("interval_seconds", "x"),
        ("in_background", "fork"), ("recorders", "curl"), ("max_body_size", "lots"),
        ("redact", "maybe"), ("redact_pattern", "(unclosed"),
        ("redact_pattern", "a{99999999999}"),  # past what re holds: OverflowError
        # past what timers and JSON writers hold: refused, not an overflow at exit
        ("indent", "99999999999999999999"), ("indent", "65"), ("join_timeout", "1e10"),
        ("interval_seconds", "1e400"), ("retention_seconds", "nan"),
        ("max_body_size", "9" * 400), ("max_body_size", "1.5"),
        # a blank switch is no answer: refused (an empty variable is unset), never "off"
        ("redact", " "), ("bodies", " "),
    ],
)
def test_bad_values_name_the_option_and_value_on_each_surface(name, bad):
    option = next(o for o in OPTIONS if o.name == name)
    with pytest.raises(SettingsError) as env_error:
        Settings.from_env({option.env: bad})
    assert str(env_error.value).startswith(f"{option.env}: invalid value {bad!r}")
    with pytest.raises(SettingsError) as kw_error:
        Settings.from_kwargs(**{name: bad})
    assert str(kw_error.value).startswith(f"{name}=: invalid value {bad!r}")
    if not option.is_switch:
        with pytest.raises(SettingsError) as cli_error:
            parse_cli(option.flag, bad)
        assert str(cli_error.value).startswith(f"{option.flag}: invalid value")
    assert "\n" not in str(env_error.value)


def test_retention_needs_live_recording():
    with pytest.raises(SettingsError, match="retention_seconds"):
        Settings.from_kwargs(retention_seconds=10)


def test_interval_implies_live_and_unknown_keywords_are_rejected():
    assert Settings.from_kwargs(interval_seconds=3).live is True
    with pytest.raises(TypeError):
        Settings.from_kwargs(no_such_option=1)


def test_settings_are_immutable_and_hashable():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.indent = 3  # type: ignore[misc]
    assert {settings: 1}[Settings()] == 1
    assert settings.replace(indent=4).indent == 4 and settings.indent is None


def test_importing_settings_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, harlem.settings; heavy = {'dataclasses', 'typing', 'pydantic', 'wrapt', "
            "'orjson', 'requests', 'aiohttp'}; print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(__import__('pathlib').Path(__file__).parents[1])})
    assert out.stdout.strip() == "[]", out.stderr


def test_a_pattern_is_kept_exactly_as_written_on_every_surface():
    """Spaces are part of a regular expression: the flag does not trim what the others keep."""
    expected = ("token ", "key=(\\w+)")
    assert Settings.from_kwargs(redact_pattern=["token ", "key=(\\w+)", "token "]).redact_pattern \
        == parse_cli("--redact-pattern", "token ", "--redact-pattern", "key=(\\w+)").redact_pattern \
        == Settings.from_env({"HARLEM_REDACT_PATTERN": "token \nkey=(\\w+)\n"}).redact_pattern \
        == expected


def test_variables_and_flags_are_checked_together():
    """A variable is a default that the flags complete: retention from the environment with
    --live on the command line is fine; alone, the error names what the user typed."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    environ = {"HARLEM_RETENTION_SECONDS": "60"}
    settings = Settings.from_args(parser.parse_args(["--live"]), environ)
    assert (settings.live, settings.retention_seconds) == (True, 60)
    with pytest.raises(SettingsError) as error:
        Settings.from_args(parser.parse_args([]), environ)
    assert str(error.value).startswith("HARLEM_RETENTION_SECONDS: invalid value '60'")
    assert "--live" in str(error.value)


def test_settings_built_directly_are_checked_like_keywords() -> None:
    """``Settings(...)`` is public: a bad value must not slip past the one parser."""
    assert Settings(indent=2, live=True) == Settings.from_kwargs(indent=2, live=True)
    with pytest.raises(SettingsError, match="indent="):
        Settings(indent="x")
    with pytest.raises(SettingsError, match="retention_seconds="):
        Settings(retention_seconds=5)  # needs live recording
    with pytest.raises(TypeError, match="nope"):
        Settings(nope=1)


def test_a_blank_keyword_does_not_turn_redaction_off() -> None:
    with pytest.raises(SettingsError, match="redact="):
        Settings.from_kwargs(redact="")
    assert Settings.from_env({"HARLEM_REDACT": ""}).redact is True  # empty: unset


def test_sizes_with_a_unit_may_have_a_fraction_and_are_exact() -> None:
    assert Settings.from_kwargs(max_body_size="1.5KiB").max_body_size == 1536
    assert Settings.from_kwargs(max_body_size="1.1MiB").max_body_size == 1153433
    assert Settings.from_kwargs(max_body_size=" 10 MiB ").max_body_size == 10 * 1024 * 1024
    with pytest.raises(SettingsError):
        Settings.from_kwargs(max_body_size=1.5)


def test_an_output_that_is_not_a_path_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"output=: invalid value 123 \(expected a file path\)"):
        Settings.from_kwargs(output=123)
