"""The core's cost per request, with no I/O: routing one request and feeding back its outcome.

Theory of operation: one `MeshCore` is built once for a pool of `models` OpenAI-compatible
providers (one model each). Each iteration plays the shell for one successful request:
`start` -> `next_action` (an Attempt) -> `feed(ResponseReceived(200, prebuilt body))` ->
`next_action` (Succeeded) -> `drain_events`, exactly what `SyncTransport.execute` does
under its lock, and is timed alone with `perf_counter_ns`. Time is a fake clock advanced
by `step` seconds per request, so the rolling health windows fill up (warm-up) and stay at
their steady-state size while the timed iterations run. `bench_route` times
`MeshCore.route` (the preview a dashboard or `client.route()` asks for) the same way.
By default nobody listens, as in a MeshClient without subscribers or sinks: no events are
built; `listening=True` times the same request with its events (and RequestRouted's score).
"""
from __future__ import annotations

import gc
import json
import random
import time
from typing import Any

from modelmesh._core._call import Attempt, ResponseReceived, Succeeded
from modelmesh._core._config import parse_config
from modelmesh._core._mesh import MeshCore

from ._stats import summarize_ns

__all__ = ["build_mesh", "ok_body", "bench_core", "bench_route", "STRATEGIES"]

T0 = 1_700_000_000.0
STRATEGIES = ("priority", "default")
REQUEST = {"model": "chat", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Say hi"}], "temperature": 0.2}


def build_mesh(models: int = 10, strategy: str = "priority", *, now: float = T0, seed: int = 0,
               listening: bool = False) -> MeshCore:
    """A mesh with pool "chat" over `models` providers p0..pN-1 serving m0..mN-1.

    `strategy` "priority" ranks them p0 first; "default" leaves the pool's strategy unset
    (the configured default, stick-until-failure). `listening` says whether someone reads
    the events (a MeshClient with a subscriber or a sink); without, none are built."""
    if models < 1:
        raise ValueError(f"models must be at least 1, got {models!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    refs = [f"p{i}/m{i}" for i in range(models)]
    providers = {
        f"p{i}": {"connector": "openai-compatible", "config": {
            "base_url": f"http://p{i}.bench.invalid/v1", "auth": {"api_key": f"sk-bench-{i:02d}-0123456789"},
            "models": [{"id": f"m{i}", "capabilities": ["chat-completion"]}]}}
        for i in range(models)
    }
    pool: dict[str, Any] = {"models": refs}
    if strategy == "priority":
        pool.update(strategy="priority", rotation={"selection": {"model_priority": refs}})
    cfg = parse_config({"providers": providers, "pools": {"chat": pool}})
    mesh = MeshCore(cfg, rng=random.Random(seed))
    mesh.listening = listening
    return mesh


def ok_body(model: str = "m0") -> bytes:
    """An OpenAI chat.completion response body, as the upstream would send it."""
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark"},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }).encode()


def _one_request(mesh: MeshCore, reply: ResponseReceived, t: float) -> tuple[Any, Any]:
    call = mesh.start("chat", REQUEST, model="chat", now=t)
    attempt = call.next_action(t)
    call.feed(reply, t)
    done = call.next_action(t)
    call.drain_events()
    return attempt, done


def _time_each(iterations: int, models: int, strategy: str, warmup: int, step: float,
               op: Any, listening: bool = False) -> tuple[list[int], Any]:
    """A mesh warmed with real requests (so windows are full), then `op(mesh, t)` timed
    `iterations` times; returns the samples (ns) and op's last result."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations!r}")
    mesh = build_mesh(models, strategy, listening=listening)
    reply = ResponseReceived(status=200, headers={}, body=ok_body())
    t = T0
    for _ in range(warmup):
        _one_request(mesh, reply, t)
        t += step
    samples = [0] * iterations
    clock = time.perf_counter_ns
    gc.collect()
    result = None
    for i in range(iterations):
        t += step
        start = clock()
        result = op(mesh, reply, t)
        samples[i] = clock() - start
    return samples, result


def bench_core(iterations: int = 20_000, *, models: int = 10, strategy: str = "priority",
               warmup: int = 1_000, step: float = 0.01, listening: bool = False) -> dict[str, Any]:
    """Time start + Attempt + feed(200) + Succeeded per request; returns the summary (us)."""
    samples, (attempt, done) = _time_each(iterations, models, strategy, warmup, step, _one_request, listening)
    if not isinstance(attempt, Attempt) or not isinstance(done, Succeeded):
        raise AssertionError(f"the benchmark request did not succeed: {attempt!r} then {done!r}")
    return {"what": "start+attempt+feed(200)+succeeded", "models": models, "strategy": strategy, "listening": listening,
            "served_by": attempt.ref, **summarize_ns(samples)}


def bench_route(iterations: int = 20_000, *, models: int = 10, strategy: str = "priority",
                warmup: int = 1_000, step: float = 0.01) -> dict[str, Any]:
    """Time `mesh.route("chat")` alone, after a warm-up of real requests filled the windows."""
    samples, decision = _time_each(iterations, models, strategy, warmup, step,
                                   lambda mesh, reply, t: mesh.route("chat", now=t))
    return {"what": "route", "models": models, "strategy": strategy,
            "served_by": f"{decision.provider_id}/{decision.model_id}", **summarize_ns(samples)}
