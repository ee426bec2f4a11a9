"""Cron schedules and quota resets: calendar arithmetic on the timestamps given, no clock."""
from __future__ import annotations

import calendar
from datetime import datetime, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modelmesh._core._cron import CronSchedule, next_quota_reset


def ts(*args: int) -> float:
    """UTC timestamp of (year, month, day, hour=0, minute=0, second=0)."""
    return float(calendar.timegm(datetime(*args, tzinfo=timezone.utc).timetuple()))


# -- parsing --------------------------------------------------------------------------------------
def test_parse_fields():
    s = CronSchedule.parse("0 3 * * sun")
    assert s.minutes == {0} and s.hours == {3} and s.weekdays == {0}
    assert s.days == set(range(1, 32)) and s.months == set(range(1, 13))
    assert not s.days_restricted and s.weekdays_restricted


@pytest.mark.parametrize("expr, attr, expected", [
    ("*/15 * * * *", "minutes", {0, 15, 30, 45}),
    ("5/20 * * * *", "minutes", {5, 25, 45}),
    ("10-20/5 * * * *", "minutes", {10, 15, 20}),
    ("1,2,40-42 * * * *", "minutes", {1, 2, 40, 41, 42}),
    ("0 9-17 * * *", "hours", set(range(9, 18))),
    ("0 0 1,15 * *", "days", {1, 15}),
    ("0 0 * JAN,jun-Aug *", "months", {1, 6, 7, 8}),
    ("0 0 * * mon-fri", "weekdays", {1, 2, 3, 4, 5}),
    ("0 0 * * 7", "weekdays", {0}),
    ("0 0 * * 5-7", "weekdays", {5, 6, 0}),
])
def test_parse_syntax(expr, attr, expected):
    assert getattr(CronSchedule.parse(expr), attr) == frozenset(expected)


@pytest.mark.parametrize("expr, message", [
    ("* * * *", "expected 5 fields"),
    ("* * * * * *", "got 6"),
    ("60 * * * *", "minute field at column 1: 60 is outside 0-59"),
    ("0 24 * * *", "hour field at column 3: 24 is outside 0-23"),
    ("0 0 0 * *", "day-of-month field at column 5: 0 is outside 1-31"),
    ("0 0 * 13 *", "month field at column 7: 13 is outside 1-12"),
    ("0 0 * * mon-xyz", "day-of-week field at column 13: 'xyz' is not a number or a name"),
    ("0 0 * * 8", "day-of-week field at column 9"),
    ("0 10-5 * * *", "range '10-5' runs backwards"),
    ("*/0 * * * *", "step '0' must be a positive whole number"),
    ("*/x * * * *", "column 3"),
    ("1,,2 * * * *", "column 3: '' is not a number"),
    ("0 0 31 2 *", "never matches"),
    ("0 0 30,31 2 *", "never matches"),
    ("0 0 31 4,6,9,11 *", "never matches"),
])
def test_parse_errors_name_field_and_column(expr, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        CronSchedule.parse(expr)
    assert repr(expr) in str(info.value)


def test_parse_refuses_a_non_string():
    with pytest.raises(ValueError, match="expected a cron expression string"):
        CronSchedule.parse(5)  # type: ignore[arg-type]


def test_day_fields_restricted_together_match_either():
    s = CronSchedule.parse("0 0 31 2 mon")  # never Feb 31, but every Monday in February
    assert s.matches(ts(2024, 2, 5))        # a Monday
    assert not s.matches(ts(2024, 2, 6))
    friday_13 = CronSchedule.parse("0 0 13 * fri")
    assert friday_13.matches(ts(2024, 9, 13)) and friday_13.matches(ts(2024, 9, 6))  # the 13th, or a Friday
    assert not friday_13.matches(ts(2024, 9, 7))


def test_matches_uses_the_whole_minute():
    s = CronSchedule.parse("30 14 * * *")
    assert s.matches(ts(2024, 5, 5, 14, 30))
    assert s.matches(ts(2024, 5, 5, 14, 30, 59))
    assert not s.matches(ts(2024, 5, 5, 14, 31))
    assert not s.matches(ts(2024, 5, 5, 15, 30))
    assert not CronSchedule.parse("30 14 * feb *").matches(ts(2024, 5, 5, 14, 30))
    assert not CronSchedule.parse("30 14 * * sat").matches(ts(2024, 5, 5, 14, 30))  # a Sunday


# -- searching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr, after, expected", [
    ("0 3 * * *", ts(2024, 1, 1, 2, 59, 30), ts(2024, 1, 1, 3)),
    ("0 3 * * *", ts(2024, 1, 1, 3), ts(2024, 1, 2, 3)),          # strictly after
    ("0 3 * * *", ts(2024, 12, 31, 4), ts(2025, 1, 1, 3)),
    ("*/15 * * * *", ts(2024, 1, 1, 0, 7), ts(2024, 1, 1, 0, 15)),
    ("0 0 1 jan *", ts(2024, 6, 1), ts(2025, 1, 1)),
    ("0 0 29 2 *", ts(2024, 3, 1), ts(2028, 2, 29)),
    ("0 0 29 2 *", ts(2096, 3, 1), ts(2104, 2, 29)),              # 2100 is not a leap year
    ("0 12 * * sun", ts(2024, 5, 1), ts(2024, 5, 5, 12)),
    ("59 23 31 12 *", ts(2024, 12, 31, 23, 59), ts(2025, 12, 31, 23, 59)),
])
def test_next_after(expr, after, expected):
    assert CronSchedule.parse(expr).next_after(after) == expected


def test_last_at_or_before():
    s = CronSchedule.parse("0 3 * * *")
    assert s.last_at_or_before(ts(2024, 1, 2, 2), ts(2023, 12, 1)) == ts(2024, 1, 1, 3)
    assert s.last_at_or_before(ts(2024, 1, 2, 3, 0, 40), ts(2024, 1, 1)) == ts(2024, 1, 2, 3)
    assert s.last_at_or_before(ts(2024, 1, 2, 2), ts(2024, 1, 1, 3, 1)) is None
    yearly = CronSchedule.parse("0 0 1 mar *")
    assert yearly.last_at_or_before(ts(2024, 2, 1), ts(2020, 1, 1)) == ts(2023, 3, 1)


def test_maintenance_window():
    s = CronSchedule.parse("0 3 * * *")
    hour = 3600.0
    assert s.in_window(ts(2024, 1, 1, 3), hour)
    assert s.window_end(ts(2024, 1, 1, 3, 30), hour) == ts(2024, 1, 1, 4)
    assert not s.in_window(ts(2024, 1, 1, 4), hour)        # the end is not inside
    assert s.window_end(ts(2024, 1, 1, 2, 59, 59), hour) is None
    assert s.window_end(ts(2024, 1, 1, 3, 0, 30), 20.0) is None  # started at 03:00:00, 20 s long


def test_overlapping_windows_end_at_the_latest_match():
    s = CronSchedule.parse("*/30 * * * *")
    assert s.window_end(ts(2024, 1, 1, 0, 45), 3600.0) == ts(2024, 1, 1, 1, 30)
    assert s.window_end(ts(2024, 1, 1, 1, 30), 3600.0) == ts(2024, 1, 1, 2, 30)  # the next link


@pytest.mark.parametrize("duration", [0, -5, float("inf"), "1h", True])
def test_window_duration_must_be_positive_seconds(duration):
    with pytest.raises(ValueError, match="duration"):
        CronSchedule.parse("* * * * *").window_end(0.0, duration)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "now", None])
def test_timestamps_must_be_finite_numbers(bad):
    with pytest.raises(ValueError, match="timestamp"):
        CronSchedule.parse("* * * * *").matches(bad)


# -- quota resets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule, now, expected", [
    ("daily", ts(2024, 1, 31, 15), ts(2024, 2, 1)),
    ("daily_utc", ts(2024, 12, 31, 23, 59, 59), ts(2025, 1, 1)),
    ("daily", ts(2024, 3, 3), ts(2024, 3, 4)),                 # at midnight: the next one
    ("monthly", ts(2024, 1, 31, 12), ts(2024, 2, 1)),
    ("monthly", ts(2024, 2, 10), ts(2024, 3, 1)),
    ("monthly", ts(2024, 12, 15), ts(2025, 1, 1)),
    ("monthly", ts(2024, 5, 1), ts(2024, 6, 1)),
    ("0 8 * * mon", ts(2024, 5, 1), ts(2024, 5, 6, 8)),
])
def test_next_quota_reset(schedule, now, expected):
    assert next_quota_reset(now, schedule) == expected


@pytest.mark.parametrize("schedule", ["rolling", "weekly", "", None, "0 0 * *"])
def test_unknown_quota_schedules_are_refused(schedule):
    with pytest.raises(ValueError, match="quota reset schedule"):
        next_quota_reset(0.0, schedule)


# -- properties -----------------------------------------------------------------------------------
timestamps = st.floats(min_value=0.0, max_value=4.0e9)


@given(now=timestamps)
def test_daily_reset_is_the_next_midnight(now):
    reset = next_quota_reset(now, "daily")
    assert now < reset <= now + 86400 and reset % 86400 == 0


@given(now=timestamps)
def test_monthly_reset_is_the_first_of_next_month(now):
    reset = next_quota_reset(now, "monthly")
    dt = datetime.fromtimestamp(reset, tz=timezone.utc)
    assert now < reset <= now + 31 * 86400
    assert (dt.day, dt.hour, dt.minute, dt.second) == (1, 0, 0, 0)


def field(low: int, high: int) -> st.SearchStrategy[str]:
    single = st.integers(low, high).map(str)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.integers(1, 10).map(lambda n: f"*/{n}")
    return st.one_of(st.just("*"), single, ranged, stepped,
                     st.lists(single, min_size=1, max_size=3).map(",".join))


expressions = st.tuples(field(0, 59), field(0, 23), st.just("*"), st.just("*"), field(0, 6)).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(expr=expressions, now=timestamps)
def test_next_after_is_the_first_match_after(expr, now):
    s = CronSchedule.parse(expr)
    nxt = s.next_after(now)
    assert nxt > now and nxt % 60 == 0 and s.matches(nxt)
    assume(nxt - now <= 8 * 86400)
    minute = (int(now) // 60 + 1) * 60
    while minute < nxt:  # brute force: nothing matched in between
        assert not s.matches(minute)
        minute += 60


@settings(max_examples=150, deadline=None)
@given(expr=expressions, now=timestamps, span=st.floats(60.0, 8 * 86400.0))
def test_last_at_or_before_agrees_with_next_after(expr, now, span):
    s = CronSchedule.parse(expr)
    last = s.last_at_or_before(now, now - span)
    if last is None:
        assert s.next_after(now - span) > now
    else:
        assert now - span <= last <= now and s.matches(last)
        assert s.next_after(last) > now
