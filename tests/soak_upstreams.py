"""The upstreams of the soak, run in their own process (`python tests/soak_upstreams.py`) so
the soak's RSS is the client's alone: a good one, a failing one and two hostile ones.

Prints one JSON line {name: base_url} once they listen, then serves until stdin closes.
Each request's fate is drawn from a seeded generator, so a run is reproducible in kind.
"""
from __future__ import annotations

import json
import random
import sys
import threading

from modelmesh.testing import CutStream, Drop, Error, FakeUpstream, HtmlError, MalformedJSON, Reply, SlowFirstByte


def drawn(seed: int, choices: list) -> object:
    rng = random.Random(seed)
    guard = threading.Lock()

    def step(request):
        with guard:
            return rng.choice(choices)
    return step


FAILING = [Error(503), Error(500), Error(429, retry_after=1), Error(529), Reply()]
HOSTILE = [MalformedJSON(), HtmlError(502), Drop(), CutStream(after_chunks=2), SlowFirstByte(3.0), Reply(),
           Error(404, message="no such model")]


def main() -> None:
    ups = {"good": FakeUpstream("openai", name="good", models=["m"]),
           "failing": FakeUpstream("openai", name="failing", models=["m"]).always(drawn(1, FAILING)),
           "hostile": FakeUpstream("openai", name="hostile", models=["m"]).always(drawn(2, HOSTILE)),
           "hostile-anthropic": FakeUpstream("anthropic", name="hostile-anthropic", models=["m"])
           .always(drawn(3, HOSTILE))}
    print(json.dumps({name: up.url for name, up in ups.items()}), flush=True)
    sys.stdin.read()
    for up in ups.values():
        up.close()


if __name__ == "__main__":
    main()
