"""modelmesh.build: one door from configuration to a ready core, every problem at once."""
from __future__ import annotations

import os
import textwrap

import pytest

import modelmesh
from modelmesh import cli
from modelmesh._core._mesh import MeshCore
from modelmesh._core._policies import DeactivationReason, PolicySet
from modelmesh.testing import FakeClock, FakeUpstream

from core_helpers import Clock, drive, provider

SEVEN_PROBLEMS = textwrap.dedent("""\
    providers:
      openai:
        connector: openai
        config:
          models: [gpt-4o]
      inhouse:
        connector: "nosuchmod:Cls"
        config:
          base_url: "http://127.0.0.1:9/v1"
          auth:
            api_key: "${secrets:mm-build-test-no-such-secret}"
          models:
            - id: inhouse-1
              capabilities: [chat-completion]
    pools:
      chat:
        capability: chat-completion
        strategy: "nosuchmod:fn"
        rotation:
          recovery:
            cooldown: soon
      embed:
        capability: text-embeddings
    storage:
      connectr: memory
    """)

EXPECTED_PATHS = {
    "providers.openai.config.auth.api_key",          # no OPENAI_API_KEY in the environment
    "pools.chat.strategy",                           # nosuchmod:fn cannot load
    "providers.inhouse.connector",                   # nosuchmod:Cls cannot load
    "pools.chat.rotation.recovery.cooldown",         # "soon" is not a duration
    "pools.embed",                                   # no model offers text-embeddings
    "providers.inhouse.config.auth.api_key",         # unknown secret
    "storage.connectr",                              # unknown key
}


@pytest.fixture
def seven(tmp_path, monkeypatch):
    for name in ("OPENAI_API_KEY", "MM_BUILD_TEST_NO_SUCH_SECRET", "mm-build-test-no-such-secret"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "modelmesh.yaml"
    path.write_text(SEVEN_PROBLEMS, encoding="utf-8")
    return path


def paths(problems):
    return {p.partition(": ")[0] for p in problems}


def test_seven_independent_problems_come_in_one_error_from_the_client(seven):
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.MeshClient(str(seven), environ={})
    assert len(info.value.problems) == 7, info.value.problems
    assert paths(info.value.problems) == EXPECTED_PATHS


def test_seven_independent_problems_come_in_one_error_from_check(seven, capsys):
    assert cli.main(["check", str(seven)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "(7 problems)" in err
    for path in EXPECTED_PATHS:
        assert f"  - {path}: " in err


def test_check_accepts_what_the_client_accepts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-build-test-0123456789")
    path = tmp_path / "ok.yaml"
    path.write_text("providers:\n  openai:\n    connector: openai\n    config:\n      models: [gpt-4o]\n"
                    "pools:\n  chat:\n    capability: chat-completion\n", encoding="utf-8")
    assert cli.main(["check", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}: OK") and "pools: chat" in out
    monkeypatch.delenv("OPENAI_API_KEY")
    assert cli.main(["check", str(path)]) == 2  # as MeshClient(path) would refuse it
    _, err = capsys.readouterr()
    assert "providers.openai.config.auth.api_key: no key" in err


def test_refusals_are_collected_with_everything_else():
    config = {"providers": {"p": provider(["m"])},
              "storage": {"connector": "sqlite", "config": {"path": "never-opened.db"}, "persistence": {"encryption": True}},
              "pools": {"chat": {"capability": "chat", "rotation": {"recovery": {"cooldown": "soon"}}}}}
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config, environ={})
    assert paths(info.value.problems) == {"storage.persistence.encryption", "pools.chat.rotation.recovery.cooldown"}
    assert not os.path.exists("never-opened.db")  # an invalid configuration opens no storage


def test_build_never_shows_a_secret_in_its_error():
    secret = "sk-build-secret-0123456789abcdef"
    config = {"providers": {"p": provider(["m"], auth={"api_key": secret})},
              "pools": {"chat": {"capability": "chat", "strategy": f"nosuchmod_{secret[-8:]}:fn"}}}
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config, environ={})
    assert secret not in str(info.value)


# -- an embedder drives the core itself ----------------------------------------------------

def test_an_embedder_builds_a_core_and_drives_it():
    built = modelmesh.build({"providers": {"p": provider(["m1", "m2"])},
                             "pools": {"chat": {"models": ["p/m1", "p/m2"], "strategy": "priority"}}},
                            environ={}, seed=7)
    assert isinstance(built.core, MeshCore)
    assert built.sinks == () and built.config.pools["chat"].strategy == "priority"
    assert "sk-test-secret-123456" in built.secret_values
    assert "sk-test-secret-123456" not in repr(built)
    clock = Clock()
    call = built.core.start("chat", {"messages": [{"role": "user", "content": "hi"}]}, model="chat", now=clock())
    final, seen = drive(call, {"p/m1": [500], "p/m2": [200]}, clock)
    assert final.response["choices"][0]["message"]["content"] == "hi"
    assert [a.ref for a in seen if hasattr(a, "ref")][-1] == "p/m2"


def test_build_fills_preset_base_urls_and_keys_from_environ():
    built = modelmesh.build({"providers": {"groq": {"connector": "groq", "config": {"models": ["llama-x"]}}}},
                            environ={"GROQ_API_KEY": "gsk-build-0123456789"})
    assert built.config.providers["groq"].base_url == "https://api.groq.com/openai/v1"
    assert built.core.providers["groq"].secret == "gsk-build-0123456789"


def test_python_policies_are_checked():
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build({"providers": {"p": provider(["m"])}}, environ={},
                        policies={"chat": PolicySet(deactivation=(42,)), "x": "nope"})
    assert len(info.value.problems) == 2
    assert "build(policies=...)['chat'].deactivation[0]:" in info.value.problems[0]


# -- rotation policies named in configuration -----------------------------------------------

def test_bad_policy_paths_are_problems_at_their_path():
    config = {"providers": {"p": provider(["m"])},
              "routing": {"rotation": {"recovery": {"policies": ["policy_helpers:missing"]}}},
              "pools": {"chat": {"capability": "chat", "rotation": {"deactivation": {
                  "policies": ["policy_helpers:NOT_A_FUNCTION", "nosuchmod:f", "no-colon"]}}}}}
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(config, environ={})
    assert sorted(paths(info.value.problems)) == [
        "pools.chat.rotation.deactivation.policies[0]", "pools.chat.rotation.deactivation.policies[1]",
        "pools.chat.rotation.deactivation.policies[2]", "routing.rotation.recovery.policies[0]"]


def test_configured_policies_deactivate_and_recover_a_model_over_http():
    """after_two_requests rests a model after two requests; back_in_ten (asked before the
    configured 60s cooldown) brings it back ten seconds later."""
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a, \
            FakeUpstream("openai", name="beta", models=["gpt-y"]) as b:
        config = {"providers": {
            "a": {"connector": "openai", "config": {"base_url": a.url, "auth": {"api_key": "sk-a-0123456789"},
                                                    "models": ["gpt-x"]}},
            "b": {"connector": "openai", "config": {"base_url": b.url, "auth": {"api_key": "sk-b-0123456789"},
                                                    "models": ["gpt-y"]}}},
            "pools": {"chat": {"models": ["a/gpt-x", "b/gpt-y"], "strategy": "priority", "rotation": {
                "selection": {"model_priority": ["a/gpt-x", "b/gpt-y"]},
                "deactivation": {"policies": ["policy_helpers:after_two_requests"]},
                "recovery": {"cooldown": "60s", "probe_interval": None, "policies": ["policy_helpers:back_in_ten"]}}}}}
        clock = FakeClock()
        events = []
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append) as client:
            def served():
                r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
                return r.mesh.provider

            assert [served(), served()] == ["a", "a"]
            (down,) = [e for e in events if e.type == "model_deactivated"]
            assert down.model == "a/gpt-x" and down.detail == "two requests are enough"
            assert down.until == pytest.approx(clock() + 10.0)
            assert served() == "b"
            clock.advance(9.0)
            assert served() == "b"
            clock.advance(1.0)
            assert served() == "a"


def test_routing_level_policies_reach_every_pool_and_python_ones_follow():
    seen = []

    def note(state, now):
        seen.append(state.model)
        return None

    config = {"providers": {"p": provider(["m1", "m2"])},
              "routing": {"rotation": {"deactivation": {"retry_limit": 100,
                                                        "policies": ["policy_helpers:on_503"]}}},
              "pools": {"chat": {"models": ["p/m1", "p/m2"], "strategy": "priority"}}}
    built = modelmesh.build(config, environ={}, policies={"*": PolicySet(deactivation=(note,))})
    core = built.core
    for name in ("chat", "chat-completion"):  # a configured pool and an implicit one
        clock = Clock()
        call = core.start("chat", {"messages": [{"role": "user", "content": "hi"}]}, model=name, now=clock())
        final, _ = drive(call, {"p/m1": [503], "p/m2": [200]}, clock)
        assert final.response["choices"][0]["message"]["content"] == "hi"
        state = core.health.state(core.resolve(name, now=0.0).name, "p/m1")
        assert state.reason is DeactivationReason.PROVIDER_OUTAGE  # one 503, retry_limit 100: on_503 did it
    assert seen  # the Python-given policy is asked too


# -- settings this version does not act on ---------------------------------------------------

UNACTED = {
    "secrets": {"reload_on_rotation": True},
    "providers": {"p": {"connector": "openai-compatible", "config": {
        "base_url": "http://127.0.0.1:9/v1", "auth": {"api_key": "sk-unacted-0123456789", "key_rotation": True},
        "models": [{"id": "m", "weight": 2}],
        "catalogue": {"refresh_interval": "1h"}, "rate_limits": {"tpm": 1000},
        "infrastructure": {"batch": False, "files": True}}}},
    "storage": {"connector": "memory", "config": {"path": "x"},
                "persistence": {"sync_policy": "periodic", "sync_interval": "30s", "format": "yaml",
                                "compression": True, "encryption": True},
                "locking": {"enabled": False, "timeout": "5s", "retry_interval": "2s"}},
    "observability": {"events": {"include_metadata": False}, "logging": {
        "level": "full", "redact_secrets": False, "max_payload_size": 10}, "tracing": {"min_severity": "error"},
        "statistics": {"flush_interval": "1s", "retention": "1d", "scopes": ["pool"]}},
    "discovery": {"sync": {"enabled": True, "interval": "2h", "auto_register": False, "providers": ["p"],
                           "on_new_model": "ignore", "on_deprecated_model": "ignore"},
                  "health": {"enabled": False, "failure_threshold": 5, "providers": ["p"]}},
    "proxy": {"host": "0.0.0.0", "port": 9999, "api_keys": ["proxy-key-0123456789"], "cors_origins": ["*"],
              "max_body_bytes": 10, "model_aliases": {"gpt-4": "chat-completion"}},
}


def test_settings_nothing_acts_on_are_refused_at_their_paths():
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(UNACTED, environ={})
    problems = info.value.problems
    assert all(p.endswith("not acted on in this version; remove it or leave it at its default")
               or "not acted on in this version; remove it or leave it at its default (" in p for p in problems)
    c = "providers.p.config"
    assert paths(problems) == {
        f"{c}.models[0].weight", f"{c}.rate_limits.tpm",
        "storage.config", "storage.persistence.sync_policy", "storage.persistence.sync_interval",
        "storage.persistence.format", "storage.persistence.compression", "storage.persistence.encryption",
        "storage.locking.enabled", "storage.locking.timeout", "storage.locking.retry_interval",
    }  # acted on: infrastructure.files (tests/test_files.py), discovery (tests/test_discovery.py), the proxy:
    # section by `modelmesh serve` (tests/test_proxy*.py), observability by the Observer (tests/test_observability_sinks.py)
    assert "proxy-key-0123456789" not in str(info.value) and "sk-unacted" not in str(info.value)


def test_those_settings_at_their_defaults_are_accepted():
    config = {"secrets": {"reload_on_rotation": False},
              "providers": {"p": provider(["m"], quota={"query_current": False}, infrastructure={"batch": False})},
              "storage": {"connector": "memory", "persistence": {"sync_policy": "in-memory"}},
              "observability": {"logging": {"redact_secrets": True}},
              "discovery": {"sync": {"enabled": False}, "health": {"interval": "30s", "enabled": True}},
              "proxy": {"port": 8080}}
    assert modelmesh.build(config, environ={}).core is not None


def test_status_shows_a_pool_description(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text("providers:\n  p:\n    connector: openai-compatible\n    config:\n"
                    "      base_url: http://127.0.0.1:9/v1\n      auth: {method: none}\n      models: [m]\n"
                    "pools:\n  chat:\n    capability: chat-completion\n    description: the main chat pool\n",
                    encoding="utf-8")
    assert cli.main(["status", str(path)]) == 0
    assert "pool chat:  the main chat pool" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["oauth", "service_account"])
def test_token_exchange_methods_are_refused_saying_what_to_do_instead(method):
    cfg = {"providers": {"p": {"connector": "openai", "config": {
        "auth": {"method": method, "api_key": "sk-token-0123456789"}, "models": ["m"]}}}}
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(cfg, environ={})
    text = str(info.value)
    assert f"providers.p.config.auth.method: '{method}' is not built in this version" in text
    assert "cache_ttl" in text and "BaseProvider" in text and "sk-token" not in text
