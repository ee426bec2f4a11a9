"""No lock hold depends on the size of a response.

One thread reads a 50 MB completion and another a stream with no line break in it, while 8
threads make small requests through the same client. Parsing happens in each call's own
thread, outside the core's lock, so the small requests' p99 stays within 2x of their p99
alone. The two large answers come from a separate process, so that building them does not
compete with the client for this process's interpreter.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import modelmesh
from modelmesh.testing import FakeUpstream

BIG_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BIG = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "big",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 50_000_000},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n))
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(b"data: ")
            for _ in range(2_500):           # 20 MB in 8 KiB writes, never a line break
                self.wfile.write(b"y" * 8192)
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BIG)))
        self.end_headers()
        self.wfile.write(BIG)
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""

KEY = "sk-lock-test-0123456789"
MSG = [{"role": "user", "content": "hi"}]


def _prov(url, model):
    return {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": KEY}, "timeout": "30s",
                                              "max_response_size": 100 * 1024 * 1024,  # above the 32 MiB default
                                              "stream_first_chunk_timeout": "30s",
                                              "models": [{"id": model, "capabilities": ["chat-completion"]}]}}


def _p99(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _small_load(client, threads=8, per_thread=150):
    latencies: list[float] = []
    guard = threading.Lock()

    def worker():
        mine = []
        for _ in range(per_thread):
            t = time.perf_counter()
            client.chat.completions.create(model="small/m", messages=MSG)
            mine.append(time.perf_counter() - t)
        with guard:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies


def _trial(client):
    alone = _p99(_small_load(client))
    outcomes: dict[str, object] = {}

    def big():
        r = client.chat.completions.create(model="big/big", messages=MSG)
        outcomes["big"] = len(r.choices[0].message.content)

    def newline_free():
        try:
            for _ in client.chat.completions.create(model="odd/odd", messages=MSG, stream=True):
                pass
        except modelmesh.ModelMeshError as exc:  # it never becomes an event: a malformed stream
            outcomes["stream"] = type(exc).__name__

    large = [threading.Thread(target=big), threading.Thread(target=newline_free)]
    for t in large:
        t.start()
    loaded = _p99(_small_load(client))
    for t in large:
        t.join()
    return alone, loaded, outcomes


def test_large_answers_do_not_hold_up_small_requests():
    server = subprocess.Popen([sys.executable, "-c", BIG_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        with FakeUpstream("openai", name="small", models=["m"]) as small:
            # two providers on the one server: the stream's failures must not put the big model aside
            config = {"providers": {"small": _prov(small.url, "m"), "big": _prov(f"http://127.0.0.1:{port}/v1", "big"),
                                    "odd": _prov(f"http://127.0.0.1:{port}/v1", "odd")}}
            with modelmesh.MeshClient(config, environ={}) as client:
                _small_load(client, per_thread=10)  # warm the connection pools
                # a shared 2-core machine is noisy, and reading 50 MB takes CPU the small requests
                # share: the best of three trials must stay within 3x (a lock held per read of a
                # large answer stalls them for the whole read, far beyond that, in every trial)
                for _ in range(3):
                    alone, loaded, outcomes = _trial(client)
                    if loaded <= 3 * alone:
                        break
    finally:
        server.kill()
        server.wait()
    assert outcomes.get("big") == 50_000_000 and "stream" in outcomes
    assert loaded <= 3 * alone, f"small-request p99 {loaded * 1e3:.1f} ms with large answers vs {alone * 1e3:.1f} ms alone"


class _TimedLock:
    """The core's lock, with the longest hold written down."""

    def __init__(self, lock):
        self.lock, self.longest, self._since = lock, 0.0, 0.0

    def __enter__(self):
        self.lock.acquire()
        self._since = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.longest = max(self.longest, time.perf_counter() - self._since)
        self.lock.release()


def test_no_lock_hold_grows_with_the_answer():
    server = subprocess.Popen([sys.executable, "-c", BIG_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        config = {"providers": {"big": _prov(f"http://127.0.0.1:{port}/v1", "big")}}
        with modelmesh.MeshClient(config, environ={}) as client:
            timed = client.core.lock = _TimedLock(client.core.lock)
            r = client.chat.completions.create(model="big/big", messages=MSG)
            assert len(r.choices[0].message.content) == 50_000_000
            try:
                for _ in client.chat.completions.create(model="big/big", messages=MSG, stream=True):
                    pass
            except modelmesh.ModelMeshError:
                pass
    finally:
        server.kill()
        server.wait()
    assert timed.longest < 0.01, f"the core's lock was held {timed.longest * 1e3:.1f} ms at once"
