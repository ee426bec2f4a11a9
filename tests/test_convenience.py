"""modelmesh.create() and the provider presets, end to end against fake upstreams on loopback.

Environment detection always gets an explicit `environ=` dict, so the developer's own keys
never leak into a test. Cloud presets keep their real base URLs and are never contacted:
requests go only to providers pointed at a FakeUpstream (a local preset via OLLAMA_HOST, a
QuickProvider, or a provider dict with `base_url`).
"""
from __future__ import annotations

import pytest

import modelmesh
from modelmesh import ConfigurationError, QuickProvider
from modelmesh.connectors.presets import PRESETS, detect, host_url
from modelmesh.testing import Error, FakeUpstream, refuse_connections

MSG = [{"role": "user", "content": "Say hi"}]
KEYS = {
    "OPENAI_API_KEY": "sk-conv-openai-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-conv-0123456789",
    "GOOGLE_API_KEY": "AIzaConv0123456789abcdef",
    "GROQ_API_KEY": "gsk_conv_0123456789abcdef",
}
QUICK_KEY = "sk-quick-secret-9876543210"


def everything_said(exc: BaseException) -> str:
    return str(exc) + repr(exc) + " ".join(getattr(exc, "problems", ()))


# -- environment detection ----------------------------------------------------------------

def test_environment_keys_and_ollama_host_become_providers_with_discovered_local_models():
    with FakeUpstream("openai", name="ollama", models=["llama3.2", "nomic-embed-text"]) as up:
        env = dict(KEYS, OLLAMA_HOST=f"127.0.0.1:{up.port}")
        client = modelmesh.create(environ=env)
        providers = client.core.providers
        assert list(providers) == ["openai", "anthropic", "gemini", "groq", "ollama"]
        assert {pid: p.config.connector for pid, p in providers.items()} == {
            "openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "groq": "groq", "ollama": "ollama"}
        assert providers["openai"].config.base_url == "https://api.openai.com/v1"
        assert providers["groq"].config.base_url == "https://api.groq.com/openai/v1"
        assert providers["ollama"].config.base_url == f"http://127.0.0.1:{up.port}/v1"
        # each key went to its own provider, the local server needs none
        assert providers["openai"].secret == KEYS["OPENAI_API_KEY"]
        assert providers["anthropic"].secret == KEYS["ANTHROPIC_API_KEY"]
        assert providers["gemini"].secret == KEYS["GOOGLE_API_KEY"]
        assert providers["groq"].secret == KEYS["GROQ_API_KEY"]
        assert providers["ollama"].secret is None
        # the local models were listed at GET /v1/models, once, and nothing else was sent
        assert [(r.method, r.path) for r in up.requests] == [("GET", "/v1/models")]
        assert {"ollama/llama3.2", "ollama/nomic-embed-text", "openai/gpt-4o-mini",
                "anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash",
                "groq/llama-3.1-8b-instant"} <= set(client.core.models)
        # one pool, named after the capability, holding the chat models only
        assert list(client.core.pools) == ["chat-completion"]
        members = {m.ref for m in client.core.pools["chat-completion"].members}
        assert "ollama/llama3.2" in members and "openai/gpt-4o-mini" in members
        assert "ollama/nomic-embed-text" not in members and "openai/text-embedding-3-small" not in members
        with client:
            r = client.chat.completions.create(model="ollama/llama3.2", messages=MSG)
        assert r.choices[0].message.content == "Hello from ollama" and r.mesh.provider == "ollama"
        assert up.requests[-1].json["model"] == "llama3.2" and "authorization" not in up.requests[-1].headers


def test_only_what_the_environment_offers_is_detected():
    env = {"GROQ_API_KEY": KEYS["GROQ_API_KEY"], "OPENAI_API_KEY": "", "UNRELATED": "x"}
    client = modelmesh.create(environ=env)
    assert list(client.core.providers) == ["groq"]  # an empty variable is not a key
    assert [(p.name, key) for p, key, _ in detect(env)] == [("groq", KEYS["GROQ_API_KEY"])]
    assert detect({}) == []


def test_ollama_host_as_full_url_and_a_request_through_the_default_pool():
    with FakeUpstream("openai", name="local", models=["qwen2.5"]) as up:
        client = modelmesh.create("chat-completion", environ={"OLLAMA_HOST": up.root_url + "/"})
        with client:
            r = client.chat.completions.create(model="chat-completion", messages=MSG)
        assert r.choices[0].message.content == "Hello from local" and r.mesh.model == "qwen2.5"
        assert r.mesh.pool == "chat-completion"
    assert host_url(PRESETS["ollama"], "10.0.0.5:11434") == "http://10.0.0.5:11434/v1"
    assert host_url(PRESETS["ollama"], "https://box.lan/v1/") == "https://box.lan/v1"


def test_one_pool_per_capability_with_the_chosen_strategy():
    with FakeUpstream("openai", name="local", models=["llama3.2", "nomic-embed-text"]) as up:
        client = modelmesh.create("chat-completion", "text-embeddings", strategy="round-robin",
                                  environ={"OLLAMA_HOST": f"127.0.0.1:{up.port}"})
        assert {name: [m.ref for m in p.members] for name, p in client.core.pools.items()} == {
            "chat-completion": ["ollama/llama3.2"], "text-embeddings": ["ollama/nomic-embed-text"]}
        assert {p.config.strategy for p in client.core.pools.values()} == {"round-robin"}
        with client:
            e = client.embeddings.create(model="text-embeddings", input=["a", "b"])
        assert len(e.data) == 2 and e.mesh.model == "nomic-embed-text"
        assert up.requests[-1].path == "/v1/embeddings"


def test_api_keys_argument_adds_and_overrides_providers():
    override = "sk-override-0123456789"
    client = modelmesh.create(api_keys={"openai": override, "mistral": "mistral-key-0123456789"},
                              environ={"OPENAI_API_KEY": KEYS["OPENAI_API_KEY"]})
    assert list(client.core.providers) == ["openai", "mistral"]
    assert client.core.providers["openai"].secret == override
    assert client.core.providers["mistral"].config.base_url == "https://api.mistral.ai/v1"
    assert override not in repr(client) and "mistral-key" not in repr(client)


def test_an_api_keys_provider_takes_its_host_variable_like_a_named_one():
    """`api_keys=` alone once built Azure on the preset's empty base URL, ignoring
    AZURE_OPENAI_ENDPOINT, which `providers=["azure-openai"]` does read."""
    env = {"AZURE_OPENAI_ENDPOINT": "https://mesh-test.openai.azure.com", "AZURE_OPENAI_DEPLOYMENTS": "prod-4o"}
    keys = {"azure-openai": "azure-arg-key-0123456789"}
    by_keys = modelmesh.create(api_keys=keys, environ=env).core.providers["azure-openai"]
    by_name = modelmesh.create(providers=["azure-openai"], api_keys=keys, environ=env).core.providers["azure-openai"]
    assert by_keys.config.base_url == by_name.config.base_url == env["AZURE_OPENAI_ENDPOINT"]
    assert [m.id for m in by_keys.config.models] == ["prod-4o"] and by_keys.secret == keys["azure-openai"]


# -- explicit providers -------------------------------------------------------------------

def test_preset_names_with_api_keys_use_the_preset_defaults_and_send_nothing():
    client = modelmesh.create(providers=["groq", "anthropic"],
                              api_keys={"groq": KEYS["GROQ_API_KEY"], "anthropic": KEYS["ANTHROPIC_API_KEY"]},
                              environ={})
    groq = client.core.providers["groq"]
    assert groq.config.base_url == PRESETS["groq"].base_url and groq.secret == KEYS["GROQ_API_KEY"]
    assert [m.id for m in groq.config.models] == list(PRESETS["groq"].default_models)
    assert client.core.providers["anthropic"].config.connector == "anthropic"
    d = client.route("chat-completion")
    assert d.pool_id == "chat-completion" and d.provider_id in ("groq", "anthropic")


def test_preset_name_takes_its_key_from_the_environment():
    client = modelmesh.create(providers=["groq"], environ={"GROQ_API_KEY": KEYS["GROQ_API_KEY"]})
    assert client.core.providers["groq"].secret == KEYS["GROQ_API_KEY"]


def test_preset_dicts_pointed_at_fake_servers_speak_each_vendor_format():
    with FakeUpstream("openai", name="groqfake", models=["llama-3.1-8b-instant"], api_key=KEYS["GROQ_API_KEY"]) as g, \
            FakeUpstream("anthropic", name="antfake", models=["claude-x"], api_key=KEYS["ANTHROPIC_API_KEY"]) as a:
        client = modelmesh.create(
            providers=[
                {"id": "groq", "connector": "groq", "config": {"base_url": g.url, "models": ["llama-3.1-8b-instant"]}},
                {"id": "claude", "connector": "anthropic",
                 "config": {"base_url": a.url, "models": [{"id": "claude-x", "capabilities": ["chat-completion"]}]}},
            ],
            environ={"GROQ_API_KEY": KEYS["GROQ_API_KEY"], "ANTHROPIC_API_KEY": KEYS["ANTHROPIC_API_KEY"]})
        with client:
            r1 = client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=MSG)
            r2 = client.chat.completions.create(model="claude/claude-x", messages=MSG, max_tokens=20)
        assert r1.choices[0].message.content == "Hello from groqfake"
        assert r2.choices[0].message.content == "Hello from antfake"
        # the key each preset names in the environment, sent the vendor's way
        assert g.requests[-1].headers["authorization"] == f"Bearer {KEYS['GROQ_API_KEY']}"
        assert a.requests[-1].headers["x-api-key"] == KEYS["ANTHROPIC_API_KEY"]
        assert a.requests[-1].path == "/v1/messages"


def test_quick_provider_discovers_models_and_serves_a_chat_request():
    with FakeUpstream("openai", name="quick", models=["alpha-1", "alpha-2"], api_key=QUICK_KEY) as up:
        qp = QuickProvider(base_url=up.url, api_key=QUICK_KEY)
        assert QUICK_KEY not in repr(qp)
        client = modelmesh.create(providers=[qp], environ={})
        assert [(r.method, r.path) for r in up.requests] == [("GET", "/v1/models")]
        assert up.requests[0].headers["authorization"] == f"Bearer {QUICK_KEY}"
        assert [m.ref for m in client.core.pools["chat-completion"].members] == ["quick/alpha-1", "quick/alpha-2"]
        with client:
            r = client.chat.completions.create(model="chat-completion", messages=MSG)
            s = client.chat.completions.create(model="quick/alpha-2", messages=MSG, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        assert r.choices[0].message.content == "Hello from quick" and r.mesh.provider == "quick"
        assert text == "Hello from quick" and s.mesh.model == "alpha-2"
        assert up.requests[-1].json["model"] == "alpha-2" and up.requests[-1].json["stream"] is True
        assert QUICK_KEY not in repr(client)


def test_quick_provider_with_models_given_sends_no_discovery_and_keeps_declared_capabilities():
    with FakeUpstream("openai", name="q2", models=["emb-1"]) as up:
        qp = QuickProvider(base_url=up.url, models=["emb-1"], name="q2", capabilities=["text-embeddings"])
        client = modelmesh.create("text-embeddings", providers=[qp], environ={})
        assert up.requests == []
        assert client.core.models["q2/emb-1"].capabilities == ("representation.embeddings.text-embeddings",)
        assert qp.to_config()["config"]["auth"] == {"method": "none"}
        with client:
            r = client.embeddings.create(model="text-embeddings", input="one")
        assert len(r.data) == 1 and "authorization" not in up.requests[-1].headers


def test_several_quick_providers_fail_over_between_each_other():
    with FakeUpstream("openai", name="first", models=["m"]) as a, FakeUpstream("openai", name="second", models=["m"]) as b:
        client = modelmesh.create(providers=[QuickProvider(base_url=a.url, name="first", models=["m"]),
                                             QuickProvider(base_url=b.url, name="second", models=["m"])],
                                  strategy="priority", environ={})
        a.always(Error(503))
        with client:
            r = client.chat.completions.create(model="chat-completion", messages=MSG)
        assert r.mesh.provider == "second" and r.mesh.attempts[0].provider == "first"


# -- clear errors ---------------------------------------------------------------------------

def test_nothing_found_names_every_variable_to_set():
    with pytest.raises(ConfigurationError) as info:
        modelmesh.create(environ={})
    text = everything_said(info.value)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY", "OLLAMA_HOST"):
        assert var in text
    assert "providers=" in text


@pytest.mark.parametrize("name,var", [("groq", "GROQ_API_KEY"), ("openai", "OPENAI_API_KEY"),
                                      ("gemini", "GOOGLE_API_KEY"), ("mistral", "MISTRAL_API_KEY")])
def test_a_named_preset_without_its_key_names_the_variable(name, var):
    other_keys = {k: v for k, v in KEYS.items() if k != var}
    with pytest.raises(ConfigurationError) as info:
        modelmesh.create(providers=[name], environ=other_keys)
    text = everything_said(info.value)
    assert var in text and f"'{name}'" in text
    assert not any(v in text for v in other_keys.values())


def test_unknown_provider_names_and_bad_items_are_refused_without_echoing_keys():
    secret = "sk-never-show-0123456789"
    with pytest.raises(ConfigurationError) as info:
        modelmesh.create(api_keys={"openia": secret}, environ={})
    assert "api_keys.openia" in str(info.value) and "openai" in str(info.value)
    assert secret not in everything_said(info.value)
    with pytest.raises(ConfigurationError, match=r"providers\[0\]: unknown provider 'grok'"):
        modelmesh.create(providers=["grok"], environ={})
    with pytest.raises(ConfigurationError, match=r"providers\[1\]: expected a provider name"):
        modelmesh.create(providers=[QuickProvider(base_url="http://x.test/v1", models=["m"]), 42], environ={})
    with pytest.raises(ConfigurationError, match="unknown capability 'chat-completon'"):
        modelmesh.create("chat-completon", providers=[QuickProvider(base_url="http://x.test/v1", models=["m"])],
                         environ={})


def test_discovery_refused_key_is_a_configuration_error_without_the_key():
    with FakeUpstream("openai", name="guarded", models=["m"], api_key="sk-the-right-one-000000") as up:
        with pytest.raises(ConfigurationError) as info:
            modelmesh.create(providers=[QuickProvider(base_url=up.url, api_key=QUICK_KEY)], environ={})
        text = everything_said(info.value)
        assert "401" in text and f"{up.url}/models" in text and QUICK_KEY not in text


def test_discovery_error_bodies_that_echo_the_key_are_redacted():
    with FakeUpstream("openai", name="echo", models=["m"]) as up:
        up.script(Error(403, message=f"key {QUICK_KEY} is not allowed here"))
        with pytest.raises(ConfigurationError) as info:
            modelmesh.create(providers=[QuickProvider(base_url=up.url, api_key=QUICK_KEY)], environ={})
        text = everything_said(info.value)
        assert "403" in text and "is not allowed here" in text and QUICK_KEY not in text


def test_discovery_of_an_empty_or_unreachable_server_says_what_to_do():
    with FakeUpstream("openai", name="empty", models=[]) as up, \
            pytest.raises(ConfigurationError, match=r"lists no models; pass models=\[\.\.\.\]"):
        modelmesh.create(providers=[QuickProvider(base_url=up.url, name="empty")], environ={})
    dead = refuse_connections()
    with pytest.raises(ConfigurationError) as info:
        modelmesh.create(environ={"OLLAMA_HOST": dead})
    assert f"{dead}/v1/models" in str(info.value) and "could not list models" in str(info.value)


def test_a_preset_provider_dict_without_any_key_is_a_configuration_error():
    with FakeUpstream("openai", name="groqfake", models=["llama-3.1-8b-instant"]) as up:
        with pytest.raises(ConfigurationError, match="GROQ_API_KEY"):
            modelmesh.create(providers=[{"id": "groq", "connector": "groq",
                                         "config": {"base_url": up.url, "models": ["llama-3.1-8b-instant"]}}],
                             environ={})
        assert up.requests == []


# -- config= --------------------------------------------------------------------------------

def test_config_path_to_a_yaml_file_with_a_dotenv_secret_store(tmp_path):
    with FakeUpstream("openai", name="yaml", models=["gpt-y"], api_key=QUICK_KEY) as up:
        (tmp_path / "keys.env").write_text(f"YAML_KEY={QUICK_KEY}\n")
        path = tmp_path / "modelmesh.yaml"
        path.write_text(f"""
secrets:
  store: dotenv
  path: keys.env
providers:
  yaml:
    connector: openai-compatible
    config:
      base_url: {up.url}
      auth: {{api_key: "${{secrets:yaml-key}}"}}
      models: [{{id: gpt-y, capabilities: [chat-completion]}}]
pools:
  chat:
    capability: chat-completion
""")
        client = modelmesh.create(config=str(path), environ={})
        assert list(client.core.pools) == ["chat"] and list(client.core.providers) == ["yaml"]
        with client:
            r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.choices[0].message.content == "Hello from yaml"
        assert up.requests[-1].headers["authorization"] == f"Bearer {QUICK_KEY}"
        assert QUICK_KEY not in repr(client) and QUICK_KEY not in repr(client.config)


def test_config_path_reads_key_variables_from_the_given_environ(tmp_path):
    with FakeUpstream("openai", name="envkey", models=["gpt-e"], api_key=QUICK_KEY) as up:
        path = tmp_path / "mesh.yml"
        path.write_text(f"providers:\n  e:\n    connector: openai\n    config:\n      base_url: {up.url}\n"
                        f"      auth: {{api_key_env: MY_MESH_KEY}}\n      models: [gpt-e]\n")
        client = modelmesh.create(config=path, environ={"MY_MESH_KEY": QUICK_KEY})
        with client:
            r = client.chat.completions.create(model="e/gpt-e", messages=MSG)
        assert r.mesh.provider == "e" and up.requests[-1].headers["authorization"] == f"Bearer {QUICK_KEY}"


def test_config_errors_name_the_file_and_config_excludes_providers(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  a:\n    connector: openai\n    config:\n      timeout: soon\n      models: [m]\n")
    with pytest.raises(ConfigurationError) as info:
        modelmesh.create(config=str(path), environ={})
    assert str(path) in str(info.value) and "providers.a.config.timeout" in str(info.value)
    with pytest.raises(ConfigurationError, match="either config= or providers="):
        modelmesh.create(config=str(path), providers=["openai"], environ={})
    with pytest.raises(ConfigurationError, match="config file not found"):
        modelmesh.create(config=str(tmp_path / "missing.yaml"), environ={})


def test_gemini_key_is_also_read_from_GEMINI_API_KEY():
    client = modelmesh.create(environ={"GEMINI_API_KEY": "AIzaAltKey0123456789abcdefghij"})
    assert list(client.core.providers) == ["gemini"]
    assert client.core.providers["gemini"].secret == "AIzaAltKey0123456789abcdefghij"


def test_azure_from_the_environment_routes_to_its_deployments():
    from modelmesh.testing import FakeUpstream

    with FakeUpstream("openai", name="azure", models=["prod-4o"]) as up:
        env = {"AZURE_OPENAI_API_KEY": "azure-env-key-0123456789", "AZURE_OPENAI_ENDPOINT": up.root_url,
               "AZURE_OPENAI_DEPLOYMENTS": "prod-4o", "AZURE_OPENAI_API_VERSION": "2024-10-21"}
        with modelmesh.create(environ=env) as client:
            r = client.chat.completions.create(model="chat-completion", messages=[{"role": "user", "content": "hi"}])
            assert r.mesh.provider == "azure-openai" and r.choices[0].message.content
        sent = up.requests[-1]
        assert "/openai/deployments/prod-4o/" in sent.path and sent.headers["api-key"] == env["AZURE_OPENAI_API_KEY"]
        assert sent.query["api-version"] == "2024-10-21"
    with pytest.raises(modelmesh.ConfigurationError, match="AZURE_OPENAI_DEPLOYMENTS") as info:
        modelmesh.create(environ={k: v for k, v in env.items() if k != "AZURE_OPENAI_DEPLOYMENTS"})
    assert env["AZURE_OPENAI_API_KEY"] not in str(info.value)


def test_openai_base_url_points_the_openai_provider_elsewhere_as_it_does_the_sdk():
    with FakeUpstream("openai", models=["gpt-4o-mini"]) as up:
        env = {"OPENAI_API_KEY": KEYS["OPENAI_API_KEY"], "OPENAI_BASE_URL": up.url + "/"}
        with modelmesh.create(environ=env) as client:
            r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert r.mesh.provider == "openai" and up.requests[-1].path == "/v1/chat/completions"
        assert up.requests[-1].headers["authorization"] == f"Bearer {KEYS['OPENAI_API_KEY']}"
    # without it, the real API; and without a key, no provider at all, whatever the URL says
    assert detect({"OPENAI_API_KEY": "k"})[0][2] == "https://api.openai.com/v1"
    assert detect({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) == []
