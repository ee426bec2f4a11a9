"""A worker process for the shared-health tests: `python mesh_worker.py CONFIG_JSON N`.

Builds a MeshClient from the configuration, makes N chat requests, closes the client (which
shares what it learnt) and prints one JSON line: the provider that served each request.
"""
from __future__ import annotations

import json
import sys

import modelmesh


def main() -> None:
    config, count = json.loads(sys.argv[1]), int(sys.argv[2])
    served = []
    with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as client:
        for _ in range(count):
            r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            served.append(r.mesh.provider)
    print(json.dumps(served), flush=True)


if __name__ == "__main__":
    main()
