"""Import cost: `import modelmesh` against `import requests`, each in a fresh interpreter.

Theory of operation: every sample is a new `python -c` process that times its one import
with `perf_counter` (so interpreter start-up is not counted) and also reports which
heavy third-party modules ended up in `sys.modules`. The package promises a cheap import
(PEP 562 lazy attributes): `import modelmesh` must not load requests, urllib3, yaml,
redis or dataclasses_json; those arrive with the client, on first use.

Bytecode matters: with PYTHONDONTWRITEBYTECODE set (as on the benchmark machine) a source
tree is recompiled on every start while site-packages ship their .pyc files, so the
default measurement (`cached=True`) points PYTHONPYCACHEPREFIX at a private temporary
directory, warms it with one untimed import, and times imports that load bytecode, as an
installed package would. `cached=False` times the environment as it is.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

__all__ = ["HEAVY", "FORBIDDEN", "time_import", "heavy_modules_after", "bench_import"]

HEAVY = ("requests", "urllib3", "yaml", "redis", "dataclasses_json", "tenacity", "cachetools", "http.client",
         "ssl", "socket", "threading", "logging", "httpx", "asyncio")
# must stay out of `import modelmesh`; httpx and asyncio arrive with AsyncMeshClient only
FORBIDDEN = ("requests", "yaml", "redis", "dataclasses_json", "httpx", "asyncio")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = """
import sys, time, json
before = set(sys.modules)
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
heavy = {heavy!r}
print(json.dumps({{"seconds": elapsed, "new_modules": len(set(sys.modules) - before),
                  "heavy": [m for m in heavy if m in sys.modules and m not in before]}}))
"""


def _probe(module: str, pycache: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module, heavy=HEAVY)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_import(module: str, repeats: int = 5, *, cached: bool = True) -> dict[str, Any]:
    """Median wall time of `import module` in `repeats` fresh interpreters (ms)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    if not cached:
        runs = [_probe(module) for _ in range(repeats)]
    else:
        with tempfile.TemporaryDirectory(prefix="mm-bench-pycache-") as pycache:
            _probe(module, pycache)  # compiles and stores the bytecode; not timed
            runs = [_probe(module, pycache) for _ in range(repeats)]
    ms = sorted(r["seconds"] * 1e3 for r in runs)
    return {"module": module, "bytecode": "cached" if cached else "as configured", "median_ms": statistics.median(ms),
            "min_ms": ms[0], "max_ms": ms[-1], "new_modules": runs[-1]["new_modules"], "heavy_loaded": runs[-1]["heavy"]}


def heavy_modules_after(module: str = "modelmesh") -> list[str]:
    """The HEAVY modules that `import module` pulls in, seen from a fresh interpreter."""
    return _probe(module)["heavy"]


def bench_import(repeats: int = 5) -> dict[str, Any]:
    """`import modelmesh` vs `import requests` (and the client's own cost, for reference),
    with cached bytecode and as the environment is configured."""
    names = ("modelmesh", "requests", "modelmesh.client")
    cached = {name: time_import(name, repeats) for name in names}
    as_is = {name: time_import(name, repeats, cached=False) for name in names}
    heavy = heavy_modules_after("modelmesh")
    forbidden = [m for m in heavy if m in FORBIDDEN]
    return {"cached_bytecode": cached, "as_configured": as_is,
            "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
            "heavy_loaded_by_modelmesh": heavy, "forbidden_loaded_by_modelmesh": forbidden, "lazy_ok": not forbidden}
