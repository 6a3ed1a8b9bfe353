"""Redaction: every kind of secret leaves the entry, sizes stay true, the HAR stays valid."""

from __future__ import annotations

import base64
from typing import Any, Dict, List
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from harlem.har.redact import CREDENTIAL_HEADERS, REDACTED, URL_REDACTED, rules_for
from harlem.settings import Settings
from tests.test_build import MULTIPART, build, failed_exchange, make_exchange, multipart_exchange

ON = Settings()
OFF = Settings.from_kwargs(redact=False)


def values(headers: List[Dict[str, str]]) -> Dict[str, str]:
    return {h["name"]: h["value"] for h in headers}


def assert_absent(entry: Dict[str, Any], *secrets: str) -> None:
    dumped = orjson.dumps(entry).decode()
    for secret in secrets:
        assert secret not in dumped, secret


# --- headers and cookies ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CREDENTIAL_HEADERS))
def test_credential_headers_are_redacted_in_any_case(name: str) -> None:
    spelled = name.upper() if len(name) % 2 else name.title()
    secret = "sid=s3cr3t-value"  # a cookie's name stays: give every header the same shape
    ex = make_exchange(request_headers=[("Host", "example.com"), (spelled, secret)],
                       response_headers=[("Content-Type", "text/plain"), (spelled, secret)],
                       body=b"ok")
    entry = build(ex)
    assert values(entry["request"]["headers"]) == {"Host": "example.com", spelled: REDACTED}
    assert values(entry["response"]["headers"])[spelled] == REDACTED
    assert_absent(entry, "s3cr3t-value")


def test_sizes_count_the_real_header_values() -> None:
    plain = build(make_exchange(request_headers=[("Authorization", "Bearer abc")]), OFF)
    redacted = build(make_exchange(request_headers=[("Authorization", "Bearer abc")]), ON)
    assert redacted["request"]["headersSize"] == plain["request"]["headersSize"]


def test_cookie_values_are_redacted_names_and_attributes_stay() -> None:
    ex = make_exchange(request_headers=[("Cookie", "session=abc123; theme=dark")],
                       response_headers=[("Set-Cookie", "session=xyz789; Path=/; HttpOnly")])
    entry = build(ex)
    assert entry["request"]["cookies"] == [{"name": "session", "value": REDACTED},
                                           {"name": "theme", "value": REDACTED}]
    cookie = entry["response"]["cookies"][0]
    assert cookie == {"name": "session", "value": REDACTED, "path": "/", "httpOnly": True,
                      "secure": False}
    assert_absent(entry, "abc123", "xyz789", "dark")


def test_custom_header_names() -> None:
    settings = Settings.from_kwargs(redact_header=["X-Tenant-Secret"])
    ex = make_exchange(request_headers=[("x-tenant-secret", "tenant-key"), ("X-Other", "visible")])
    entry = build(ex, settings)
    assert values(entry["request"]["headers"]) == {"x-tenant-secret": REDACTED,
                                                  "X-Other": "visible"}


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("https://alice:hunter2@example.com/p?q=1",
     f"https://{URL_REDACTED}:{URL_REDACTED}@example.com/p?q=1"),
    ("https://ghp_token@example.com/", f"https://{URL_REDACTED}@example.com/"),
    ("https://example.com/a@b?x=c@d", "https://example.com/a@b?x=c@d"),
])
def test_url_credentials(url: str, expected: str) -> None:
    entry = build(make_exchange(url=url))
    assert entry["request"]["url"] == expected
    assert urlsplit(expected).hostname == "example.com"
    assert_absent(entry, "hunter2", "alice", "ghp_token")


def test_url_credentials_are_kept_when_redaction_is_off() -> None:
    url = "https://alice:hunter2@example.com/"
    assert build(make_exchange(url=url), OFF)["request"]["url"] == url


def test_query_parameters_stay_consistent_with_query_string() -> None:
    settings = Settings.from_kwargs(redact_query=["token", "API_KEY"])
    url = "https://example.com/p?token=t0ps3cret&page=2&api_key=k3y&Token=again&token=&x"
    entry = build(make_exchange(url=url), settings)
    request = entry["request"]
    assert request["url"] == (f"https://example.com/p?token={URL_REDACTED}&page=2"
                              f"&api_key={URL_REDACTED}&Token={URL_REDACTED}&token=&x")
    assert [(q["name"], q["value"]) for q in request["queryString"]] == [
        ("token", REDACTED), ("page", "2"), ("api_key", REDACTED), ("Token", REDACTED),
        ("token", ""), ("x", "")]
    assert [(q["name"], q["value"]) for q in request["queryString"]] == parse_qsl(
        urlsplit(request["url"]).query, keep_blank_values=True)
    assert_absent(entry, "t0ps3cret", "k3y", "again")


def test_encoded_query_names_and_fragments() -> None:
    """The query's encoded name is matched; the fragment goes (HAR 1.2 leaves it out, and
    with it whatever secret it held: an OAuth implicit flow's #access_token=...)."""
    settings = Settings.from_kwargs(redact_query=["access token"])
    url = "https://example.com/?access+token=abc%20def#frag=abc"
    assert build_url(url, settings) == f"https://example.com/?access+token={URL_REDACTED}"


def build_url(url: str, settings: Settings) -> str:
    return str(build_entry_raw(make_exchange(url=url), settings)["request"]["url"])


def build_entry_raw(ex: Any, settings: Settings) -> Dict[str, Any]:
    """Without validation: for URLs the validator refuses (fragments) on purpose."""
    from harlem.har.build import build_entry

    return build_entry(ex, settings)


def test_location_and_referer_are_url_redacted() -> None:
    settings = Settings.from_kwargs(redact_query=["sig"])
    ex = make_exchange(
        status=302, reason="Found", body=b"",
        request_headers=[("Referer", "https://bob:pw1234@example.com/from?sig=abc123")],
        response_headers=[("Location", "https://carol:pw5678@example.com/to?sig=def456&n=1")])
    entry = build(ex, settings)
    expected = f"https://{URL_REDACTED}:{URL_REDACTED}@example.com/to?sig={URL_REDACTED}&n=1"
    assert entry["response"]["redirectURL"] == expected
    assert values(entry["response"]["headers"])["Location"] == expected
    assert values(entry["request"]["headers"])["Referer"] == (
        f"https://{URL_REDACTED}:{URL_REDACTED}@example.com/from?sig={URL_REDACTED}")
    assert_absent(entry, "pw1234", "pw5678", "abc123", "def456", "bob", "carol")


def test_query_parameters_of_urls_in_any_header_are_redacted() -> None:
    """A paginated API echoes the caller's token in Link; a Refresh header carries a URL too."""
    settings = Settings.from_kwargs(redact_query=["access_token"])
    ex = make_exchange(response_headers=[
        ("Content-Type", "application/json"),
        ("Link", '<http://api.example/items?page=2&access_token=tok-5e4d3c2b1a09>; rel="next"'),
        ("X-Next-Page", "/items?access_token=tok-5e4d,3c2b1a09"),
        ("Refresh", "0; url=/items?access_token=tok-5e4d3c2b1a09&page=2"),
        ("X-Note", "a=b&c=d")])
    headers = values(build(ex, settings)["response"]["headers"])
    assert headers["Link"] == f'<http://api.example/items?page=2&access_token={URL_REDACTED}>; ' \
                              'rel="next"'
    assert headers["Refresh"] == f"0; url=/items?access_token={URL_REDACTED}&page=2"
    assert headers["X-Note"] == "a=b&c=d"
    assert headers["X-Next-Page"] == f"/items?access_token={URL_REDACTED}"  # (a comma is a value's)
    assert_absent(build(ex, settings), "tok-5e4d3c2b1a09")


# --- bodies ----------------------------------------------------------------------------------


def json_exchange(request_body: bytes, response_body: bytes, mime: str = "application/json") -> Any:
    return make_exchange(method="POST", request_body=request_body, body=response_body,
                         request_headers=[("Content-Type", mime)],
                         response_headers=[("Content-Type", mime)])


def test_json_fields_at_any_depth() -> None:
    settings = Settings.from_kwargs(redact_json_field=["password", "Secret"])
    request_body = b'{"user": "ann", "password": "pa55", "nested": [{"deep": {"secret": 7}}]}'
    response_body = b'{"secret": {"a": [1, "x"]}, "items": [{"PASSWORD": null}], "ok": true}'
    entry = build(json_exchange(request_body, response_body), settings)
    post = entry["request"]["postData"]
    assert orjson.loads(post["text"]) == {"user": "ann", "password": REDACTED,
                                          "nested": [{"deep": {"secret": REDACTED}}]}
    assert post["_redacted"] is True
    content = entry["response"]["content"]
    assert orjson.loads(content["text"]) == {"secret": REDACTED, "items": [{"PASSWORD": REDACTED}],
                                             "ok": True}
    assert content["_redacted"] is True
    assert content["size"] == len(response_body)  # the true size, not the text's
    assert entry["request"]["bodySize"] == len(request_body)
    assert_absent(entry, "pa55")


def test_json_without_a_named_field_is_left_as_is() -> None:
    settings = Settings.from_kwargs(redact_json_field=["password"])
    body = b'{ "spacing" :  "kept" }'
    entry = build(json_exchange(body, body), settings)
    assert entry["response"]["content"]["text"] == body.decode()
    assert "_redacted" not in entry["response"]["content"]


def test_json_looking_text_with_another_mime_type() -> None:
    settings = Settings.from_kwargs(redact_json_field=["token"])
    entry = build(json_exchange(b'{"token": "abc"}', b' [{"token": "def"}]', "text/plain"),
                  settings)
    assert_absent(entry, "abc", "def")


def test_cut_json_is_redacted_lexically() -> None:
    settings = Settings.from_kwargs(redact_json_field=["token", "n"], max_body_size=40)
    body = b'{"token": "abcdefgh", "n": -1.5e3, "more": "' + b"x" * 50 + b'"}'
    entry = build(json_exchange(body, body), settings)
    assert entry["response"]["content"]["text"] == (
        f'{{"token": "{REDACTED}", "n": "{REDACTED}", "more')
    assert_absent(entry, "abcdefgh", "-1.5e3")


def test_json_that_orjson_refuses_still_redacts() -> None:
    settings = Settings.from_kwargs(redact_json_field=["key"])
    body = b'{"big": 123456789012345678901234567890, "key": "k", "nan": NaN}'
    entry = build(json_exchange(body, body), settings)
    assert '"key":"[REDACTED]"' in entry["response"]["content"]["text"]
    assert "123456789012345678901234567890" in entry["response"]["content"]["text"]


def test_named_fields_of_a_body_that_does_not_decode_are_redacted_in_its_base64() -> None:
    """A legacy service: JSON (or a form) with a Latin-1 byte and no charset, so not UTF-8,
    written base64; its password field was left in."""
    settings = Settings.from_kwargs(redact_json_field=["password"])
    ex = json_exchange(b'name=Jos\xe9&password=pw-form-secret',
                       b'{"user": "Jos\xe9", "password": "pw-json-secret"}')
    ex.request_headers = [("Content-Type", "application/x-www-form-urlencoded")]
    entry = build(ex, settings)
    content, post = entry["response"]["content"], entry["request"]["postData"]
    assert content["encoding"] == "base64" and content["_redacted"] is True
    assert base64.b64decode(content["text"]) == b'{"user":"Jos\xe9","password":"[REDACTED]"}'
    assert post["encoding"] == "base64" and post["_redacted"] is True
    assert base64.b64decode(post["text"]) == b"name=Jos\xe9&password=" + URL_REDACTED.encode()
    assert_absent(entry, "pw-form-secret", "pw-json-secret")


def test_form_fields() -> None:
    settings = Settings.from_kwargs(redact_json_field=["password"])
    body = b"user=ann&password=pa%2055&Password=x2"
    ex = make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", "application/x-www-form-urlencoded")])
    post = build(ex, settings)["request"]["postData"]
    assert post["text"] == f"user=ann&password={URL_REDACTED}&Password={URL_REDACTED}"
    assert post["params"] == [{"name": "user", "value": "ann"},
                              {"name": "password", "value": REDACTED},
                              {"name": "Password", "value": REDACTED}]
    assert post["_redacted"] is True


def test_multipart_fields() -> None:
    settings = Settings.from_kwargs(redact_json_field=["title"])
    post = build(multipart_exchange(), settings)["request"]["postData"]
    assert post["params"][0] == {"name": "title", "value": REDACTED}
    assert "Hello" not in post["text"] and REDACTED in post["text"]
    assert post["text"].endswith(MULTIPART.decode().split("Hello w\u00f6rld")[1])
    assert post["_redacted"] is True


def test_a_multipart_field_named_in_rfc_5987_form_is_found_by_its_name() -> None:
    """aiohttp names a file part whose name is not ASCII ``name*=utf-8''cl%C3%A9_...``: the
    field is recorded under its name and redacted by it (its content stayed in the HAR)."""
    body = (b"--b\r\nContent-Disposition: form-data; name*=utf-8''cl%C3%A9_priv%C3%A9e; "
            b"filename=\"key.pem\"\r\nContent-Type: text/plain\r\n\r\nhunter2-secret\r\n--b--\r\n")
    ex = make_exchange(method="POST", request_body=body, request_headers=[
        ("Content-Type", "multipart/form-data; boundary=b")])
    post = build(ex, Settings.from_kwargs(redact_json_field=["cl\u00e9_priv\u00e9e"]))[
        "request"]["postData"]
    assert post["params"] == [{"name": "cl\u00e9_priv\u00e9e", "value": REDACTED,
                               "fileName": "key.pem", "contentType": "text/plain"}]
    assert "hunter2" not in post["text"] and post["_redacted"] is True


# --- patterns --------------------------------------------------------------------------------


def test_patterns_everywhere() -> None:
    settings = Settings.from_kwargs(redact_pattern=[r"sk_live_\w+"])
    ex = make_exchange(
        url="https://example.com/p?key=sk_live_URL1",
        method="POST", request_body=b'{"k": "sk_live_BODY1"}',
        request_headers=[("Content-Type", "application/json"), ("X-Note", "use sk_live_HDR1"),
                         ("Cookie", "k=sk_live_COOKIE1")],
        response_headers=[("Content-Type", "text/plain")], body=b"echo sk_live_RESP1 done")
    entry = build(ex, settings)
    assert entry["request"]["url"] == f"https://example.com/p?key={URL_REDACTED}"
    assert entry["request"]["queryString"] == [{"name": "key", "value": REDACTED}]
    assert values(entry["request"]["headers"])["X-Note"] == f"use {REDACTED}"
    assert entry["response"]["content"]["text"] == f"echo {REDACTED} done"
    assert_absent(entry, "sk_live_")


def test_patterns_apply_with_redaction_off_and_only_to_groups() -> None:
    settings = Settings.from_kwargs(redact=False, redact_pattern=[r"pin=(\d+)"])
    ex = make_exchange(request_headers=[("X-Info", "pin=1234; other=5"),
                                        ("Authorization", "Basic visible")],
                       response_headers=[("Content-Type", "text/plain")], body=b"pin=9876")
    entry = build(ex, settings)
    assert values(entry["request"]["headers"]) == {"X-Info": f"pin={REDACTED}; other=5",
                                                  "Authorization": "Basic visible"}
    assert entry["response"]["content"]["text"] == f"pin={REDACTED}"


def test_patterns_reach_base64_bodies_through_their_bytes() -> None:
    settings = Settings.from_kwargs(redact_pattern=["TOKEN-[0-9]+"])
    body = b"\x89\x00binary TOKEN-4242 \xff"
    ex = make_exchange(response_headers=[("Content-Type", "application/octet-stream")], body=body)
    content = build(ex, settings)["response"]["content"]
    assert base64.b64decode(content["text"]) == b"\x89\x00binary [REDACTED] \xff"
    assert content["_redacted"] is True and content["size"] == len(body)


def test_empty_matches_insert_nothing() -> None:
    settings = Settings.from_kwargs(redact=False, redact_pattern=["x*"])
    ex = make_exchange(response_headers=[("Content-Type", "text/plain")], body=b"abxxc")
    assert build(ex, settings)["response"]["content"]["text"] == f"ab{REDACTED}c"


# --- error messages --------------------------------------------------------------------------


def test_error_messages_lose_the_secrets_of_the_exchange() -> None:
    settings = Settings.from_kwargs(redact_query=["token"], redact_pattern=["ssn-[0-9]+"])
    url = "https://alice:hunter22@example.com/x?token=q-secret&id=ssn-123"
    error = ConnectionRefusedError(f"cannot reach {url} with Bearer abc.def.ghi")
    ex = failed_exchange(error, url=url, request_headers=[("Authorization", "Bearer abc.def.ghi")])
    entry = build(ex, settings)
    assert entry["response"]["_error"] == "net::ERR_CONNECTION_REFUSED"
    assert entry["response"]["comment"].startswith("ConnectionRefusedError: cannot reach https://")
    assert_absent(entry, "hunter22", "q-secret", "ssn-123", "abc.def.ghi")


def test_a_cookie_value_quoted_in_an_error_is_redacted() -> None:
    """A server looks a session up by its cookie and fails: KeyError: '<the session id>'. The
    value alone, not only the whole header, is the exchange's secret (default settings)."""
    session = "sess-9f8e7d6c5b4a3210"
    error = KeyError(session)
    ex = failed_exchange(error, request_headers=[("Cookie", f'theme=dark; session="{session}"')])
    entry = build(ex, ON)
    assert entry["response"]["comment"] == "KeyError: '[REDACTED]'"
    # short values (lang=eng) are no session ids: not taken out of unrelated words
    error = ConnectionError("incomplete chunked read: Content-Length mismatch")
    ex = failed_exchange(error, request_headers=[("Cookie", "lang=eng; consent=yes")])
    assert build(ex, ON)["response"]["comment"].endswith("Content-Length mismatch")
    ex = failed_exchange(RuntimeError("could not store sid-0123456789 in the cache"))
    ex.response_headers = [("Set-Cookie", "sid=sid-0123456789; Path=/; HttpOnly")]
    assert_absent(build(ex, ON), "sid-0123456789")


# --- the switches ----------------------------------------------------------------------------


def kitchen_sink() -> Any:
    return make_exchange(
        url="https://alice:hunter2@example.com/p?token=qtok",
        method="POST", request_body=b'{"password": "pw-body"}',
        request_headers=[("Authorization", "Bearer auth-secret"), ("Cookie", "sid=cookie-secret"),
                         ("X-Api-Key", "api-secret"), ("Content-Type", "application/json")],
        response_headers=[("Content-Type", "application/json"),
                          ("Set-Cookie", "sid=setcookie-secret; Path=/")],
        body=b'{"password": "pw-response"}')


def test_nothing_secret_survives_with_every_rule() -> None:
    settings = Settings.from_kwargs(redact_query=["token"], redact_json_field=["password"])
    entry = build(kitchen_sink(), settings)
    assert_absent(entry, "hunter2", "alice", "qtok", "pw-body", "auth-secret", "cookie-secret",
                  "api-secret", "setcookie-secret", "pw-response")


def test_the_off_switch_keeps_everything() -> None:
    entry = build(kitchen_sink(), OFF)
    dumped = orjson.dumps(entry).decode()
    for visible in ("hunter2", "qtok", "pw-body", "auth-secret", "cookie-secret", "api-secret",
                    "setcookie-secret", "pw-response"):
        assert visible in dumped
    assert REDACTED not in dumped and URL_REDACTED not in dumped
    assert rules_for(OFF) is None


def test_explicit_rules_apply_even_with_the_off_switch() -> None:
    settings = Settings.from_kwargs(redact=False, redact_header=["Authorization"],
                        redact_json_field=["password"])
    entry = build(kitchen_sink(), settings)
    assert_absent(entry, "auth-secret", "pw-body", "pw-response")
    assert "cookie-secret" in orjson.dumps(entry).decode()


def test_rules_are_compiled_once_per_settings() -> None:
    settings = Settings.from_kwargs(redact_pattern=["a+"])
    assert rules_for(settings) is rules_for(settings)
    assert rules_for(Settings.from_kwargs(redact_pattern=["a+"])) is rules_for(settings)


# --- found by an exploratory pass --------------------------------------------------------------


def test_a_header_value_quoted_in_an_error_the_way_python_prints_it_is_redacted() -> None:
    """h11 refuses a value with a newline, quoting it as bytes (``\\n`` as two characters)."""
    value = "Bearer TOKEN_NL_SECRET\n"
    error = ValueError(f"Illegal header value {value.encode()!r}")
    entry = build(failed_exchange(error, request_headers=[("Authorization", value)]))
    assert "TOKEN_NL_SECRET" not in entry["response"]["comment"]
    assert_absent(entry, "TOKEN_NL_SECRET")


def test_another_urls_password_in_an_error_is_redacted() -> None:
    """aiohttp's proxy errors quote the proxy's URL, which the request URL does not hold."""
    error = ConnectionError("407, message='Proxy Authentication Required', "
                            "url='http://puser:PROXY_PASS_SECRET@127.0.0.1:3128'")
    entry = build(failed_exchange(error))
    assert_absent(entry, "PROXY_PASS_SECRET", "puser")
    assert "@127.0.0.1:3128" in entry["response"]["comment"]


def test_a_scheme_relative_location_loses_its_credentials() -> None:
    ex = make_exchange(status=302, response_headers=[
        ("Location", "//luser:LOCATION_PASS_SECRET@example.com/after")])
    entry = build(ex)
    expected = f"//{URL_REDACTED}:{URL_REDACTED}@example.com/after"
    assert entry["response"]["redirectURL"] == expected
    assert values(entry["response"]["headers"])["Location"] == expected
    assert_absent(entry, "LOCATION_PASS_SECRET", "luser")


def test_a_location_named_by_redact_header_is_redacted_in_redirect_url_too() -> None:
    settings = Settings.from_kwargs(redact_header=["Location"])
    ex = make_exchange(status=302, response_headers=[
        ("Location", "https://app.example/cb?code=OAUTH_CODE_SECRET")])
    entry = build(ex, settings)
    assert entry["response"]["redirectURL"] == REDACTED
    assert_absent(entry, "OAUTH_CODE_SECRET")


def test_a_nameless_cookie_sent_back_is_a_redacted_value() -> None:
    entry = build(make_exchange(request_headers=[("Cookie", "SESSION_TOKEN_SECRET; a=1")]))
    assert entry["request"]["cookies"] == [{"name": "", "value": REDACTED},
                                           {"name": "a", "value": REDACTED}]
    assert_absent(entry, "SESSION_TOKEN_SECRET")


@pytest.mark.parametrize("text", [
    '{"credentials": {"user": "u", "password": "NESTED_PASS_SECRET"}, "pad": "xxxxxxxx',
    '{"credentials": ["NESTED_PASS_SECRET", {"a": "}"}], "after": 1, "pad": "x',
    '{"pad": 1, "credentials": {"password": "NESTED_PASS_SECRET", "more": [1, 2',
])
def test_a_named_json_field_is_redacted_whole_in_a_cut_body(text: str) -> None:
    settings = Settings.from_kwargs(redact_json_field=["credentials"])
    ex = make_exchange(body=None, response_headers=[("Content-Type", "application/json")])
    ex.add_response_chunk(text.encode())
    ex.body_complete = True
    content = build(ex, settings)["response"]["content"]
    assert "NESTED_PASS_SECRET" not in content["text"] and content["_redacted"] is True
    assert f'"credentials": "{REDACTED}"' in content["text"]


def test_patterns_reach_the_user_name_when_the_built_in_rules_are_off() -> None:
    settings = Settings.from_kwargs(redact=False, redact_pattern=["sk_live_\\w+"])
    url = "http://sk_live_USERINFO_SECRET@example.com/p?k=sk_live_QUERY"
    entry = build(make_exchange(url=url), settings)
    assert entry["request"]["url"] == f"http://{URL_REDACTED}@example.com/p?k={URL_REDACTED}"
