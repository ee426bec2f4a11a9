"""Shared by the proxy tests: `modelmesh serve` as a real process on a free loopback port,
in front of fake upstreams, and what it printed."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MASTER = "sk-proxy-master-0123456789abcdef"
MASTER_ENV = "PROXY_MASTER_KEY"  # ${secrets:proxy_master_key} through the env secret store
UPSTREAM_KEY = "sk-upstream-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def provider(up: Any, models: tuple[str, ...] = ("gpt-x",)) -> dict:
    return {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": UPSTREAM_KEY}, "timeout": "5s",
        "models": [{"id": m, "capabilities": ["chat-completion", "text-embeddings"]} for m in models]}}


def write_config(path: Path, providers: dict, pools: dict, proxy: dict | None = None, **top: Any) -> Path:
    data = {"secrets": {"store": "env"}, "providers": providers, "pools": pools,
            "routing": {"retry": {"same_model_retries": 0}},
            "proxy": {"auth": {"master_key": "${secrets:proxy_master_key}"}, **(proxy or {})}, **top}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class Served:
    """A running `modelmesh serve`: its port, and after `stop()` its exit code and output."""

    def __init__(self, proc: subprocess.Popen, port: int, out: Path, err: Path) -> None:
        self.proc, self.port, self._out, self._err = proc, port, out, err
        self.base_url = f"http://127.0.0.1:{port}/v1"

    @property
    def stdout(self) -> str:
        return self._out.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self._err.read_text(encoding="utf-8")

    def access_log(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def start(config: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None,
          wait: bool = True) -> Served:
    port = port or free_port()
    out, err = config.with_suffix(f".{port}.out"), config.with_suffix(f".{port}.err")
    environment = {**os.environ, MASTER_ENV: MASTER, **(env or {})}
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "modelmesh.cli", "serve", str(config), "--port", str(port),
                                 *args], stdout=o, stderr=e, env=environment)
    served = Served(proc, port, out, err)
    if wait:
        wait_ready(served)
    return served


def wait_ready(served: Served, limit: float = 30.0) -> None:
    """Poll /health until the server answers (a bounded loop: the server's start, not a cooldown)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError(f"modelmesh serve exited with {served.proc.returncode}: {served.stderr}")
        with contextlib.suppress(OSError):
            if served.request("GET", "/health")[0] == 200:
                return
        time.sleep(0.05)
    served.stop()
    raise AssertionError(f"modelmesh serve did not answer /health within {limit}s: {served.stderr}")


@contextlib.contextmanager
def serving(config: Path, *args: str, **kw: Any) -> Iterator[Served]:
    served = start(config, *args, **kw)
    try:
        yield served
    finally:
        served.stop()
