"""The WSGI app called directly (no server): CORS, the no-auth peer rule, the key in the
configuration, an unexpected error answered in OpenAI's shape."""
from __future__ import annotations

import io
import json

import pytest

import modelmesh
from modelmesh.proxy import create_app
from modelmesh.testing import FakeUpstream

MASTER = "sk-app-master-0123456789"


@pytest.fixture(scope="module")
def up():
    with FakeUpstream("openai", name="up", models=["gpt-x"]) as u:
        yield u


def cfg(up, **proxy):
    return {"secrets": {"store": "memory", "values": {"mk": MASTER}},
            "providers": {"up": {"connector": "openai", "config": {
                "base_url": up.url, "auth": {"api_key": "sk-up-0123456789"},
                "models": [{"id": "gpt-x", "capabilities": ["chat-completion"]}]}}},
            "pools": {"chat": {"models": ["up/gpt-x"]}}, "proxy": {"auth": {"master_key": "${secrets:mk}"}, **proxy}}


def call(app, method, path, body=b"", **headers):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": headers.pop("peer", "127.0.0.1"),
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)) if body else "",
               "CONTENT_TYPE": headers.pop("content_type", "application/json")}
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    got = {}

    def start_response(status, hdrs):
        got["status"], got["headers"] = int(status.split()[0]), dict(hdrs)

    out = app(environ, start_response)
    data = b"".join(out)
    getattr(out, "close", lambda: None)()
    return got["status"], got["headers"], data


def test_the_master_key_is_a_secret_reference_and_never_shown(up):
    config = modelmesh.load_config(cfg(up))
    assert config.proxy.master_key == MASTER and MASTER not in repr(config) and MASTER in config.secret_values()


def test_cors_is_off_unless_configured(up):
    app = create_app(cfg(up), access_log=None)
    try:
        status, headers, _ = call(app, "OPTIONS", "/v1/chat/completions", origin="https://app.example",
                                  access_control_request_method="POST")
        assert status == 401 and "access-control-allow-origin" not in headers  # an ordinary request: no key
        status, headers, _ = call(app, "GET", "/v1/models", authorization=f"Bearer {MASTER}", origin="https://x.example")
        assert status == 200 and "access-control-allow-origin" not in headers
    finally:
        app.close()


def test_configured_origins_get_preflights_and_headers_others_do_not(up):
    app = create_app(cfg(up, cors_origins=["https://app.example"]), access_log=None)
    try:
        status, headers, _ = call(app, "OPTIONS", "/v1/chat/completions", origin="https://app.example",
                                  access_control_request_method="POST",
                                  access_control_request_headers="authorization, content-type")
        assert status == 204 and headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in headers["access-control-allow-methods"] and "authorization" in headers["access-control-allow-headers"]
        status, headers, _ = call(app, "GET", "/v1/models", authorization=f"Bearer {MASTER}", origin="https://app.example")
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in headers["access-control-expose-headers"]
        status, headers, _ = call(app, "OPTIONS", "/v1/chat/completions", origin="https://evil.example",
                                  access_control_request_method="POST")
        assert status == 403 and "access-control-allow-origin" not in headers
    finally:
        app.close()


def test_without_auth_only_clients_on_this_machine_are_served(up):
    config = cfg(up)
    del config["proxy"]["auth"]
    with pytest.raises(modelmesh.ConfigurationError, match="proxy.auth.master_key"):
        create_app(config, access_log=None)
    app = create_app(config, no_auth=True, access_log=None)
    try:
        assert call(app, "GET", "/v1/models")[0] == 200
        assert call(app, "GET", "/v1/models", peer="::1")[0] == 200
        status, _, body = call(app, "GET", "/v1/models", peer="10.1.2.3")
        assert status == 403 and json.loads(body)["error"]["type"] == "permission_error"
    finally:
        app.close()


def test_an_unexpected_error_is_a_500_in_openais_shape_and_logged_without_secrets(up, caplog):
    records = []
    app = create_app(cfg(up), access_log=records.append)
    try:
        def broken(*a, **k):
            raise RuntimeError(f"boom with {MASTER}")

        app.mesh.models.list = broken
        status, headers, body = call(app, "GET", "/v1/models", authorization=f"Bearer {MASTER}")
        assert status == 500 and json.loads(body)["error"]["code"] == "internal_error" and headers["x-request-id"]
        assert MASTER not in caplog.text and "RuntimeError" in caplog.text
        assert records[-1]["status"] == 500
    finally:
        app.close()
