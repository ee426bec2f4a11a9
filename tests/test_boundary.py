"""The public boundary: every exception a caller can get from `create()` or from iterating a
stream is a ModelMeshError. A foreign exception (a bug in a custom strategy, or ours) arrives
as an InternalError with the original as its cause, its text redacted, and no model blamed."""
from __future__ import annotations

import contextlib

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.testing import Error, FakeUpstream

MSG = [{"role": "user", "content": "hi"}]
KEY = "sk-boundary-0123456789abcdef"


def config(up_a, up_b, strategy="priority"):
    prov = {pid: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": KEY}, "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}
        for pid, up in (("a", up_a), ("b", up_b))}
    return {"providers": prov, "pools": {"chat": {"models": ["a/m", "b/m"], "strategy": strategy}}}


@contextlib.contextmanager
def mesh(strategy=None):
    """Two healthy upstreams, a and b, and a client whose pool `chat` holds both (a first)."""
    given = {"tests:crashy": strategy} if strategy else None
    with FakeUpstream("openai", name="a", models=["m"]) as a, FakeUpstream("openai", name="b", models=["m"]) as b, \
            modelmesh.MeshClient(config(a, b, "tests:crashy" if strategy else "priority"), environ={},
                                 strategies=given) as client:
        yield a, b, client


def rows(client):
    return {r["model"]: r for r in client.status()["pools"]["chat"]}


@pytest.mark.parametrize("call, missing", [
    (lambda c: c.chat.completions.create(model="chat"), "messages"),
    (lambda c: c.chat.completions.create(messages=MSG), "model"),
    (lambda c: c.embeddings.create(model="chat"), "input"),
    (lambda c: c.chat.completions.create(model="chat", messages=MSG, timeout="soon"), "timeout"),
    (lambda c: c.chat.completions.create(model="chat", messages=MSG, extra_headers={"x": "1"}), "extra_headers"),
])
def test_a_bad_call_is_an_invalid_argument_error_both_a_modelmesh_error_and_a_type_error(call, missing):
    with mesh() as (a, b, client):
        with pytest.raises(E.InvalidArgumentError, match=f"'{missing}'") as info:
            call(client)
        assert isinstance(info.value, E.ModelMeshError) and isinstance(info.value, TypeError)
        assert a.requests == [] and b.requests == []


class Crash(Exception):
    pass


def crashing_strategy(after: int):
    """A custom strategy that picks the first candidate `after` times, then raises, quoting the key."""
    seen = []

    def pick(candidates, ctx):
        seen.append(1)
        if len(seen) > after:
            raise Crash(f"strategy bug while holding {KEY}")
        return candidates[0]
    return pick


def test_a_custom_strategy_that_raises_is_an_internal_error_and_no_model_pays():
    with mesh(crashing_strategy(after=1)) as (a, b, client):
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
        with pytest.raises(E.InternalError, match="unexpected Crash") as info:
            client.chat.completions.create(model="chat", messages=MSG)
        assert isinstance(info.value.__cause__, Crash)
        assert KEY not in str(info.value)
        assert all(r["status"] == "active" and r["failures"] == 0 for r in rows(client).values())


def test_a_custom_strategy_that_raises_during_a_streams_failover_ends_it_with_an_internal_error():
    with mesh(crashing_strategy(after=1)) as (a, b, client):
        a.always(Error(503))
        with pytest.raises(E.InternalError) as info:  # before any chunk: raised by create(), as the SDK does
            list(client.chat.completions.create(model="chat", messages=MSG, stream=True))
        assert isinstance(info.value.__cause__, Crash) and KEY not in str(info.value)
        assert len(a.requests) >= 1 and b.requests == []
        assert rows(client)["b/m"]["status"] == "active" and rows(client)["b/m"]["failures"] == 0


def test_a_user_strategy_is_named_plainly_and_a_built_in_name_is_refused_clearly():
    with FakeUpstream("openai", name="a", models=["m"]) as a, FakeUpstream("openai", name="b", models=["m"]) as b:
        cfg = config(a, b, strategy="last-one")
        with modelmesh.MeshClient(cfg, environ={}, strategies={"last-one": lambda pool, ctx: pool[-1]}) as client:
            assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        with pytest.raises(E.ConfigurationError, match="pools.chat.strategy"):
            modelmesh.MeshClient(cfg, environ={})  # not given: unknown, at its path
        with pytest.raises(E.ConfigurationError, match="strategies: 'Priority' cannot name a user strategy"):
            modelmesh.MeshClient(config(a, b), environ={}, strategies={"Priority": lambda pool, ctx: pool[0]})
