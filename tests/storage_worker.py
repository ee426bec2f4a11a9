"""Helpers for the storage tests: a real redis-server on loopback, and worker processes.

Run as a script it is a worker process (the tests start it with subprocess):

    python storage_worker.py CONNECTOR CONFIG_JSON add KEY N GO_FILE       N adds of 1; prints the last total
    python storage_worker.py CONNECTOR CONFIG_JSON raise KEY VALUES GO_FILE   raise_to each of the comma-separated VALUES
    python storage_worker.py CONNECTOR CONFIG_JSON killsave KEY ROUNDS SEED   see kill_saves()

The add and raise workers print "ready" once their store is open and then wait for GO_FILE to
appear, so that all of them start together instead of one after another.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from modelmesh.connectors.storage import make_storage

FAR_FUTURE = 4102444800.0  # 2100-01-01: an expiry no test reaches


# -- redis-server ------------------------------------------------------------------------------

def redis_binary() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of our own on 127.0.0.1:`port`, without persistence, in `directory`."""

    def __init__(self, directory: str, port: int | None = None, password: str | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_binary()
        assert binary, "redis-server is not installed"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:  # waiting for a server to listen, not for an expiry
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def need_redis() -> None:
    """Skip the calling test without redis-server; under CI=true, fail it: CI must run them."""
    import pytest

    if redis_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed, and CI must run the Redis tests (.ci/run installs it)")
        pytest.skip("redis-server is not installed")


@contextlib.contextmanager
def redis_server(directory: str, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- payloads that show a torn write ---------------------------------------------------------

def payload(seq: int) -> bytes:
    """A value of 1 KB to 200 KB that names itself: `check_payload` knows it whole or not at all."""
    size = 1000 + (seq * 7919) % 200_000
    body = hashlib.sha256(str(seq).encode()).digest() * (size // 32 + 1)
    return b"seq=%d;" % seq + body[:size]


def check_payload(data: bytes | None) -> int:
    """The sequence number of a complete payload; AssertionError for anything else."""
    assert data is not None, "the entry is missing"
    head, sep, _ = data.partition(b";")
    assert sep and head.startswith(b"seq="), f"not a payload: {data[:40]!r}"
    seq = int(head[4:])
    assert data == payload(seq), f"payload {seq} is torn ({len(data)} bytes)"
    return seq


# -- workers -----------------------------------------------------------------------------------

def _wait_for(go_file: str) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)


def kill_saves(connector: str, config: dict[str, object], key: str, rounds: int, seed: int) -> dict[str, int]:
    """`rounds` times: fork a child that saves payloads under `key` as fast as it can, SIGKILL it
    at a random moment, then open the store afresh (as after a crash) and check what `load` gives.

    Forking is safe here: this process is single-threaded and holds no store open across a fork.
    """
    rng = random.Random(seed)
    with make_storage(connector, config) as store:
        store.save(key, payload(0))
    seen: list[int] = []
    for round_ in range(rounds):
        ready, started = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: says when its first save is done, then saves on until killed
            try:
                os.close(ready)
                writer = make_storage(connector, config)
                seq = (round_ + 1) * 1_000_000
                writer.save(key, payload(seq))
                os.write(started, b"1")
                while True:
                    seq += 1
                    writer.save(key, payload(seq))
            finally:
                os._exit(1)
        os.close(started)
        os.read(ready, 1)  # the round has written (b"" if the writer died first: the check below says so)
        os.close(ready)
        time.sleep(rng.uniform(0.0, 0.01))  # then a kill at a random moment of a later save
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with make_storage(connector, config) as store:
            seen.append(check_payload(store.load(key)))
    changed = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a != b)
    return {"rounds": rounds, "distinct": len(set(seen)), "changed": changed, "last": seen[-1]}


def main(argv: list[str]) -> None:
    connector, config, mode = argv[0], json.loads(argv[1]), argv[2]
    if mode == "killsave":
        print(json.dumps(kill_saves(connector, config, argv[3], int(argv[4]), int(argv[5]))))
        return
    store = make_storage(connector, config)
    key = argv[3]
    _wait_for(argv[5])
    result = 0.0
    if mode == "add":
        for _ in range(int(argv[4])):
            result = store.add(key, 1, expires_at=FAR_FUTURE)
    elif mode == "raise":
        for value in argv[4].split(","):
            result = store.raise_to(key, float(value), expires_at=FAR_FUTURE)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    store.close()
    print(result, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
