"""Hostile and careless configuration: every malformed input is one ConfigurationError.

Rows 9, 10, 11 and 13 of "Hostile upstreams and careless callers": alias bombs, values
that cannot go into an HTTP header, durations and numbers too big for a float, secrets
that leak through header values or through a cut in an error body, and base URLs that
are not http(s) URLs. Each problem names its path and never echoes a secret.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmesh import cli
from modelmesh._build import build
from modelmesh._core import _config as config_module
from modelmesh._core._config import parse_config
from modelmesh._core._errors import ConfigurationError, redact
from modelmesh._core.codecs.openai import OpenAICodec
from modelmesh.config import load_config

CHAT = "chat-completion"
KEY = "sk-live-0123456789abcdefXYZ"


def provider(**config: Any) -> dict[str, Any]:
    base = {"base_url": "https://api.example.com/v1", "auth": {"api_key": KEY},
            "models": [{"id": "m", "capabilities": [CHAT]}]}
    base.update(config)
    return {"providers": {"p": {"connector": "openai-compatible", "config": base}}}


def problems_of(data: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse_config(data)
    return str(info.value)


# -- row 9: alias bombs and nesting -----------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

# Run in a child with 1 GB of address space and a short timeout: before the fix the
# expansion eats memory without end, and must not take the test run down with it.
_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from modelmesh._core._errors import ConfigurationError
from modelmesh.config import load_config
{setup}
try:
    load_config(source)
except ConfigurationError as exc:
    print("REFUSED", exc)
else:
    print("ACCEPTED")
"""


def run_child(setup: str) -> str:
    code = _CHILD.format(setup=textwrap.dedent(setup))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_yaml_billion_laughs_is_refused_fast_with_its_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    out = run_child(f"source = {str(path)!r}")
    assert out.startswith("REFUSED"), out
    assert str(path) in out and "line " in out and "column " in out and "alias" in out


def test_a_python_billion_laughs_is_refused_fast():
    out = run_child("""
        node = ["lol"] * 10
        for _ in range(10):
            node = [node] * 10
        source = {"providers": {"p": {"connector": "openai", "config": {"options": {"x": node}}}}}
    """)
    assert out.startswith("REFUSED"), out
    assert "providers.p.config.options" in out


def test_a_recursive_yaml_anchor_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("providers: &a\n  p: *a\n")
    with pytest.raises(ConfigurationError, match=r"line 1, column 12: an alias refers to itself"):
        load_config(path)


def test_a_self_containing_dict_is_refused():
    data: dict[str, Any] = {"providers": {}}
    data["providers"]["p"] = data
    assert "nested deeper than" in problems_of(data)


@pytest.mark.parametrize("suffix, text", [(".json", "[" * 100_000 + "]" * 100_000),
                                          (".yaml", "[" * 100_000 + "]" * 100_000),
                                          (".json", '{"a": ' + "9" * 5000 + "}"),
                                          (".yaml", "a: " + "9" * 5000 + "\n")])
def test_deep_nesting_and_endless_integers_in_files_are_configuration_errors(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=str(path).replace("\\", "\\\\")):
        load_config(path)


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(textwrap.dedent(f"""\
        providers:
          p:
            connector: openai-compatible
            config: &config
              base_url: https://api.example.com/v1
              auth: {{api_key: "{KEY}"}}
              models: [{{id: m, capabilities: [{CHAT}]}}]
          q: {{connector: openai-compatible, config: *config}}
          r:
            connector: openai-compatible
            config:
              <<: *config
              timeout: 5s
    """))
    cfg = load_config(path)
    assert cfg.providers["q"].base_url == cfg.providers["r"].base_url == "https://api.example.com/v1"
    assert cfg.providers["r"].timeout == 5.0


# -- row 10: values that cannot go into a header, numbers too big ------------------------

@pytest.mark.parametrize("key", [
    "sk-live-0123456789\u2019abcdef",      # a curly quote pasted from a document
    "sk-live-0123456789abcdef\n",          # a trailing newline from `echo`
    "sk-live-01234\r\nX-Evil: 1",         # header injection
    " sk-live-0123456789abcdef",           # leading space: requests echoes it back
    "sk-live-0123456789\x00abcdef",
])
def test_an_api_key_that_cannot_be_a_header_is_a_problem_without_its_value(key):
    text = problems_of(provider(auth={"api_key": key}))
    assert "providers.p.config.auth.api_key" in text
    assert "0123456789" not in text and "sk-live" not in text


def test_an_api_key_list_item_is_checked_at_its_index():
    text = problems_of(provider(auth={"api_keys": [KEY, "sk-second-\u20ac0123456789"]}))
    assert "providers.p.config.auth.api_keys[1]" in text and "\u20ac" not in text


def test_a_proxy_key_that_no_client_could_send_as_a_header_is_a_problem_without_its_value():
    text = problems_of({"proxy": {"api_keys": ["sk-proxy-0123456789abcdef", "sk-proxy-0123456789\u2019x\n"]}})
    assert "proxy.api_keys[1]" in text and "sk-proxy" not in text and "proxy.api_keys[0]" not in text


def test_a_secret_value_is_checked_where_it_is_used_and_named_there_without_its_value():
    data = provider(auth={"api_key": "${secrets:K}"})
    data["secrets"] = {"store": "memory", "values": {"K": "sk-stored-0123456789\n"}}
    text = problems_of(data)
    assert "providers.p.config.auth.api_key" in text and "sk-stored" not in text


def test_a_key_from_the_environment_that_cannot_be_a_header_is_a_problem():
    data = provider(auth={"api_key_env": "MY_KEY"})
    with pytest.raises(ConfigurationError) as info:
        build(data, environ={"MY_KEY": "sk-env-\u20180123456789"})
    assert "providers.p.config.auth.api_key" in str(info.value)
    assert "sk-env" not in str(info.value) and "0123456789" not in str(info.value)


@pytest.mark.parametrize("headers, where", [
    ({"X-Token": "tok-\u2603-0123456789"}, "headers.X-Token"),
    ({"X-Token": "tok-0123456789\r\nX-Evil: 1"}, "headers.X-Token"),
    ({"X-Token": "tok-0123456789\x00"}, "headers.X-Token"),
    ({"X-Token": 1234567890123}, "headers.X-Token"),
    ({"X Token": "tok-0123456789"}, "headers"),
    ({"X-Token:": "tok-0123456789"}, "headers"),
])
def test_configured_headers_must_be_sendable_and_are_never_echoed(headers, where):
    text = problems_of(provider(headers=headers))
    assert f"providers.p.config.{where}" in text
    assert "0123456789" not in text


@pytest.mark.parametrize("key, value", [
    ("timeout", 10**400), ("timeout", "1000000d"), ("connect_timeout", 400 * 86400),
    ("timeout", float("inf")), ("stream_total_timeout", 10**5000),
], ids=["10**400", "1000000d", "400d", "inf", "10**5000"])
def test_durations_must_be_finite_and_at_most_a_year(key, value):
    assert f"providers.p.config.{key}" in problems_of(provider(**{key: value}))


@pytest.mark.parametrize("section, value", [
    ({"budget": {"daily_limit": 10**400}}, "budget.daily_limit"),
    ({"rate_limits": {"rpm": 10**400}}, "rate_limits.rpm"),
    ({"max_retries": 10**5000}, "max_retries"),
], ids=["budget", "rpm", "max_retries"])
def test_numbers_too_big_for_a_float_are_problems(section, value):
    assert f"providers.p.config.{value}" in problems_of(provider(**section))


def test_check_prints_no_traceback_for_a_huge_timeout(capsys, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(json.dumps(provider(timeout=10**400)))
    path = path.rename(tmp_path / "huge.json")
    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and "providers.p.config.timeout" in err and "Traceback" not in err


def test_check_prints_no_traceback_even_for_a_bug(capsys, tmp_path, monkeypatch):
    import modelmesh._build

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"boom with Bearer {KEY}")

    monkeypatch.setattr(modelmesh._build, "build", broken)
    path = tmp_path / "any.yaml"
    path.write_text("{}\n")
    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 1 and "RuntimeError" in err and KEY not in err and "Traceback" not in err


# -- row 11: header values are secrets; cuts do not leak ------------------------------------

HEADER_SECRET = "hdr-literal-0123456789abcdef"


def test_configured_header_values_are_secrets():
    cfg = parse_config(provider(headers={"X-Api-Token": HEADER_SECRET}))
    assert HEADER_SECRET in cfg.secret_values()
    built = build(provider(headers={"X-Api-Token": HEADER_SECRET}), environ={})
    assert HEADER_SECRET in built.secret_values
    body = json.dumps({"error": {"message": f"bad X-Api-Token {HEADER_SECRET}",
                                 "type": "invalid_request_error"}}).encode()
    info = OpenAICodec().classify_error(400, {}, body, secrets=built.secret_values)
    assert HEADER_SECRET not in info.message and "bad X-Api-Token ***" in info.message


def test_a_header_value_is_scrubbed_from_other_configuration_problems():
    data = provider(headers={"X-Api-Token": HEADER_SECRET})
    data["pools"] = {"chat": {"models": [f"p/{HEADER_SECRET}"]}}
    text = problems_of(data)
    assert "pools.chat.models[0]" in text and HEADER_SECRET not in text


SECRET = "tok_0123456789abcdefghijABCDEFGH"  # 32 characters, no vendor shape


def test_redact_covers_a_secret_cut_at_either_end_of_the_text():
    assert redact(f"error near {SECRET[:28]}", [SECRET]) == "error near ***"
    assert redact(f"{SECRET[5:]} was refused", [SECRET]) == "*** was refused"
    assert redact(f"ends in {SECRET[:6]}", [SECRET]) == "ends in ***"
    assert redact(f"ends in {SECRET[:5]}", [SECRET]) == f"ends in {SECRET[:5]}"  # too short to tell


def test_redact_replaces_the_longer_of_overlapping_secrets_first():
    short, long = "abcd1234", "abcd1234efgh5678"
    assert redact(f"x {long} y", [short, long]) == "x *** y"


def test_a_key_crossing_the_cut_of_an_html_error_body_does_not_leak():
    head = b"<div>" * 815  # tags only: the readable text is what the cut leaves
    body = head + b" " + SECRET.encode() + b" " + b"<p>more</p>" * 100
    cut = 4096 - len(head) - 1
    assert 6 <= cut < len(SECRET)  # the key really crosses the cut
    info = OpenAICodec().classify_error(502, {}, body, secrets=[SECRET])
    assert SECRET[:6] not in info.message


# -- row 13: base URLs -------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://api.example.com/v1\x00", "https://api.exa\x00mple.com/v1",
    "https://api.example.com/v1\r\nX-Evil: 1", "https://api.example.com/ v1",
    "https://api.example.com/v1\t", "api.example.com/v1", "ftp://api.example.com/v1",
    "file:///etc/passwd", "https:///v1", "http://", "https://host:99999/v1",
    "https://host:port/v1", "javascript:alert(1)",
])
def test_bad_base_urls_are_refused_at_their_path(url):
    assert "providers.p.config.base_url" in problems_of(provider(base_url=url))


def test_credentials_in_a_base_url_are_refused_without_echo():
    text = problems_of(provider(base_url="https://user:hunter2-0123456789@api.example.com/v1"))
    assert "providers.p.config.base_url" in text and "hunter2" not in text


@pytest.mark.parametrize("url", [
    "https://api.example.com", "https://api.example.com/v1", "http://127.0.0.1:8080/v1",
    "http://[::1]:8080/v1", "https://my-proxy.internal/openai/deployments/x",
    "HTTPS://API.EXAMPLE.COM/v1",
])
def test_good_base_urls_are_kept(url):
    assert parse_config(provider(base_url=url)).providers["p"].base_url == url


# -- no raw exception for any malformed input -------------------------------------------------

_KEYS = sorted({*config_module.TOP_KEYS, *config_module._CONFIG_KEYS, *config_module._MODEL_KEYS,
                *config_module._POOL_KEYS, *config_module._ROUTING_KEYS, *config_module._AUTH_KEYS,
                *config_module._SECRET_KEYS, *config_module._PROVIDER_KEYS, "rotation", "retry",
                "deactivation", "recovery", "selection", "api_key", "headers", "connector",
                "cooldown", "weights", "events", "logging", "sync", "health", "model_aliases"})

leaves = (st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -10**400]) | st.just(5000).map(lambda n: 10**n)
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=12) | st.sampled_from(["60s", "1000000d", "openai", "p/m", CHAT,
                                                      "https://x.test/v1", "${secrets:K}", "\x00"]))
data = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6) | st.integers(), inner, max_size=5),
    max_leaves=30,
)
shaped = st.fixed_dictionaries({}, optional={
    "providers": st.dictionaries(st.sampled_from(["p", "q", "bad/id"]),
                                 st.fixed_dictionaries({"connector": st.sampled_from(
                                     ["openai", "openai-compatible", "anthropic", "nope"])},
                                     optional={"config": data, "enabled": data}), max_size=2),
    "pools": st.dictionaries(st.text(max_size=4), data, max_size=2),
    "routing": data, "secrets": data, "observability": data, "proxy": data,
    "storage": data, "discovery": data,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(data, shaped))
def test_any_data_is_a_config_or_a_configuration_error(value):
    doors = [parse_config]
    if isinstance(value, dict):
        doors += [load_config, lambda v: build(v, environ={})]
    for door in doors:
        with contextlib.suppress(ConfigurationError):
            door(value)
