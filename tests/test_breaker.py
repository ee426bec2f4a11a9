"""CircuitBreaker: the transition table, deadlines that only grow, and persistence."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._breaker import TRANSITIONS, BreakerError, BreakerInput, BreakerState, CircuitBreaker

INF = math.inf


def opened(now=0.0, **config) -> CircuitBreaker:
    b = CircuitBreaker(**config)
    b.trip(now)
    return b


def half_opened(**config) -> CircuitBreaker:
    b = opened(0.0, **config)
    assert b.allow(b.reset_timeout)
    return b


# -- the ordinary life of a breaker ---------------------------------------------------------------
def test_defaults_follow_the_seed():
    b = CircuitBreaker()
    assert (b.failure_threshold, b.reset_timeout, b.half_open_max, b.success_threshold) == (5, 60.0, 1, 1)
    assert b.state is BreakerState.CLOSED and b.open_until is None and b.allow(0.0)


def test_consecutive_failures_trip_it():
    b = CircuitBreaker(failure_threshold=3, reset_timeout=30.0)
    b.record_failure(1.0)
    b.record_failure(2.0)
    assert b.state is BreakerState.CLOSED and b.failures == 2
    b.record_failure(3.0)
    assert b.state is BreakerState.OPEN
    assert b.open_until == 33.0
    assert b.reason == "3 consecutive failures"
    assert b.failures == 0


def test_a_success_breaks_the_streak():
    b = CircuitBreaker(failure_threshold=2)
    b.record_failure(1.0)
    b.record_success(2.0)
    b.record_failure(3.0)
    assert b.state is BreakerState.CLOSED


def test_open_refuses_until_the_deadline_then_lets_one_trial_through():
    b = CircuitBreaker(failure_threshold=1, reset_timeout=10.0)
    b.record_failure(0.0)
    assert not b.allow(9.999)
    assert b.state is BreakerState.OPEN
    assert b.allow(10.0)
    assert b.state is BreakerState.HALF_OPEN and b.open_until is None
    b.on_request(10.0)
    assert b.in_flight == 1
    assert not b.allow(10.0)              # half_open_max = 1
    b.record_success(11.0)
    assert b.state is BreakerState.CLOSED and b.in_flight == 0


def test_on_request_opens_the_half_open_door_itself():
    b = opened(0.0, reset_timeout=5.0)
    b.on_request(5.0)
    assert b.state is BreakerState.HALF_OPEN and b.in_flight == 1


def test_a_failed_trial_reopens_with_a_fresh_deadline():
    b = half_opened(reset_timeout=10.0)
    b.on_request(10.0)
    b.record_failure(12.0)
    assert b.state is BreakerState.OPEN
    assert b.open_until == 22.0
    assert b.reason == "trial request failed"


def test_success_threshold_needs_that_many_trial_successes():
    b = half_opened(half_open_max=2, success_threshold=2)
    b.on_request(60.0)
    b.on_request(60.0)
    assert not b.allow(60.0)
    b.record_success(61.0)
    assert b.state is BreakerState.HALF_OPEN and b.allow(61.0)
    b.record_success(62.0)
    assert b.state is BreakerState.CLOSED


def test_release_gives_the_trial_slot_back_without_a_verdict():
    b = half_opened()
    b.on_request(60.0)
    b.release(61.0)
    assert b.state is BreakerState.HALF_OPEN and b.in_flight == 0 and b.allow(61.0)
    b.release(61.0)                       # never below zero
    assert b.in_flight == 0


def test_request_when_every_trial_slot_is_taken_is_refused():
    b = half_opened()
    b.on_request(60.0)
    with pytest.raises(BreakerError, match="trial slot"):
        b.on_request(60.0)


def test_request_while_open_is_an_illegal_input():
    b = opened(0.0)
    with pytest.raises(BreakerError, match="REQUEST is not allowed in state OPEN"):
        b.on_request(1.0)
    assert b.state is BreakerState.OPEN


def test_late_verdicts_do_not_move_an_open_breaker():
    b = opened(0.0)
    until = b.open_until
    b.record_success(1.0)
    b.record_failure(2.0)
    b.release(3.0)
    assert b.state is BreakerState.OPEN and b.open_until == until


def test_closed_ignores_release_and_request_counts_nothing():
    b = CircuitBreaker()
    b.on_request(0.0)
    b.release(0.0)
    assert b.state is BreakerState.CLOSED and b.in_flight == 0


# -- trips and deadlines --------------------------------------------------------------------------
def test_trip_defaults_to_reset_timeout():
    b = CircuitBreaker(reset_timeout=30.0)
    b.trip(100.0)
    assert b.state is BreakerState.OPEN and b.open_until == 130.0 and b.reason == "tripped"


def test_tripping_again_extends_and_never_shortens():
    b = CircuitBreaker()
    b.trip(0.0, until=100.0, reason="maintenance")
    b.trip(10.0, until=50.0, reason="cooldown")
    assert b.open_until == 100.0 and b.reason == "maintenance"
    b.trip(20.0, until=200.0, reason="quota")
    assert b.open_until == 200.0 and b.reason == "quota"
    b.trip(30.0)  # now + reset_timeout = 90 < 200
    assert b.open_until == 200.0
    assert b.stats()["trips"] == 1       # still the same spell of OPEN


def test_trip_until_infinity_is_not_lifted_by_time():
    b = CircuitBreaker()
    b.trip(0.0, until=INF, reason="manual")
    assert not b.allow(1e12)
    b.trip(1.0, until=5.0)
    assert b.open_until == INF
    b.reset(2.0)
    assert b.state is BreakerState.CLOSED and b.allow(2.0) and b.reason == ""


def test_trip_in_half_open_drops_the_trials():
    b = half_opened()
    b.on_request(60.0)
    b.trip(61.0, until=500.0)
    assert b.state is BreakerState.OPEN and b.in_flight == 0 and b.open_until == 500.0


def test_trip_with_a_past_deadline_goes_half_open_at_once():
    b = CircuitBreaker()
    b.trip(100.0, until=50.0)
    assert b.state is BreakerState.OPEN
    assert b.allow(100.0) and b.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize("until", [float("nan"), -INF, "soon", True])
def test_trip_refuses_a_bad_deadline(until):
    with pytest.raises(ValueError, match="until"):
        CircuitBreaker().trip(0.0, until=until)


def test_reset_closes_from_any_state():
    for b in (CircuitBreaker(), opened(), half_opened()):
        b.reset(1.0)
        assert b.state is BreakerState.CLOSED and b.open_until is None


# -- the table itself -----------------------------------------------------------------------------
def breaker_in(state: BreakerState) -> CircuitBreaker:
    return {BreakerState.CLOSED: CircuitBreaker, BreakerState.OPEN: opened, BreakerState.HALF_OPEN: half_opened}[state]()


@given(state=st.sampled_from(BreakerState), event=st.sampled_from(BreakerInput), until=st.none() | st.floats(0, 1e6))
def test_every_state_input_pair_transitions_per_the_table_or_raises(state, event, until):
    b = breaker_in(state)
    if (state, event) in TRANSITIONS:
        assert b.process(event, 100.0, until=until) is TRANSITIONS[(state, event)][0]
        assert b.state is TRANSITIONS[(state, event)][0]
        assert (b.open_until is not None) == (b.state is BreakerState.OPEN)
    else:
        before = b.to_dict()
        with pytest.raises(BreakerError, match=f"{event.name} is not allowed in state {state.name}"):
            b.process(event, 100.0, until=until)
        assert b.to_dict() == before


def test_the_table_only_lacks_the_inputs_that_make_no_sense():
    missing = {(s, i) for s in BreakerState for i in BreakerInput} - set(TRANSITIONS)
    assert missing == {
        (BreakerState.CLOSED, BreakerInput.SUCCESS_THRESHOLD),
        (BreakerState.CLOSED, BreakerInput.TIMER_EXPIRED),
        (BreakerState.OPEN, BreakerInput.REQUEST),
        (BreakerState.OPEN, BreakerInput.SUCCESS_THRESHOLD),
        (BreakerState.OPEN, BreakerInput.FAILURE_THRESHOLD),
        (BreakerState.HALF_OPEN, BreakerInput.FAILURE_THRESHOLD),
        (BreakerState.HALF_OPEN, BreakerInput.TIMER_EXPIRED),
        (BreakerState.CLOSED, BreakerInput.LAST_RESORT),
        (BreakerState.HALF_OPEN, BreakerInput.LAST_RESORT),
    }


def test_process_refuses_foreign_inputs_and_bad_times():
    b = CircuitBreaker()
    with pytest.raises(TypeError, match="BreakerInput"):
        b.process("success", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        b.process(BreakerInput.SUCCESS, float("nan"))
    b.trip(0.0)
    with pytest.raises(ValueError, match="now"):
        b.allow(INF)


# -- configuration --------------------------------------------------------------------------------
def test_configure_changes_only_what_is_given():
    b = CircuitBreaker()
    b.configure(failure_threshold=2, reset_timeout=5)
    assert (b.failure_threshold, b.reset_timeout, b.half_open_max, b.success_threshold) == (2, 5.0, 1, 1)
    b.configure(half_open_max=3, success_threshold=2)
    assert (b.half_open_max, b.success_threshold) == (3, 2)


@pytest.mark.parametrize("kwargs, name", [
    ({"failure_threshold": 0}, "failure_threshold"),
    ({"half_open_max": True}, "half_open_max"),
    ({"success_threshold": 1.5}, "success_threshold"),
    ({"reset_timeout": -1}, "reset_timeout"),
    ({"reset_timeout": INF}, "reset_timeout"),
    ({"reset_timeout": "60s"}, "reset_timeout"),
])
def test_bad_configuration_is_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(**kwargs)


# -- stats and persistence ------------------------------------------------------------------------
def test_stats_report_state_counts_and_config():
    b = CircuitBreaker(failure_threshold=3)
    b.record_failure(1.0)
    stats = b.stats()
    assert stats["state"] == "closed" and stats["failures"] == 1 and stats["failure_threshold"] == 3
    assert set(stats) >= {"successes", "in_flight", "open_until", "reason", "reset_timeout", "half_open_max",
                          "success_threshold"}
    assert "closed" in repr(b)


@pytest.mark.parametrize("make", [CircuitBreaker, opened, half_opened])
def test_round_trip_in_every_state(make):
    b = make()
    b2 = CircuitBreaker.from_dict(json.loads(json.dumps(b.to_dict())))
    assert b2 == b and b2.state is b.state and b2.open_until == b.open_until


def test_an_endless_open_is_stored_without_infinity():
    b = CircuitBreaker()
    b.trip(0.0, until=INF, reason="manual")
    data = b.to_dict()
    assert data["open_until"] is None
    json.dumps(data, allow_nan=False)
    back = CircuitBreaker.from_dict(data)
    assert back.open_until == INF and not back.allow(1e15)


def test_equality():
    assert CircuitBreaker() == CircuitBreaker()
    assert CircuitBreaker() != opened()
    assert CircuitBreaker() != "breaker"


@pytest.mark.parametrize("data, error", [
    ([], TypeError),
    ({"state": "ajar"}, ValueError),
    ({"failures": -1}, ValueError),
    ({"in_flight": "2"}, ValueError),
    ({"state": "open", "open_until": "later"}, ValueError),
    ({"opened_at": float("nan")}, ValueError),
    ({"failure_threshold": 0}, ValueError),
])
def test_from_dict_refuses_bad_data(data, error):
    with pytest.raises(error):
        CircuitBreaker.from_dict(data)


# -- random event sequences -----------------------------------------------------------------------
ops = st.lists(
    st.tuples(
        st.sampled_from(["allow", "request", "success", "failure", "release", "trip", "trip_inf"]),
        st.floats(min_value=0.0, max_value=50.0),   # time step
        st.floats(min_value=-100.0, max_value=500.0),  # trip deadline offset
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, threshold=st.integers(1, 4), timeout=st.floats(0.0, 100.0),
       slots=st.integers(1, 3), quorum=st.integers(1, 3))
def test_random_sequences_never_shorten_an_open_deadline(ops, threshold, timeout, slots, quorum):
    b = CircuitBreaker(failure_threshold=threshold, reset_timeout=timeout, half_open_max=slots,
                       success_threshold=quorum)
    now = 0.0
    for op, step, offset in ops:
        now += step
        before_state, before_until = b.state, b.open_until
        if op == "allow":
            b.allow(now)
        elif op == "request":
            if b.allow(now):
                b.on_request(now)
        elif op == "success":
            b.record_success(now)
        elif op == "failure":
            b.record_failure(now)
        elif op == "release":
            b.release(now)
        else:
            until = INF if op == "trip_inf" else now + offset
            b.trip(now, until=until)
            assert b.state is BreakerState.OPEN and b.open_until >= until
        if before_state is BreakerState.OPEN and b.state is BreakerState.OPEN:
            assert b.open_until >= before_until
        assert (b.open_until is not None) == (b.state is BreakerState.OPEN)
        assert 0 <= b.in_flight <= slots
        assert b.failures < threshold
        assert CircuitBreaker.from_dict(json.loads(json.dumps(b.to_dict()))) == b
