"""asyncio: AsyncMeshClient against a bare httpx.AsyncClient, one loopback upstream, one run.

Theory of operation: the upstream is http_bench's (nginx with canned answers if installed,
else FakeUpstream in a child process), so the CPU time of this process is the clients'.
Peers, each a coroutine function doing one request and returning the answer's text:
  httpx  one `httpx.AsyncClient` (no connection limit): post(json=...), r.json()
  mesh   `AsyncMeshClient` with one pool `chat` over one `openai-compatible` provider
Scenarios: `sequential` requests one after another; `tasks` tasks at once, `per_task`
requests each (started together by a gather), on one client. Each round runs every entry
once, in order, so drift hits both alike; the best round (lowest wall time per request) is
kept, and the lowest CPU time per request. A heartbeat task (every 2 ms) measures how long
the event loop was held during the concurrent entries: the largest lag is reported.
Figures are reported as ratios mesh / httpx (< 1: the mesh is cheaper).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from benchmarks.http_bench import API_KEY, MESSAGES, MODEL, REPLY, upstream

__all__ = ["bench_async"]

Request = Callable[[], Awaitable[str]]


async def _httpx_peer(stack: contextlib.AsyncExitStack, url: str) -> Request:
    import httpx

    client = await stack.enter_async_context(httpx.AsyncClient(limits=httpx.Limits(max_connections=None), timeout=30))
    endpoint = url + "/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one() -> str:
        r = await client.post(endpoint, json={"model": MODEL, "messages": MESSAGES}, headers=headers)
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])
    return one


async def _mesh_peer(stack: contextlib.AsyncExitStack, url: str) -> Request:
    import modelmesh

    config = {"providers": {"local": {"connector": "openai-compatible", "config": {
        "base_url": url, "auth": {"api_key": API_KEY}, "models": [{"id": MODEL, "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"models": [f"local/{MODEL}"], "strategy": "priority"}}}
    client = await stack.enter_async_context(modelmesh.AsyncMeshClient(config, environ={}))

    async def one() -> str:
        r = await client.chat.completions.create(model="chat", messages=MESSAGES)
        return str(r.choices[0].message.content)
    return one


async def _sequential(one: Request, n: int) -> tuple[float, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        assert await one() == REPLY
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n, 0.0


async def _concurrent(one: Request, tasks: int, per_task: int) -> tuple[float, float, float]:
    lag = 0.0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal lag
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.002)
            lag = max(lag, time.perf_counter() - before - 0.002)

    async def worker() -> None:
        for _ in range(per_task):
            assert await one() == REPLY

    beat = asyncio.create_task(heartbeat())
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    n = tasks * per_task
    result = (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n, lag
    stop.set()
    await beat
    return result


async def _run(url: str, sequential: int, tasks: int, per_task: int, rounds: int, warmup: int) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        peers = {"httpx": await _httpx_peer(stack, url), "mesh": await _mesh_peer(stack, url)}
        for one in peers.values():  # connections, lazy imports, caches
            await asyncio.gather(*(one() for _ in range(max(warmup, tasks))))
        best: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):
            for name, one in peers.items():
                for scenario, run in (("sequential", lambda o=one: _sequential(o, sequential)),
                                      ("concurrent", lambda o=one: _concurrent(o, tasks, per_task))):
                    wall, cpu, lag = await run()
                    row = best.setdefault(f"{scenario}_{name}", {"wall_us": wall * 1e6, "cpu_us": cpu * 1e6,
                                                                  "max_lag_ms": lag * 1e3})
                    row["wall_us"] = min(row["wall_us"], wall * 1e6)
                    row["cpu_us"] = min(row["cpu_us"], cpu * 1e6)
                    row["max_lag_ms"] = max(row["max_lag_ms"], lag * 1e3)
        return best


def bench_async(sequential: int = 500, tasks: int = 64, per_task: int = 10, rounds: int = 3, warmup: int = 50,
                upstream_kind: str = "auto") -> dict[str, Any]:
    with upstream(upstream_kind) as up:
        rows = asyncio.run(_run(up.url, sequential, tasks, per_task, rounds, warmup))
        detail = up.detail
    ratios = {scenario: {"wall": rows[f"{scenario}_mesh"]["wall_us"] / rows[f"{scenario}_httpx"]["wall_us"],
                         "cpu": rows[f"{scenario}_mesh"]["cpu_us"] / rows[f"{scenario}_httpx"]["cpu_us"]}
              for scenario in ("sequential", "concurrent")}
    return {"upstream": detail, "params": {"sequential": sequential, "tasks": tasks, "per_task": per_task,
                                           "rounds": rounds},
            "versions": {"httpx": _version("httpx"), "httpcore": _version("httpcore")}, "rows": rows, "ratios": ratios}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
