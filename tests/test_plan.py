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


# -- the other shortcuts on a request's path: each says what the long way says ---------------------
from modelmesh._core import _breaker as B  # noqa: E402
from modelmesh._core._body import check_body  # noqa: E402
from modelmesh._core.codecs import _shape  # noqa: E402


def test_the_breakers_shortcuts_are_what_its_table_says():
    """on_request and record_success return early while CLOSED (with no failures counted):
    the table must still say that those inputs change nothing there."""
    S, In, CB = B.BreakerState, B.BreakerInput, B.CircuitBreaker
    assert B.TRANSITIONS[(S.CLOSED, In.REQUEST)] == (S.CLOSED, CB._nothing)
    assert B.TRANSITIONS[(S.CLOSED, In.SUCCESS)] == (S.CLOSED, CB._clear_failures)
    breaker = CB(failure_threshold=3)
    breaker.record_failure(1.0)
    breaker.record_success(2.0)  # the long way: the count is cleared
    assert breaker.failures == 0 and breaker.state is S.CLOSED


_text = st.one_of(st.none(), st.text(max_size=3), st.integers(-2, 2), st.booleans(), st.floats(allow_nan=True))
_choice = st.fixed_dictionaries({}, optional={
    "index": st.one_of(st.none(), st.integers(-2, 3), st.booleans(), st.floats()),
    "finish_reason": _text,
    "message": st.one_of(st.none(), st.integers(), st.fixed_dictionaries({}, optional={
        "role": _text, "content": _text, "tool_calls": st.one_of(st.none(), st.lists(st.integers(), max_size=1))}))})


@settings(max_examples=400, deadline=None)
@given(choice=_choice)
def test_a_whole_choice_is_one_the_full_check_leaves_as_it_is(choice):
    if _shape._whole(choice):
        before = repr(choice)
        _shape._check_choice_head(choice, choice["index"], "choices[0]")
        _shape._check_message(choice.get("message"), "choices[0].message")
        assert repr(choice) == before


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=2), st.floats(allow_nan=True),
                  st.just({1, 2}), st.just(b"x"))
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=2), inner, max_size=3)),
                     max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(messages=_json)
def test_a_body_is_refused_exactly_when_a_value_in_it_is_not_finite_json(messages):
    import json

    try:
        json.dumps(messages, allow_nan=False)
        sendable = True
    except (TypeError, ValueError):
        sendable = False
    try:
        check_body({"messages": messages})
        refused = False
    except Exception:
        refused = True
    assert refused is not sendable
