"""Summaries of timing samples: median, p99, mean and rate, in the units the report prints."""
from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["percentile", "summarize_ns"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats
    return sorted_values[int(rank) - 1]


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, float]:
    """Per-operation timings in nanoseconds -> microsecond median/p99/mean and ops per second."""
    values = sorted(samples_ns)
    mean = statistics.fmean(values)
    return {
        "n": len(values),
        "median_us": values[len(values) // 2] / 1e3,
        "p99_us": percentile(values, 99) / 1e3,
        "mean_us": mean / 1e3,
        "ops_per_s": 1e9 / mean if mean else float("inf"),
    }
