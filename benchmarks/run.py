"""Run every ModelMesh Lite benchmark and print the figures.

    python benchmarks/run.py                 # full run (about a minute on 2 cores)
    python benchmarks/run.py --quick         # seconds: fewer iterations, same shape
    python benchmarks/run.py --json out.json # also write every figure as JSON
    python benchmarks/run.py --only core     # core | http | import (repeatable)

Sections: (1) the core's cost per routed request, no I/O; (2) MeshClient against a bare
requests.Session on a loopback fake upstream; (3) import time and import weight.
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

from benchmarks.core_bench import STRATEGIES, bench_core, bench_route  # noqa: E402
from benchmarks.http_bench import bench_http, bench_overhead  # noqa: E402
from benchmarks.import_bench import bench_import  # noqa: E402

SECTIONS = ("core", "http", "import")
FULL = {"overhead": 3_000, "core_iterations": 20_000, "sequential": 500, "threads": 8, "per_thread": 150,
        "rounds": 3, "repeats": 5}
QUICK = {"overhead": 500, "core_iterations": 2_000, "sequential": 100, "threads": 8, "per_thread": 25, "rounds": 2, "repeats": 3}


def run_core(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in STRATEGIES:
        out[f"request_{strategy}_10"] = bench_core(p["core_iterations"], models=10, strategy=strategy)
        out[f"route_{strategy}_10"] = bench_route(p["core_iterations"], models=10, strategy=strategy)
    out["request_priority_1"] = bench_core(p["core_iterations"], models=1, strategy="priority")
    for key, r in out.items():
        print(f"  {key:<24} median {r['median_us']:8.1f} us   p99 {r['p99_us']:8.1f} us   "
              f"mean {r['mean_us']:8.1f} us   {r['ops_per_s']:9.0f}/s   (n={r['n']}, {r['models']} models)")
    return out


def run_http(p: dict[str, Any]) -> dict[str, Any]:
    out = bench_http(sequential=p["sequential"], threads=p["threads"], per_thread=p["per_thread"], rounds=p["rounds"])
    out["no_socket"] = o = bench_overhead(p["overhead"], p["rounds"])
    for mode in ("sequential", "threaded"):
        r = out[mode]
        label = mode if mode == "sequential" else f"{out['threads']} threads"
        for name in ("bare", "mesh"):
            x = r[name]
            print(f"  {label:<11} {name:<5} {x['rps']:7.0f} req/s   median latency {x['median_latency_us']:8.1f} us   "
                  f"wall/request {x['mean_us']:7.1f} us   client CPU/request {r['cpu_us'][name]:6.1f} us")
        print(f"  {label:<11} ratio mesh/bare: wall per request {r['ratio']:.3f}   client CPU {r['cpu_ratio']:.3f}   "
              f"(rounds req/s bare {r['all_rounds_rps']['bare']}, mesh {r['all_rounds_rps']['mesh']})")
    print(f"  no socket   (canned adapter) median bare {o['bare_us']:.1f} us, mesh {o['mesh_us']:.1f} us: "
          f"the mesh adds {o['added_us']:.1f} us per request (ratio {o['ratio']:.3f})")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations: a smoke run in seconds")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH as JSON")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    args = parser.parse_args(argv)
    params = QUICK if args.quick else FULL
    machine = {"python": platform.python_version(), "implementation": platform.python_implementation(),
               "platform": platform.platform(), "cpus": os.cpu_count(),
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    print(f"ModelMesh Lite benchmarks ({'quick' if args.quick else 'full'}): Python {machine['python']}, "
          f"{machine['cpus']} CPUs, load {machine['load_average']}")
    results: dict[str, Any] = {"machine": machine, "params": params}
    runners = {"core": ("1. core: one routed request (start, Attempt, feed 200, Succeeded), no I/O", run_core),
               "http": ("2. HTTP: MeshClient vs bare requests.Session on a loopback fake OpenAI upstream", run_http),
               "import": ("3. import time and weight", run_import)}
    started = time.perf_counter()
    for name in args.only or SECTIONS:
        title, fn = runners[name]
        print(title)
        results[name] = fn(params)
    results["seconds"] = time.perf_counter() - started
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
