"""Keeps benchmarks/ from rotting: the core benchmark runs (tiny) and the import stays light."""
from __future__ import annotations

import time

import pytest

from benchmarks._stats import percentile, summarize_ns
from benchmarks.core_bench import bench_core, bench_route, build_mesh
from benchmarks.import_bench import FORBIDDEN, heavy_modules_after


@pytest.mark.parametrize("strategy", ["priority", "default"])
def test_core_benchmark_runs_and_routes_to_the_first_model(strategy):
    started = time.perf_counter()
    request = bench_core(30, models=10, strategy=strategy, warmup=5)
    route = bench_route(30, models=10, strategy=strategy, warmup=5)
    assert time.perf_counter() - started < 2.0
    for r in (request, route):
        assert r["n"] == 30 and r["models"] == 10 and r["strategy"] == strategy
        assert r["served_by"] == "p0/m0"
        assert 0 < r["median_us"] <= r["p99_us"]
        assert r["ops_per_s"] > 0


def test_build_mesh_rejects_bad_arguments():
    with pytest.raises(ValueError, match="models"):
        build_mesh(0)
    with pytest.raises(ValueError, match="strategy"):
        build_mesh(3, "fastest")
    with pytest.raises(ValueError, match="iterations"):
        bench_core(0)


def test_stats_summary():
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 99) == 4
    s = summarize_ns([1000, 2000, 3000, 4000])
    assert s["median_us"] == 3.0 and s["p99_us"] == 4.0 and s["mean_us"] == 2.5 and s["ops_per_s"] == 400_000
    with pytest.raises(ValueError):
        percentile([], 50)


def test_import_modelmesh_loads_no_heavy_dependency():
    heavy = heavy_modules_after("modelmesh")
    assert not [m for m in heavy if m in FORBIDDEN], heavy
    # the probe does see them when they are imported: the check can fail
    assert "requests" in heavy_modules_after("requests")
