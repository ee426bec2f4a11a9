"""The CDK: a custom JSON REST provider written with HttpApiProvider, used from configuration."""
from __future__ import annotations

import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.cdk import HttpApiProvider, OpenAICompatibleProvider
from modelmesh.testing import FakeClock, FakeUpstream

from core_helpers import MECHANICS


class InferenceProvider(HttpApiProvider):
    """The seed-003 example: an internal service with a non-standard API."""

    name = "internal-inference"
    path = "/inference"

    def translate_request(self, body, target):
        return {"prompt": body["messages"][-1]["content"], "max_length": body.get("max_tokens") or 1024}

    def translate_response(self, data, target):
        return {"id": data["request_id"], "object": "chat.completion", "created": 0, "model": data["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": data["output"]}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": data["input_tokens"], "completion_tokens": data["output_tokens"],
                          "total_tokens": data["input_tokens"] + data["output_tokens"]}}


@pytest.fixture
def inference_server():
    seen, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, dict(self.headers), body))
            status, payload = answers.pop(0) if answers else (200, {
                "request_id": "r1", "model": "inf-1", "output": f"echo: {body['prompt']}", "input_tokens": 2, "output_tokens": 3})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen, answers
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def plugin_module():
    mod = types.ModuleType("mm_test_plugins")
    mod.InferenceProvider = InferenceProvider
    mod.NotAProvider = dict
    sys.modules["mm_test_plugins"] = mod
    yield "mm_test_plugins"
    del sys.modules["mm_test_plugins"]


def config(url, fallback_url, connector="mm_test_plugins:InferenceProvider"):
    return {"providers": {
        "internal": {"connector": connector, "config": {"base_url": url, "auth": {"api_key": "internal-key-123456"},
                                                        "models": [{"id": "inf-1", "capabilities": ["chat-completion"]}]}},
        "backup": {"connector": "openai", "config": {"base_url": fallback_url, "auth": {"api_key": "sk-backup-0123456789"},
                                                     "models": ["gpt-x"]}}},
        "routing": MECHANICS,
        "pools": {"chat": {"capability": "chat-completion", "strategy": "priority",
                           "rotation": {"selection": {"model_priority": ["internal/inf-1"]}}}}}


def test_a_custom_rest_provider_routes_and_fails_over(inference_server, plugin_module):
    url, seen, answers = inference_server
    with FakeUpstream("openai", name="backup", models=["gpt-x"]) as backup:
        clock = FakeClock()
        client = modelmesh.MeshClient(config(url, backup.url), clock=clock, sleep=clock.sleep, environ={})
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "ping"}], max_tokens=9)
        assert r.choices[0].message.content == "echo: ping" and r.usage.total_tokens == 5
        path, headers, body = seen[0]
        assert path == "/inference" and body == {"prompt": "ping", "max_length": 9}
        assert headers["Authorization"] == "Bearer internal-key-123456"
        answers.append((503, {"error": "overloaded"}))
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "again"}])
        assert r.mesh.provider == "backup" and r.mesh.attempts[0].message == "overloaded"
        answers.append((200, {"unexpected": True}))
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        assert r.mesh.provider == "backup" and r.mesh.attempts[0].outcome == "malformed"
        # it cannot stream: a streaming request goes straight to a provider that can
        chunks = list(client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "s"}], stream=True))
        assert chunks and len(seen) == 3


def test_bad_connector_paths_are_configuration_errors(inference_server, plugin_module):
    url, _, _ = inference_server
    for connector, words in (("mm_test_plugins:Missing", "cannot load"), ("mm_test_plugins:NotAProvider", "not a modelmesh.cdk"),
                             ("no_such_pkg_mm:Thing", "cannot load")):
        with pytest.raises(E.ConfigurationError, match=words):
            modelmesh.MeshClient(config(url, url, connector), environ={})


def test_openai_compatible_subclass_changes_only_what_differs():
    class HeaderKey(OpenAICompatibleProvider):
        def _get_headers(self, target):
            return {"X-Api-Key": target.api_key}

    from modelmesh.cdk import Target

    req = HeaderKey().build_request(Target(provider="p", model="m", base_url="http://x/v1", api_key="k-123456789"),
                                    "chat", {"messages": [{"role": "user", "content": "hi"}], "seed": 1}, stream=False)
    assert req.headers["X-Api-Key"] == "k-123456789" and "Authorization" not in req.headers
    assert req.json["seed"] == 1 and req.url == "http://x/v1/chat/completions"


def test_a_custom_connector_offers_no_infrastructure_until_it_says_so(inference_server, plugin_module):
    url, _, _ = inference_server
    cfg = config(url, url)
    cfg["providers"]["internal"]["config"]["infrastructure"] = {"batch": True}
    with pytest.raises(E.ConfigurationError, match=r"providers.internal.config.infrastructure.batch: the "
                                                   r"'mm_test_plugins:InferenceProvider' connector does not offer "
                                                   r"batch \(it offers: none\)"):
        modelmesh.MeshClient(cfg, environ={})

    class Batching(InferenceProvider):
        infrastructure = frozenset({"discovery", "batch"})

    sys.modules["mm_test_plugins"].Batching = Batching
    cfg["providers"]["internal"]["connector"] = "mm_test_plugins:Batching"
    modelmesh.MeshClient(cfg, environ={}).close()


@pytest.mark.parametrize("connector, key, offers", [
    ("mistral", "batch", "discovery"), ("openrouter", "files", "discovery, pricing, quota"),
    ("anthropic", "fine_tuning", "batch, discovery")])
def test_a_built_in_connector_is_refused_what_its_vendor_does_not_offer(connector, key, offers):
    cfg = {"providers": {"p": {"connector": connector, "config": {
        "auth": {"api_key": "key-0123456789abcdef"}, "models": ["m"], "infrastructure": {key: True}}}}}
    with pytest.raises(E.ConfigurationError) as info:
        modelmesh.MeshClient(cfg, environ={})
    assert (f"providers.p.config.infrastructure.{key}: the '{connector}' connector does not offer "
            f"{key.replace('_', '-')} (it offers: {offers}); remove it") in str(info.value)
