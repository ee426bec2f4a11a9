"""Users behind a proxy: the environment's proxy settings are honoured as requests honours
them, found once per URL instead of scanned at every request.

The "proxy" is a FakeUpstream: a plain-HTTP proxy receives the request with the absolute URL
and the origin's Host header, and the fake answers it itself, recording both.
"""
from __future__ import annotations

import pytest

import modelmesh
from modelmesh.testing import FakeUpstream
from modelmesh.transports._http import ca_bundle, proxy_for

MSG = [{"role": "user", "content": "hi"}]


def client(base_url: str, environ: dict[str, str]) -> modelmesh.MeshClient:
    config = {"providers": {"p": {"connector": "openai", "config": {
        "base_url": base_url, "auth": {"api_key": "sk-proxy-test-0123456789"},
        "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
    return modelmesh.MeshClient(config, environ=environ)


def test_a_request_goes_through_the_proxy_the_environment_names():
    with FakeUpstream("openai", name="proxy", models=["m"]) as proxy, \
            client("http://api.upstream.invalid/v1", {"HTTP_PROXY": proxy.root_url}) as mesh:
        for _ in range(3):
            assert mesh.chat.completions.create(model="p/m", messages=MSG).choices[0].message.content
        seen = proxy.requests
        assert len(seen) == 3 and all(r.headers["Host"] == "api.upstream.invalid" for r in seen)
        assert seen[0].headers["Authorization"] == "Bearer sk-proxy-test-0123456789"


def test_no_proxy_sends_a_host_direct_and_the_proxy_sees_nothing():
    with FakeUpstream("openai", name="proxy", models=["m"]) as proxy, \
            FakeUpstream("openai", name="direct", models=["m"]) as direct, \
            client(direct.url, {"HTTP_PROXY": proxy.root_url, "NO_PROXY": "localhost,127.0.0.1"}) as mesh:
        assert mesh.chat.completions.create(model="p/m", messages=MSG).choices[0].message.content == "Hello from direct"
        assert proxy.requests == [] and len(direct.requests) == 1


def test_without_proxy_settings_requests_go_direct():
    with FakeUpstream("openai", name="direct", models=["m"]) as direct, client(direct.url, {}) as mesh:
        assert mesh.chat.completions.create(model="p/m", messages=MSG).choices[0].message.content == "Hello from direct"


@pytest.mark.parametrize("url, environ, expected", [
    ("https://api.openai.com/v1/x", {"HTTPS_PROXY": "http://corp:3128"}, "http://corp:3128"),
    ("https://api.openai.com/v1/x", {"HTTP_PROXY": "http://corp:3128"}, None),          # scheme matters
    ("https://api.openai.com/v1/x", {"ALL_PROXY": "http://all:1"}, "http://all:1"),
    ("https://api.openai.com/v1/x", {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}, "http://lower:1"),
    ("https://api.openai.com/v1/x", {"HTTPS_PROXY": "http://corp:1", "NO_PROXY": ".openai.com"}, None),
    ("https://api.openai.com/v1/x", {"HTTPS_PROXY": "http://corp:1", "no_proxy": "*"}, None),
    ("https://api.anthropic.com/v1/x", {"HTTPS_PROXY": "http://corp:1", "NO_PROXY": "openai.com"}, "http://corp:1"),
    ("http://10.0.0.5:8080/v1/x", {"HTTP_PROXY": "http://corp:1", "NO_PROXY": "10.0.0.5:8080"}, None),
])
def test_the_proxy_is_chosen_as_requests_and_urllib_choose_it(url, environ, expected):
    assert proxy_for(url, environ) == expected


def test_the_ca_bundle_is_the_environments_choice_then_certifis():
    assert ca_bundle({"REQUESTS_CA_BUNDLE": "/etc/corp-ca.pem"}) == "/etc/corp-ca.pem"
    assert ca_bundle({"SSL_CERT_FILE": "/etc/ssl.pem"}) == "/etc/ssl.pem"
    assert ca_bundle({}).endswith(".pem")


def test_a_socks_proxy_without_pysocks_is_a_clear_misconfiguration(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "socks", None)  # PySocks absent, whether or not it is installed
    monkeypatch.delitem(sys.modules, "urllib3.contrib.socks", raising=False)
    with client("http://api.upstream.invalid/v1", {"HTTP_PROXY": "socks5://127.0.0.1:1"}) as mesh, \
            pytest.raises(modelmesh.ModelMeshError) as info:
        mesh.chat.completions.create(model="p/m", messages=MSG)
    assert "PySocks" in str(info.value) and info.value.attempts[0].outcome == "misconfigured"
