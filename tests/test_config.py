"""Configuration: parsing plain data, loading files, and reporting every problem at once."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from modelmesh._core._config import KNOWN_CONNECTORS, parse_config, parse_secrets_config
from modelmesh._core._config_schema import (
    FrozenMap,
    MeshConfig,
    PoolDefaults,
    ProviderConfig,
    RecoveryConfig,
    RetryConfig,
)
from modelmesh._core._errors import ConfigurationError
from modelmesh.config import load_config

CHAT = "generation.text-generation.chat-completion"
EMBED = "representation.embeddings.text-embeddings"
SECRET = "sk-live-0123456789abcdefXYZ"

SEED_003 = """\
# modelmesh.yaml -- a complete custom provider, zero code
providers:
  my-openai-proxy:
    connector: openai-compatible
    config:
      base_url: "https://my-proxy.internal/v1"
      auth:
        method: api_key
        api_key: "${secrets:proxy-key}"
      models:
        - id: "gpt-4o"
          capabilities: ["generation.text-generation.chat-completion"]
          context_window: 128000
"""


def problems_of(data: Any, **kw: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as info:
        parse_config(data, **kw)
    return info.value.problems


def minimal(**pools: Any) -> dict[str, Any]:
    return {
        "providers": {"openai": {"connector": "openai",
                                 "config": {"models": ["gpt-4o", "text-embedding-3-small"]}}},
        "pools": pools or {"chat": {"capability": "chat"}},
    }


# -- the seed 003 example --------------------------------------------------------------

def test_seed_003_example_loads_verbatim_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "modelmesh.yaml"
    path.write_text(SEED_003, encoding="utf-8")
    config = load_config(path, resolve_secret={"proxy-key": SECRET}.get)
    provider = config.providers["my-openai-proxy"]
    assert provider.connector == "openai-compatible"
    assert provider.base_url == "https://my-proxy.internal/v1"
    assert provider.auth.method == "api_key"
    assert provider.auth.api_key == SECRET
    (model,) = provider.models
    assert model.id == "gpt-4o"
    assert model.context_window == 128000
    assert model.capabilities == (CHAT,)
    assert SECRET not in repr(config)
    assert SECRET not in repr(provider)


def test_seed_003_example_with_the_default_env_store(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "modelmesh.yaml"
    path.write_text(SEED_003, encoding="utf-8")
    monkeypatch.setenv("PROXY_KEY", SECRET)  # ${secrets:proxy-key} -> PROXY_KEY
    config = load_config(str(path))
    assert config.providers["my-openai-proxy"].auth.api_key == SECRET
    assert config.secret_values() == (SECRET,)


def test_seed_003_example_without_the_secret_names_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("proxy-key", raising=False)
    monkeypatch.delenv("PROXY_KEY", raising=False)
    path = tmp_path / "modelmesh.yaml"
    path.write_text(SEED_003, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert info.value.problems == (
        "providers.my-openai-proxy.config.auth.api_key: secret 'proxy-key' not found",)
    assert str(path) in str(info.value)


# -- every problem at once -------------------------------------------------------------

def test_five_problems_are_all_reported_with_their_paths() -> None:
    data = minimal(chat={
        "capability": "chat",
        "strategy": "fastest",
        "rotation": {"recovery": {"cooldown": "soon"},
                     "deactivation": {"error_rate_threshold": 1.5}},
        "retry": {"max_attempts": 0},
    })
    data["proxy"] = {"port": 70000}
    problems = problems_of(data)
    assert len(problems) == 5
    assert 'pools.chat.rotation.recovery.cooldown: expected a duration like "60s", got "soon"' \
        in problems
    paths = {p.split(": ", 1)[0] for p in problems}
    assert paths == {"pools.chat.strategy", "pools.chat.rotation.recovery.cooldown",
                     "pools.chat.rotation.deactivation.error_rate_threshold",
                     "pools.chat.retry.max_attempts", "proxy.port"}


def test_error_message_lists_problems_and_source() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config({"proxy": {"port": 0, "hots": "x"}}, source="mesh.yaml")
    text = str(info.value)
    assert text.startswith("invalid configuration in mesh.yaml (2 problems):")
    assert "  - proxy.port: expected a value from 1 to 65535, got 0" in text
    assert "  - proxy.hots: unknown key (did you mean 'host'?)" in text


def test_misspelt_key_gets_a_suggestion() -> None:
    data = minimal(chat={"capability": "chat", "rotation": {"recovery": {"cooldwn": "5s"}}})
    assert problems_of(data) == (
        "pools.chat.rotation.recovery.cooldwn: unknown key (did you mean 'cooldown'?)",)


def test_misspelt_enum_value_gets_a_suggestion() -> None:
    (problem,) = problems_of(minimal(chat={"capability": "chat", "strategy": "round-robbin"}))
    assert problem.startswith("pools.chat.strategy: expected one of 'stick-until-failure'")
    assert problem.endswith("got \"round-robbin\" (did you mean 'round-robin'?)")


def test_misspelt_connector_and_capability() -> None:
    data = {"providers": {"p": {"connector": "anthropik"}},
            "pools": {"x": {"capability": "chat-completon"}}}
    problems = problems_of(data)
    assert problems[0].startswith("providers.p.connector: expected one of")
    assert problems[0].endswith("(did you mean 'anthropic'?)")
    assert problems[1] == ("pools.x.capability: unknown capability 'chat-completon' "
                           "(did you mean 'chat-completion'?)")


def test_provider_settings_outside_config_get_a_hint() -> None:
    (problem,) = problems_of({"providers": {"p": {"connector": "openai", "models": ["a"]}}})
    assert problem == "providers.p.models: unknown key (provider settings go under 'config:')"


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of(["providers"]) == (
        "(top level): expected a mapping of sections, got a list",)


# -- types and ranges ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("recovery", "problem"),
    [
        ({"half_open_max": True}, "half_open_max: expected an integer, got true"),
        ({"half_open_max": 1.5}, "half_open_max: expected an integer, got 1.5"),
        ({"probe_on_start": "yes"}, "probe_on_start: expected true or false, got \"yes\""),
        ({"cooldown": -5}, "cooldown: expected a duration like \"60s\", got -5"),
        ({"cooldown": None}, "cooldown: must not be null"),
        ({"quota_reset_schedule": "weekly"}, "quota_reset_schedule: expected one of"),
    ],
)
def test_type_checks(recovery: dict[str, Any], problem: str) -> None:
    (found,) = problems_of(minimal(chat={"capability": "chat",
                                         "rotation": {"recovery": recovery}}))
    assert found.startswith("pools.chat.rotation.recovery." + problem)


def test_ints_are_accepted_where_floats_are_expected() -> None:
    data = minimal(chat={"capability": "chat", "rotation": {
        "deactivation": {"error_rate_threshold": 1, "budget_limit": 5},
        "selection": {"rate_limit": {"threshold": 0}, "weights": {"openai/gpt-4o": 2}}}})
    pool = parse_config(data).pools["chat"]
    assert pool.rotation.deactivation.error_rate_threshold == 1.0
    assert isinstance(pool.rotation.deactivation.budget_limit, float)
    assert pool.rotation.selection.rate_limit.threshold == 0.0
    assert pool.rotation.selection.weights == {"openai/gpt-4o": 2.0}


def test_durations_everywhere() -> None:
    data = minimal(chat={"capability": "chat",
                         "rotation": {"recovery": {"cooldown": "5m", "probe_interval": "1.5h"}},
                         "retry": {"base_delay": "500ms", "deadline": None}})
    pool = parse_config(data).pools["chat"]
    assert pool.rotation.recovery.cooldown == 300.0
    assert pool.rotation.recovery.probe_interval == 5400.0
    assert pool.retry.base_delay == 0.5
    assert pool.retry.deadline is None


def test_maintenance_window_is_a_validated_cron() -> None:
    ok = minimal(chat={"capability": "chat", "rotation": {"deactivation": {
        "maintenance_window": "0 3 * * sun", "maintenance_duration": "2h"}}})
    deactivation = parse_config(ok).pools["chat"].rotation.deactivation
    assert deactivation.maintenance_window == "0 3 * * sun"
    assert deactivation.maintenance_duration == 7200.0
    bad = minimal(chat={"capability": "chat", "rotation": {"deactivation": {
        "maintenance_window": "0 3 * *"}}})
    (problem,) = problems_of(bad)
    assert problem.startswith("pools.chat.rotation.deactivation.maintenance_window: ")
    assert "expected 5 fields" in problem
    out_of_range = minimal(chat={"capability": "chat", "rotation": {"deactivation": {
        "maintenance_window": "0 25 * * *"}}})
    (problem,) = problems_of(out_of_range)
    assert "hour field" in problem and "25 is outside 0-23" in problem


def test_quota_reset_schedules_are_named_or_cron() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {
        "quota": {"reset_schedule": "0 8 1 * *"}}}},
        "pools": {"chat": {"capability": "chat", "rotation": {"recovery": {
            "quota_reset_schedule": "daily_utc"}}}}}
    config = parse_config(data)
    assert config.providers["p"].quota_reset_schedule == "0 8 1 * *"
    assert config.pools["chat"].rotation.recovery.quota_reset_schedule == "daily_utc"
    data["providers"]["p"]["config"]["quota"]["reset_schedule"] = "weekly"
    (problem,) = problems_of(data)
    assert problem.startswith("providers.p.config.quota.reset_schedule: expected one of "
                              "'daily', 'monthly', 'rolling', 'daily_utc', got \"weekly\"")
    assert problem.endswith("(or a 5-field cron expression)")


def test_status_code_lists_report_the_bad_item() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {
        "error": {"retryable_codes": [429, 999, "500"]}}}}}
    assert problems_of(data) == (
        "providers.p.config.error.retryable_codes[1]: expected a value from 100 to 599, got 999",
        "providers.p.config.error.retryable_codes[2]: expected an integer, got \"500\"",
    )


def test_base_url_must_be_http() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {"base_url": "ftp://x"}}}}
    (problem,) = problems_of(data)
    assert problem.startswith("providers.p.config.base_url: expected an http(s) URL")


def test_openai_compatible_needs_a_base_url() -> None:
    assert problems_of({"providers": {"p": {"connector": "openai-compatible"}}}) == (
        "providers.p.config.base_url: required for the 'openai-compatible' connector",)


def test_custom_connector_path_and_known_connectors() -> None:
    config = parse_config({"providers": {"p": {"connector": "acme.mesh:AcmeProvider"}}})
    assert config.providers["p"].connector == "acme.mesh:AcmeProvider"
    assert {"openai", "anthropic", "gemini", "ollama", "vllm"} <= KNOWN_CONNECTORS


def test_missing_connector_is_required() -> None:
    assert problems_of({"providers": {"p": {"config": {}}}}) == (
        "providers.p.connector: required",)


# -- providers and models ----------------------------------------------------------------

def test_provider_keys_and_defaults() -> None:
    data = {"providers": {"openai": {"connector": "openai", "enabled": False, "config": {
        "timeout": "45s", "max_retries": 2,
        "budget": {"daily_limit": 5, "monthly_limit": 100.5},
        "quota": {"reset_schedule": "monthly", "query_current": True},
        "error": {"non_retryable_codes": [400, 401, 403, 404]},
        "catalogue": {"auto_discover": True, "refresh_interval": "1h"},
        "pricing": {"query": True},
        "infrastructure": {"batch": True, "files": False},
        "headers": {"X-Team": "ml"}, "api_version": "2024-10-21",
        "rate_limits": {"rpm": 500, "tpm": 30000},
        "options": {"organization": "org-1", "nested": {"a": [1, 2]}},
    }}}}
    p = parse_config(data).providers["openai"]
    assert not p.enabled and p.timeout == 45.0 and p.max_retries == 2
    assert p.connect_timeout == 10.0 and p.stream_total_timeout == 300.0
    assert p.stream_first_chunk_timeout == 60.0 and p.stream_idle_timeout == 30.0
    assert (p.budget.daily_limit, p.budget.monthly_limit) == (5.0, 100.5)
    assert p.quota_reset_schedule == "monthly" and p.quota_query_current
    assert p.non_retryable_codes == (400, 401, 403, 404)
    assert p.retryable_codes == (429, 500, 502, 503, 504)
    assert p.auto_discover and p.refresh_interval == 3600.0 and p.pricing_query
    assert p.infrastructure == {"batch": True, "files": False}
    assert p.headers == {"X-Team": "ml"} and p.api_version == "2024-10-21"
    assert (p.rate_limits.rpm, p.rate_limits.tpm) == (500, 30000)
    assert p.options["nested"]["a"] == (1, 2)
    assert isinstance(p.options, FrozenMap)


def test_stream_idle_timeout_is_a_provider_duration_apart_from_the_first_chunk() -> None:
    def provider(**cfg):
        return {"providers": {"p": {"connector": "openai", "config": cfg}}}

    p = parse_config(provider(stream_first_chunk_timeout="90s", stream_idle_timeout="500ms")).providers["p"]
    assert (p.stream_first_chunk_timeout, p.stream_idle_timeout) == (90.0, 0.5)
    with pytest.raises(ConfigurationError, match="stream_idle_timeout"):
        parse_config(provider(stream_idle_timeout="0s"))


def test_execution_group_is_an_alternative_spelling() -> None:
    data = {"providers": {"p": {"connector": "vllm", "config": {"execution": {
        "base_url": "http://localhost:8000/v1", "timeout": "12s", "max_retries": 1}}}}}
    p = parse_config(data).providers["p"]
    assert (p.base_url, p.timeout, p.max_retries) == ("http://localhost:8000/v1", 12.0, 1)
    both = {"providers": {"p": {"connector": "vllm", "config": {
        "timeout": "5s", "execution": {"timeout": "12s"}}}}}
    assert problems_of(both) == (
        "providers.p.config.timeout: also given in providers.p.config.execution; keep one",)


def test_model_ids_keep_dots_and_slashes() -> None:
    data = {"providers": {"together": {"connector": "together", "config": {"models": [
        "meta-llama/llama-3.1-8b", {"id": "mistralai/Mixtral-8x7B-Instruct-v0.1"}]}}},
        "pools": {"llama": {"models": ["together/meta-llama/llama-3.1-8b"]}}}
    config = parse_config(data)
    ids = [m.id for m in config.providers["together"].models]
    assert ids == ["meta-llama/llama-3.1-8b", "mistralai/Mixtral-8x7B-Instruct-v0.1"]
    assert config.pools["llama"].models == ("together/meta-llama/llama-3.1-8b",)
    assert config.providers["together"].model("meta-llama/llama-3.1-8b") is not None


def test_model_capabilities_are_resolved_or_inferred() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {"models": [
        {"id": "custom", "capabilities": ["chat", "tools", "generation.audio.text-to-speech"]},
        "text-embedding-3-large", "whisper-1",
        {"id": "gpt-4o-mini", "pricing": {"input_per_1m": 0.15, "output_per_1m": 0.6},
         "max_output_tokens": 16384, "aliases": ["mini"], "weight": 2},
    ]}}}}
    custom, embed, whisper, mini = parse_config(data).providers["p"].models
    assert custom.capabilities == (CHAT, "interaction.tool-use.function-calling",
                                   "generation.audio-generation.text-to-speech")
    assert embed.capabilities == (EMBED,)
    assert whisper.capabilities == ("understanding.audio-understanding.speech-to-text",
                                    "transformation.audio-transformation.speech-translation")
    assert mini.pricing is not None and mini.pricing.output_per_1m == 0.6
    assert mini.pricing.per_request == 0.0 and mini.aliases == ("mini",) and mini.weight == 2.0


def test_model_problems() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {"models": [
        "gpt-4o", "gpt-4o", {"id": "x", "capabilities": ["generation"]},
        {"capabilities": ["chat"]}, {"id": "y", "context_window": "big"}]}}}}
    assert problems_of(data) == (
        "providers.p.config.models[1].id: duplicate model id 'gpt-4o' (also models[0])",
        "providers.p.config.models[2].capabilities[0]: 'generation' is a category, not a "
        "capability; name a leaf such as 'generation.text-generation.chat-completion'",
        "providers.p.config.models[3].id: required",
        "providers.p.config.models[4].context_window: expected an integer, got \"big\"",
    )


# -- pools and routing -------------------------------------------------------------------

def test_pool_model_references_are_checked() -> None:
    data = minimal(chat={"models": ["openai/gpt-4o", "openai/gpt-5", "anthropic/claude",
                                    "gpt-4o"]})
    assert problems_of(data) == (
        "pools.chat.models[1]: provider 'openai' has no model 'gpt-5' (did you mean 'gpt-4o'?)",
        "pools.chat.models[2]: unknown provider 'anthropic'",
        "pools.chat.models[3]: expected a model reference like 'provider/model-id', "
        "got 'gpt-4o'",
    )


def test_auto_discover_provider_accepts_unlisted_models() -> None:
    data = {"providers": {"o": {"connector": "ollama", "config": {
        "catalogue": {"auto_discover": True}}}},
        "pools": {"local": {"models": ["o/llama3.2:3b"], "capability": "chat"}}}
    assert parse_config(data).pools["local"].models == ("o/llama3.2:3b",)


def test_pool_needs_capability_or_models() -> None:
    assert problems_of(minimal(empty={"strategy": "priority"})) == (
        "pools.empty: a pool needs a 'capability' or 'models' (or both)",)


def test_pool_capability_may_be_a_category() -> None:
    config = parse_config(minimal(audio={"capability": "generation.audio"}))
    assert config.pools["audio"].capability == "generation.audio-generation"


def test_pool_defaults() -> None:
    pool = parse_config(minimal()).pools["chat"]
    assert pool.capability == CHAT
    assert pool.strategy == "stick-until-failure"
    assert pool.rotation.recovery == RecoveryConfig()
    assert pool.retry == RetryConfig()
    assert pool.rotation.provider_deactivation == ("on_auth_failure", "on_api_outage")
    assert (pool.on_exhausted, pool.max_wait, pool.stream_resume) == ("fail", 30.0, True)
    assert pool.content_filter_failover is False


def test_routing_section_is_inherited_and_overridden_per_key() -> None:
    data = minimal(chat={"capability": "chat", "rotation": {"recovery": {"probe_on_start": True}}},
                   embed={"capability": "embeddings", "strategy": "cost-first"})
    data["routing"] = {"strategy": "priority",
                       "rotation": {"recovery": {"cooldown": "2m"}},
                       "retry": {"max_attempts": 6}}
    config = parse_config(data)
    chat, embed = config.pools["chat"], config.pools["embed"]
    assert config.defaults.strategy == "priority"
    assert chat.strategy == "priority" and embed.strategy == "cost-first"
    assert chat.rotation.recovery.cooldown == 120.0 and chat.rotation.recovery.probe_on_start
    assert embed.rotation.recovery.cooldown == 120.0 and not embed.rotation.recovery.probe_on_start
    assert chat.retry.max_attempts == embed.retry.max_attempts == 6
    assert PoolDefaults().strategy == "stick-until-failure"


def test_selection_and_user_strategy() -> None:
    data = minimal(chat={"capability": "chat", "strategy": "myapp.routing:pick", "rotation": {
        "selection": {"model_priority": ["openai/gpt-4o"], "provider_priority": ["openai"],
                      "balance_mode": "absolute", "rate_limit": {"min_delta": "250ms"}},
        "provider_deactivation": "on_auth_failure", "provider_recovery": "on_manual"}})
    pool = parse_config(data).pools["chat"]
    assert pool.strategy == "myapp.routing:pick"
    assert pool.rotation.selection.provider_priority == ("openai",)
    assert pool.rotation.selection.rate_limit.min_delta == 0.25
    assert pool.rotation.provider_deactivation == ("on_auth_failure",)
    bad = minimal(chat={"capability": "chat", "rotation": {"selection": {
        "provider_priority": ["openia"]}}})
    assert problems_of(bad) == ("pools.chat.rotation.selection.provider_priority[0]: "
                                "unknown provider \"openia\" (did you mean 'openai'?)",)


# -- the other sections ------------------------------------------------------------------

def test_storage_observability_discovery_proxy() -> None:
    data = minimal()
    data.update({
        "storage": {"connector": "file", "config": {"path": "state.json"},
                    "persistence": {"sync_policy": "periodic", "sync_interval": "30s"},
                    "locking": {"timeout": "5s"}},
        "observability": {"connectors": ["console", {"connector": "file",
                                                      "config": {"path": "mesh.jsonl"}}],
                          "events": {"filter": ["rotation"]}, "logging": {"level": "full"},
                          "tracing": {"min_severity": "warning"},
                          "statistics": {"retention": "1d", "scopes": ["pool"]}},
        "discovery": {"sync": {"interval": "2h", "providers": ["openai"]},
                      "health": {"failure_threshold": 5}},
        "proxy": {"port": 9000, "api_keys": ["k1", "k2"], "cors_origins": "*",
                  "model_aliases": {"gpt-4": "chat", "embed": "text-embeddings",
                                    "fast": "openai/gpt-4o"}},
    })
    c = parse_config(data)
    assert c.storage.connector == "file" and c.storage.config["path"] == "state.json"
    assert (c.storage.sync_policy, c.storage.sync_interval) == ("periodic", 30.0)
    assert c.storage.locking_timeout == 5.0 and c.storage.locking_enabled
    assert [s.connector for s in c.observability.connectors] == ["console", "file"]
    assert c.observability.logging_level == "full" and c.observability.min_severity == "warning"
    assert c.observability.retention == 86400.0 and c.observability.scopes == ("pool",)
    assert c.discovery.sync_interval == 7200.0 and c.discovery.sync_providers == ("openai",)
    assert c.discovery.health_failure_threshold == 5 and c.discovery.health_interval == 60.0
    assert c.proxy.port == 9000 and c.proxy.api_keys == ("k1", "k2")
    assert c.proxy.cors_origins == ("*",)
    assert c.proxy.model_aliases["fast"] == "openai/gpt-4o"
    assert "k1" not in repr(c.proxy) and "k1" in c.secret_values()


def test_single_observability_connector() -> None:
    data = {"observability": {"connector": "webhook", "config": {"url": "https://h.example/x"}}}
    (sink,) = parse_config(data).observability.connectors
    assert sink.connector == "webhook" and sink.config["url"] == "https://h.example/x"
    assert problems_of({"observability": {"connector": "webhook"}}) == (
        "observability.config.url: required for the 'webhook' connector",)


def test_secrets_section() -> None:
    c = parse_secrets_config({"store": "memory", "values": {"a": "b"},
                              "resolution": {"cache_ttl": "10m", "fail_on_missing": False}})
    assert (c.store, c.cache_ttl, c.fail_on_missing) == ("memory", 600.0, False)
    assert "'b'" not in repr(c)
    with pytest.raises(ConfigurationError) as info:
        parse_secrets_config({"store": "vault"})
    assert info.value.problems[0].startswith("secrets.store: expected one of 'env'")


# -- secrets -----------------------------------------------------------------------------

def with_key(value: str) -> dict[str, Any]:
    return {"providers": {"openai": {"connector": "openai", "config": {
        "auth": {"api_key": value}, "headers": {"Authorization": "Bearer ${secrets:tok}"}}}}}


def test_secret_references_are_substituted_whole_and_embedded() -> None:
    config = parse_config(with_key("${secrets:openai-key}"),
                          resolve_secret={"openai-key": SECRET, "tok": "tok-123456"}.get)
    provider = config.providers["openai"]
    assert provider.auth.api_key == SECRET
    assert provider.headers["Authorization"] == "Bearer tok-123456"
    # a configured header value counts as a secret too: it is often a literal credential
    assert set(config.secret_values()) == {SECRET, "tok-123456", "Bearer tok-123456"}
    assert SECRET not in repr(config) and "tok-123456" not in repr(config)
    assert SECRET not in str(config.providers)


def test_missing_secret_is_reported_at_its_path() -> None:
    problems = problems_of(with_key("${secrets:openai-key}"), resolve_secret={}.get)
    assert problems == (
        "providers.openai.config.auth.api_key: secret 'openai-key' not found",
        "providers.openai.config.headers.Authorization: secret 'tok' not found",
    )


def test_reference_without_a_resolver_is_a_problem() -> None:
    (problem, _) = problems_of(with_key("${secrets:openai-key}"))
    assert problem == ("providers.openai.config.auth.api_key: secret 'openai-key' "
                       "referenced but no secret resolver was given")


def test_secret_values_never_reach_the_error_text() -> None:
    data = with_key("${secrets:openai-key}")
    data["providers"]["openai"]["config"]["base_url"] = "${secrets:url}"  # resolves to junk
    data["proxy"] = {"port": "${secrets:port}"}

    def resolve(name: str) -> str | None:
        return {"openai-key": SECRET, "tok": "tok-123456", "url": "not-a-url-secret",
                "port": "port-secret-99"}[name]

    with pytest.raises(ConfigurationError) as info:
        parse_config(data, resolve_secret=resolve)
    text = f"{info.value} {info.value!r} {info.value.problems}"
    assert len(info.value.problems) == 2
    for value in (SECRET, "tok-123456", "not-a-url-secret", "port-secret-99"):
        assert value not in text
    assert "providers.openai.config.base_url: expected an http(s) URL" in text


def test_fail_on_missing_false_leaves_the_key_unset() -> None:
    data = with_key("${secrets:openai-key}")
    data["secrets"] = {"fail_on_missing": False}
    config = parse_config(data, resolve_secret={}.get)
    provider = config.providers["openai"]
    assert provider.auth.api_key is None
    assert provider.headers["Authorization"] == "Bearer "
    assert config.missing_secrets == (
        "providers.openai.config.auth.api_key: openai-key",
        "providers.openai.config.headers.Authorization: tok",
    )


def test_a_failing_resolver_does_not_leak_its_message() -> None:
    def boom(name: str) -> str:
        raise RuntimeError(f"vault said {SECRET}")

    (problem, _) = problems_of(with_key("${secrets:k}"), resolve_secret=boom)
    assert problem == "providers.openai.config.auth.api_key: secret 'k' could not be read " \
                      "(RuntimeError)"


def test_auth_key_list_for_rotation_and_env_name() -> None:
    data = {"providers": {"p": {"connector": "openai", "config": {"auth": {
        "api_key": ["key-one-aaaa", "key-two-bbbb"], "key_rotation": True}}},
        "q": {"connector": "groq", "config": {"auth": {"api_key_env": "GROQ_API_KEY"}}}}}
    config = parse_config(data)
    auth = config.providers["p"].auth
    assert auth.api_key == "key-one-aaaa" and auth.api_keys == ("key-one-aaaa", "key-two-bbbb")
    assert config.providers["q"].auth.api_key_env == "GROQ_API_KEY"
    assert "key-two-bbbb" in config.secret_values() and "key-two-bbbb" not in repr(config)


# -- the objects -------------------------------------------------------------------------

def test_config_objects_are_frozen_and_picklable() -> None:
    config = parse_config(minimal())
    with pytest.raises(FrozenInstanceError):
        config.pools["chat"].strategy = "priority"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.providers["x"] = config.providers["openai"]  # type: ignore[index]
    assert pickle.loads(pickle.dumps(config)) == config
    assert isinstance(config.providers["openai"], ProviderConfig)


# -- load_config -------------------------------------------------------------------------

def test_load_config_accepts_dicts_json_and_meshconfig(tmp_path: Path) -> None:
    from_dict = load_config(minimal())
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps(minimal()), encoding="utf-8")
    assert load_config(path) == from_dict
    assert load_config(from_dict) is from_dict
    with pytest.raises(TypeError):
        load_config(42)  # type: ignore[arg-type]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert info.value.problems == (f"config file not found: {path}",)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("pools:\n  chat:\n    capability: chat\n   strategy: x: y\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: line 4, column ")
    assert "YAML syntax error" in problem and info.value.source == str(path)


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "pools": {,}\n}')
    with pytest.raises(ConfigurationError, match=r"line 2, column 13: invalid JSON"):
        load_config(path)


def test_duplicate_yaml_keys_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("pools:\n  chat: {capability: chat}\n  chat: {capability: tts}\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert info.value.problems == (f"{path}: line 3, column 3: duplicate key 'chat'",)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "mesh.toml"
    path.write_text("")
    with pytest.raises(ConfigurationError, match="unsupported file type '.toml'"):
        load_config(path)


def test_empty_yaml_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert load_config(path) == MeshConfig()


def test_dotenv_store_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "keys.env").write_text(f"PROXY_KEY={SECRET}\n")
    path = tmp_path / "conf" / "modelmesh.yaml"
    path.write_text("secrets:\n  store: dotenv\n  path: keys.env\n" + SEED_003)
    config = load_config(path)
    assert config.providers["my-openai-proxy"].auth.api_key == SECRET


def test_missing_dotenv_file_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "modelmesh.yaml"
    path.write_text("secrets:\n  store: dotenv\n  path: gone.env\nproxy:\n  port: 0\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert info.value.problems == (
        f"secrets.path: secrets file not found: {tmp_path / 'gone.env'}",
        "proxy.port: expected a value from 1 to 65535, got 0",
    )


def test_importing_modelmesh_does_not_import_yaml() -> None:
    code = ("import sys, modelmesh, modelmesh.config, modelmesh._core._config; "
            "sys.exit(1 if 'yaml' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_yaml_example_in_the_reference_parses() -> None:
    import re

    import yaml

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 2
    assert SEED_003 in doc
    for block in blocks:
        config = parse_config(yaml.safe_load(block), resolve_secret=lambda n: f"value-of-{n}")
        assert config.providers
