"""Shared storage's cost per request: MeshClient with health shared through SQLite or Redis
against the same client keeping it in memory, on the HTTP section's upstream.

Theory of operation: one client per store, built once: `memory` (nothing shared), then
`sqlite` and `redis` (a redis-server of our own on a free loopback port, if installed), each
with `sync_policy: periodic` (exchanges in the background thread, off the request path) and
`immediate` (an exchange before and after every request, under the store's lock). Each is
timed sequentially and with 16 threads sharing it, in interleaved rounds, best of `rounds`;
ratios are against `memory` (< 1.10 periodic and < 1.30 immediate are the issue's aims).

Then, without HTTP, what `immediate` adds before each request: one automatic sync of each
immediate client (best of `rounds`, `syncs` each), with one standby stored and the Redis
database also holding `other_keys` keys of someone else's, as a Redis shared by several
applications does (a sync that scans the keyspace pays for every one of them).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from .http_bench import API_KEY, MESSAGES, MODEL, Call, _best_of, _ratio, _sequential, _threaded, upstream

__all__ = ["bench_storage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _redis(directory: str) -> Iterator[str | None]:
    """A throwaway redis-server's URL, or None when redis-server or the redis package is missing."""
    binary = shutil.which("redis-server")
    try:
        import redis  # noqa: F401 - only to know whether the client library is there
    except ImportError:
        binary = None
    if binary is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # waiting for the server to listen
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)


def _client(stack: contextlib.ExitStack, url: str, storage: dict[str, Any] | None) -> tuple[Call, Any]:
    import modelmesh

    config: dict[str, Any] = {
        "providers": {"local": {"connector": "openai-compatible", "config": {
            "base_url": url, "auth": {"api_key": API_KEY},
            "models": [{"id": MODEL, "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"models": [f"local/{MODEL}"], "strategy": "priority"}},
    }
    if storage is not None:
        config["storage"] = storage
    client = stack.enter_context(modelmesh.MeshClient(config, environ={}))
    return lambda: client.chat.completions.create(model="chat", messages=MESSAGES).choices[0].message.content, client


def _sync_cost(clients: dict[str, Any], redis_url: str | None, other_keys: int, syncs: int, rounds: int
               ) -> dict[str, float]:
    """Microseconds per automatic sync of each immediate client, best of `rounds`."""
    if redis_url is not None and other_keys:
        import redis

        filler = redis.Redis.from_url(redis_url)
        pipe = filler.pipeline(transaction=False)
        for i in range(other_keys):
            pipe.set(f"other-application:{i}", b"x")
        pipe.execute()
        filler.close()
    out = {}
    for name, client in clients.items():
        client.deactivate(f"local/{MODEL}", until=time.time() + 3600)  # one stored standby to read
        client.sync()
        client.reactivate(f"local/{MODEL}")
        client.sync()  # its recovery written: the syncs timed below write nothing
        shared = client.transport.shared
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(syncs):
                shared.sync(force=False, patient=False)
            best = min(best, (time.perf_counter() - start) / syncs)
        out[name] = best * 1e6
    return out


def bench_storage(sequential: int = 300, threads: int = 16, per_thread: int = 40, rounds: int = 3,
                  warmup: int = 30, upstream_kind: str = "auto", other_keys: int = 10_000, syncs: int = 300
                  ) -> dict[str, Any]:
    """Every store, sequential and threaded, against `memory`; see the module doc."""
    with upstream(upstream_kind) as up, tempfile.TemporaryDirectory() as tmp, _redis(tmp) as redis_url, \
            contextlib.ExitStack() as stack:
        stores: dict[str, dict[str, Any] | None] = {"memory": None}
        for policy in ("periodic", "immediate"):
            stores[f"sqlite {policy}"] = {"connector": "sqlite", "config": {"path": os.path.join(tmp, f"{policy}.db")},
                                          "persistence": {"sync_policy": policy}}
            if redis_url is not None:
                stores[f"redis {policy}"] = {"connector": "redis", "config": {"url": redis_url, "prefix": f"{policy}:"},
                                             "persistence": {"sync_policy": policy}}
        made = {name: _client(stack, up.url, store) for name, store in stores.items()}
        calls = {name: call for name, (call, _) in made.items()}
        for call in calls.values():
            _sequential(call, warmup)
        plan = {}
        for name, call in calls.items():
            plan[f"{name} sequential"] = lambda call=call: _sequential(call, sequential)
            plan[f"{name} threads"] = lambda call=call: _threaded([call] * threads, per_thread)
        best = _best_of(plan, rounds, up.reset)
        ratios = {name: {mode: _ratio(best[f"{name} {mode}"], best[f"memory {mode}"]) for mode in ("sequential", "threads")}
                  for name in stores if name != "memory"}
        sync_us = _sync_cost({name: client for name, (_, client) in made.items() if name.endswith("immediate")},
                             redis_url, other_keys, syncs, rounds)
        notes = [] if redis_url is not None else ["redis-server or the redis package is missing: Redis not measured"]
        return {"upstream": up.name, "results": best, "ratios": ratios, "notes": notes, "sync_us": sync_us,
                "params": {"sequential": sequential, "threads": threads, "per_thread": per_thread, "rounds": rounds,
                           "other_keys": other_keys, "syncs": syncs}}
