"""Hostile and careless configuration: every malformed input is one ConfigurationError.

Rows 9, 10, 11 and 13 of "Hostile upstreams and careless callers": alias bombs, values
that cannot go into an HTTP header, durations and numbers too big for a float, secrets
that leak through header values or through a cut in an error body, and base URLs that
are not http(s) URLs. Each problem names its path and never echoes a secret.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from modelmesh._build import build
from modelmesh._core._config import parse_config
from modelmesh._core._errors import ConfigurationError, redact
from modelmesh._core.codecs.openai import OpenAICodec

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
