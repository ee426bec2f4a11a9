"""A soak: 64 threads share one client for a minute against a good, a failing and two hostile
upstreams (run in their own process), with careless callers among them.

Each thread loops: a plain request, a stream read to its end, a stream abandoned after one
chunk without `close()` (left to the garbage collector), a stream closed early, or a
request with a caller's short timeout. Shown: no raw exception (only ModelMeshErrors), no
hang (every request ends within its bound and every thread ends), every request answered
exactly once (a result or one error, a finished stream's `mesh` set exactly when it ended
cleanly), failover holding (the good upstream keeps the pool serving), and the client's RSS
flat within 10% from the end of the warm-up to the end.

It runs for MODELMESH_SOAK_SECONDS (CI sets 60; 10 when unset, for a quick local run).
"""
from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import modelmesh
from modelmesh import errors as E

THREADS = 64
SECONDS = float(os.environ.get("MODELMESH_SOAK_SECONDS") or 10)
REQUEST_BOUND = 15.0  # seconds: provider timeouts are 2-4 s, the caller's deadline 8 s
MSG = [{"role": "user", "content": "hi"}]
KEY = "sk-soak-0123456789abcdef"


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def mesh_config(urls: dict[str, str]) -> dict:
    def provider(name: str, connector: str, timeout: str) -> dict:
        return {"connector": connector, "config": {
            "base_url": urls[name], "auth": {"api_key": KEY}, "timeout": timeout, "connect_timeout": "2s",
            "stream_idle_timeout": "2s", "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}
    providers = {"good": provider("good", "openai", "4s"), "failing": provider("failing", "openai", "2s"),
                 "hostile": provider("hostile", "openai", "1s"),
                 "hostile-anthropic": provider("hostile-anthropic", "anthropic", "1s")}
    return {"providers": providers,
            "pools": {"chat": {"models": [f"{p}/m" for p in providers], "strategy": "round-robin"}}}


class Tally:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.issued = self.served = self.failed = 0
        self.raw: list[BaseException] = []
        self.slowest = 0.0
        self.by_error: dict[str, int] = {}

    def add(self, elapsed: float, error: BaseException | None) -> None:
        with self.guard:
            self.slowest = max(self.slowest, elapsed)
            if error is None:
                self.served += 1
            elif isinstance(error, E.ModelMeshError):
                self.failed += 1
                self.by_error[type(error).__name__] = self.by_error.get(type(error).__name__, 0) + 1
            else:
                self.raw.append(error)


def one_request(client: modelmesh.MeshClient, rng: random.Random, tally: Tally) -> None:
    kind = rng.choice(("plain", "plain", "stream", "abandon", "close", "deadline"))
    with tally.guard:
        tally.issued += 1
    started = time.monotonic()
    error: BaseException | None = None
    try:
        if kind == "plain":
            r = client.chat.completions.create(model="chat", messages=MSG, timeout=8)
            assert r.choices[0].message.content and r.mesh.provider
        elif kind == "deadline":
            client.chat.completions.create(model="chat", messages=MSG, timeout=0.05)
        else:
            stream = client.chat.completions.create(model="chat", messages=MSG, stream=True, timeout=8)
            if kind == "stream":
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                assert stream.mesh is not None and text
            else:
                for _ in stream:
                    break
                if kind == "close":
                    stream.close()
                del stream  # "abandon": left to the garbage collector, mid-stream
    except BaseException as exc:  # noqa: BLE001 - sorted by Tally
        error = exc
    tally.add(time.monotonic() - started, error)


def test_sixty_four_threads_against_good_failing_and_hostile_upstreams():
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=str(here.parent))
    server = subprocess.Popen([sys.executable, str(here / "soak_upstreams.py")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        tally = Tally()
        deadline = time.monotonic() + SECONDS
        warm = time.monotonic() + SECONDS * 0.25
        samples: list[int] = []
        with modelmesh.MeshClient(mesh_config(urls), environ={}, probe_check_interval=1.0) as client:
            def loop(seed: int) -> None:
                rng = random.Random(seed)
                while time.monotonic() < deadline:
                    one_request(client, rng, tally)

            threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(THREADS)]
            for t in threads:
                t.start()
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if time.monotonic() >= warm:
                    gc.collect()
                    samples.append(rss_kib())
            for t in threads:
                t.join(timeout=REQUEST_BOUND + 5)
            hung = [t for t in threads if t.is_alive()]
            gc.collect()
            samples.append(rss_kib())
            status = client.status()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)

    summary = (f"issued={tally.issued} served={tally.served} failed={tally.failed} raw={len(tally.raw)} "
               f"slowest={tally.slowest:.1f}s errors={tally.by_error} rss_kib={samples[0]}..{max(samples)}..{samples[-1]}")
    print(summary)
    assert hung == [], f"{len(hung)} threads still running: {summary}"
    assert tally.raw == [], f"raw exceptions escaped: {tally.raw[:3]!r}"
    assert tally.issued == tally.served + tally.failed, summary
    assert tally.slowest <= REQUEST_BOUND, summary
    assert tally.issued >= THREADS * 4, summary  # it really ran
    # failover holds: the good upstream keeps the pool serving what the callers let it
    assert tally.served >= 0.6 * tally.issued, summary
    assert {r["model"] for r in status["pools"]["chat"]} == {"good/m", "failing/m", "hostile/m", "hostile-anthropic/m"}
    # memory is flat once warm: no per-request growth (abandoned streams, windows, events)
    assert samples[-1] <= 1.10 * samples[0], summary
