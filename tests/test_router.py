"""Seed 004's Router over a MeshClient, end to end over loopback: route, complete, stream,
get_pool and list_pools, with RoutingOptions applied to one call only."""
from __future__ import annotations

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.router import CompletionRequest, PoolInfo, Router, RoutingOptions
from modelmesh.testing import Error, FakeUpstream, Reply, ToolCall

MSG = [{"role": "user", "content": "Say hi"}]


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a, \
            FakeUpstream("anthropic", name="beta", models=["claude-x"]) as b:
        yield a, b


def config(ups):
    a, b = ups
    return {"providers": {
        "a": {"connector": "openai", "config": {"base_url": a.url, "auth": {"api_key": "sk-router-a-0123456789"},
                                                 "models": ["gpt-x"]}},
        "b": {"connector": "anthropic", "config": {"base_url": b.url, "auth": {"api_key": "sk-ant-router-b-0123"},
                                                    "models": [{"id": "claude-x", "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"capability": "chat-completion", "strategy": "priority",
                           "rotation": {"selection": {"model_priority": ["a/gpt-x", "b/claude-x"]}}}},
        "routing": {"retry": {"same_model_retries": 0}}}


def test_complete_routes_fails_over_and_answers_in_the_seeds_shape(ups):
    a, b = ups
    a.script(Error(503), Reply(text="again", tool_calls=[ToolCall(name="f", arguments={"x": 1})],
                               finish_reason="tool_calls"))
    with Router(config(ups), environ={}) as router:
        r = router.complete("chat", CompletionRequest(messages=MSG, temperature=0.1, max_tokens=20,
                                                      extra={"top_p": 0.5}))
        tooled = router.complete("chat", CompletionRequest(messages=MSG))
    assert (r.provider, r.model) == ("b", "claude-x") and r.content and r.latency_ms > 0
    assert r.metadata["pool"] == "chat" and r.metadata["attempts"] == 2 and r.metadata["finish_reason"] == "stop"
    assert r.usage["total_tokens"] == r.usage["prompt_tokens"] + r.usage["completion_tokens"]
    assert b.requests[0].json["temperature"] == 0.1 and b.requests[0].json["max_tokens"] == 20
    assert tooled.provider == "a" and tooled.metadata["tool_calls"][0]["function"]["name"] == "f"
    assert a.requests[0].json["top_p"] == 0.5  # extra parameters go as given


def test_stream_yields_pieces_whose_text_is_the_answer(ups):
    with Router(config(ups), environ={}) as router:
        pieces = list(router.stream("chat", CompletionRequest(messages=MSG)))
    assert "".join(p.content for p in pieces) == "Hello from alpha"
    assert {p.provider for p in pieces} == {"a"} and pieces[-1].metadata.get("finish_reason") == "stop"


def test_options_apply_to_their_call_only(ups):
    a, b = ups
    with Router(config(ups), environ={}) as router:
        assert router.route("chat").provider_id == "a"
        assert router.route("chat", RoutingOptions(preferred_provider="b")).provider_id == "b"
        hinted = router.complete("chat", CompletionRequest(messages=MSG), RoutingOptions(preferred_provider="b"))
        plain = router.complete("chat", CompletionRequest(messages=MSG))
        with pytest.raises(E.InvalidArgumentError, match="delivery_mode 'batch' is not available"):
            router.complete("chat", CompletionRequest(messages=MSG), RoutingOptions(delivery_mode="batch"))
        with pytest.raises(E.InvalidArgumentError, match="use Router.stream"):
            router.complete("chat", CompletionRequest(messages=MSG, stream=True))
    assert (hinted.provider, plain.provider) == ("b", "a")
    assert not any("delivery_mode" in r.json or "session_id" in r.json for r in a.requests)


def test_pools_are_listed_and_an_unknown_one_is_a_key_error(ups):
    with Router(client=modelmesh.MeshClient(config(ups), environ={})) as router:
        (pool,) = router.list_pools()
        assert router.get_pool("chat") == pool and isinstance(pool, PoolInfo)
        with pytest.raises(KeyError) as info:
            router.get_pool("nope")
    assert pool.capability == "generation.text-generation.chat-completion" and pool.strategy == "priority"
    assert [m["model"] for m in pool.models] == ["a/gpt-x", "b/claude-x"]
    assert isinstance(info.value, E.NotFoundError) and "no pool named 'nope' (configured: chat)" in str(info.value)


def test_a_router_needs_one_way_to_its_client():
    with pytest.raises(TypeError, match="give a configuration or client="):
        Router()


def test_the_guides_router_example_runs(ups, capsys):
    import pathlib
    import re

    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    section = guide.split("## The Router", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    cfg = config(ups)
    cfg["providers"]["anthropic"] = cfg["providers"].pop("b")
    cfg["pools"]["chat"]["rotation"]["selection"]["model_priority"] = ["a/gpt-x", "anthropic/claude-x"]
    scope = {"config": cfg}
    exec(compile(block, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["names"] == ["chat"] and "Hello from alpha a gpt-x" in capsys.readouterr().out
    assert ups[1].requests  # the stream went to the preferred provider
