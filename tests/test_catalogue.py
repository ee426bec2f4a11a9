"""The price and context-window catalogue shipped in the package (`modelmesh/_data`).

A configured model of a known connector that gives no price or context window gets the
snapshot's; what the configuration gives wins; cost-first order follows the prices; the
snapshot is read lazily (never at `import modelmesh`) and never fetched.
"""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import pytest

import modelmesh
from modelmesh import _catalogue
from modelmesh.testing import FakeUpstream

MSG = [{"role": "user", "content": "hello"}]


def config(*models, connector="openai", strategy="cost-first"):
    return {"providers": {"p": {"connector": connector, "config": {
                "base_url": "http://127.0.0.1:9/v1", "auth": {"method": "none"}, "models": list(models)}}},
            "pools": {"chat": {"capability": "chat-completion", "strategy": strategy}}}


def test_import_modelmesh_does_not_load_the_catalogue():
    code = ("import sys, modelmesh; print('modelmesh._catalogue' in sys.modules); "
            "modelmesh.build({'providers': {'p': {'connector': 'openai-compatible', 'config': {"
            "'base_url': 'http://127.0.0.1:9/v1', 'auth': {'method': 'none'}, 'models': ['local-model']}}}}, environ={}); "
            "c = sys.modules.get('modelmesh._catalogue'); print(bool(c and c._data.cache_info().currsize))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # neither importing modelmesh nor building a mesh whose models need no catalogue reads it
    assert out == ["False", "False"]


def test_the_catalogue_is_read_once_on_first_use():
    _catalogue._data.cache_clear()
    _catalogue.lookup.cache_clear()
    assert _catalogue._data.cache_info().currsize == 0
    modelmesh.build(config("gpt-4o"), environ={})
    modelmesh.build(config("gpt-4o-mini"), environ={})
    assert _catalogue._data.cache_info().misses == 1


def test_a_known_model_gets_its_price_and_context_window_from_the_snapshot():
    core = modelmesh.build(config("gpt-4o", "gpt-4o-mini"), environ={}).core
    big, small = core.models["p/gpt-4o"], core.models["p/gpt-4o-mini"]
    assert (big.input_per_1m, big.output_per_1m, big.context_window) == (2.5, 10.0, 128000)
    assert (small.input_per_1m, small.output_per_1m) == (0.15, 0.6)
    assert big.cost(1_000_000, 0) == pytest.approx(2.5)


def test_cost_first_order_follows_the_snapshot_and_configured_prices_override_it():
    core = modelmesh.build(config("gpt-4o", "gpt-4o-mini"), environ={}).core
    decision = core.route("chat", now=0.0)
    assert decision.model_id == "gpt-4o-mini" and decision.fallback_chain == ("p/gpt-4o",)
    pricey = {"id": "gpt-4o-mini", "pricing": {"input_per_1m": 50, "output_per_1m": 50}, "context_window": 4096}
    core = modelmesh.build(config("gpt-4o", pricey), environ={}).core
    assert core.route("chat", now=0.0).model_id == "gpt-4o"
    mini = core.models["p/gpt-4o-mini"]
    assert (mini.input_per_1m, mini.context_window) == (50.0, 4096)  # the configuration's, both
    # a configured price alone keeps the snapshot's context window, and the other way round
    core = modelmesh.build(config({"id": "gpt-4o", "context_window": 1000}), environ={}).core
    assert (core.models["p/gpt-4o"].input_per_1m, core.models["p/gpt-4o"].context_window) == (2.5, 1000)


def test_dated_and_vendor_ids_match_like_genai_prices_does():
    assert _catalogue.lookup("openai", "gpt-4o-2024-08-06").id == "gpt-4o"
    assert _catalogue.lookup("anthropic", "claude-sonnet-4-5-20250929").id == "claude-sonnet-4-5"
    assert _catalogue.lookup("gemini", "gemini-2.5-flash").context_window == 1048576
    assert _catalogue.lookup("azure-openai", "gpt-4o") is not None
    # self-hosted connectors have no price, and unknown ids none either
    assert _catalogue.lookup("ollama", "llama3") is None
    assert _catalogue.lookup("openai", "my-own-finetune-xyz") is None


def test_self_hosted_and_unknown_models_stay_unpriced():
    core = modelmesh.build(config("gpt-4o", connector="vllm"), environ={}).core
    assert core.models["p/gpt-4o"].input_per_1m == 0.0 and core.models["p/gpt-4o"].context_window is None


def test_a_request_costs_what_the_snapshot_says(tmp_path):
    with FakeUpstream("openai", name="p", models=["gpt-4o-mini"]) as up:
        data = config("gpt-4o-mini")
        data["providers"]["p"]["config"]["base_url"] = up.url
        with modelmesh.MeshClient(data, environ={}) as client:
            r = client.chat.completions.create(model="chat", messages=MSG)
    usage = r.usage
    expected = (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) / 1e6
    assert r.mesh.cost == pytest.approx(expected) and expected > 0


def test_the_snapshot_says_where_it_comes_from_and_stays_small():
    head = _catalogue.header()
    assert head["license"].startswith("MIT") and "genai-prices" in head["source"] and head["date"]
    files = resources.files("modelmesh").joinpath("_data")
    assert len(files.joinpath("model_catalogue.json").read_bytes()) < 300_000
    notice = files.joinpath("MODEL_CATALOGUE.md").read_text(encoding="utf-8")
    assert "Permission is hereby granted" in notice and head["date"] in notice
    data = json.loads(files.joinpath("model_catalogue.json").read_text(encoding="utf-8"))
    assert set(_catalogue.SOURCES.values()) and all(
        s in data["providers"] for sources in _catalogue.SOURCES.values() for s in sources)
