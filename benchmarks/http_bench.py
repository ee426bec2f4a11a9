"""HTTP overhead: MeshClient against a bare `requests.Session`, on the same loopback upstream.

Theory of operation: one FakeUpstream("openai") serves both clients, by default in a child
process (a real upstream is not in the caller's process, and on a 2-core machine sharing
one GIL with the server would serialise the threaded runs). The bare client posts the
same JSON to `/chat/completions` with the same bearer header and parses `r.json()`; the
mesh client calls `chat.completions.create(model="chat", ...)` through a one-provider
pool, on the real clock. Each round runs bare then mesh (interleaved, so drift hits both),
sequentially (`sequential` requests) and with `threads` threads sharing one client or one
Session (`per_thread` requests each, started together on a barrier). The best of
`rounds` rounds is kept for each, and the ratio is mesh/bare of the mean time per
request (wall time / requests), i.e. bare throughput / mesh throughput. Because the
upstream runs in another process, this process's CPU time per request (`cpu_us`, best
round) is the client's own cost; its ratio is far less sensitive to other load on the
machine than wall-clock throughput is.
"""
from __future__ import annotations

import contextlib
import gc
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["bench_http", "bench_overhead", "upstream"]

MODEL = "gpt-bench"
API_KEY = "sk-bench-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


@contextlib.contextmanager
def upstream(in_process: bool = False) -> Iterator[tuple[str, Callable[[], None]]]:
    """Yields (base_url, reset) of a fake OpenAI upstream."""
    if in_process:
        from modelmesh.testing import FakeUpstream

        with FakeUpstream("openai", name="bench", models=[MODEL]) as up:
            yield up.url, up.reset
        return
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_server.py")
    proc = subprocess.Popen([sys.executable, server, MODEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the benchmark upstream did not start (said {url!r})")

        def reset() -> None:
            proc.stdin.write("reset\n")
            proc.stdin.flush()
            proc.stdout.readline()

        yield url, reset
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clients(
    url: str, make_session: Callable[[], Any] | None = None,
) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    import requests

    import modelmesh

    config = {
        "providers": {"local": {"connector": "openai-compatible", "config": {
            "base_url": url, "auth": {"api_key": API_KEY},
            "models": [{"id": MODEL, "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"models": [f"local/{MODEL}"], "strategy": "priority"}},
    }
    # by default the mesh builds its own pooled Session, as it does for users
    client = modelmesh.MeshClient(config, environ={}, session=None if make_session is None else make_session())
    session = (make_session or requests.Session)()
    endpoint = url + "/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def bare() -> str:
        r = session.post(endpoint, json={"model": MODEL, "messages": MESSAGES}, headers=headers)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]

    def mesh() -> str:
        return client.chat.completions.create(model="chat", messages=MESSAGES).choices[0].message.content

    def close() -> None:
        client.close()
        session.close()

    return bare, mesh, close


def _sequential(fn: Callable[[], Any], n: int) -> dict[str, float]:
    latencies = [0] * n
    clock = time.perf_counter_ns
    cpu = time.process_time_ns()
    start = clock()
    for i in range(n):
        t = clock()
        fn()
        latencies[i] = clock() - t
    wall = clock() - start
    return _summary(latencies, wall, time.process_time_ns() - cpu)


def _threaded(fn: Callable[[], Any], threads: int, per_thread: int) -> dict[str, float]:
    barrier = threading.Barrier(threads + 1)
    results: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    clock = time.perf_counter_ns

    def worker(k: int) -> None:
        out = results[k]
        barrier.wait()
        try:
            for _ in range(per_thread):
                t = clock()
                fn()
                out.append(clock() - t)
        except BaseException as exc:  # reported after join: a failed run must not look fast
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,), name=f"bench-{k}") for k in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    cpu = time.process_time_ns()
    start = clock()
    for th in pool:
        th.join()
    wall = clock() - start
    cpu = time.process_time_ns() - cpu
    if errors:
        raise RuntimeError(f"{len(errors)} benchmark thread(s) failed: {errors[0]!r}") from errors[0]
    return _summary([x for r in results for x in r], wall, cpu)


def _summary(latencies_ns: list[int], wall_ns: int, cpu_ns: int) -> dict[str, float]:
    n = len(latencies_ns)
    return {"n": n, "rps": n / (wall_ns / 1e9), "mean_us": wall_ns / n / 1e3,
            "median_latency_us": statistics.median(latencies_ns) / 1e3, "cpu_us": cpu_ns / n / 1e3}


def bench_http(sequential: int = 500, threads: int = 8, per_thread: int = 150, rounds: int = 3,
               warmup: int = 100, in_process_server: bool = False) -> dict[str, Any]:
    """Best-of-`rounds` throughput and latency of bare vs mesh, sequential and threaded."""
    with upstream(in_process_server) as (url, reset):
        bare, mesh, close = _clients(url)
        try:
            if bare() != mesh():
                raise AssertionError("bare and mesh clients got different answers")
            runs: dict[str, dict[str, list]] = {"sequential": {"bare": [], "mesh": []},
                                                "threaded": {"bare": [], "mesh": []}}
            for fn in (bare, mesh):
                _sequential(fn, warmup)
                _threaded(fn, threads, max(1, warmup // threads))
            for _ in range(rounds):
                for name, fn in (("bare", bare), ("mesh", mesh)):
                    reset()
                    gc.collect()
                    runs["sequential"][name].append(_sequential(fn, sequential))
                    reset()
                    gc.collect()
                    runs["threaded"][name].append(_threaded(fn, threads, per_thread))
        finally:
            close()
    out: dict[str, Any] = {"server": "in-process" if in_process_server else "child process",
                           "rounds": rounds, "threads": threads}
    for mode, by_client in runs.items():
        best = {name: min(rs, key=lambda r: r["mean_us"]) for name, rs in by_client.items()}
        cpu = {name: min(r["cpu_us"] for r in rs) for name, rs in by_client.items()}
        out[mode] = {**best, "ratio": best["mesh"]["mean_us"] / best["bare"]["mean_us"],
                     "cpu_ratio": cpu["mesh"] / cpu["bare"], "cpu_us": cpu,
                     "all_rounds_rps": {name: [round(r["rps"]) for r in rs] for name, rs in by_client.items()}}
    return out


def _canned_session() -> Any:
    """A requests.Session whose adapter answers every request with a prebuilt response."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    from .core_bench import ok_body

    body = ok_body(MODEL)

    class Canned(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> requests.Response:
            r = requests.Response()
            r.status_code, r._content, r.encoding = 200, body, "utf-8"
            r.headers = CaseInsensitiveDict({"Content-Type": "application/json", "Content-Length": str(len(body)),
                                             "Server": "FakeUpstream/1", "Date": "Mon, 23 Nov 2026 10:00:00 GMT"})
            r.url, r.request = request.url, request
            return r

        def close(self) -> None:
            return None

    session = requests.Session()
    session.mount("http://", Canned())
    return session


def bench_overhead(n: int = 3000, rounds: int = 3) -> dict[str, Any]:
    """Both clients with the socket taken out (a canned adapter): what the mesh adds per
    request on top of requests itself, free of server and network noise. Median us."""
    bare, mesh, close = _clients("http://canned.invalid/v1", _canned_session)
    try:
        if bare() != mesh():
            raise AssertionError("bare and mesh clients got different answers")
        _sequential(bare, n // 10)
        _sequential(mesh, n // 10)
        best: dict[str, float] = {"bare": float("inf"), "mesh": float("inf")}
        for _ in range(rounds):
            for name, fn in (("bare", bare), ("mesh", mesh)):
                gc.collect()
                best[name] = min(best[name], _sequential(fn, n)["median_latency_us"])
    finally:
        close()
    return {"bare_us": best["bare"], "mesh_us": best["mesh"], "added_us": best["mesh"] - best["bare"],
            "ratio": best["mesh"] / best["bare"]}
