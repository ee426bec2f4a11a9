"""Durations as the configuration spells them."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmesh._core._durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        (" 2 m ", 120.0),
        ("10S", 10.0),
        ("45", 45.0),
        ("0s", 0.0),
        (".5s", 0.5),
    ],
)
def test_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (30, 30.0), (2.5, 2.5)])
def test_numbers_are_seconds(number: float, seconds: float) -> None:
    assert parse_duration(number) == seconds
    assert isinstance(parse_duration(number), float)


def test_bad_string_message_names_the_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("soon")
    assert str(info.value) == "expected a duration like \"60s\", got 'soon'"


@pytest.mark.parametrize("bad", ["", "s", "5 minutes", "1h30m", "-5s", "5x", "1e3s", "nan"])
def test_malformed_strings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [True, False, None, [30], {"s": 1}, -1, -0.5,
                                 math.inf, math.nan])
def test_non_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_formatted_durations_parse_back(amount: int, unit: str) -> None:
    seconds = parse_duration(f"{amount}{unit}")
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_picks_the_largest_exact_unit() -> None:
    assert format_duration(86400) == "1d"
    assert format_duration(5400) == "90m"
    assert format_duration(0.25) == "250ms"
