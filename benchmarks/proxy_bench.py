"""The proxy under load: `modelmesh serve` in front of a static upstream, beside the upstream alone.

    python benchmarks/proxy_bench.py                      # 2 workers, 16 connections, 5 s each
    python benchmarks/proxy_bench.py --seconds 10 --connections 32 --workers 2 --threads 16
    python benchmarks/proxy_bench.py --json out.json

Theory of operation: one loopback upstream (nginx with canned answers when installed, else
FakeUpstream in its own process; see `http_bench.upstream`) answers every request. The proxy
is a real `modelmesh serve` process (Granian, `--workers`, `--threads`, `--no-auth` on
loopback) whose one provider points at it. The load generator is wrk when installed (a Lua
script POSTs the same chat request), else a Python one (threads over keep-alive
`http.client` connections, which costs the 2 cores more and so understates both sides).
Each target is measured the same way in the same run: non-streaming, then streaming (the
22-chunk canned stream), straight to the upstream and through the proxy, and the report says
the proxy's figures and their ratio to the upstream's. The goal of the issue (>= 2 500 RPS,
P50 < 5 ms, P99 < 25 ms non-streaming, on this 2-core machine with 2 workers and 16
connections) gets a verdict line.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `modelmesh` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.http_bench import MODEL, upstream  # noqa: E402

__all__ = ["bench_proxy", "load"]

BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 16})
STREAM_BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "Say hi"}], "stream": True})
GOAL = {"rps": 2500.0, "p50_ms": 5.0, "p99_ms": 25.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def proxy(base_url: str, *, workers: int, threads: int) -> Iterator[str]:
    """A `modelmesh serve` process whose one provider is `base_url`; yields the proxy's base URL."""
    port = _free_port()
    config = {"providers": {"bench": {"connector": "openai-compatible", "config": {
        "base_url": base_url, "auth": {"method": "none"},
        "models": [{"id": MODEL, "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"capability": "chat-completion"}}}
    with tempfile.TemporaryDirectory(prefix="mm-proxy-bench-") as tmp:
        path = os.path.join(tmp, "modelmesh.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(config, fh)
        cmd = [sys.executable, "-m", "modelmesh.cli", "serve", path, "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads), "--no-auth"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"modelmesh serve exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
                with contextlib.suppress(OSError):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        break
                time.sleep(0.05)
            else:
                raise RuntimeError("modelmesh serve did not answer /health within 30 s")
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- load generators -------------------------------------------------------------------------------

_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
"""


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, body: str, *, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_LUA % body)
        script = fh.name
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, flags=re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"tool": "wrk", "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": _ms(latency["50"]), "p99_ms": _ms(latency["99"]),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, failed.groups())) if failed else 0)}


def _python(url: str, body: str, *, connections: int, seconds: float) -> dict[str, Any]:
    parts = urlsplit(url)
    stop = time.monotonic() + seconds
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        bad = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=body, headers={"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            samples.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    samples.sort()
    pick = (lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000) if samples else (lambda q: 0.0)
    return {"tool": "python", "rps": len(samples) / elapsed, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "requests": len(samples), "errors": errors[0]}


def load(url: str, body: str, *, connections: int, seconds: float) -> dict[str, Any]:
    """RPS and latency of POSTing `body` to `url` over `connections` keep-alive connections."""
    runner = _wrk if shutil.which("wrk") else _python
    return runner(url, body, connections=connections, seconds=seconds)


def bench_proxy(*, seconds: float = 5.0, connections: int = 16, workers: int = 2, threads: int = 16,
                kind: str = "auto") -> dict[str, Any]:
    out: dict[str, Any] = {"connections": connections, "workers": workers, "threads": threads,
                           "load": "wrk" if shutil.which("wrk") else "python"}
    with upstream(kind) as up:
        out["upstream"] = up.detail
        for label, base, body in (("plain", up.url, BODY), ("stream", up.stream_url, STREAM_BODY)):
            out[f"direct_{label}"] = load(base + "/chat/completions", body, connections=connections, seconds=seconds)
            up.reset()
            with proxy(base, workers=workers, threads=threads) as url:
                load(url + "/chat/completions", body, connections=connections, seconds=1.0)  # warm-up
                out[f"proxy_{label}"] = load(url + "/chat/completions", body, connections=connections, seconds=seconds)
            up.reset()
    return out


def report(r: dict[str, Any]) -> None:
    print(f"upstream: {r['upstream']}")
    print(f"load: {r['load']}, {r['connections']} connections; proxy: {r['workers']} workers x {r['threads']} threads")
    for label in ("plain", "stream"):
        d, p = r[f"direct_{label}"], r[f"proxy_{label}"]
        print(f"  {label:<6} direct  {d['rps']:8.0f} RPS  P50 {d['p50_ms']:6.2f} ms  P99 {d['p99_ms']:6.2f} ms  "
              f"errors {d['errors']}")
        print(f"  {label:<6} proxy   {p['rps']:8.0f} RPS  P50 {p['p50_ms']:6.2f} ms  P99 {p['p99_ms']:6.2f} ms  "
              f"errors {p['errors']}   ({p['rps'] / d['rps']:.2f}x the upstream's RPS)")
    p = r["proxy_plain"]
    met = p["rps"] >= GOAL["rps"] and p["p50_ms"] < GOAL["p50_ms"] and p["p99_ms"] < GOAL["p99_ms"] and not p["errors"]
    print(f"verdict: non-streaming >= {GOAL['rps']:.0f} RPS, P50 < {GOAL['p50_ms']:.0f} ms, P99 < "
          f"{GOAL['p99_ms']:.0f} ms: {'met' if met else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--upstream", choices=("auto", "nginx", "fake"), default="auto")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    result = bench_proxy(seconds=args.seconds, connections=args.connections, workers=args.workers,
                         threads=args.threads, kind=args.upstream)
    report(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
