"""Durations in configuration: "500ms", "30s", "5m", "1.5h", "7d" or plain seconds.

Theory of operation: configuration speaks in human units; the core speaks in float
seconds. `parse_duration` is the single door between the two: a number is already
seconds, a string is `<number><unit>` with unit ms/s/m/h/d (a bare number string is
seconds too). Anything else is a ValueError naming the value; the config layer words
the same complaint with the value as YAML shows it. Cron expressions (maintenance
windows, quota resets) are not durations: they live in `_cron`.
"""
from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "format_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _bad_duration(value: object) -> ValueError:
    shown = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
    return ValueError(f'expected a duration like "60s", got {shown}')


def parse_duration(value: object) -> float:
    """Seconds as a float from `30`, `2.5`, `"500ms"`, `"30s"`, `"5m"`, `"1.5h"`, `"7d"`.

    Negative, infinite and NaN values are refused: every duration in the
    configuration is a span of time, and an infinite one always means a mistake.
    """
    if isinstance(value, bool):  # bool is an int in Python, never a duration here
        raise _bad_duration(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise _bad_duration(value)
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    else:
        raise _bad_duration(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f'expected a duration like "60s" (zero or more), got {value!r}')
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` in the units `parse_duration` reads."""
    for unit in ("d", "h", "m", "s"):
        amount = seconds / _UNIT_SECONDS[unit]
        if amount >= 1 and amount == int(amount):
            return f"{int(amount)}{unit}"
    if seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    text = repr(float(seconds))
    if "e" in text:  # parse_duration reads no exponents
        text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"
