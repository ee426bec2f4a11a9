"""ModelState and ProviderState: bookkeeping, derived status, quota periods, persistence."""
from __future__ import annotations

import ast
import calendar
import json
import math
import pathlib
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._breaker import BreakerState
from modelmesh._core._policies import DeactivationReason
from modelmesh._core._state import MIN_AVAILABILITY, ModelState, ModelStatus, ProviderState

R = DeactivationReason
INF = math.inf
CORE = pathlib.Path(__file__).resolve().parents[1] / "modelmesh" / "_core"


def ts(*args: int) -> float:
    return float(calendar.timegm(datetime(*args, tzinfo=timezone.utc).timetuple()))


def model(**kw) -> ModelState:
    return ModelState(model="anthropic/claude-3-5-haiku", pool="chat", **kw)


# -- ModelState bookkeeping -----------------------------------------------------------------------
def test_success_counts_usage_and_ends_the_streak():
    s = model()
    s.record_failure(1.0, "timeout")
    s.record_success(2.0, 0.5, tokens=120, cost=0.002)
    assert (s.total_requests, s.total_failures, s.consecutive_failures) == (2, 1, 0)
    assert s.failure_streak == {}
    assert (s.tokens_used, s.period_tokens, s.period_requests) == (120, 120, 2)
    assert s.cost == pytest.approx(0.002) and s.period_cost == pytest.approx(0.002)
    assert s.window.count(2.0) == 2 and s.window.success_rate(2.0) == 0.5


def test_failure_records_kind_status_and_streak():
    s = model()
    s.record_failure(1.0, "server_error", 503)
    s.record_failure(2.0, "timeout")
    s.record_failure(3.0, "server_error", 503)
    assert s.consecutive_failures == 3 and s.total_failures == 3
    assert s.failure_streak == {"503": 2, "none": 1}
    assert s.last_error == "server_error" and s.last_status == 503
    assert s.streak_count() == 3
    assert s.streak_count((503,)) == 3       # statusless failures always count
    assert s.streak_count((429,)) == 1
    from modelmesh._core._types import ErrorKind
    s.record_failure(4.0, ErrorKind.RATE_LIMITED, 429)
    assert s.last_error == "rate_limited" and s.streak_count((429,)) == 2


def test_a_failure_without_latency_does_not_move_the_latency_figures():
    s = model()
    s.record_success(1.0, 2.0)
    s.record_failure(2.0, "timeout")
    assert s.window.average(2.0) == 2.0
    s.record_failure(3.0, "server_error", 500, latency=8.0)
    assert s.window.average(3.0) == 4.0


@pytest.mark.parametrize("call, message", [
    (lambda s: s.record_success(0.0, -1.0), "latency"),
    (lambda s: s.record_success(0.0, float("nan")), "latency"),
    (lambda s: s.record_success(0.0, 0.1, tokens=-5), "tokens"),
    (lambda s: s.record_success(0.0, 0.1, tokens=True), "tokens"),
    (lambda s: s.record_success(0.0, 0.1, cost=-0.01), "cost"),
    (lambda s: s.record_failure(0.0, "x", status="500"), "status"),
    (lambda s: s.record_failure(0.0, "x", latency=INF), "latency"),
])
def test_bad_outcomes_are_refused_and_change_nothing(call, message):
    s = model()
    with pytest.raises(ValueError, match=message):
        call(s)
    assert s.total_requests == 0 and s.window.count(0.0) == 0


def test_model_must_be_named():
    with pytest.raises(ValueError, match="provider/model-id"):
        ModelState(model="")


def test_recording_does_not_drive_the_breaker():
    s = model()
    for t in range(10):
        s.record_failure(float(t), "server_error", 500)
    assert s.breaker.state is BreakerState.CLOSED  # only the caller knows what is a verdict


# -- standby --------------------------------------------------------------------------------------
def test_status_and_deadlines_are_read_from_the_breaker():
    s = model()
    assert s.status is ModelStatus.ACTIVE and s.deactivated_at is None and s.recover_at is None
    s.breaker.trip(10.0, until=70.0, reason="retry_limit")
    assert s.status is ModelStatus.STANDBY and (s.deactivated_at, s.recover_at) == (10.0, 70.0)
    s.breaker.allow(70.0)
    assert s.status is ModelStatus.ACTIVE and s.recover_at is None  # half-open: a trial may go
    s.breaker.trip(80.0, until=INF)
    assert s.recover_at is None and s.deactivated_at == 80.0       # not by time


# -- quota periods --------------------------------------------------------------------------------
def test_counters_never_reset_without_a_window():
    s = model()
    s.record_success(ts(2024, 1, 1), 0.1)
    s.record_success(ts(2024, 6, 1), 0.1)
    assert s.period_requests == 2 and s.period_end is None


def test_period_binding_and_rollover():
    s = model()
    s.record_success(ts(2024, 1, 31, 8), 0.1, tokens=10, cost=1.0)
    s.roll_period(ts(2024, 1, 31, 9), "monthly")
    assert s.period_start == ts(2024, 1, 31, 9) and s.period_end == ts(2024, 2, 1)
    assert s.period_requests == 1                     # binding keeps what was counted
    s.roll_period(ts(2024, 1, 31, 10))                # same period: nothing happens
    assert s.period_requests == 1
    s.record_success(ts(2024, 2, 1, 0, 0, 5), 0.1, tokens=20, cost=2.0)
    assert (s.period_requests, s.period_tokens, s.period_cost) == (1, 20, 2.0)
    assert (s.total_requests, s.tokens_used, s.cost) == (2, 30, 3.0)
    assert s.period_end == ts(2024, 3, 1)
    s.roll_period(ts(2024, 2, 2), "daily")            # rebinding starts a daily period
    assert s.quota_window == "daily" and s.period_end == ts(2024, 2, 3)


def test_unknown_period_is_refused_before_any_change():
    s = model()
    with pytest.raises(ValueError, match="quota reset schedule"):
        s.roll_period(0.0, "hourly")
    assert s.quota_window is None


# -- ModelState persistence -----------------------------------------------------------------------
def busy_model() -> ModelState:
    s = model(remaining_requests=5, limit_requests=60, rate_reset_at=130.0)
    s.roll_period(ts(2024, 1, 1), "daily")
    s.record_success(ts(2024, 1, 1, 1), 0.25, tokens=50, cost=0.01)
    s.record_failure(ts(2024, 1, 1, 2), "rate_limited", 429)
    s.breaker.on_request(ts(2024, 1, 1, 2))
    s.last_used = ts(2024, 1, 1, 2)
    s.breaker.trip(ts(2024, 1, 1, 3), until=ts(2024, 1, 2), reason="quota_window")
    s.reason = R.QUOTA_WINDOW
    s.record_probe(ts(2024, 1, 1, 4))
    return s


def test_model_state_round_trips_through_strict_json():
    s = busy_model()
    data = s.to_dict()
    assert data["status"] == "standby" and data["reason"] == "quota_window"
    assert data["breaker"]["state"] == "open" and data["window"]["samples"]
    back = ModelState.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert back == s
    assert back.reason is R.QUOTA_WINDOW and back.breaker.open_until == ts(2024, 1, 2)
    assert back.window == s.window and back.window.count(ts(2024, 1, 1, 2)) == 1


def test_an_endless_standby_survives_persistence():
    s = model()
    s.breaker.trip(0.0, until=INF, reason="manual")
    back = ModelState.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False)))
    assert back.breaker.open_until == INF and back.recover_at is None and not back.breaker.allow(1e12)


def test_from_dict_fills_defaults():
    back = ModelState.from_dict({"model": "groq/llama-3.1-8b-instant"})
    assert back == ModelState(model="groq/llama-3.1-8b-instant")


@pytest.mark.parametrize("data, error, message", [
    ([], TypeError, "mapping"),
    ({"model": "a/b", "reason": "bored"}, ValueError, "ModelState.from_dict"),
    ({"model": "a/b", "total_requests": -1}, ValueError, "total_requests"),
    ({"model": "a/b", "cost": float("inf")}, ValueError, "cost"),
    ({"model": "a/b", "last_used": "yesterday"}, ValueError, "last_used"),
    ({"model": "a/b", "failure_streak": {"500": -2}}, ValueError, "failure_streak"),
    ({"model": "a/b", "tokens_used": 2.5}, ValueError, "tokens_used must be a non-negative integer"),
    ({"model": "a/b", "last_status": True}, ValueError, "last_status"),
    ({"model": "a/b", "remaining_requests": -1}, ValueError, "remaining_requests"),
    ({"model": 7}, ValueError, "model must be a string"),
    ({"model": "a/b", "breaker": {"state": "ajar"}}, ValueError, "breaker state"),
    ({"model": ""}, ValueError, "provider/model-id"),
])
def test_model_state_from_dict_refuses_bad_data(data, error, message):
    with pytest.raises(error, match=message):
        ModelState.from_dict(data)


outcomes = st.lists(
    st.tuples(st.booleans(), st.floats(0.0, 100.0), st.floats(0.0, 30.0), st.integers(0, 5000),
              st.floats(0.0, 1.0), st.sampled_from([None, 429, 500, 503])),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(outcomes=outcomes, window=st.none() | st.sampled_from(["daily", "monthly"]))
def test_model_state_round_trips_after_any_history(outcomes, window):
    s, now = model(), ts(2024, 1, 30)
    if window:
        s.roll_period(now, window)
    for ok, step, latency, tokens, cost, status in outcomes:
        now += step * 3600
        if ok:
            s.record_success(now, latency, tokens=tokens, cost=cost)
        else:
            s.record_failure(now, "server_error", status)
        assert s.period_requests <= s.total_requests and s.total_failures <= s.total_requests
        assert s.streak_count((429,)) <= s.consecutive_failures
    assert ModelState.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False))) == s


# -- ProviderState --------------------------------------------------------------------------------
def test_provider_defaults_are_the_seeds():
    p = ProviderState()
    assert (p.available, p.auth_valid, p.last_probe, p.availability_score) == (True, True, None, 1.0)
    assert (p.active_model_count, p.total_quota_used, p.total_cost) == (0, 0, 0.0)
    assert p.is_healthy()


def test_probe_score_is_an_ewma():
    p = ProviderState()
    p.record_probe(False, now=10.0)
    assert p.availability_score == pytest.approx(0.7) and p.last_probe == 10.0
    p.record_probe(False, 2.5, now=20.0)
    assert p.availability_score == pytest.approx(0.49) and p.last_probe_latency == 2.5
    assert not p.is_healthy()          # the score alone; whether it is up is the health owner's call
    p.record_probe(True, 0.3, now=30.0)
    assert p.availability_score == pytest.approx(0.643)


def test_score_below_threshold_is_unhealthy_even_if_flagged_available():
    assert not ProviderState(availability_score=MIN_AVAILABILITY - 0.01).is_healthy()
    assert ProviderState(availability_score=MIN_AVAILABILITY).is_healthy()


def test_provider_state_round_trip():
    p = ProviderState(total_cost=1.25, total_quota_used=900, active_model_count=3)
    p.record_probe(False, 0.8, now=100.0)
    p.available, p.reason, p.deactivated_at, p.until = False, "provider_outage", 101.0, 161.0
    data = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert set(data) >= {"available", "auth_valid", "last_probe", "availability_score", "active_model_count",
                         "total_quota_used", "total_cost"}
    assert ProviderState.from_dict(data) == p
    assert ProviderState.from_dict({}) == ProviderState()


@pytest.mark.parametrize("data, message", [
    ({"availability_score": 1.5}, "availability_score"),
    ({"availability_score": "high"}, "availability_score"),
    ({"available": "yes"}, "available"),
    ({"total_cost": -1}, "total_cost"),
    ({"active_model_count": 2.5}, "active_model_count"),
])
def test_provider_state_from_dict_refuses_bad_data(data, message):
    with pytest.raises(ValueError, match=message):
        ProviderState.from_dict(data)


def test_probe_latency_must_be_a_duration():
    with pytest.raises(ValueError, match="latency"):
        ProviderState().record_probe(True, latency=-1.0)


# -- the sans-IO rule -----------------------------------------------------------------------------
ALLOWED = {"__future__", "abc", "enum", "math", "re", "calendar", "datetime", "collections", "dataclasses", "typing",
           "dataclasses_json"}


@pytest.mark.parametrize("name", ["_window", "_breaker", "_state", "_cron", "_policies"])
def test_modules_import_nothing_that_reads_the_world(name):
    tree = ast.parse((CORE / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = {node.module.split(".")[0]}
        else:
            continue
        assert roots <= ALLOWED, f"{name} imports {roots - ALLOWED}"


def test_importing_the_state_does_not_load_dataclasses_json():
    code = ("import sys, modelmesh._core._state, modelmesh._core._policies; "
            "print('dataclasses_json' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=CORE.parents[1])
    assert out.stdout.strip() == "False"
