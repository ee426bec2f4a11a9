"""A FakeUpstream("openai") in its own process, so client and server do not share a GIL.

    python _server.py MODEL [TEXT]

Prints the base URL on one line, then obeys stdin: `reset` forgets the recorded requests
(they would otherwise pile up and slow every later run), EOF or `quit` closes it. TEXT is
every answer's content (streamed one word per chunk).
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from modelmesh.testing import FakeUpstream

    model = sys.argv[1] if len(sys.argv) > 1 else "gpt-bench"
    text = sys.argv[2] if len(sys.argv) > 2 else None
    with FakeUpstream("openai", name="bench", models=[model], text=text) as up:
        print(up.url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "reset":
                up.reset()
                print("ok", flush=True)
