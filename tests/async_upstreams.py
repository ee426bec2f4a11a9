"""Two FakeUpstreams in their own process, so that the event loop measured by a test shares
no GIL with the servers' threads (200 of them at once would hold it for tens of ms).

    python tests/async_upstreams.py

Prints one JSON line {"a": url, "b": url}; then, for each line `count` on stdin, one JSON
line {"a": requests a received, "b": ...}; ends at EOF. `a` fails every request whose last
user message ends in a multiple of 3 with a 503; `b` always answers.
"""
from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from modelmesh.testing import Error, FakeUpstream, Reply

    def every_third_fails(req):
        return Error(503) if int(req.json["messages"][-1]["content"].split()[-1]) % 3 == 0 else Reply()

    with FakeUpstream("openai", name="alpha", models=["m1"]) as a, FakeUpstream("openai", name="beta", models=["m2"]) as b:
        a.always(every_third_fails)
        print(json.dumps({"a": a.url, "b": b.url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(json.dumps({"a": len(a.requests), "b": len(b.requests)}), flush=True)
