"""Calendar arithmetic on given timestamps: 5-field cron schedules and quota resets.

Theory of operation: everything here is a function of the UTC timestamp it is handed;
nothing reads a clock. `CronSchedule.parse` turns `"minute hour day-of-month month
day-of-week"` into sets of allowed values (with `*`, lists, ranges, steps and the names
jan..dec / sun..sat; day of week 0 and 7 are both Sunday). As in cron, when both day
fields are restricted a day matches if EITHER does.

Searching walks the calendar field by field, largest first: a month that cannot match
is skipped whole, then a day, an hour, a minute. A schedule that can never match (say
"0 0 31 2 *") is refused by `parse`, so every search ends.

A maintenance window is `duration` seconds from each match: `in_window(ts, d)` is true
when a match happened in `(ts - d, ts]`, and `window_end` is that latest match + d. If
windows overlap, the end is that of the latest match; asking again at that end finds
the next window, which is how a long chain of windows is seen one link at a time.

`next_quota_reset` gives the next reset of a provider's quota: "daily"/"daily_utc" is
the next UTC midnight, "monthly" the first of next month at 00:00 UTC, and a cron
expression its next match. The reset is always strictly after `now`.
"""
from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["CronSchedule", "next_quota_reset", "QUOTA_SCHEDULES"]

_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, low, high, names (the first name means `low` for months, 0 for days)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists, in leap years
QUOTA_SCHEDULES = ("daily", "daily_utc", "monthly")


class _FieldError(ValueError):
    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(problem)
        self.offset = offset
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class CronSchedule:
    """A parsed cron expression; weekdays are 0 = Sunday .. 6 = Saturday."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse a 5-field expression; ValueError names the field and column at fault."""
        if not isinstance(expression, str):
            raise ValueError(f"expected a cron expression string, got {type(expression).__name__}")
        parts = [(m.group(), m.start()) for m in re.finditer(r"\S+", expression)]
        if len(parts) != 5:
            raise ValueError(
                f"cron expression {expression!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        sets = []
        for (text, column), spec in zip(parts, _FIELDS, strict=True):
            try:
                sets.append(_parse_field(text, spec))
            except _FieldError as exc:
                raise ValueError(
                    f"cron expression {expression!r}: {spec[0]} field at column {column + exc.offset + 1}: "
                    f"{exc.problem}"
                ) from None
        schedule = cls(
            expression=expression,
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=frozenset(0 if d == 7 else d for d in sets[4]),
            days_restricted=parts[2][0] != "*",
            weekdays_restricted=parts[4][0] != "*",
        )
        if not schedule.weekdays_restricted and not any(
            min(schedule.days) <= _MAX_DAYS[m - 1] for m in schedule.months
        ):
            raise ValueError(f"cron expression {expression!r} never matches: no chosen month has that day")
        return schedule

    # -- matching -------------------------------------------------------------------
    def _day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.weekday() + 1) % 7 in self.weekdays  # datetime: Monday = 0; cron: Sunday = 0
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def matches(self, ts: float) -> bool:
        """Does the minute holding UTC timestamp `ts` match?"""
        dt = _utc(ts)
        return (dt.month in self.months and self._day_matches(dt)
                and dt.hour in self.hours and dt.minute in self.minutes)

    def next_after(self, ts: float) -> float:
        """The first matching minute strictly after `ts`."""
        dt = _floor_minute(_utc(ts)) + _MINUTE
        while True:
            if dt.month not in self.months:
                dt = _first_of_next_month(dt)
            elif not self._day_matches(dt):
                dt = datetime(dt.year, dt.month, dt.day, tzinfo=_UTC) + timedelta(days=1)
            elif dt.hour not in self.hours:
                dt = datetime(dt.year, dt.month, dt.day, dt.hour, tzinfo=_UTC) + timedelta(hours=1)
            elif dt.minute not in self.minutes:
                dt += _MINUTE
            else:
                return dt.timestamp()

    def last_at_or_before(self, ts: float, not_before: float) -> float | None:
        """The latest matching minute in `[not_before, ts]`, or None."""
        dt = _floor_minute(_utc(ts))
        floor = _utc(not_before)
        while dt >= floor:
            if dt.month not in self.months:
                dt = datetime(dt.year, dt.month, 1, tzinfo=_UTC) - _MINUTE
            elif not self._day_matches(dt):
                dt = datetime(dt.year, dt.month, dt.day, tzinfo=_UTC) - _MINUTE
            elif dt.hour not in self.hours:
                dt = datetime(dt.year, dt.month, dt.day, dt.hour, tzinfo=_UTC) - _MINUTE
            elif dt.minute not in self.minutes:
                dt -= _MINUTE
            else:
                return dt.timestamp()
        return None

    def window_end(self, ts: float, duration: float) -> float | None:
        """End of the maintenance window `ts` is in (latest match + duration), or None."""
        duration = _duration(duration)
        start = self.last_at_or_before(ts, ts - duration)
        if start is None or start + duration <= ts:
            return None
        return start + duration

    def in_window(self, ts: float, duration: float) -> bool:
        """Did a match happen within the last `duration` seconds?"""
        return self.window_end(ts, duration) is not None


def next_quota_reset(now: float, schedule: str) -> float:
    """The next quota reset strictly after `now`: "daily"/"daily_utc", "monthly" or a cron expression."""
    dt = _utc(now)
    if schedule in ("daily", "daily_utc"):
        return (datetime(dt.year, dt.month, dt.day, tzinfo=_UTC) + timedelta(days=1)).timestamp()
    if schedule == "monthly":
        return _first_of_next_month(dt).timestamp()
    if isinstance(schedule, str) and len(schedule.split()) == 5:
        return CronSchedule.parse(schedule).next_after(now)
    raise ValueError(
        f"unknown quota reset schedule {schedule!r}: expected one of {', '.join(QUOTA_SCHEDULES)} "
        "or a 5-field cron expression"
    )


# -- helpers ------------------------------------------------------------------------------
def _utc(ts: float) -> datetime:
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise ValueError(f"expected a finite UTC timestamp, got {ts!r}")
    return datetime.fromtimestamp(ts, tz=_UTC)


def _duration(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"a maintenance window duration must be positive seconds, got {value!r}")
    return float(value)


def _floor_minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def _first_of_next_month(dt: datetime) -> datetime:
    days = calendar.monthrange(dt.year, dt.month)[1]
    return datetime(dt.year, dt.month, 1, tzinfo=_UTC) + timedelta(days=days)


def _parse_value(text: str, offset: int, spec: tuple[str, int, int, tuple[str, ...]]) -> int:
    name, low, high, names = spec
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (low if name == "month" else 0)
    if not text.isdigit():
        raise _FieldError(offset, f"{text!r} is not a number" + (f" or a name ({names[0]}..)" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise _FieldError(offset, f"{value} is outside {low}-{high}")
    return value


def _parse_field(text: str, spec: tuple[str, int, int, tuple[str, ...]]) -> frozenset[int]:
    _, low, high, _ = spec
    values: set[int] = set()
    offset = 0
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _FieldError(offset + len(span) + 1, f"step {step_text!r} must be a positive whole number")
            step = int(step_text)
        if span == "*":
            start, stop = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start = _parse_value(first, offset, spec)
            stop = _parse_value(last, offset + len(first) + 1, spec)
            if start > stop:
                raise _FieldError(offset, f"range {span!r} runs backwards")
        else:
            start = _parse_value(span, offset, spec)
            stop = high if slash else start
        values.update(range(start, stop + 1, step))
        offset += len(item) + 1
    return frozenset(values)
