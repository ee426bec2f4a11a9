"""The pick without a ranking (issue 9): for priority and stick-until-failure, the first free
member in the pool's precomputed order is what ranking every available member picks."""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._config import parse_config
from modelmesh._core._mesh import MeshCore
from modelmesh._core._protocol import RoutingOptions


def mesh(n, strategy, priority):
    providers = {f"p{i}": {"connector": "openai-compatible", "config": {
        "base_url": f"http://p{i}.invalid/v1", "auth": {"api_key": f"sk-plan-{i:02d}-0123456789"},
        "models": [{"id": f"m{i}", "capabilities": ["chat-completion"], "context_window": 1000 * (i + 1)}]}}
        for i in range(n)}
    pool = {"models": [f"p{i}/m{i}" for i in range(n)], "strategy": strategy}
    if strategy == "priority":
        pool["rotation"] = {"selection": {"model_priority": priority}}
    return MeshCore(parse_config({"providers": providers, "pools": {"chat": pool}}), rng=random.Random(0))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 8), strategy=st.sampled_from(["priority", "stick-until-failure"]), data=st.data())
def test_the_first_free_member_in_the_plan_is_the_ranked_choice(n, strategy, data):
    refs = [f"p{i}/m{i}" for i in range(n)]
    priority = data.draw(st.lists(st.sampled_from(refs + [f"m{i}" for i in range(n)]), max_size=n, unique=True))
    core = mesh(n, strategy, priority)
    pool = core.pools["chat"]
    now = 1000.0
    for ref in data.draw(st.lists(st.sampled_from(refs), unique=True)):
        core.deactivate_model(ref, now=now)
    pool.previous = data.draw(st.sampled_from([None, *refs]))
    skip = set(data.draw(st.lists(st.sampled_from(refs), unique=True)))
    need = data.draw(st.sampled_from([None, 1500, 4500]))
    plan = pool.plan()
    assert plan is not None and sorted(plan) == list(range(n))
    fast = core.health.first_free(pool, plan, now, [], skip=skip, also=set(), restrict=None, need=need)
    cands, _ = core.health.available(pool, now, [])
    ctx = pool.context(now, core.rng, RoutingOptions(), excluded=frozenset(skip), min_context=need)
    ranked = pool.strategy.rank(cands, ctx) if cands else []
    assert fast == (ranked[0].ref if ranked else None)


def test_strategies_that_read_more_than_order_have_no_plan():
    for strategy in ("round-robin", "cost-first", "latency-first", "session-sticky", "load-balanced"):
        assert mesh(3, strategy, []).pools["chat"].plan() is None, strategy
