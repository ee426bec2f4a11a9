"""A worker process for the shared-health tests: `python mesh_worker.py CONFIG_JSON N [hold|loop]`.

Builds a MeshClient from the configuration, makes N chat requests, closes the client (which
shares what it learnt) and prints one JSON line: the provider that served each request.

With `hold`, after the requests it syncs, prints that line and waits for a line on stdin (or
its end) before it closes: the process stays live, for the tests of `status()`'s process list.
With `loop`, it prints "ready" after its first request and then makes requests and syncs
until it is killed: the process the kill -9 tests kill mid-sync.
"""
from __future__ import annotations

import json
import sys

import modelmesh


def main() -> None:
    config, count = json.loads(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    served = []
    with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as client:
        for _ in range(count):
            r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            served.append(r.mesh.provider)
        if mode == "loop":
            print("ready", flush=True)
            while True:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
                client.sync()
        if mode == "hold":
            client.sync()
            print(json.dumps(served), flush=True)
            sys.stdin.readline()
            return
    print(json.dumps(served), flush=True)


if __name__ == "__main__":
    main()
