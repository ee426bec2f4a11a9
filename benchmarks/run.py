"""Run every ModelMesh Lite benchmark and print the figures.

    python benchmarks/run.py                 # full run (about a minute on 2 cores)
    python benchmarks/run.py --quick         # seconds: fewer iterations, same shape
    python benchmarks/run.py --json out.json # also write every figure as JSON
    python benchmarks/run.py --only core     # core | http | import | storage | async (repeatable)

    python benchmarks/run.py --upstream fake # FakeUpstream even where nginx is installed

Sections: (1) the core's cost per routed request, no I/O; (2) MeshClient against bare urllib3,
bare requests and the openai SDK (if installed) on one loopback upstream: sequential, 16
threads, streaming, and with 200 extra environment variables; (3) import time and weight;
(4) shared storage; (5) AsyncMeshClient against bare httpx.AsyncClient, sequential and 64 tasks.
Ends with one verdict line per goal of the issue (met / NOT MET / not measured).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `modelmesh` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.async_bench import bench_async  # noqa: E402
from benchmarks.core_bench import STRATEGIES, bench_core, bench_route  # noqa: E402
from benchmarks.http_bench import bench_http, bench_overhead  # noqa: E402
from benchmarks.import_bench import bench_import  # noqa: E402
from benchmarks.storage_bench import bench_storage  # noqa: E402

SECTIONS = ("core", "http", "import", "storage", "async")
FULL = {"overhead": 3_000, "core_iterations": 20_000, "sequential": 500, "threads": 16, "per_thread": 75, "streams": 200,
        "env_requests": 300, "extra_vars": 200, "rounds": 3, "warmup": 50, "repeats": 5, "store_requests": 300,
        "store_other_keys": 10_000, "store_syncs": 300,
        "store_per_thread": 40, "async_tasks": 64, "async_per_task": 10}
QUICK = {"overhead": 300, "core_iterations": 2_000, "sequential": 40, "threads": 16, "per_thread": 4, "streams": 10,
         "env_requests": 30, "extra_vars": 200, "rounds": 2, "warmup": 5, "repeats": 3, "store_requests": 20,
         "store_other_keys": 1_000, "store_syncs": 20,
         "store_per_thread": 3, "async_tasks": 64, "async_per_task": 1}
HTTP_PARAMS = ("sequential", "threads", "per_thread", "streams", "env_requests", "extra_vars", "rounds", "warmup")


def run_core(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in STRATEGIES:
        out[f"request_{strategy}_10"] = bench_core(p["core_iterations"], models=10, strategy=strategy)
        out[f"route_{strategy}_10"] = bench_route(p["core_iterations"], models=10, strategy=strategy)
    out["request_priority_1"] = bench_core(p["core_iterations"], models=1, strategy="priority")
    for strategy in STRATEGIES:  # with a listener: events built, and the score RequestRouted carries
        out[f"request_{strategy}_10_observed"] = bench_core(p["core_iterations"], models=10, strategy=strategy,
                                                            listening=True)
    for key, r in out.items():
        print(f"  {key:<24} median {r['median_us']:8.1f} us   p99 {r['p99_us']:8.1f} us   "
              f"mean {r['mean_us']:8.1f} us   {r['ops_per_s']:9.0f}/s   (n={r['n']}, {r['models']} models)")
    return out


def _rows(title: str, unit: str, rows: dict[str, tuple[str, dict[str, Any]]]) -> None:
    print(f"  {title:<44} {'wall/' + unit:>12} {'CPU/' + unit:>12} {unit + '/s':>10} {'median lat.':>12}  rounds {unit}/s")
    for label, r in rows.values():
        print(f"    {label:<42} {r['mean_us']:9.1f} us {r['cpu_us']:9.1f} us {r['rps']:10,.0f} {r['median_latency_us']:9.1f} us"
              f"  {r['rounds_rps']}")


def run_async(p: dict[str, Any]) -> dict[str, Any]:
    out = bench_async(sequential=p["sequential"], tasks=p["async_tasks"], per_task=p["async_per_task"],
                      rounds=p["rounds"], warmup=p["warmup"], upstream_kind=p["upstream"])
    print(f"  upstream: {out['upstream']}")
    print("  versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in out["versions"].items()))
    n = out["params"]
    print(f"  {'':<58} {'wall/req':>12} {'CPU/req':>12} {'max loop lag':>13}")
    for scenario, title in (("sequential", f"sequential ({n['sequential']} requests)"),
                            ("concurrent", f"{n['tasks']} tasks x {n['per_task']} requests")):
        for name, label in (("httpx", "bare httpx.AsyncClient"), ("mesh", "AsyncMeshClient")):
            r = out["rows"][f"{scenario}_{name}"]
            lag = f"{r['max_lag_ms']:10.1f} ms" if scenario == "concurrent" else f"{'':>13}"
            print(f"    {title + ', ' + label:<56} {r['wall_us']:9.1f} us {r['cpu_us']:9.1f} us {lag}")
    print("  ratios AsyncMeshClient / bare httpx (time per request: < 1 = the mesh is cheaper)")
    for scenario, r in out["ratios"].items():
        print(f"    {scenario:<12} wall per request {r['wall']:.3f}   CPU per request {r['cpu']:.3f}")
    return out


def run_http(p: dict[str, Any]) -> dict[str, Any]:
    out = bench_http(**{k: p[k] for k in HTTP_PARAMS}, upstream_kind=p["upstream"])
    out["no_socket"] = o = bench_overhead(p["overhead"], p["rounds"])
    n = out["params"]
    print(f"  upstream: {out['upstream']['detail']}")
    print("  versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in out["versions"].items()))
    for note in out["notes"]:
        print(f"  note: {note}")
    seq = {"urllib3": "bare urllib3.PoolManager", "requests": "bare requests.Session", "openai": "openai SDK (max_retries=0)",
           "mesh": "MeshClient"}
    _rows(f"sequential, non-streaming ({n['sequential']} requests)", "req",
          {k: (label, out["sequential"][k]) for k, label in seq.items() if k in out["sequential"]})
    _rows(f"{n['threads']} threads x {n['per_thread']} requests", "req",
          {"requests": ("bare requests, one Session per thread", out["threaded"]["requests"]),
           "urllib3": ("bare urllib3, one shared PoolManager", out["threaded"]["urllib3"]),
           "mesh": ("MeshClient, one shared client", out["threaded"]["mesh"])})
    _rows(f"streaming ({n['streams']} streams of {n['stream_chunks']} chunks)", "stream",
          {"requests": ("bare requests, stream=True + iter_lines", out["streaming"]["requests"]),
           "mesh": ("MeshClient create(stream=True)", out["streaming"]["mesh"])})
    env = out["environment"]
    print(f"  environment: os.environ as is ({env['base_vars']} variables) vs +{n['extra_vars']} dummy variables, "
          f"{n['env_requests']} sequential requests, clients built after the variables are set")
    for name, label in (("requests", "bare requests.Session"), ("mesh", "MeshClient")):
        e = env[name]
        print(f"    {label:<22} wall/req {e['base']['mean_us']:7.1f} -> {e['extra']['mean_us']:7.1f} us "
              f"(growth {e['growth_us']:+7.1f} us)   CPU/req {e['base']['cpu_us']:7.1f} -> {e['extra']['cpu_us']:7.1f} us "
              f"(growth {e['growth_cpu_us']:+7.1f} us)")
    print(f"  no socket (canned requests adapter, median): requests {o['requests_us']:.1f} us, mesh {o['mesh_us']:.1f} us: "
          f"the mesh adds {o['added_us']:.1f} us per request (ratio {o['ratio']:.3f})")
    print("  ratios (time per request: < 1 = the first is cheaper; throughput = first req/s / second req/s: > 1 = faster)")
    for key, label, what in (
            ("sequential_mesh_requests", "sequential  mesh / requests", "time"),
            ("sequential_mesh_urllib3", "sequential  mesh / urllib3", "time"),
            ("sequential_openai_requests", "sequential  openai / requests", "time"),
            ("threaded_mesh_requests", f"{n['threads']} threads  mesh / requests", "throughput"),
            ("threaded_mesh_urllib3", f"{n['threads']} threads  mesh / urllib3", "throughput"),
            ("streaming_mesh_requests", "streaming   mesh / requests", "stream")):
        r = out["ratios"][key]
        if r is None:
            print(f"    {label:<30} not measured")
        elif what == "throughput":
            print(f"    {label:<30} THROUGHPUT ratio {r['throughput']:.3f}   (CPU per request {r['cpu']:.3f})")
        else:
            per = "stream" if what == "stream" else "request"
            print(f"    {label:<30} wall per {per} {r['wall']:.3f}   CPU per {per} {r['cpu']:.3f}")
    return out


def run_import(p: dict[str, Any]) -> dict[str, Any]:
    out = bench_import(p["repeats"])
    for mode in ("cached_bytecode", "as_configured"):
        for name, r in out[mode].items():
            print(f"  {mode:<16} import {name:<17} median {r['median_ms']:6.1f} ms  (min {r['min_ms']:.1f}, "
                  f"max {r['max_ms']:.1f}; {r['new_modules']} new modules)")
    print(f"  heavy modules after `import modelmesh`: {out['heavy_loaded_by_modelmesh'] or 'none'}; "
          f"lazy import {'OK' if out['lazy_ok'] else 'BROKEN: ' + ', '.join(out['forbidden_loaded_by_modelmesh'])}")
    return out


def run_storage(p: dict[str, Any]) -> dict[str, Any]:
    out = bench_storage(p["store_requests"], p["threads"], p["store_per_thread"], p["rounds"], p["warmup"], p["upstream"],
                        p["store_other_keys"], p["store_syncs"])
    for note in out["notes"]:
        print(f"  note: {note}")
    _rows(f"sequential ({p['store_requests']} requests) and {p['threads']} threads x {p['store_per_thread']}", "req",
          {name: (name, r) for name, r in out["results"].items()})
    print("  ratios against memory (time per request; > 1 = the store costs)")
    for name, r in out["ratios"].items():
        print(f"    {name:<20} sequential {r['sequential']['wall']:.3f} (CPU {r['sequential']['cpu']:.3f})   "
              f"{p['threads']} threads {r['threads']['wall']:.3f} (CPU {r['threads']['cpu']:.3f})")
    print(f"  one sync before a request under immediate (one standby stored; {p['store_other_keys']:,} other keys "
          "in the Redis database)")
    for name, us in out["sync_us"].items():
        print(f"    {name:<20} {us:8.1f} us")
    return out


def _goal(goal: str, value: float | None, limit: float, at_most: bool, shown: str, why_not: str = "") -> dict[str, Any]:
    if value is None:
        return {"goal": goal, "met": None, "value": None, "limit": limit, "figure": why_not}
    return {"goal": goal, "met": value <= limit if at_most else value >= limit, "value": value, "limit": limit, "figure": shown}


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each met, not met or not measured (section not run, peer missing)."""
    out = []
    http = results.get("http")
    ratios = http["ratios"] if http else {}
    skipped = "http section not run"
    for key, goal, limit, field in (
            ("sequential_mesh_requests", "sequential non-streaming: MeshClient <= 0.80x bare requests.Session", 0.80, "wall"),
            ("sequential_mesh_urllib3", "sequential non-streaming: MeshClient within 1.6x bare urllib3.PoolManager", 1.6,
             "wall"),
            ("threaded_mesh_requests", "16 threads, one client: >= 1.2x the throughput of thread-local Sessions", 1.2,
             "throughput"),
            ("streaming_mesh_requests", "streaming (20+ chunks): MeshClient <= 1.0x bare requests + iter_lines", 1.0, "wall")):
        r = ratios.get(key)
        value = r[field] if r else None
        per = "stream" if key.startswith("streaming") else "request"
        label = "throughput ratio" if field == "throughput" else f"wall per {per}"
        shown = f"{label} {value:.3f}x (CPU per {per} {r['cpu']:.3f}x)" if r else ""
        out.append(_goal(goal, value, limit, field != "throughput", shown, skipped))
    if http:
        env = http["environment"]["mesh"]
        growth, base = env["growth_us"], env["base"]["mean_us"]
        req = http["environment"]["requests"]["growth_us"]
        out.append(_goal(f"no per-request cost grows with +{http['params']['extra_vars']} environment variables "
                         "(MeshClient growth within 5% of its cost: noise)", growth / base, 0.05, True,
                         f"MeshClient {growth:+.1f} us/request ({growth / base:+.1%}; CPU {env['growth_cpu_us']:+.1f} us), "
                         f"bare requests {req:+.1f} us"))
    else:
        out.append(_goal("no per-request cost grows with the size of the environment", None, 0.05, True, "", skipped))
    core = results.get("core")
    medians = [core[f"request_{s}_10"]["median_us"] for s in ("priority", "default")] if core else []
    out.append(_goal("one routing decision plus its outcome, pool of 10: <= 15 us median (both strategies)",
                     max(medians) if medians else None, 15.0, True,
                     f"priority {medians[0]:.1f} us, default {medians[1]:.1f} us" if medians else "", "core section not run"))
    store = results.get("storage")
    for policy, limit in (("periodic", 1.10), ("immediate", 1.30)):
        rows = {name: r for name, r in (store or {}).get("ratios", {}).items() if name.endswith(policy)}
        worst = max((max(r["sequential"]["wall"], r["threads"]["wall"]) for r in rows.values()), default=None)
        shown = ", ".join(f"{name} {r['sequential']['wall']:.3f}x / {r['threads']['wall']:.3f}x" for name, r in rows.items())
        out.append(_goal(f"shared storage, {policy}: per-request cost <= {limit:.2f}x memory (sequential / threads)",
                         worst, limit, True, shown, "storage section not run"))
    imp = results.get("import")
    ms = [imp[mode]["modelmesh"]["median_ms"] for mode in ("cached_bytecode", "as_configured")] if imp else []
    out.append(_goal("import modelmesh under 30 ms (cached bytecode and as configured)", max(ms) if ms else None, 30.0, True,
                     f"{ms[0]:.1f} ms cached, {ms[1]:.1f} ms as configured" if ms else "", "import section not run"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations: a smoke run in seconds")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH as JSON")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--upstream", choices=("auto", "nginx", "fake"), default="auto",
                        help="HTTP upstream: nginx if installed (auto), or FakeUpstream in a child process")
    args = parser.parse_args(argv)
    params = {**(QUICK if args.quick else FULL), "upstream": args.upstream}
    machine = {"python": platform.python_version(), "implementation": platform.python_implementation(),
               "platform": platform.platform(), "cpus": os.cpu_count(),
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    print(f"ModelMesh Lite benchmarks ({'quick' if args.quick else 'full'}): Python {machine['python']}, "
          f"{machine['cpus']} CPUs, load {machine['load_average']}")
    results: dict[str, Any] = {"machine": machine, "params": params}
    runners = {"core": ("1. core: one routed request (start, Attempt, feed 200, Succeeded), no I/O", run_core),
               "http": ("2. HTTP: MeshClient vs bare urllib3, bare requests and the openai SDK, one loopback upstream",
                        run_http),
               "import": ("3. import time and weight", run_import),
               "storage": ("4. shared storage: MeshClient with SQLite and Redis against memory", run_storage),
               "async": ("5. asyncio: AsyncMeshClient vs bare httpx.AsyncClient, one loopback upstream", run_async)}
    started = time.perf_counter()
    for name in args.only or SECTIONS:
        title, fn = runners[name]
        print(title)
        results[name] = fn(params)
    results["seconds"] = time.perf_counter() - started
    results["verdicts"] = verdicts(results)
    print("goals (from the issue)")
    for v in results["verdicts"]:
        status = "not measured" if v["met"] is None else "met" if v["met"] else "NOT MET"
        print(f"  [{status:^12}] {v['goal']}: {v['figure']}")
    print(f"done in {results['seconds']:.1f}s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
        print(f"wrote {args.json}")
    if "import" in results and not results["import"]["lazy_ok"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
