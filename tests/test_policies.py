"""Deactivation and recovery policies, their composition and their construction from config."""
from __future__ import annotations

import calendar
import math
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._breaker import BreakerState
from modelmesh._core._policies import (
    QUOTA_REASONS,
    AnyOf,
    BudgetLimit,
    Cooldown,
    Deactivation,
    DeactivationReason,
    ErrorRate,
    FirstOf,
    Maintenance,
    Manual,
    OnQuotaReset,
    Probe,
    QuotaWindow,
    RequestLimit,
    RetryLimit,
    TokenLimit,
    as_deactivation_policy,
    as_recovery_policy,
    build_policies,
)
from modelmesh._core._state import ModelState

R = DeactivationReason
INF = math.inf


def ts(*args: int) -> float:
    return float(calendar.timegm(datetime(*args, tzinfo=timezone.utc).timetuple()))


def state(**kw) -> ModelState:
    return ModelState(model="openai/gpt-4o-mini", pool="chat", **kw)


def fail(s: ModelState, now: float, status: int | None = 500, n: int = 1) -> None:
    for _ in range(n):
        s.record_failure(now, "server_error", status)


def standby(s: ModelState, now: float, reason: R, until: float | None = None) -> None:
    """What the health owner does to put a model on standby."""
    s.breaker.trip(now, until=INF if until is None else until, reason=reason.value)
    s.reason = reason


def apply(s: ModelState, decision: Deactivation, recovery, now: float) -> None:
    """What the health owner does with a decision."""
    until = decision.until if decision.until is not None else recovery.recover_at(s, decision, now)
    standby(s, now, decision.reason, until)


# -- the decision value ---------------------------------------------------------------------------
def test_deactivation_is_a_frozen_value():
    d = Deactivation(reason=R.RETRY_LIMIT, detail="3 failures", until=10.0)
    with pytest.raises(AttributeError):
        d.until = 20.0  # type: ignore[misc]
    assert Deactivation(reason=R.MANUAL).until is None
    with pytest.raises(TypeError, match="DeactivationReason"):
        Deactivation(reason="manual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="until"):
        Deactivation(reason=R.MANUAL, until=float("nan"))
    with pytest.raises(TypeError):
        Deactivation(R.MANUAL)  # type: ignore[misc]  # keyword-only


# -- deactivation policies ------------------------------------------------------------------------
def test_retry_limit_counts_consecutive_failures():
    s, p = state(), RetryLimit(3)
    fail(s, 1.0, n=2)
    assert p.should_deactivate(s, 2.0) is None
    s.record_success(2.5, 0.1)
    fail(s, 3.0, n=2)
    assert p.should_deactivate(s, 3.0) is None
    fail(s, 4.0)
    d = p.should_deactivate(s, 4.0)
    assert d.reason is R.RETRY_LIMIT and d.until is None and "3 consecutive failures" in d.detail


def test_retry_limit_with_error_codes_counts_only_those_and_statusless_failures():
    s, p = state(), RetryLimit(3, error_codes=(429, 503))
    fail(s, 1.0, status=500, n=5)
    assert p.should_deactivate(s, 1.0) is None
    fail(s, 2.0, status=429)
    fail(s, 3.0, status=None)        # a timeout
    assert p.should_deactivate(s, 3.0) is None
    fail(s, 4.0, status=503)
    assert p.should_deactivate(s, 4.0).reason is R.RETRY_LIMIT


def test_error_rate_waits_for_enough_requests():
    s, p = state(), ErrorRate(0.5, min_requests=4)
    fail(s, 1.0, n=3)
    assert p.should_deactivate(s, 1.0) is None       # only 3 requests
    s.record_success(2.0, 0.2)
    d = p.should_deactivate(s, 2.0)
    assert d.reason is R.ERROR_RATE and "75%" in d.detail
    for t in range(3, 6):
        s.record_success(float(t), 0.2)
    assert p.should_deactivate(s, 6.0) is None       # 3 of 7
    assert p.should_deactivate(s, 1000.0) is None    # the window emptied


@pytest.mark.parametrize("policy, feed, reason", [
    (RequestLimit(2), lambda s: [s.record_success(1.0, 0.1), s.record_failure(2.0, "timeout")], R.REQUEST_LIMIT),
    (TokenLimit(100), lambda s: [s.record_success(1.0, 0.1, tokens=60), s.record_success(2.0, 0.1, tokens=40)],
     R.TOKEN_LIMIT),
    (BudgetLimit(0.5), lambda s: [s.record_success(1.0, 0.1, cost=0.25), s.record_success(2.0, 0.1, cost=0.25)],
     R.BUDGET_LIMIT),
])
def test_limits_are_lifetime_caps_alone(policy, feed, reason):
    s = state()
    assert policy.should_deactivate(s, 0.0) is None
    feed(s)
    d = policy.should_deactivate(s, 3.0)
    assert d.reason is reason and d.until == INF and "reached the limit" in d.detail


def test_quota_window_resets_counters_and_lasts_until_the_next_period():
    p = QuotaWindow("daily", RequestLimit(2))
    s = state()
    day1 = ts(2024, 5, 1, 10)
    assert p.should_deactivate(s, day1) is None
    assert s.quota_window == "daily" and s.period_end == ts(2024, 5, 2)
    s.record_success(day1 + 1, 0.1)
    s.record_success(day1 + 2, 0.1)
    d = p.should_deactivate(s, day1 + 3)
    assert d.reason is R.QUOTA_WINDOW and d.until == ts(2024, 5, 2)
    assert "daily quota period" in d.detail and "requests 2" in d.detail
    assert p.should_deactivate(s, ts(2024, 5, 2, 0, 0, 1)) is None  # a new day, fresh counters
    assert s.period_requests == 0 and s.total_requests == 2


def test_quota_window_refuses_unknown_periods():
    with pytest.raises(ValueError, match="quota reset schedule"):
        QuotaWindow("hourly", RequestLimit(1))


def test_maintenance_standby_lasts_to_the_end_of_the_window():
    p = Maintenance("0 3 * * *", duration=1800)
    s = state()
    assert p.should_deactivate(s, ts(2024, 1, 1, 2, 59)) is None
    d = p.should_deactivate(s, ts(2024, 1, 1, 3, 10))
    assert d.reason is R.MAINTENANCE and d.until == ts(2024, 1, 1, 3, 30)
    assert p.should_deactivate(s, ts(2024, 1, 1, 3, 30)) is None
    assert "Maintenance('0 3 * * *'" in repr(p)


@pytest.mark.parametrize("make, message", [
    (lambda: Maintenance("0 25 * * *"), "hour field"),
    (lambda: Maintenance("0 3 * * *", duration=0), "maintenance_duration"),
    (lambda: RetryLimit(0), "retry_limit"),
    (lambda: RetryLimit(3, error_codes=("500",)), "error_codes"),
    (lambda: ErrorRate(0.0), "error_rate_threshold"),
    (lambda: ErrorRate(1.5), "error_rate_threshold"),
    (lambda: ErrorRate(0.5, min_requests=0), "error_rate_min_requests"),
    (lambda: RequestLimit(-1), "request_limit"),
    (lambda: TokenLimit(2.5), "token_limit"),
    (lambda: BudgetLimit(0), "budget_limit"),
    (lambda: Cooldown(-1), "cooldown"),
    (lambda: Cooldown(INF), "cooldown"),
    (lambda: Probe(0), "probe_interval"),
    (lambda: OnQuotaReset("hourly"), "quota reset schedule"),
])
def test_bad_policy_parameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- composition ----------------------------------------------------------------------------------
def test_any_of_returns_the_first_decision_in_order():
    s = state()
    fail(s, 1.0, n=3)
    both = AnyOf(RetryLimit(3), RequestLimit(1))
    assert both.should_deactivate(s, 1.0).reason is R.RETRY_LIMIT
    assert AnyOf(RequestLimit(1), RetryLimit(3)).should_deactivate(s, 1.0).reason is R.REQUEST_LIMIT
    assert AnyOf().should_deactivate(s, 1.0) is None


def test_or_composes_and_flattens():
    combined = RetryLimit(3) | ErrorRate(0.5) | RequestLimit(10)
    assert isinstance(combined, AnyOf) and len(combined.policies) == 3
    assert "RetryLimit(3" in repr(combined)


def test_plain_functions_are_policies():
    def no_gpt4(s: ModelState, now: float) -> Deactivation | None:
        return Deactivation(reason=R.MANUAL, detail="no gpt-4 today") if "gpt-4" in s.model else None

    policy = no_gpt4 | RetryLimit(3)      # the function on the left: RetryLimit.__ror__
    assert isinstance(policy, AnyOf)
    assert policy.should_deactivate(state(), 0.0).detail == "no gpt-4 today"
    assert "no_gpt4" in repr(policy.policies[0])
    assert as_deactivation_policy(RetryLimit(1)).n == 1


def test_a_function_must_return_a_decision_or_none():
    policy = as_deactivation_policy(lambda s, now: "yes")
    with pytest.raises(TypeError, match="expected a Deactivation or None"):
        policy.should_deactivate(state(), 0.0)
    with pytest.raises(TypeError, match="deactivation policy or a function"):
        as_deactivation_policy(42)  # type: ignore[arg-type]


# -- recovery policies ----------------------------------------------------------------------------
quota = Deactivation(reason=R.QUOTA_EXHAUSTED)
errors = Deactivation(reason=R.RETRY_LIMIT)


def test_cooldown():
    assert Cooldown(60).recover_at(state(), errors, 100.0) == 160.0
    assert Cooldown(0).recover_at(state(), errors, 100.0) == 100.0
    assert repr(Cooldown(5)) == "Cooldown(5.0, initial=5.0)"


def test_on_quota_reset_only_cures_quota_reasons():
    p = OnQuotaReset("daily_utc")
    now = ts(2024, 5, 1, 15)
    assert p.recover_at(state(), quota, now) == ts(2024, 5, 2)
    assert p.recover_at(state(), errors, now) is None
    assert OnQuotaReset("monthly").recover_at(state(), Deactivation(reason=R.BUDGET_LIMIT), now) == ts(2024, 6, 1)
    assert R.QUOTA_WINDOW in QUOTA_REASONS and R.RATE_LIMITED not in QUOTA_REASONS
    assert "daily_utc" in repr(p)


def test_first_of_takes_the_first_time_and_manual_ends_the_chain():
    chain = OnQuotaReset("daily") | Cooldown(60)
    now = ts(2024, 5, 1, 15)
    assert chain.recover_at(state(), quota, now) == ts(2024, 5, 2)
    assert chain.recover_at(state(), errors, now) == now + 60
    assert (Manual() | Cooldown(60)).recover_at(state(), errors, now) == INF
    assert FirstOf(Probe(30)).recover_at(state(), errors, now) is None
    assert isinstance(Cooldown(1) | Manual() | Probe(5), FirstOf)
    assert len((Cooldown(1) | Manual() | Probe(5)).policies) == 3
    assert "Manual()" in repr(FirstOf(Manual()))


def test_recovery_functions_are_policies():
    def at_noon(s: ModelState, decision: Deactivation, now: float) -> float | None:
        return ts(2024, 5, 1, 12)

    chain = at_noon | Cooldown(60)
    assert chain.recover_at(state(), errors, 0.0) == ts(2024, 5, 1, 12)
    assert not chain.probe_due(state(), 0.0)
    assert "at_noon" in repr(chain.policies[0])
    bad = as_recovery_policy(lambda s, d, now: "noon")
    with pytest.raises(TypeError, match="expected a timestamp or None"):
        bad.recover_at(state(), errors, 0.0)
    with pytest.raises(TypeError, match="recovery policy or a function"):
        as_recovery_policy(None)  # type: ignore[arg-type]


def test_probe_asks_for_probes_of_standby_models_only():
    p, s = Probe(300), state()
    assert not p.probe_due(s, 1000.0)                  # active
    standby(s, 1000.0, R.RETRY_LIMIT)
    assert not p.probe_due(s, 1299.0)
    assert p.probe_due(s, 1300.0)
    s.record_probe(1300.0)
    assert not p.probe_due(s, 1500.0) and p.probe_due(s, 1600.0)
    assert p.recover_at(s, errors, 0.0) is None
    assert FirstOf(Cooldown(5), p).probe_due(s, 1600.0)
    assert "Probe(300.0" in repr(p)


def test_probe_on_start_asks_once_with_no_interval():
    p, s = Probe(None, on_start=True), state()
    standby(s, 0.0, R.MANUAL)
    assert p.probe_due(s, 0.0)
    s.record_probe(1.0)
    assert not p.probe_due(s, 1e9)


def test_a_first_probe_is_due_one_interval_after_the_standby_began():
    s = state()
    s.breaker.trip(0.0, until=INF)   # opened by the breaker alone: it still knows when
    assert not Probe(10).probe_due(s, 9.0) and Probe(10).probe_due(s, 10.0)


# -- the whole cycle ------------------------------------------------------------------------------
def test_deactivate_cool_down_trial_and_recover():
    deactivation, recovery = build_policies(SimpleNamespace(retry_limit=2), SimpleNamespace(cooldown=30.0))
    s = state()
    fail(s, 10.0, n=2)
    decision = deactivation.should_deactivate(s, 10.0)
    apply(s, decision, recovery, 10.0)
    assert s.status.value == "standby" and s.recover_at == 40.0
    assert not s.breaker.allow(39.0)
    assert s.breaker.allow(40.0) and s.breaker.state is BreakerState.HALF_OPEN
    s.breaker.on_request(40.0)
    s.record_success(41.0, 0.2)
    s.breaker.record_success(41.0)
    assert s.breaker.state is BreakerState.CLOSED and deactivation.should_deactivate(s, 41.0) is None


def test_redeactivating_extends_and_never_shortens():
    s = state()
    standby(s, 0.0, R.MAINTENANCE, until=500.0)
    standby(s, 10.0, R.RETRY_LIMIT, until=100.0)
    assert s.recover_at == 500.0 and s.breaker.open_until == 500.0


# -- from configuration ---------------------------------------------------------------------------
def test_defaults_without_config_objects():
    deactivation, recovery = build_policies(None, None)
    assert [type(p) for p in deactivation.policies] == [RetryLimit]
    assert deactivation.policies[0].n == 3
    assert [type(p) for p in recovery.policies] == [Cooldown]
    assert recovery.policies[0].seconds == 60.0


def test_everything_configured():
    d = SimpleNamespace(retry_limit=4, error_rate_threshold=0.5, error_rate_min_requests=20, error_codes=(429, 503),
                        request_limit=1000, token_limit=None, budget_limit=5.0, quota_window="monthly",
                        maintenance_window="0 3 * * sun", maintenance_duration=600.0)
    r = SimpleNamespace(cooldown=120.0, probe_on_start=True, probe_interval=300.0, on_quota_reset=True,
                        quota_reset_schedule=None, half_open_max=1, success_threshold=1, manual=False)
    deactivation, recovery = build_policies(d, r)
    kinds = [type(p) for p in deactivation.policies]
    assert kinds == [Maintenance, QuotaWindow, RetryLimit, ErrorRate]
    quota_policy = deactivation.policies[1]
    assert quota_policy.period == "monthly"
    assert [type(p) for p in quota_policy.limits.policies] == [RequestLimit, BudgetLimit]
    assert deactivation.policies[2].error_codes == {429, 503}
    assert deactivation.policies[3].min_requests == 20
    assert [type(p) for p in recovery.policies] == [OnQuotaReset, Cooldown, Probe]
    assert recovery.policies[0].schedule == "monthly"   # falls back to the quota window
    assert recovery.policies[2].on_start and recovery.policies[2].interval == 300.0


def test_quota_reset_schedule_counts_limits_per_period_without_a_quota_window():
    d = SimpleNamespace(retry_limit=None, request_limit=10)
    deactivation, recovery = build_policies(d, SimpleNamespace(on_quota_reset=True, quota_reset_schedule="daily_utc"))
    assert [type(p) for p in deactivation.policies] == [QuotaWindow]
    assert deactivation.policies[0].period == "daily_utc"
    assert recovery.policies[0].schedule == "daily_utc"


def test_limits_without_any_period_stay_lifetime_caps():
    deactivation, recovery = build_policies(SimpleNamespace(retry_limit=0, token_limit=500),
                                            SimpleNamespace(on_quota_reset=True))
    assert [type(p) for p in deactivation.policies] == [TokenLimit]
    assert recovery.policies[0].schedule == "daily_utc"


def test_manual_recovery_keeps_probes_and_drops_time():
    _, recovery = build_policies(None, SimpleNamespace(manual=True, on_quota_reset=True, probe_interval=60.0))
    assert [type(p) for p in recovery.policies] == [Manual, Probe]
    _, no_cooldown = build_policies(None, SimpleNamespace(cooldown=None))
    assert no_cooldown.policies == ()


@pytest.mark.parametrize("d, r, message", [
    ({"retry_limit": -1}, {}, "deactivation.retry_limit: "),
    ({"error_rate_threshold": 2.0}, {}, "deactivation.error_rate_threshold: "),
    ({"request_limit": "many"}, {}, "deactivation.request_limit: "),
    ({"budget_limit": -5}, {}, "deactivation.budget_limit: "),
    ({"token_limit": 5, "quota_window": "hourly"}, {}, "deactivation.quota_window: "),
    ({"maintenance_window": "every sunday"}, {}, "deactivation.maintenance_window: "),
    ({"request_limit": 5}, {"on_quota_reset": True, "quota_reset_schedule": "weekly"},
     "recovery.quota_reset_schedule: "),
    ({}, {"cooldown": -1}, "recovery.cooldown: "),
    ({}, {"probe_interval": 0}, "recovery.probe_interval: "),
])
def test_bad_settings_are_named(d, r, message):
    with pytest.raises(ValueError, match=message):
        build_policies(SimpleNamespace(**d), SimpleNamespace(**r))


def test_the_real_config_dataclasses_are_accepted():
    schema = pytest.importorskip("modelmesh._core._config_schema")
    deactivation, recovery = build_policies(schema.DeactivationConfig(), schema.RecoveryConfig())
    assert isinstance(deactivation, AnyOf) and isinstance(recovery, FirstOf)


# -- property: re-deactivation never shortens -----------------------------------------------------
decisions = st.lists(
    st.tuples(st.sampled_from(list(R)), st.floats(0.0, 100.0), st.none() | st.floats(-50.0, 1000.0)),
    min_size=1, max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(decisions=decisions, cooldown=st.floats(0.0, 300.0))
def test_standby_deadline_only_grows_while_on_standby(decisions, cooldown):
    recovery = OnQuotaReset() | Cooldown(cooldown)
    s, now, best = state(), ts(2024, 1, 1), None
    for reason, step, offset in decisions:
        now += step
        was_open = s.breaker.state is BreakerState.OPEN and (s.breaker.open_until or 0) > now
        decision = Deactivation(reason=reason, until=None if offset is None else now + offset)
        apply(s, decision, recovery, now)
        wanted = decision.until if decision.until is not None else recovery.recover_at(s, decision, now)
        assert s.breaker.open_until >= wanted
        if was_open:
            assert s.breaker.open_until >= best
        best = s.breaker.open_until


def test_user_policy_objects_without_probe_due_never_ask_for_probes():
    class Noon:
        def recover_at(self, s, decision, now):
            return 43200.0

    chain = FirstOf(Noon(), Probe(10))
    s = state()
    standby(s, 0.0, R.MANUAL)
    assert chain.recover_at(s, errors, 0.0) == 43200.0
    assert not FirstOf(Noon()).probe_due(s, 100.0)
    assert chain.probe_due(s, 100.0)


def test_quota_window_repr_names_its_limits():
    assert repr(QuotaWindow("monthly", RequestLimit(5), BudgetLimit(2))) == \
        "QuotaWindow('monthly', RequestLimit(5), BudgetLimit(2.0))"
