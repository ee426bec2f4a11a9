"""Rate-limit headers of OpenAI, Anthropic and Retry-After, folded into RateLimitInfo."""
from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmesh._core._ratelimit import (
    parse_duration,
    parse_http_date,
    parse_rate_limit_headers,
    parse_retry_after,
    parse_rfc3339,
)
from modelmesh._core._types import RateLimitInfo

NOW = float(calendar.timegm((2025, 8, 21, 12, 40, 0, 0, 0, 0)))  # 2025-08-21T12:40:00Z


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0),
    ("2.5", 2.5), ("17", 17.0), ("1m30.5s", 90.5), ("500us", 0.0005),
])
def test_openai_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "-3", "s", "1s2", "nan", "1 s"])
def test_unreadable_durations_are_none(text):
    assert parse_duration(text) is None


def test_openai_headers_case_insensitive():
    info = parse_rate_limit_headers({
        "X-RateLimit-Limit-Requests": "5000", "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms", "X-RATELIMIT-LIMIT-TOKENS": "160000",
        "x-ratelimit-remaining-tokens": "159976", "x-ratelimit-reset-tokens": "6m0s",
    }, NOW)
    assert info == RateLimitInfo(limit_requests=5000, remaining_requests=4999, reset_requests=0.012,
                                 limit_tokens=160000, remaining_tokens=159976, reset_tokens=360.0)


def test_anthropic_headers_reset_timestamps_become_seconds_from_now():
    info = parse_rate_limit_headers({
        "anthropic-ratelimit-requests-limit": "1000", "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
        "anthropic-ratelimit-tokens-limit": "96000", "anthropic-ratelimit-tokens-remaining": "95000",
        "anthropic-ratelimit-tokens-reset": "2025-08-21T14:41:00.5+02:00",
        "anthropic-ratelimit-input-tokens-remaining": "1",  # ignored: tokens-* is authoritative
    }, NOW)
    assert info.limit_requests == 1000 and info.remaining_requests == 999
    assert info.reset_requests == pytest.approx(59.0)
    assert info.limit_tokens == 96000 and info.remaining_tokens == 95000
    assert info.reset_tokens == pytest.approx(60.5)


def test_anthropic_input_output_variants_report_the_tightest():
    info = parse_rate_limit_headers({
        "anthropic-ratelimit-input-tokens-limit": "80000",
        "anthropic-ratelimit-input-tokens-remaining": "70000",
        "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:41:00Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "100",
        "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:40:30Z",
    }, NOW)
    assert (info.limit_tokens, info.remaining_tokens, info.reset_tokens) == (16000, 100, 30.0)


def test_reset_in_the_past_is_zero():
    info = parse_rate_limit_headers({"anthropic-ratelimit-requests-reset": "2020-01-01T00:00:00Z"}, NOW)
    assert info.reset_requests == 0.0


def test_retry_after_seconds_date_and_ms():
    assert parse_rate_limit_headers({"Retry-After": "20"}, NOW).retry_after == 20.0
    assert parse_rate_limit_headers({"retry-after": "Thu, 21 Aug 2025 12:40:30 GMT"}, NOW).retry_after == 30.0
    both = {"retry-after": "20", "retry-after-ms": "1500"}
    assert parse_rate_limit_headers(both, NOW).retry_after == 1.5


def test_retry_after_date_without_now_is_ignored():
    assert parse_retry_after({"retry-after": "Thu, 21 Aug 2025 12:40:30 GMT"}) is None
    assert parse_retry_after({"retry-after": "3"}) == 3.0


def test_garbage_and_negative_values_are_ignored_never_raise():
    info = parse_rate_limit_headers({
        "x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-1",  # Azure's "unknown"
        "x-ratelimit-reset-requests": "whenever", "x-ratelimit-limit-tokens": "1.5",
        "anthropic-ratelimit-requests-reset": "2025-13-45T99:00:00Z",
        "retry-after": "Someday, 99 Foo 2025", "retry-after-ms": "inf",
    }, NOW)
    assert info.is_empty()


def test_no_headers_is_empty():
    assert parse_rate_limit_headers({}, NOW).is_empty()


def test_openai_headers_win_over_anthropic_when_both_present():
    info = parse_rate_limit_headers({"x-ratelimit-limit-requests": "10",
                                     "anthropic-ratelimit-requests-limit": "20"}, NOW)
    assert info.limit_requests == 10


def test_rfc3339_and_http_date_parsers():
    assert parse_rfc3339("2025-08-21T12:40:00Z") == NOW
    assert parse_rfc3339("2025-08-21T13:40:00+01:00") == NOW
    assert parse_rfc3339("2025-08-21T12:40:00.123456789Z") == pytest.approx(NOW + 0.123456789)
    assert parse_rfc3339("yesterday") is None
    assert parse_http_date("Thu, 21 Aug 2025 12:40:00 GMT") == NOW
    assert parse_http_date("Thursday, 21-Aug-25 12:40:00 GMT") == NOW
    assert parse_http_date("Thu, 21 Xyz 2025 12:40:00 GMT") is None


@given(st.dictionaries(st.text(max_size=40), st.text(max_size=40), max_size=8))
def test_arbitrary_headers_never_raise(headers):
    assert isinstance(parse_rate_limit_headers(headers, NOW), RateLimitInfo)
