"""Redaction end to end: real requests and aiohttp traffic full of secrets, on every surface.

One program (:data:`TRAFFIC`) sends secrets every way a program does (credential headers,
cookies both ways, ``user:password@`` URLs, redirects to such URLs, query parameters, JSON, form,
text and binary bodies, an error message quoting the URL) to the loopback server, with both
libraries. It runs under each surface's spelling of the same rules:

* keyword: ``record_to_file(path, redact_header=[...], ...)`` in this process;
* CLI flags: ``python -m harlem traffic:main out.har --redact-header ...``;
* environment: ``HARLEM_REDACT_HEADER=...`` with the agent (``python -m harlem.cli.run``).

Then every string of the HAR is searched for every secret, as it is and decoded (percent- and
base64-decoding, recursively), so a secret hidden in a base64 body is found too. The only
places a secret may remain are the bodies of the responses that reflect the request back (the
echo route and a redirect page quoting its target): default rules do not look into bodies
(docs/security.md, "What the HAR may still contain"); patterns and field names do.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets as random_secrets
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Set, Tuple
from urllib.parse import unquote_plus, urlsplit

import pytest

from harlem import record_to_file
from harlem.cli.main import REDACTION_OFF_NOTE
from harlem.har.redact import CREDENTIAL_HEADERS, REDACTED, URL_REDACTED
from tests.helpers import REPO_ROOT, check_har

TIMEOUT = 60

#: The program: ``main()`` reads the server's URL and the secrets from the environment.
TRAFFIC = r'''
import asyncio
import json
import os
import socket
from urllib.parse import quote

import aiohttp
import requests


def calls(url, s):
    """(method, url, headers, body) of every call, the same for both libraries."""
    host = url.split("://", 1)[1]
    headers = {
        "Authorization": "Bearer " + s["authorization"],
        "Proxy-Authorization": "Basic " + s["proxy-authorization"],
        "Cookie": "sid=" + s["cookie"],
        "X-Api-Key": s["x-api-key"],
        "X-Auth-Token": s["x-auth-token"],
        "Api-Key": s["api-key"],
        "X-Access-Token": s["x-access-token"],
        "X-Csrf-Token": s["x-csrf-token"],
        "X-Amz-Security-Token": s["x-amz-security-token"],
        "X-Tenant-Secret": s["header-rule"],
        "X-Note": "note " + s["pattern-header"] + " end",
    }
    target = (f"http://{s['redirect-user']}:{s['redirect-password']}@{host}/json"
              f"?token={s['redirect-query']}")
    return [
        ("GET", f"{url}/json?kind=headers", headers, None),
        ("GET", f"{url}/echo?kind=echo", headers, None),
        ("GET", f"http://{s['url-user']}:{s['url-password']}@{host}/json?kind=userinfo", {},
         None),
        ("GET", f"{url}/json?kind=query&token={s['query-rule']}&keep=visible"
                f"&q={s['pattern-query']}", {}, None),
        ("GET", f"{url}/redirect-absolute?kind=redirect&to={quote(target, safe='')}", {}, None),
        ("POST", f"{url}/echo?kind=json", {},
         ("json", {"user": "visible", "password": s["json-rule"],
                   "nested": [{"PassWord": s["json-nested"]}]})),
        ("POST", f"{url}/json?kind=form", {},
         ("data", {"user": "visible", "password": s["form-rule"]})),
        ("POST", f"{url}/json?kind=text", {"Content-Type": "text/plain"},
         ("data", ("text " + s["pattern-text"]).encode())),
        ("POST", f"{url}/json?kind=binary", {"Content-Type": "application/octet-stream"},
         ("data", b"\x00\xff" + s["pattern-binary"].encode() + b"\x80")),
        ("GET", f"{url}/cookies/set?kind=setcookie", {}, None),
        ("GET", f"{url}/json?kind=sendcookie", {}, None),
        ("GET", f"http://127.0.0.1:{closed_port()}/json?kind=error&token={s['error-query']}"
                f"&q={s['pattern-error']}", {}, None),
    ]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_requests(url, s):
    session = requests.Session()
    for method, target, headers, body in calls(url, s):
        options = {body[0]: body[1]} if body else {}
        try:
            session.request(method, target + "&lib=requests", headers=headers, **options).content
        except requests.ConnectionError:
            pass


async def _with_aiohttp(url, s):
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies set by an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        for method, target, headers, body in calls(url, s):
            options = {body[0]: body[1]} if body else {}
            try:
                async with session.request(method, target + "&lib=aiohttp", headers=headers,
                                           **options) as response:
                    await response.read()
            except aiohttp.ClientConnectionError:
                pass


def with_aiohttp(url, s):
    asyncio.run(_with_aiohttp(url, s))


def main():
    url, s = os.environ["TRAFFIC_URL"], json.loads(os.environ["TRAFFIC_SECRETS"])
    with_requests(url, s)
    with_aiohttp(url, s)


if __name__ == "__main__":
    main()
'''

#: Every secret the traffic carries; those named ``pattern-*`` are only caught by the pattern.
KINDS = (
    "authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "api-key",
    "x-access-token", "x-csrf-token", "x-amz-security-token", "header-rule", "url-user",
    "url-password", "redirect-user", "redirect-password", "redirect-query", "query-rule",
    "error-query", "json-rule", "json-nested", "form-rule", "pattern-header", "pattern-query",
    "pattern-text", "pattern-binary", "pattern-error",
)
#: Cookie values the server sets (``/cookies/set``): secrets too.
SERVER_COOKIES = {"set-cookie-session": "abc123", "set-cookie-theme": "dark"}
PATTERN = r"hpat[0-9a-f]{16}"
#: The user's rules, one per rule type, in each surface's spelling.
KEYWORDS = {"redact_header": ["X-Tenant-Secret"], "redact_query": ["token", "to"],
            "redact_json_field": ["password"], "redact_pattern": [PATTERN]}
FLAGS = ["--redact-header", "X-Tenant-Secret", "--redact-query", "token", "--redact-query", "to",
         "--redact-json-field", "password", "--redact-pattern", PATTERN]
VARIABLES = {"HARLEM_REDACT_HEADER": "X-Tenant-Secret", "HARLEM_REDACT_QUERY": "token,to",
             "HARLEM_REDACT_JSON_FIELD": "password", "HARLEM_REDACT_PATTERN": PATTERN}
#: Routes whose response body quotes the request: the echo, and a redirect page naming its
#: target. Default rules leave bodies alone, so secrets may stay there (and only there).
REFLECTING = ("/echo", "/redirect-absolute")
#: Secrets that go out in credential headers, cookies or URL user info: default rules.
CREDENTIALS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token",
               "api-key", "x-access-token", "x-csrf-token", "x-amz-security-token", "url-user",
               "url-password", "redirect-user", "redirect-password", *SERVER_COOKIES)


def make_secrets() -> Dict[str, str]:
    """Fresh secrets: ``hsec`` (or ``hpat`` for the pattern) and 16 random hex digits."""
    made = {kind: ("hpat" if kind.startswith("pattern-") else "hsec")
                  + random_secrets.token_hex(8) for kind in KINDS}
    return made


# --- finding secrets ---------------------------------------------------------------------------

_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{8,}={0,2}")


def _decodings(data: bytes, depth: int = 2) -> Iterator[bytes]:
    """``data``, percent-decoded, and every base64-looking run in it decoded (recursively)."""
    yield data
    unquoted = unquote_plus(data.decode("latin-1")).encode("latin-1")
    if unquoted != data:
        yield unquoted
    if not depth:
        return
    for run in _BASE64_RUN.findall(data):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(run + b"=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            yield from _decodings(decoded, depth - 1)


def _strings(node: Any, path: str) -> Iterator[Tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def leaks(path: Path, secrets: Dict[str, str]) -> Dict[str, Set[str]]:
    """Where each secret is found in the HAR file: ``{kind: {"entries[3].request.url", ...}}``.

    The raw bytes are searched first, so that nothing escapes the structured walk.
    """
    raw = path.read_bytes()
    found: Dict[str, Set[str]] = {}
    for kind, secret in secrets.items():
        if secret.encode() in raw:
            found.setdefault(kind, set())
    har = json.loads(raw)
    for where, text in _strings(har["log"], ""):
        for data in _decodings(text.encode("utf-8")):
            for kind, secret in secrets.items():
                if secret.encode() in data:
                    found.setdefault(kind, set()).add(where.lstrip("."))
    for kind, places in found.items():
        assert places, f"{kind} is in the file's bytes but in none of its strings"
    return found


def reflected_bodies(har: Dict[str, Any]) -> Set[str]:
    """The ``response.content.text`` places of entries whose route reflects the request."""
    return {f"entries[{index}].response.content.text"
            for index, entry in enumerate(har["log"]["entries"])
            if urlsplit(entry["request"]["url"]).path in REFLECTING}


def assert_only_in_reflected_bodies(path: Path, secrets: Dict[str, str]) -> Dict[str, Set[str]]:
    har = check_har(path)
    allowed = reflected_bodies(har)
    found = leaks(path, secrets)
    outside = {kind: sorted(places - allowed) for kind, places in found.items()
               if places - allowed}
    assert not outside, f"secrets outside reflected bodies: {outside}"
    return found


# --- the surfaces --------------------------------------------------------------------------------


def _write_program(folder: Path) -> Path:
    program = folder / "traffic.py"
    program.write_text(TRAFFIC)
    return program


def _env(url: str, secrets: Dict[str, str], **variables: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARLEM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), TRAFFIC_URL=url, TRAFFIC_SECRETS=json.dumps(secrets),
               **variables)
    return env


def _run(command: List[str], cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    return result


def record_with_keywords(folder: Path, url: str, secrets: Dict[str, str], off: bool) -> str:
    module = types.ModuleType("traffic")
    exec(compile(TRAFFIC, str(_write_program(folder)), "exec"), module.__dict__)
    options: Dict[str, Any] = dict(KEYWORDS, redact=False) if off else dict(KEYWORDS)
    with record_to_file(folder / "out.har", **options):
        module.with_requests(url, secrets)
        module.with_aiohttp(url, secrets)
    return ""


def record_with_flags(folder: Path, url: str, secrets: Dict[str, str], off: bool) -> str:
    _write_program(folder)
    command = [sys.executable, "-m", "harlem", "traffic:main", "out.har", *FLAGS]
    return _run(command + (["--no-redact"] if off else []), folder, _env(url, secrets)).stderr


def record_with_variables(folder: Path, url: str, secrets: Dict[str, str], off: bool) -> str:
    _write_program(folder)
    variables = dict(VARIABLES, HARLEM_REDACT="0") if off else dict(VARIABLES)
    command = [sys.executable, "-m", "harlem.cli.run", "-o", "out.har", "--", sys.executable,
               "traffic.py"]
    return _run(command, folder, _env(url, secrets, **variables)).stderr


SURFACES: Dict[str, Callable[[Path, str, Dict[str, str], bool], str]] = {
    "keyword": record_with_keywords,
    "cli-flag": record_with_flags,
    "env-var": record_with_variables,
}


# --- what each entry must show ---------------------------------------------------------------


def _by_kind(har: Dict[str, Any], library: str) -> Dict[str, Dict[str, Any]]:
    """The entries one library made, by the ``kind`` in their URL (redirect targets excluded)."""
    found = {}
    for entry in har["log"]["entries"]:
        query = dict((q["name"], q["value"]) for q in entry["request"]["queryString"])
        if query.get("lib") == library:
            found[query["kind"]] = entry
    return found


def _headers(message: Dict[str, Any]) -> Dict[str, List[str]]:
    values: Dict[str, List[str]] = {}
    for header in message["headers"]:
        values.setdefault(header["name"].lower(), []).append(header["value"])
    return values


def assert_redacted(har: Dict[str, Any], library: str) -> None:
    """Each rule left its marker where the secret was (the search alone could pass on an
    empty file)."""
    entries = _by_kind(har, library)
    assert set(entries) >= {"headers", "echo", "userinfo", "query", "redirect", "json", "form",
                            "text", "binary", "setcookie", "sendcookie", "error"}, sorted(entries)

    sent = _headers(entries["headers"]["request"])
    for name in CREDENTIAL_HEADERS - {"set-cookie"}:
        assert sent[name] == [REDACTED], name
    assert sent["x-tenant-secret"] == [REDACTED]
    assert sent["x-note"] == [f"note {REDACTED} end"]
    assert entries["headers"]["request"]["cookies"] == [{"name": "sid", "value": REDACTED}]

    userinfo = entries["userinfo"]["request"]
    assert _headers(userinfo)["authorization"] == [REDACTED]  # both libraries send Basic auth
    assert "@" not in userinfo["url"] or f"{URL_REDACTED}:{URL_REDACTED}@" in userinfo["url"]

    query = {q["name"]: q["value"] for q in entries["query"]["request"]["queryString"]}
    assert query["token"] == REDACTED and query["q"] == REDACTED and query["keep"] == "visible"
    assert f"token={URL_REDACTED}" in entries["query"]["request"]["url"]

    redirect = entries["redirect"]["response"]
    expected = f"{URL_REDACTED}:{URL_REDACTED}@"
    assert expected in redirect["redirectURL"]
    assert f"token={URL_REDACTED}" in redirect["redirectURL"]
    assert expected in _headers(redirect)["location"][0]

    body = json.loads(entries["json"]["request"]["postData"]["text"])
    assert body == {"user": "visible", "password": REDACTED, "nested": [{"PassWord": REDACTED}]}
    form = {p["name"]: p["value"] for p in entries["form"]["request"]["postData"]["params"]}
    assert form == {"user": "visible", "password": REDACTED}
    assert entries["text"]["request"]["postData"]["text"] == f"text {REDACTED}"
    binary = entries["binary"]["request"]["postData"]
    assert binary["encoding"] == "base64"
    assert base64.b64decode(binary["text"]) == b"\x00\xff" + REDACTED.encode() + b"\x80"

    set_cookie = entries["setcookie"]["response"]
    assert [(c["name"], c["value"]) for c in set_cookie["cookies"]] == [
        ("session", REDACTED), ("theme", REDACTED)]
    assert _headers(set_cookie)["set-cookie"] == [REDACTED, REDACTED]
    assert {"name": "theme", "value": REDACTED} in entries["sendcookie"]["request"]["cookies"]

    failed = entries["error"]["response"]
    assert failed["status"] == 0 and failed["_error"] and failed["comment"]


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_secret_is_redacted_outside_reflected_bodies(surface, tmp_path, server):
    secrets = make_secrets()
    SURFACES[surface](tmp_path, server.url, secrets, False)
    path = tmp_path / "out.har"
    assert_only_in_reflected_bodies(path, {**secrets, **SERVER_COOKIES})
    har = check_har(path)
    for library in ("requests", "aiohttp"):
        assert_redacted(har, library)


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_the_off_switch_keeps_credentials_and_the_users_rules(surface, tmp_path, server):
    secrets = make_secrets()
    SURFACES[surface](tmp_path, server.url, secrets, True)
    path = tmp_path / "out.har"
    found = leaks(path, {**secrets, **SERVER_COOKIES})
    # Credentials are kept where they were sent or received ...
    assert "entries[0].request.headers[" in " ".join(found["authorization"])
    assert any(".request.cookies[" in place for place in found["cookie"])
    assert any(".response.cookies[" in place for place in found["set-cookie-session"])
    assert any(place.endswith(".request.url") for place in found["url-user"])  # requests
    assert any(".response.redirectURL" in place for place in found["redirect-password"])
    # ... but every rule the user named still applies.
    users = {kind: value for kind, value in secrets.items() if kind not in CREDENTIALS}
    assert_only_in_reflected_bodies(path, users)


def test_default_rules_leave_bodies_as_they_are(tmp_path, server):
    """Documented in docs/security.md: a server that echoes a credential puts it in a body,
    and only patterns or field names remove it from there."""
    secrets = make_secrets()
    record_with_keywords(tmp_path, server.url, secrets, False)
    found = assert_only_in_reflected_bodies(tmp_path / "out.har", secrets)
    har = check_har(tmp_path / "out.har")
    echo = _by_kind(har, "requests")["echo"]
    echoed = json.loads(echo["response"]["content"]["text"])
    assert ["Authorization", "Bearer " + secrets["authorization"]] in echoed["headers"]
    assert {"authorization", "json-rule", "redirect-password"} <= set(found)


def test_patterns_and_field_names_reach_into_reflected_bodies(tmp_path, server):
    """The recipe of docs/security.md for a service that reflects requests: a pattern for the
    secrets' shape, and the name of the field that carries the request body base64-encoded."""
    secrets = make_secrets()
    module = types.ModuleType("traffic")
    exec(compile(TRAFFIC, str(_write_program(tmp_path)), "exec"), module.__dict__)
    path = tmp_path / "out.har"
    with record_to_file(path, redact_pattern=[r"h(?:sec|pat)[0-9a-f]{16}", r"abc123|dark"],
                        redact_json_field=["body_base64"]):
        module.with_requests(server.url, secrets)
        module.with_aiohttp(server.url, secrets)
    check_har(path)
    assert leaks(path, {**secrets, **SERVER_COOKIES}) == {}


@pytest.mark.parametrize("how", [
    "harlem --no-redact",
    pytest.param("harlem-run --no-redact"),
    pytest.param("harlem-run HARLEM_REDACT=0"),
])
def test_redaction_off_is_announced_once_on_stderr(how, tmp_path, server):
    _write_program(tmp_path)
    program = tmp_path / "quiet.py"
    program.write_text("def main():\n    pass\n\nif __name__ == '__main__':\n    main()\n")
    env = _env(server.url, {})
    if how.startswith("harlem "):
        command = [sys.executable, "-m", "harlem", "quiet:main", "out.har", "--no-redact"]
    else:
        command = [sys.executable, "-m", "harlem.cli.run", "-o", "out.har"]
        if how.endswith("--no-redact"):
            command.append("--no-redact")
        else:
            env["HARLEM_REDACT"] = "0"
        command += ["--", sys.executable, "quiet.py"]
    stderr = _run(command, tmp_path, env).stderr
    assert stderr.splitlines().count(REDACTION_OFF_NOTE) == 1, stderr


@pytest.mark.parametrize("command", [
    ["-m", "harlem", "quiet:main", "out.har"],
    ["-m", "harlem.cli.run", "-o", "out.har", "--", sys.executable, "quiet.py"],
], ids=["harlem", "harlem-run"])
def test_no_note_when_redaction_is_on(command, tmp_path, server):
    (tmp_path / "quiet.py").write_text("def main():\n    pass\n\nif __name__ == '__main__':\n"
                                       "    main()\n")
    stderr = _run([sys.executable, *command], tmp_path, _env(server.url, {})).stderr
    assert "redaction is off" not in stderr


def test_a_pattern_leaves_the_urls_host_and_port_alone(tmp_path, server):
    import requests

    path = tmp_path / "out.har"
    with record_to_file(path, redact_pattern=[r"\d+"]):
        requests.get(server.url + "/json?n=12345")
    url = check_har(path)["log"]["entries"][0]["request"]["url"]
    assert urlsplit(url).port == server.port and "12345" not in url
