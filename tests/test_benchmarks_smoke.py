"""Keeps benchmarks/ from rotting: the core benchmark runs (tiny), the HTTP section runs every
peer (quick, on FakeUpstream: neither nginx nor openai is required) and the import stays light."""
from __future__ import annotations

import json
import os
import time

import pytest
import requests

from benchmarks import run
from benchmarks._stats import percentile, summarize_ns
from benchmarks.core_bench import bench_core, bench_route, build_mesh
from benchmarks.http_bench import PIECES, REPLY, _openai_missing, extra_environ, nginx_binary, upstream
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
    assert {"httpx", "asyncio"} <= set(heavy_modules_after("modelmesh.transports.asyncio"))


def test_async_mesh_client_loads_lazily_and_brings_its_transport():
    import subprocess
    import sys

    probe = ("import sys, modelmesh; assert 'modelmesh._async_client' not in sys.modules; "
             "c = modelmesh.AsyncMeshClient(base_url='http://127.0.0.1:9/v1', api_key='sk-lazy-0123456789', environ={}); "
             "assert 'httpx' in sys.modules and type(c).__name__ == 'AsyncMeshClient'")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_http_benchmark_quick_run_measures_every_peer_and_prints_the_verdicts(tmp_path, capsys):
    out = tmp_path / "http.json"
    assert run.main(["--quick", "--only", "http", "--upstream", "fake", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    http = results["http"]
    assert http["upstream"]["name"] == "fake" and "FakeUpstream" in printed
    has_openai = _openai_missing() is None
    assert set(http["sequential"]) == {"urllib3", "requests", "mesh"} | ({"openai"} if has_openai else set())
    assert (http["ratios"]["sequential_openai_requests"] is None) != has_openai
    assert set(http["threaded"]) == {"requests", "urllib3", "mesh"}
    assert http["threaded"]["mesh"]["n"] == http["params"]["threads"] * http["params"]["per_thread"]
    assert set(http["streaming"]) == {"requests", "mesh"} and http["params"]["stream_chunks"] >= 20
    for name in ("requests", "mesh"):
        env = http["environment"][name]
        assert env["base"]["n"] == env["extra"]["n"] == http["params"]["env_requests"]
    for ratio in http["ratios"].values():
        assert ratio is None or min(ratio.values()) > 0
    assert "THROUGHPUT ratio" in printed
    verdicts = results["verdicts"]
    assert len(verdicts) == 9 and printed.count("] ") >= 9
    assert [v["met"] for v in verdicts[-4:]] == [None] * 4  # core, storage (twice) and import were not run
    assert all(v["met"] in (True, False) for v in verdicts[:5])


def test_verdicts_compare_each_figure_with_its_goal():
    ratio = {"wall": 0.8, "cpu": 0.7, "throughput": 1.2}
    http = {"ratios": dict.fromkeys(("sequential_mesh_requests", "sequential_mesh_urllib3", "threaded_mesh_requests",
                                     "streaming_mesh_requests"), ratio),
            "params": {"extra_vars": 200},
            "environment": {"mesh": {"growth_us": 60.0, "growth_cpu_us": 50.0, "base": {"mean_us": 1000.0}},
                            "requests": {"growth_us": 400.0}}}
    core = {f"request_{s}_10": {"median_us": 15.0} for s in ("priority", "default")}
    imp = {mode: {"modelmesh": {"median_ms": 31.0}} for mode in ("cached_bytecode", "as_configured")}
    storage = {"ratios": {"sqlite periodic": {"sequential": {"wall": 1.10}, "threads": {"wall": 1.0}},
                          "sqlite immediate": {"sequential": {"wall": 1.2}, "threads": {"wall": 1.31}}}}
    met = [v["met"] for v in run.verdicts({"http": http, "core": core, "import": imp, "storage": storage})]
    # limits are inclusive; 6% growth, 31 ms and 1.31x with threads fail
    assert met == [True, True, True, True, False, True, True, False, False]


def test_the_storage_benchmark_quick_run_compares_every_store_with_memory(capsys):
    out = run.run_storage({**run.QUICK, "upstream": "fake"})
    assert {"sqlite periodic", "sqlite immediate"} <= set(out["ratios"])
    assert all(r["sequential"]["wall"] > 0 and r["threads"]["wall"] > 0 for r in out["ratios"].values())
    assert "ratios against memory" in capsys.readouterr().out


def test_extra_environ_adds_and_removes_its_variables():
    before = dict(os.environ)
    with extra_environ(200):
        assert len(os.environ) >= len(before) + 200 - sum(k.startswith("MODELMESH_BENCH_DUMMY_") for k in before)
    assert dict(os.environ) == before


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_upstream_answers_a_completion_and_a_stream():
    with upstream("nginx") as up, requests.Session() as s:
        assert up.name == "nginx"
        body = {"model": "gpt-bench", "messages": [{"role": "user", "content": "hi"}]}
        r = s.post(up.url + "/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert r.json()["choices"][0]["message"]["content"] == REPLY
        r = s.post(up.stream_url + "/chat/completions", json=dict(body, stream=True))
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        content = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
        assert [c for c in content if c] == list(PIECES)
