"""Selection strategies: ordering, filtering, state, determinism and the factory."""
from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._selection import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    BaseStrategy,
    Candidate,
    CostFirst,
    LatencyFirst,
    LoadBalanced,
    Priority,
    RateLimitAware,
    RoundRobin,
    SelectionContext,
    SessionSticky,
    StickUntilFailure,
    UserStrategy,
    as_strategy,
    build_strategy,
    eligible_candidates,
)


def cands(*refs: str, **per_ref: dict) -> list[Candidate]:
    return [Candidate.of(ref, i, **per_ref.get(ref.replace("/", "_").replace("-", "_").replace(".", "_"), {}))
            for i, ref in enumerate(refs)]


def ctx(now: float = 1000.0, seed: int = 0, **kw) -> SelectionContext:
    return SelectionContext(now=now, rng=random.Random(seed), **kw)


def refs(seq) -> list[str]:
    return [c.ref for c in seq]


A, B, C, D = "openai/gpt-4o", "anthropic/claude-3-5-sonnet", "groq/llama-3.1-8b", "together/meta-llama/llama-3.1-70b"


def cfg(**kw) -> SimpleNamespace:
    base = dict(
        model_priority=(), provider_priority=(), fallback_strategy="stick-until-failure",
        balance_mode="absolute", weights={},
        rate_limit=SimpleNamespace(threshold=0.9, min_delta=0.0, max_rpm=None),
    )
    base.update(kw)
    return SimpleNamespace(**base)


# --- values ---------------------------------------------------------------------------------

def test_candidate_of_splits_at_first_slash():
    c = Candidate.of(D, 3)
    assert (c.provider, c.model, c.index) == ("together", "meta-llama/llama-3.1-70b", 3)


@pytest.mark.parametrize("bad", ["no-slash", "/model", 42])
def test_candidate_of_rejects_bad_refs(bad):
    with pytest.raises(ValueError):
        Candidate.of(bad, 0)


def test_candidate_rejects_inconsistent_ref():
    with pytest.raises(ValueError, match="provider/model"):
        Candidate(ref="openai/gpt-4o", provider="openai", model="gpt-4", index=0)


@pytest.mark.parametrize("field", [
    {"index": -1}, {"cost_per_1k": -0.1}, {"cost_per_1k": float("nan")}, {"latency": -1.0},
    {"latency": float("nan")}, {"requests_last_minute": -1}, {"in_flight": -2},
])
def test_candidate_rejects_negative_numbers(field):
    kw = {"index": 0, **field}
    with pytest.raises(ValueError, match=next(iter(field))):
        Candidate.of(A, **kw)


def test_context_metadata_defaults_to_fresh_empty_mapping():
    assert ctx().metadata == {} and ctx().metadata is not ctx().metadata


# --- eligibility ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_drops_excluded_and_small_context(name):
    pool = [
        Candidate.of(A, 0, context_window=8_000),
        Candidate.of(B, 1, context_window=200_000),
        Candidate.of(C, 2),  # unknown window: kept
        Candidate.of(D, 3, context_window=128_000),
    ]
    strategy = build_strategy(name, cfg())
    ranked = strategy.rank(pool, ctx(excluded=frozenset({D}), min_context=100_000))
    assert sorted(refs(ranked)) == sorted([B, C])
    assert strategy.select(pool, ctx(excluded=frozenset({B, C, D}), min_context=100_000)) is None
    assert strategy.rank([], ctx()) == []


def test_eligible_sorts_by_index_and_rejects_duplicates():
    pool = [Candidate.of(B, 1), Candidate.of(A, 0)]
    assert refs(eligible_candidates(pool, ctx())) == [A, B]
    with pytest.raises(ValueError, match="duplicate candidates: openai/gpt-4o"):
        eligible_candidates([Candidate.of(A, 0), Candidate.of(A, 1)], ctx())


def test_preferred_provider_goes_first_keeping_order():
    pool = cands(A, B, C, "anthropic/claude-3-haiku")
    ranked = CostFirst().rank(pool, ctx(preferred_provider="anthropic"))
    assert refs(ranked) == [B, "anthropic/claude-3-haiku", A, C]
    assert refs(CostFirst().rank(pool, ctx(preferred_provider="nobody"))) == [A, B, C, "anthropic/claude-3-haiku"]


# --- stick-until-failure -----------------------------------------------------------------------

def test_stick_until_failure_keeps_previous_while_present():
    s = StickUntilFailure()
    pool = cands(A, B, C)
    assert s.select(pool, ctx()).ref == A
    assert refs(s.rank(pool, ctx(previous=C))) == [C, A, B]
    # previous failed in this request: the rest in order
    assert refs(s.rank(pool, ctx(previous=C, excluded=frozenset({C})))) == [A, B]
    assert s.select(pool[:2], ctx(previous=C)).ref == A  # previous went to standby
    assert s.score(Candidate.of(A, 0, score=0.75), ctx()) == 0.75


# --- priority -------------------------------------------------------------------------------

def test_priority_models_then_providers_then_fallback():
    pool = cands(A, B, C, D, "openai/gpt-4o-mini")
    s = build_strategy("priority", cfg(model_priority=("gpt-4o-mini", B), provider_priority=("groq",)))
    assert refs(s.rank(pool, ctx())) == ["openai/gpt-4o-mini", B, C, A, D]


def test_priority_bare_model_id_matches_every_provider_exact_ref_first():
    pool = [Candidate.of("openrouter/openai/gpt-4o", 0), Candidate.of("azure/gpt-4o", 1),
            Candidate.of(A, 2), Candidate.of(C, 3)]
    s = Priority(model_priority=["openai/gpt-4o", "gpt-4o"], provider_priority=["azure"])
    # "openai/gpt-4o" is both A's ref and openrouter's model id: the exact ref wins the tie
    assert refs(s.rank(pool, ctx())) == [A, "openrouter/openai/gpt-4o", "azure/gpt-4o", C]


def test_priority_fallback_orders_the_rest_and_commits_only_its_own_pick():
    pool = cands(A, B, C, D)
    s = build_strategy("priority", cfg(model_priority=(A,), fallback_strategy="round-robin"))
    # A serves: the round-robin fallback's cursor must not move
    assert [s.select(pool, ctx()).ref for _ in range(3)] == [A, A, A]
    assert refs(s.rank(pool, ctx())) == [A, B, C, D]
    no_a = ctx(excluded=frozenset({A}))
    assert [s.select(pool, no_a).ref for _ in range(4)] == [B, C, D, B]
    assert refs(s.rank(pool, ctx())) == [A, C, D, B]
    assert s.select(pool, ctx()).ref == A  # A serves again: the fallback stays after B
    assert s.select(pool, no_a).ref == C


def test_priority_rejects_itself_as_fallback_and_strings_as_lists():
    with pytest.raises(ValueError, match="priority cannot fall back to priority"):
        build_strategy("priority", cfg(fallback_strategy="Priority"))
    with pytest.raises(ValueError, match="priority cannot fall back to priority"):
        Priority(fallback=Priority())
    with pytest.raises(TypeError, match="model_priority"):
        Priority(model_priority="openai/gpt-4o")
    with pytest.raises(TypeError, match="provider_priority"):
        Priority(provider_priority=[1, 2])


def test_priority_defaults_and_user_fallback_that_leaves_some_out():
    assert refs(Priority(model_priority=None).rank(cands(A, B), ctx(previous=B))) == [B, A]
    s = build_strategy("priority", cfg(fallback_strategy="last", model_priority=(B,)),
                       user_strategies={"last": lambda pool, c: pool[-1]})
    assert refs(s.rank(cands(A, B, C, D), ctx())) == [B, D, A, C]
    s2 = build_strategy("priority", SimpleNamespace(fallback_strategy=lambda pool, c: None))
    assert refs(s2.rank(cands(A, B), ctx())) == [A, B]


# --- round-robin ----------------------------------------------------------------------------

def test_round_robin_cycles_and_skips_absent_models():
    s = RoundRobin()
    pool = cands(A, B, C)
    assert [s.select(pool, ctx()).ref for _ in range(4)] == [A, B, C, A]
    assert refs(s.preview(pool, ctx())) == [B, C, A]  # preview does not move the cursor
    assert s.select([pool[0], pool[2]], ctx()).ref == C  # B is away: next after A is C
    assert s.select(pool, ctx()).ref == A
    assert s.select(pool, ctx(excluded=frozenset({B}))).ref == C


# --- cost-first -------------------------------------------------------------------------------

def test_cost_first_cheapest_first_zero_counts_as_cheapest():
    pool = [Candidate.of(A, 0, cost_per_1k=5.0), Candidate.of(B, 1, cost_per_1k=3.0),
            Candidate.of(C, 2, cost_per_1k=0.0), Candidate.of(D, 3, cost_per_1k=3.0)]
    s = CostFirst()
    assert refs(s.rank(pool, ctx())) == [C, B, D, A]
    assert s.score(pool[2], ctx()) == 1.0 and s.score(pool[0], ctx()) == pytest.approx(1 / 6)


# --- latency-first ----------------------------------------------------------------------------

def test_latency_first_orders_known_then_unknown():
    pool = [Candidate.of(A, 0), Candidate.of(B, 1, latency=2.0), Candidate.of(C, 2, latency=0.5),
            Candidate.of(D, 3)]
    s = LatencyFirst(explore=0.0)
    assert refs(s.rank(pool, ctx())) == [C, B, A, D]
    assert refs(s.rank([pool[0], pool[3]], ctx())) == [A, D]
    assert s.score(pool[2], ctx()) == pytest.approx(1 / 1.5) and s.score(pool[0], ctx()) == 0.0


def test_latency_first_explores_unknown_about_one_time_in_ten():
    pool = [Candidate.of(A, 0, latency=0.2), Candidate.of(B, 1), Candidate.of(C, 2)]
    s = LatencyFirst()
    rng = random.Random(7)
    firsts = Counter(s.select(pool, SelectionContext(now=0.0, rng=rng)).ref for _ in range(5000))
    assert set(firsts) == {A, B}  # the first unmeasured one is the one explored
    assert 0.08 < firsts[B] / 5000 < 0.12
    assert refs(LatencyFirst(explore=1.0).rank(pool, ctx())) == [B, A, C]


def test_latency_first_rejects_bad_explore():
    with pytest.raises(ValueError, match="explore"):
        LatencyFirst(explore=1.5)


# --- session-sticky ---------------------------------------------------------------------------

def test_session_sticky_is_stable_and_spreads_sessions():
    pool = cands(A, B, C, D)
    s = SessionSticky()
    chosen = {f"s{i}": s.select(pool, ctx(session_id=f"s{i}")).ref for i in range(200)}
    assert len(set(chosen.values())) == 4
    fresh = SessionSticky()  # another worker: same hash, same answer, no shared state
    assert all(fresh.select(pool, ctx(session_id=k)).ref == v for k, v in chosen.items())
    assert refs(s.rank(pool, ctx())) == [A, B, C, D]  # no session: configured order


def test_session_hash_is_stable_across_processes_and_versions():
    # pinned: a salted hash() or a changed hash function would move live sessions on upgrade
    pool = cands(A, B, C, D)
    got = [SessionSticky().select(pool, ctx(session_id=f"s{i}")).provider for i in range(12)]
    assert got == ["groq", "anthropic", "together", "groq", "groq", "together",
                   "anthropic", "groq", "anthropic", "anthropic", "anthropic", "together"]


def test_session_survives_another_model_leaving_and_returning():
    pool = cands(A, B, C, D)
    s = SessionSticky()
    home = {f"s{i}": s.select(pool, ctx(session_id=f"s{i}")).ref for i in range(100)}
    gone = A
    without = [c for c in pool if c.ref != gone]
    for session, ref in home.items():
        moved = s.select(without, ctx(session_id=session)).ref
        if ref != gone:
            assert moved == ref  # only the sessions of the model that left move
        else:
            assert moved != gone
    # A returns: nobody is reshuffled, not even the sessions that used to live on A
    later = {k: s.select(pool, ctx(session_id=k)).ref for k in home}
    assert later == {k: (v if v != gone else s.select(without, ctx(session_id=k)).ref) for k, v in home.items()}
    assert any(v == gone for v in home.values())


def test_session_fallback_chain_and_memory_bound():
    pool = cands(A, B, C)
    s = SessionSticky(max_sessions=2)
    chain = refs(s.rank(pool, ctx(session_id="x")))
    assert sorted(chain) == sorted([A, B, C])
    assert refs(s.rank(pool, ctx(session_id="x", excluded=frozenset({chain[0]})))) == chain[1:]
    # "x" now remembers chain[1]; two newer sessions evict it, so it goes home to chain[0]
    s.select(pool, ctx(session_id="y"))
    s.select(pool, ctx(session_id="z"))
    assert s.select(pool, ctx(session_id="x")).ref == chain[0]
    with pytest.raises(ValueError, match="max_sessions"):
        SessionSticky(max_sessions=0)


def test_session_memory_keeps_moved_session_put():
    pool = cands(A, B, C)
    s = SessionSticky()
    home = s.select(pool, ctx(session_id="u")).ref
    away = s.select([c for c in pool if c.ref != home], ctx(session_id="u")).ref
    assert s.select(pool, ctx(session_id="u")).ref == away
    assert SessionSticky().select(pool, ctx(session_id="u")).ref == home


# --- rate-limit-aware -------------------------------------------------------------------------

def test_rate_limit_aware_most_headroom_first_and_threshold():
    pool = [
        Candidate.of(A, 0, remaining_requests=5, limit_requests=100),      # 95% used: over 0.9
        Candidate.of(B, 1, remaining_tokens=50_000, limit_tokens=100_000),  # 50%
        Candidate.of(C, 2, remaining_requests=80, limit_requests=100),      # 20%
        Candidate.of(D, 3),                                                 # nothing known: 0%
    ]
    s = RateLimitAware()
    assert refs(s.rank(pool, ctx())) == [D, C, B, A]
    assert s.score(pool[0], ctx()) == pytest.approx(0.05)
    # over the threshold, the sooner reset goes first, whatever the usage
    soon = [Candidate.of(B, 1, remaining_requests=50, limit_requests=100, rate_reset_at=1010.0),
            Candidate.of(C, 2, remaining_requests=80, limit_requests=100, rate_reset_at=1050.0)]
    assert refs(s.rank(soon, ctx())) == [C, B]
    assert refs(RateLimitAware(threshold=0.15).rank(soon, ctx())) == [B, C]
    # at exactly the threshold counts as over: behind even a model used too recently
    at = [Candidate.of(B, 1, remaining_requests=50, limit_requests=100),
          Candidate.of(C, 2, last_used=999.0)]
    assert refs(RateLimitAware(threshold=0.5, min_delta=5.0).rank(at, ctx(now=1000.0))) == [C, B]
    # over the threshold with no reset time known: least used first
    assert refs(RateLimitAware(threshold=0.01).rank(pool, ctx())) == [D, C, B, A]


def test_rate_limit_aware_stale_window_counts_as_full():
    spent = Candidate.of(A, 0, remaining_requests=0, limit_requests=100, rate_reset_at=1000.0)
    half = Candidate.of(B, 1, remaining_requests=50, limit_requests=100)
    s = RateLimitAware()
    assert refs(s.rank([spent, half], ctx(now=999.0))) == [B, A]
    assert refs(s.rank([spent, half], ctx(now=1000.0))) == [A, B]
    assert s.score(spent, ctx(now=999.0)) == 0.0 and s.score(spent, ctx(now=1001.0)) == 1.0


def test_rate_limit_aware_all_over_soonest_reset_first():
    pool = [
        Candidate.of(A, 0, remaining_requests=0, limit_requests=10),
        Candidate.of(B, 1, remaining_requests=0, limit_requests=10, rate_reset_at=1060.0),
        Candidate.of(C, 2, remaining_requests=1, limit_requests=10, rate_reset_at=1030.0),
    ]
    assert refs(RateLimitAware().rank(pool, ctx(now=1000.0))) == [C, B, A]


def test_rate_limit_aware_max_rpm_and_known_rpm_the_stricter_wins():
    pool = [Candidate.of(A, 0, requests_last_minute=50, known_rpm=60),   # 50/60 = 0.83
            Candidate.of(B, 1, requests_last_minute=20, known_rpm=0),    # 0 = unknown limit
            Candidate.of(C, 2, requests_last_minute=10)]
    assert refs(RateLimitAware().rank(pool, ctx())) == [B, C, A]
    strict = build_strategy("rate-limit-aware", cfg(rate_limit=SimpleNamespace(threshold=0.9, min_delta=0, max_rpm=20)))
    # max_rpm 20: A 50/20 and B 20/20 are over (least used first), C 10/20 is fine
    assert refs(strict.rank(pool, ctx())) == [C, B, A]
    assert strict.usage(pool[0], 0.0) == 2.5


def test_rate_limit_aware_min_delta_moves_recently_used_behind():
    pool = [Candidate.of(A, 0, last_used=999.5), Candidate.of(B, 1, last_used=998.0),
            Candidate.of(C, 2, last_used=990.0, remaining_requests=60, limit_requests=100),
            Candidate.of(D, 3, last_used=999.0)]
    s = RateLimitAware(min_delta=5.0)
    # C (40% used) is the only one idle for 5s; the others by least recently used
    assert refs(s.rank(pool, ctx(now=1000.0))) == [C, B, D, A]
    assert refs(RateLimitAware().rank(pool, ctx(now=1000.0))) == [A, B, D, C]
    # exactly min_delta ago is long enough
    assert refs(RateLimitAware(min_delta=2.0).rank(pool, ctx(now=1000.0))) == [B, C, D, A]


@pytest.mark.parametrize("kw, match", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.1}, "threshold"),
    ({"min_delta": -1.0}, "min_delta"), ({"min_delta": float("inf")}, "min_delta"),
    ({"max_rpm": 0}, "max_rpm"), ({"max_rpm": True}, "max_rpm"), ({"max_rpm": 2.5}, "max_rpm"),
])
def test_rate_limit_aware_validates(kw, match):
    with pytest.raises(ValueError, match=match):
        RateLimitAware(**kw)


def test_rate_limit_aware_from_config_without_rate_limit_block():
    s = build_strategy("rate_limit_aware", SimpleNamespace(rate_limit=None))
    assert (s.threshold, s.min_delta, s.max_rpm) == (0.9, 0.0, None)


# --- load-balanced ----------------------------------------------------------------------------

def test_load_balanced_absolute_exact_shares_and_smooth():
    pool = cands(A, B, C)
    s = build_strategy("load-balanced", cfg(weights={A: 5, "claude-3-5-sonnet": 3}, balance_mode="absolute"))
    picks = [s.select(pool, ctx()).ref for _ in range(1000)]
    # C has the default weight 1: shares 5/9, 3/9, 1/9 exactly per 9 picks
    assert Counter(picks[:999]) == {A: 555, B: 333, C: 111}
    assert picks[:9] == [A, B, A, C, A, B, A, B, A]
    assert s.score(pool[1], ctx()) == 3.0


def test_load_balanced_absolute_exact_with_fractional_weights():
    pool = cands(A, B, C)
    s = LoadBalanced(weights={A: 0.5, B: 0.3, C: 0.2})
    assert Counter(s.select(pool, ctx()).ref for _ in range(1000)) == {A: 500, B: 300, C: 200}


def test_load_balanced_relative_within_tolerance_and_seeded():
    pool = cands(A, B, C)
    s = LoadBalanced(weights={A: 6, B: 3, C: 1}, balance_mode="relative")
    rng = random.Random(42)
    picks = [s.select(pool, SelectionContext(now=0.0, rng=rng)).ref for _ in range(10_000)]
    counts = Counter(picks)
    for ref, share in ((A, 0.6), (B, 0.3), (C, 0.1)):
        assert abs(counts[ref] / 10_000 - share) < 0.02
    rng2 = random.Random(42)
    assert picks == [s.select(pool, SelectionContext(now=0.0, rng=rng2)).ref for _ in range(10_000)]


def test_load_balanced_zero_weight_only_when_alone():
    pool = cands(A, B, C)
    for mode in ("absolute", "relative"):
        s = LoadBalanced(weights={B: 0}, balance_mode=mode)
        firsts = {s.select(pool, ctx(seed=i)).ref for i in range(200)}
        assert firsts == {A, C}
        assert s.rank(pool, ctx())[-1].ref == B
        assert s.select(pool, ctx(excluded=frozenset({A, C}))).ref == B
        assert s.select(cands(A, B, C), ctx(excluded=frozenset({A, C}))).ref == B
        # only zero weights left: configured order
        assert refs(LoadBalanced(weights={A: 0, B: 0, C: 0}, balance_mode=mode).rank(pool, ctx())) == [A, B, C]


def test_load_balanced_relative_rank_is_weighted_order_without_replacement():
    s = LoadBalanced(weights={A: 1000, B: 1, C: 0}, balance_mode="relative")
    seconds = Counter(refs(s.rank(cands(A, B, C), ctx(seed=i)))[1] for i in range(300))
    assert seconds[B] > 250  # A almost always goes first, B after it, C (zero) last


def test_load_balanced_validates():
    with pytest.raises(ValueError, match="balance_mode"):
        LoadBalanced(balance_mode="fair")
    with pytest.raises(ValueError, match="weights"):
        LoadBalanced(weights={A: -1})
    with pytest.raises(ValueError, match="weights"):
        LoadBalanced(weights={A: float("inf")})


# --- user strategies --------------------------------------------------------------------------

def test_plain_callable_accepted_and_checked():
    def cheapest_name(pool, c):
        return min(pool, key=lambda x: x.model)

    s = as_strategy(cheapest_name)
    pool = cands(A, B, C)
    assert isinstance(s, UserStrategy) and s.name == "cheapest_name"
    assert s.select(pool, ctx()).ref == B
    assert refs(s.rank(pool, ctx())) == [B, A, C]
    assert s.score(pool[0], ctx()) == 0.0
    assert as_strategy(lambda p, c: C).select(pool, ctx()).ref == C  # a ref string works too
    assert as_strategy(lambda p, c: None).rank(pool, ctx()) == []
    assert as_strategy(lambda p, c: None).select(pool, ctx()) is None
    assert s.select(pool, ctx(excluded=frozenset({A, B, C}))) is None
    with pytest.raises(ValueError, match="not an eligible candidate"):
        as_strategy(lambda p, c: "x/y").select(pool, ctx())
    with pytest.raises(ValueError, match="not an eligible candidate"):
        as_strategy(lambda p, c: A).select(pool, ctx(excluded=frozenset({A})))
    with pytest.raises(TypeError, match="returned int"):
        as_strategy(lambda p, c: 3).select(pool, ctx())


def test_user_object_with_select_rank_score():
    class Reverse:
        name = "reverse"

        def select(self, pool, c):
            return pool[-1]

        def rank(self, pool, c):
            return list(reversed(pool)) + [pool[0]]  # a duplicate is dropped

        def score(self, cand, c):
            return 42

    s = as_strategy(Reverse())
    pool = cands(A, B, C)
    assert s.name == "reverse"
    assert s.select(pool, ctx()).ref == C
    assert refs(s.rank(pool, ctx())) == [C, B, A]
    assert s.score(pool[0], ctx()) == 42.0


def test_user_object_with_only_rank():
    class OnlyRank:
        def rank(self, pool, c):
            return [pool[1].ref, None]

    s = as_strategy(OnlyRank())
    assert s.name == "OnlyRank"
    assert s.select(cands(A, B, C), ctx()).ref == B
    assert refs(s.rank(cands(A, B, C), ctx())) == [B]

    class EmptyRank:
        def rank(self, pool, c):
            return []

    assert as_strategy(EmptyRank()).select(cands(A), ctx()) is None


def test_as_strategy_passes_built_ins_and_rejects_junk():
    rr = RoundRobin()
    assert as_strategy(rr) is rr and build_strategy(rr) is rr
    with pytest.raises(TypeError, match="class RoundRobin"):
        as_strategy(RoundRobin)
    with pytest.raises(TypeError, match="got str"):
        as_strategy("round-robin")
    assert "RoundRobin" in repr(rr) and "round-robin" in repr(rr)


def test_subclassing_base_strategy():
    class Alphabetical(BaseStrategy):
        name = "alphabetical"

        def order(self, pool, c):
            return sorted(pool, key=lambda x: x.model)

    assert refs(as_strategy(Alphabetical()).rank(cands(A, B, C), ctx())) == [B, A, C]


# --- factory ----------------------------------------------------------------------------------

def test_build_strategy_names_and_defaults():
    assert DEFAULT_STRATEGY == "stick-until-failure"
    for name, cls in STRATEGIES.items():
        assert type(build_strategy(name, cfg())) is cls
        assert type(build_strategy(name)) is cls  # no config: defaults
    assert type(build_strategy("Round_Robin")) is RoundRobin
    lb = build_strategy("load-balanced", cfg(balance_mode="relative", weights={A: 2}))
    assert lb.balance_mode == "relative" and lb.weights == {A: 2}


def test_build_strategy_user_names():
    fn = lambda p, c: p[0]  # noqa: E731
    s = build_strategy("mine", cfg(), user_strategies={"mine": fn})
    assert isinstance(s, UserStrategy) and s.select(cands(A, B), ctx()).ref == A
    with pytest.raises(ValueError, match="may not reuse built-in names: round-robin"):
        build_strategy("mine", user_strategies={"round-robin": fn})


def test_unknown_name_error_lists_valid_names_and_suggests():
    with pytest.raises(ValueError) as err:
        build_strategy("roud-robin", cfg(), user_strategies={"geo": lambda p, c: None})
    msg = str(err.value)
    assert "unknown selection strategy 'roud-robin'" in msg
    assert "did you mean 'round-robin'?" in msg
    assert all(name in msg for name in [*STRATEGIES, "geo"])
    with pytest.raises(ValueError) as err2:
        build_strategy("zzz")
    assert "did you mean" not in str(err2.value)


# --- determinism and properties -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_choices(name):
    pool = [Candidate.of(r, i, latency=(None if i % 2 else 0.1 * (i + 1)), cost_per_1k=float(i % 3))
            for i, r in enumerate([A, B, C, D, "x/a", "x/b"])]
    conf = cfg(balance_mode="relative", weights={A: 3})

    def run(seed):
        s, rng = build_strategy(name, conf), random.Random(seed)
        return [refs(s.rank(pool, SelectionContext(now=float(t), rng=rng, session_id=f"s{t % 7}")))
                for t in range(200)]

    assert run(3) == run(3)


_refs = st.sampled_from([A, B, C, D, "x/a", "x/b.c", "y/z/w", "m/n"])
_candidate = st.builds(
    lambda ref, **kw: Candidate.of(ref, **kw),
    _refs,
    index=st.integers(0, 5),
    cost_per_1k=st.floats(0, 10),
    latency=st.none() | st.floats(0, 10),
    score=st.floats(-1, 1),
    requests_last_minute=st.integers(0, 100),
    last_used=st.none() | st.floats(0, 100),
    remaining_requests=st.none() | st.integers(-5, 100),
    limit_requests=st.none() | st.integers(0, 100),
    remaining_tokens=st.none() | st.integers(0, 1000),
    limit_tokens=st.none() | st.integers(0, 1000),
    rate_reset_at=st.none() | st.floats(0, 100),
    known_rpm=st.none() | st.integers(0, 60),
    context_window=st.none() | st.integers(0, 10),
)
_pools = st.lists(_candidate, max_size=8, unique_by=lambda c: c.ref)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(STRATEGIES) + ["user"]),
    pool=_pools,
    excluded=st.frozensets(_refs, max_size=3),
    min_context=st.none() | st.integers(0, 10),
    session=st.none() | st.text(max_size=5),
    previous=st.none() | _refs,
    preferred=st.none() | st.sampled_from(["openai", "x", "y"]),
    now=st.floats(0, 120),
    seed=st.integers(0, 2**32),
    mode=st.sampled_from(["absolute", "relative"]),
    weights=st.dictionaries(_refs, st.floats(0, 5), max_size=4),
)
def test_property_select_and_rank_stay_within_the_eligible_set(
    name, pool, excluded, min_context, session, previous, preferred, now, seed, mode, weights
):
    conf = cfg(balance_mode=mode, weights=weights, model_priority=(B, "a"), provider_priority=("x",),
               rate_limit=SimpleNamespace(threshold=0.5, min_delta=3.0, max_rpm=30))
    strategy = build_strategy(name, conf, user_strategies={"user": lambda p, c: p[len(p) // 2]})
    context = SelectionContext(now=now, rng=random.Random(seed), session_id=session, previous=previous,
                               preferred_provider=preferred, excluded=excluded, min_context=min_context)
    allowed = [c for c in pool if c.ref not in excluded
               and (min_context is None or c.context_window is None or c.context_window >= min_context)]
    for _ in range(3):  # stateful strategies move between calls
        ranked = strategy.rank(pool, context)
        assert sorted(refs(ranked)) == sorted(refs(allowed))
        chosen = strategy.select(pool, context)
        assert (chosen is None) == (not allowed)
        assert chosen is None or chosen in allowed
        for c in allowed:
            assert isinstance(strategy.score(c, context), float)
