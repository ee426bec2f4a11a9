"""A worker process for the shared-health tests: `python mesh_worker.py CONFIG_JSON N [MODE ...]`.

Builds a MeshClient from the configuration, makes N chat requests, closes the client (which
shares what it learnt) and prints one JSON line: the provider that served each request.

Modes:
- `hold`: after the requests it syncs, prints that line and waits for a line on stdin (or its
  end) before it closes: a live process, for the tests of `status()`'s process list;
- `loop STOP_FILE`: after the requests it prints "ready", then requests and syncs until
  STOP_FILE appears, and prints {"requests": ..., "synced": ..., "failed_syncs": ...};
- `killsync ROUNDS SEED`: see `kill_syncs`; N is ignored.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time

import modelmesh

MSG = [{"role": "user", "content": "hi"}]


def loop(client: modelmesh.MeshClient, stop_file: str) -> dict[str, int]:
    requests = synced = failed = 0
    while not os.path.exists(stop_file):
        client.chat.completions.create(model="chat", messages=MSG)  # raises, and the worker fails, if one fails
        requests += 1
        if client.sync():
            synced += 1
        else:
            failed += 1
        time.sleep(0.01)  # paced: workers that spin would take the machine's cores from the process under test
    return {"requests": requests, "synced": synced, "failed_syncs": failed}


def kill_syncs(config: dict, rounds: int, seed: int) -> dict[str, object]:
    """`rounds` times: fork a child that builds a client, writes a longer standby of x/m than
    the last round's, says so, and then, as fast as it can, puts x/m on a longer standby,
    syncs (writing the fact, its heartbeat and spend counters, holding the store's lock) and
    requests; SIGKILL it at a random moment; then check every record in the store, and that
    a new client syncs with it. Forking is safe: this process is single-threaded and holds no
    client (no store, no thread) across a fork."""
    from modelmesh._core._sharing import Fact
    from modelmesh.transports._shared import _heartbeat_record

    rng = random.Random(seed)
    untils: list[float | None] = []
    for round_ in range(rounds):
        ready, started = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready)
                client = modelmesh.MeshClient(config, environ={}, probe_check_interval=3600)
                client.chat.completions.create(model="chat", messages=MSG)
                client.deactivate("x/m", pool="chat", until=time.time() + 3600 + round_)
                while not client.sync():  # the lock of a worker killed holding it lasts until its lease ends
                    pass
                os.write(started, b"1")  # this round has written its standby: the kill comes after
                while True:
                    client.deactivate("x/m", pool="chat", until=time.time() + 3600 + round_)
                    client.sync()
                    client.chat.completions.create(model="chat", messages=MSG)
            finally:
                os._exit(1)
        os.close(started)
        os.read(ready, 1)
        os.close(ready)
        time.sleep(rng.uniform(0.0, 0.01))  # a kill at a random moment of its syncs
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as checker:
            storage, serializer = checker.transport.shared.storage, checker.transport.shared.serializer
            for key, raw in storage.load_many("").items():  # every record whole and what it claims to be
                if key.startswith("health/"):
                    fact = Fact.from_dict(serializer.loads(raw, key))
                    if key == "health/model:chat:x/m":
                        untils.append(fact.until)
                elif key.startswith("process/"):
                    _heartbeat_record(serializer.loads(raw, key))
                elif key.startswith(("spend/", "usage/")):
                    float(raw)
            assert checker.sync(), f"round {round_}: a new client could not sync with the store"
    changed = sum(1 for a, b in zip(untils, untils[1:], strict=False) if a != b)
    return {"rounds": rounds, "read": len(untils), "changed": changed}


def main() -> None:
    config, count = json.loads(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    if mode == "killsync":
        print(json.dumps(kill_syncs(config, int(sys.argv[4]), int(sys.argv[5]))), flush=True)
        return
    served = []
    with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as client:
        for _ in range(count):
            r = client.chat.completions.create(model="chat", messages=MSG)
            served.append(r.mesh.provider)
        if mode == "loop":
            print("ready", flush=True)
            print(json.dumps(loop(client, sys.argv[4])), flush=True)
            return
        if mode == "hold":
            client.sync()
            print(json.dumps(served), flush=True)
            sys.stdin.readline()
            return
    print(json.dumps(served), flush=True)


if __name__ == "__main__":
    main()
