"""RollingWindow: a pure function of the samples recorded and the `now` asked about."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._window import RollingWindow, Sample


def test_empty_window_is_neutral():
    w = RollingWindow()
    assert w.count(0.0) == 0
    assert w.success_rate(0.0) == 1.0
    assert w.error_rate(0.0) == 0.0
    assert w.average(0.0) == 0.0
    assert w.ewma(0.0) == 0.0
    assert w.score(0.0) == 0.0
    assert w.last(0.0) is None
    assert list(w.samples(0.0)) == []


def test_rates_mean_ewma_and_score():
    w = RollingWindow(alpha=0.3)
    w.record(1.0, 1.0, True)
    w.record(2.0, 2.0, False)
    w.record(3.0, 3.0, True)
    assert w.count(3.0) == 3
    assert w.success_rate(3.0) == pytest.approx(2 / 3)
    assert w.error_rate(3.0) == pytest.approx(1 / 3)
    assert w.average(3.0) == pytest.approx(2.0)
    # oldest to newest: 1 -> 0.3*2 + 0.7*1 = 1.3 -> 0.3*3 + 0.7*1.3 = 1.81
    assert w.ewma(3.0) == pytest.approx(1.81)
    assert w.score(3.0) == pytest.approx(1.81 * 2 / 3)
    assert w.last(3.0) == Sample(at=3.0, value=3.0, success=True)


def test_error_rate_is_exact_for_round_fractions():
    w = RollingWindow()
    for i in range(10):
        w.record(float(i), 1.0, success=i >= 3)
    assert w.error_rate(10.0) == 0.3  # not 0.30000000000000004: policies compare with >=


def test_samples_expire_after_duration():
    w = RollingWindow(duration=300.0)
    w.record(0.0, 5.0)
    w.record(100.0, 7.0, success=False)
    assert w.count(300.0) == 2           # a sample exactly `duration` old still counts
    assert w.count(300.5) == 1
    assert w.average(300.5) == 7.0
    assert w.success_rate(300.5) == 0.0
    assert w.count(400.5) == 0
    assert w.success_rate(400.5) == 1.0


def test_size_caps_the_samples_kept():
    w = RollingWindow(size=3)
    for i in range(5):
        w.record(float(i), float(i))
    assert w.count(5.0) == 3
    assert [s.value for s in w.samples(5.0)] == [2.0, 3.0, 4.0]


def test_count_since_counts_recent_requests():
    w = RollingWindow(duration=300.0)
    for t in (0.0, 100.0, 130.0, 150.0, 159.0):
        w.record(t, 1.0)
    assert w.count_since(160.0, 60.0) == 4   # 100 (exactly 60s old counts), 130, 150, 159
    assert w.count_since(160.0, 30.0) == 3   # 130, 150, 159
    assert w.count_since(160.0, 0.0) == 0
    assert w.count_since(160.0, 1000.0) == 5  # bounded by the window itself


def test_out_of_order_timestamps_are_judged_by_their_own_time():
    w = RollingWindow(duration=300.0)
    w.record(100.0, 1.0)
    w.record(0.0, 2.0)      # a late report from another worker
    assert w.count(350.0) == 1
    assert w.average(350.0) == 1.0


def test_failures_and_successes_with_the_same_value_move_only_the_rate():
    w = RollingWindow()
    w.record(0.0, 2.0, True)
    w.record(1.0, 2.0, False)
    assert w.average(1.0) == 2.0
    assert w.success_rate(1.0) == 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "size"),
    ({"size": True}, "size"),
    ({"size": 2.5}, "size"),
    ({"duration": 0}, "duration"),
    ({"duration": float("inf")}, "duration"),
    ({"duration": "5m"}, "duration"),
    ({"alpha": 0.0}, "alpha"),
    ({"alpha": 1.5}, "alpha"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RollingWindow(**kwargs)


def test_bad_inputs_are_refused():
    w = RollingWindow()
    with pytest.raises(ValueError, match="value"):
        w.record(0.0, float("nan"))
    with pytest.raises(ValueError, match="now"):
        w.record(float("inf"), 1.0)
    with pytest.raises(ValueError, match="now"):
        w.count(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        w.count_since(0.0, -1.0)
    assert w.count(0.0) == 0


def test_round_trip_through_json():
    w = RollingWindow(size=5, duration=60.0, alpha=0.5)
    w.record(1.0, 0.25, True)
    w.record(2.0, 0.5, False)
    data = json.loads(json.dumps(w.to_dict()))
    back = RollingWindow.from_dict(data)
    assert back == w
    assert back.size == 5 and back.duration == 60.0 and back.alpha == 0.5
    assert back.success_rate(2.0) == 0.5
    assert RollingWindow.from_dict({}) == RollingWindow()


def test_equality_is_by_content():
    a, b = RollingWindow(), RollingWindow()
    assert a == b
    a.record(0.0, 1.0)
    assert a != b
    assert a != "window"
    a.clear()
    assert a == b
    assert "samples=0" in repr(a)


@pytest.mark.parametrize("data, error", [
    ([], TypeError),
    ({"samples": [[1.0, 2.0]]}, ValueError),
    ({"samples": ["x"]}, ValueError),
    ({"samples": [[1.0, "slow", True]]}, ValueError),
    ({"size": -1}, ValueError),
])
def test_from_dict_refuses_bad_data(data, error):
    with pytest.raises(error):
        RollingWindow.from_dict(data)


# -- properties ------------------------------------------------------------------------------------
events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=200.0),                      # time step
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),      # value
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events=events, size=st.integers(1, 20), duration=st.floats(1.0, 500.0), probe=st.floats(0.0, 600.0))
def test_window_matches_a_naive_model(events, size, duration, probe):
    w = RollingWindow(size=size, duration=duration)
    now = 0.0
    recorded: list[tuple[float, float, bool]] = []
    for step, value, ok in events:
        now += step
        w.record(now, value, ok)
        recorded.append((now, value, ok))
        assert w.count(now) <= size
    ask = now + probe
    live = [r for r in recorded[-size:] if r[0] >= ask - duration]
    assert w.count(ask) == len(live)
    rate = w.success_rate(ask)
    assert 0.0 <= rate <= 1.0
    assert math.isclose(rate + w.error_rate(ask), 1.0)
    if live:
        assert rate == sum(ok for _, _, ok in live) / len(live)
        values = [v for _, v, _ in live]
        assert min(values) - 1e-6 <= w.average(ask) <= max(values) + 1e-6
        assert min(values) - 1e-6 <= w.ewma(ask) <= max(values) + 1e-6
    else:
        assert rate == 1.0 and w.score(ask) == 0.0
    assert w.count_since(ask, duration) == len(live)
    assert RollingWindow.from_dict(json.loads(json.dumps(w.to_dict()))) == w
