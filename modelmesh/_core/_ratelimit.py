"""Read what a provider's response headers say about its rate limits.

Theory of operation: every vendor reports limits its own way and we fold them into one
`RateLimitInfo` whose resets are *seconds from now*:

* OpenAI (and most OpenAI-compatible servers, Azure included):
  `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go-style
  durations such as `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
* Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}`; resets are RFC 3339 timestamps, turned into seconds with the
  caller's `now` (the core never reads a clock). `tokens-*` is the most restrictive
  token limit in force; when only the input/output variants are sent we report the one
  with the least headroom, since that is the one that will stop us first.
* Everyone: `retry-after-ms` (preferred: more precise) and `retry-after`, which is either
  delta-seconds or an HTTP-date.

Header names are matched case-insensitively. A value we cannot read is treated as
absent: a proxy's odd header must never turn a good response into an exception.
Negative numbers (Azure sends `-1` for "not reported") count as absent too.
"""
from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping

from ._types import RateLimitInfo

__all__ = [
    "parse_rate_limit_headers",
    "parse_retry_after",
    "parse_duration",
    "parse_rfc3339",
    "parse_http_date",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_DURATION_FULL = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:h|ms|m|s|us|µs|ns))+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
# IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete RFC 850 form with dashes.
_HTTP_DATE = re.compile(
    r"(?:[A-Za-z]{3,9},\s*)?(\d{1,2})[\s-]([A-Za-z]{3})[\s-](\d{2,4})\s+"
    r"(\d{2}):(\d{2}):(\d{2})\s*(?:GMT|UTC|\+0000)?"
)


def parse_duration(text: str) -> float | None:
    """`"6m0s"` -> 360.0; a bare number is seconds. None when unreadable or negative."""
    text = text.strip()
    if not text:
        return None
    number = _to_float(text)
    if number is not None:
        return number if number >= 0 else None
    if not _DURATION_FULL.fullmatch(text):
        return None
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in _DURATION_PART.findall(text))


def parse_rfc3339(text: str) -> float | None:
    """RFC 3339 timestamp -> POSIX seconds, or None when it is not one."""
    match = _RFC3339.fullmatch(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    base = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = float(match.group(7)) if match.group(7) else 0.0
    offset = 0
    if match.group(9):
        offset = (int(match.group(10)) * 60 + int(match.group(11))) * 60
        offset = offset if match.group(9) == "+" else -offset
    return base + fraction - offset


def parse_http_date(text: str) -> float | None:
    """HTTP-date (IMF-fixdate or RFC 850) -> POSIX seconds, or None."""
    match = _HTTP_DATE.fullmatch(text.strip())
    if not match:
        return None
    day, mon, year, hour, minute, second = match.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    year_n = int(year)
    if len(year) == 2:  # RFC 850: two-digit years, the RFC 9110 50-year rule simplified
        year_n += 2000 if year_n < 70 else 1900
    if not (1 <= int(day) <= 31 and int(hour) < 24 and int(minute) < 60 and int(second) < 61):
        return None
    return float(calendar.timegm((year_n, month, int(day), int(hour), int(minute), int(second), 0, 0, 0)))


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait according to `retry-after-ms` / `retry-after`. An HTTP-date needs
    `now`; without it such a header is ignored."""
    return _retry_after(_lower(headers), now)


def _retry_after(lowered: Mapping[str, str], now: float | None) -> float | None:
    millis = _to_float(lowered.get("retry-after-ms", ""))
    if millis is not None and millis >= 0:
        return millis / 1000.0
    raw = lowered.get("retry-after", "").strip()
    if not raw:
        return None
    seconds = _to_float(raw)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    when = parse_http_date(raw)
    if when is None or now is None:
        return None
    return max(0.0, when - now)


def parse_rate_limit_headers(headers: Mapping[str, str], now: float) -> RateLimitInfo:
    """Fold OpenAI-style, Anthropic-style and Retry-After headers into one `RateLimitInfo`."""
    for key in headers:  # most answers carry none: found out before anything is built
        if type(key) is str and key.lower().startswith(_RATE_PREFIXES):
            break
    else:
        return _NO_LIMITS
    lowered = _lower(headers)
    found: dict[str, float | int | None] = {}
    for kind in ("requests", "tokens"):
        found[f"limit_{kind}"] = _count(lowered.get(f"x-ratelimit-limit-{kind}"))
        found[f"remaining_{kind}"] = _count(lowered.get(f"x-ratelimit-remaining-{kind}"))
        reset = lowered.get(f"x-ratelimit-reset-{kind}")
        found[f"reset_{kind}"] = parse_duration(reset) if reset is not None else None
    requests = _anthropic_group(lowered, "requests", now)
    tokens = _anthropic_group(lowered, "tokens", now)
    if all(v is None for v in tokens):
        tokens = _tightest(
            _anthropic_group(lowered, "input-tokens", now),
            _anthropic_group(lowered, "output-tokens", now),
        )
    for kind, group in (("requests", requests), ("tokens", tokens)):
        for field, value in zip(("limit", "remaining", "reset"), group, strict=True):
            if found[f"{field}_{kind}"] is None:
                found[f"{field}_{kind}"] = value
    return RateLimitInfo(retry_after=_retry_after(lowered, now), **found)  # type: ignore[arg-type]


_RATE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
_NO_LIMITS = RateLimitInfo()  # frozen: one shared for every answer that says nothing

# -- helpers -----------------------------------------------------------------------------

_Group = tuple[int | None, int | None, float | None]  # (limit, remaining, reset_seconds)


def _anthropic_group(lowered: Mapping[str, str], kind: str, now: float) -> _Group:
    prefix = f"anthropic-ratelimit-{kind}-"
    reset_at = parse_rfc3339(lowered.get(prefix + "reset", ""))
    reset = max(0.0, reset_at - now) if reset_at is not None else None
    return (_count(lowered.get(prefix + "limit")), _count(lowered.get(prefix + "remaining")), reset)


def _tightest(*groups: _Group) -> _Group:
    present = [g for g in groups if any(v is not None for v in g)]
    if not present:
        return (None, None, None)
    with_remaining = [g for g in present if g[1] is not None]
    if not with_remaining:
        return present[0]
    return min(with_remaining, key=lambda g: g[1] or 0)  # every g[1] is set here


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-case names (read once per answer: every lookup here uses it)."""
    try:
        return {key.lower(): value for key, value in headers.items()
                if type(key) is str and type(value) is str}
    except AttributeError:
        return {}


def _to_float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    value = _to_float(text)
    if value is None or value < 0 or value != int(value):
        return None
    return int(value)
