"""HTTP: MeshClient against its peers (bare urllib3, bare requests, the openai SDK), one upstream, one run.

Theory of operation: one loopback upstream serves every client. If nginx is on the machine it
is a throwaway nginx (config in a temporary directory, a child process) that answers
`POST /v1/chat/completions` with a canned OpenAI chat completion and
`POST /stream/v1/chat/completions` with a canned SSE stream of 22 content chunks (nginx
cannot look at the body, so streaming goes to its own base URL). nginx answers in a few
microseconds, so what is measured is the client. Without nginx, a FakeUpstream("openai") runs
in a child process (`_server.py`) and serves the same texts; it costs ~0.6 ms per request and
hides much of the clients' cost, so its ratios sit closer to 1. Either way the upstream is in
another process, so this process's CPU time per request is the client's own cost.

Peers, each a callable doing one request and returning the answer's text (one factory per
peer; the factories take an ExitStack that closes what they open):
  urllib3   one `urllib3.PoolManager`: request(json=...) and json.loads of the body
  requests  one `requests.Session`: post(json=...), r.json()
  openai    `OpenAI(base_url, api_key, max_retries=0).chat.completions.create(...)`, if installed
  mesh      `MeshClient` with one pool `chat` over one `openai-compatible` provider, environ={}
Scenarios: sequential non-streaming (`sequential` requests); `threads` threads, `per_thread`
requests each, started on a barrier (mesh: one shared client; requests: one Session per
thread; urllib3: one shared PoolManager); streaming (`streams` streams of 22 chunks: requests
with stream=True + iter_lines + json.loads per data line, against MeshClient create(stream=True));
environment size (mesh and requests, sequential, with os.environ as it is and with 200 extra
dummy variables, each client built after the variables are set).

Every measurement is an entry of one plan; each round runs every entry once, in order, so
drift hits all peers alike; the best of `rounds` rounds (lowest wall time per request) is
kept, and the lowest CPU time per request over the rounds.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["bench_http", "bench_overhead", "upstream", "extra_environ", "nginx_binary"]

MODEL = "gpt-bench"
API_KEY = "sk-bench-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
REPLY = "The mesh picks a model, sends the request, reads the answer and records how it went, so the next pick is better."
PIECES = tuple(re.findall(r"\s*\S+", REPLY))  # one content chunk per word, as FakeUpstream streams it
assert len(PIECES) == 22 and "".join(PIECES) == REPLY

Call = Callable[[], Any]
Factory = Callable[[contextlib.ExitStack, str], Call]


# -- the upstream ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upstream:
    name: str        # "nginx" or "fake"
    detail: str      # what it is, for the report
    url: str         # base URL of non-streaming answers
    stream_url: str  # base URL of streamed answers
    reset: Callable[[], None]


def _frame(**fields: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-bench", "created": 1_700_000_000, "model": MODEL, **fields}


def completion_body() -> str:
    return json.dumps(_frame(object="chat.completion", choices=[
        {"index": 0, "message": {"role": "assistant", "content": REPLY}, "logprobs": None, "finish_reason": "stop"}],
        usage={"prompt_tokens": 12, "completion_tokens": len(PIECES), "total_tokens": 12 + len(PIECES)}))


def stream_body() -> str:
    """A role chunk, one chunk per word, a finish chunk and [DONE], as OpenAI streams it."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        frame = _frame(object="chat.completion.chunk",
                       choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        return f"data: {json.dumps(frame)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in PIECES]
    return "".join(events + [chunk({}, "stop"), "data: [DONE]\n\n"])


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/nginx/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the canned bodies are files: nginx's static module answers a POST with 405, which error_page
# turns into an internal GET of the same URI (a `return 200 '...'` string is capped at 4 KB)
CANNED = {"v1/chat/completions": ("application/json", completion_body),
          "stream/v1/chat/completions": ("text/event-stream; charset=utf-8", stream_body)}


def _nginx_conf(tmp: str, port: int) -> str:
    temp_paths = "\n".join(f"  {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    locations = "\n".join(f'    location = /{path} {{ default_type "{ctype}"; }}' for path, (ctype, _) in CANNED.items())
    return f"""worker_processes 1;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp_paths}
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  etag off;
  server {{
    listen 127.0.0.1:{port} backlog=256;
    root {tmp}/www;
    error_page 405 =200 $uri;
{locations}
    location / {{ return 404; }}
  }}
}}
"""


def _stop(proc: subprocess.Popen, terminate: bool) -> None:
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def _nginx(binary: str) -> Iterator[Upstream]:
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip().rpartition("/")[2]
    with tempfile.TemporaryDirectory(prefix="mm-bench-nginx-") as tmp:
        os.chmod(tmp, 0o755)  # started as root, nginx's workers run as nobody and must read the bodies
        for path, (_, body) in CANNED.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, "www", path)), exist_ok=True)
            with open(os.path.join(tmp, "www", path), "w", encoding="utf-8") as fh:
                fh.write(body())
        conf, log = os.path.join(tmp, "nginx.conf"), os.path.join(tmp, "error.log")
        for _ in range(3):  # the free port can be taken between the probe and nginx's bind: try again
            port = _free_port()
            with open(conf, "w", encoding="utf-8") as fh:
                fh.write(_nginx_conf(tmp, port))
            proc = subprocess.Popen([binary, "-p", tmp, "-c", conf, "-e", log, "-g", "daemon off;"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if _wait_for_port(port, proc):
                break
            _stop(proc, terminate=True)
        else:
            with open(log, encoding="utf-8", errors="replace") as fh:
                said = fh.read().strip().splitlines()
            raise RuntimeError(said[-1] if said else f"exit status {proc.returncode}")
        try:
            base = f"http://127.0.0.1:{port}"
            yield Upstream("nginx", f"nginx {version}, 1 worker, canned answers (child process, loopback)",
                           base + "/v1", base + "/stream/v1", lambda: None)
        finally:
            _stop(proc, terminate=True)


@contextlib.contextmanager
def _fake(why: str) -> Iterator[Upstream]:
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_server.py")
    proc = subprocess.Popen([sys.executable, server, MODEL, REPLY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the benchmark upstream did not start (said {url!r})")

        def reset() -> None:  # FakeUpstream records every request: forget them between runs
            proc.stdin.write("reset\n")
            proc.stdin.flush()
            proc.stdout.readline()

        yield Upstream("fake", f"FakeUpstream('openai'), pure Python (child process, loopback; {why})", url, url, reset)
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        _stop(proc, terminate=False)  # EOF on stdin closes it


@contextlib.contextmanager
def upstream(kind: str = "auto") -> Iterator[Upstream]:
    """An OpenAI-compatible loopback upstream: "nginx", "fake" (FakeUpstream), or "auto": nginx if it
    is installed and starts, else FakeUpstream (its `detail` says why)."""
    if kind not in ("auto", "nginx", "fake"):
        raise ValueError(f"upstream must be auto, nginx or fake, got {kind!r}")
    binary = nginx_binary() if kind != "fake" else None
    why = "asked for" if kind == "fake" else "nginx not found"
    if kind == "nginx" and binary is None:
        raise RuntimeError("nginx is not installed")
    with contextlib.ExitStack() as stack:
        up = None
        if binary:
            try:
                up = stack.enter_context(_nginx(binary))
            except RuntimeError as exc:
                if kind == "nginx":
                    raise
                why = f"nginx did not start: {exc}"
        yield up or stack.enter_context(_fake(why))


@contextlib.contextmanager
def extra_environ(count: int) -> Iterator[None]:
    """`count` dummy variables in os.environ for the duration (none: a no-op)."""
    added = {f"MODELMESH_BENCH_DUMMY_{i:03d}": f"dummy-value-{i:03d}-abcdefghijklmnopqrstuvwxyz"
             for i in range(count) if f"MODELMESH_BENCH_DUMMY_{i:03d}" not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


# -- the peers: factory(stack, base_url) -> one request, returning the answer's text ------------------

def _mesh_client(stack: contextlib.ExitStack, url: str, session: Any = None) -> Any:
    import modelmesh

    config = {
        "providers": {"local": {"connector": "openai-compatible", "config": {
            "base_url": url, "auth": {"api_key": API_KEY},
            "models": [{"id": MODEL, "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"models": [f"local/{MODEL}"], "strategy": "priority"}},
    }
    # by default the mesh builds its own connection pool, as it does for users
    return stack.enter_context(modelmesh.MeshClient(config, environ={}, session=session))


def mesh_peer(stack: contextlib.ExitStack, url: str, session: Any = None) -> Call:
    client = _mesh_client(stack, url, session)
    return lambda: client.chat.completions.create(model="chat", messages=MESSAGES).choices[0].message.content


def requests_peer(stack: contextlib.ExitStack, url: str, session: Any = None) -> Call:
    import requests

    session = stack.enter_context(session or requests.Session())
    endpoint = url + "/chat/completions"

    def call() -> str:
        r = session.post(endpoint, json={"model": MODEL, "messages": MESSAGES}, headers=HEADERS)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]

    return call


def urllib3_peer(stack: contextlib.ExitStack, url: str, maxsize: int = 1) -> Call:
    import urllib3

    pool = stack.enter_context(urllib3.PoolManager(maxsize=maxsize))
    endpoint = url + "/chat/completions"

    def call() -> str:
        r = pool.request("POST", endpoint, json={"model": MODEL, "messages": MESSAGES}, headers=HEADERS)
        if r.status != 200:
            raise RuntimeError(f"urllib3 peer got HTTP {r.status}")
        return json.loads(r.data)["choices"][0]["message"]["content"]

    return call


def openai_peer(stack: contextlib.ExitStack, url: str) -> Call:
    from openai import OpenAI

    client = stack.enter_context(OpenAI(base_url=url, api_key=API_KEY, max_retries=0))
    return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content


def requests_stream_peer(stack: contextlib.ExitStack, url: str) -> Call:
    import requests

    session = stack.enter_context(requests.Session())
    endpoint = url + "/chat/completions"

    def call() -> list[str]:
        pieces = []
        with session.post(endpoint, json={"model": MODEL, "messages": MESSAGES, "stream": True}, headers=HEADERS,
                          stream=True) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    break
                content = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if content:
                    pieces.append(content)
        return pieces

    return call


def mesh_stream_peer(stack: contextlib.ExitStack, url: str) -> Call:
    client = _mesh_client(stack, url)

    def call() -> list[str]:
        pieces = []
        for chunk in client.chat.completions.create(model="chat", messages=MESSAGES, stream=True):
            content = chunk.choices[0].delta.content if chunk.choices else None
            if content:
                pieces.append(content)
        return pieces

    return call


def _openai_missing() -> str | None:
    try:
        import openai  # noqa: F401
    except Exception as exc:  # not installed, or broken: either way that peer cannot run
        return f"openai SDK not importable ({type(exc).__name__}: {exc}): peer skipped"
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# -- timing ---------------------------------------------------------------------------------------

def _summary(latencies_ns: list[int], wall_ns: int, cpu_ns: int) -> dict[str, float]:
    n = len(latencies_ns)
    return {"n": n, "rps": n / (wall_ns / 1e9), "mean_us": wall_ns / n / 1e3,
            "median_latency_us": statistics.median(latencies_ns) / 1e3, "cpu_us": cpu_ns / n / 1e3}


def _sequential(fn: Call, n: int) -> dict[str, float]:
    latencies = [0] * n
    clock = time.perf_counter_ns
    cpu = time.process_time_ns()
    start = clock()
    for i in range(n):
        t = clock()
        fn()
        latencies[i] = clock() - t
    wall = clock() - start
    return _summary(latencies, wall, time.process_time_ns() - cpu)


def _threaded(fns: list[Call], per_thread: int) -> dict[str, float]:
    """One thread per callable (the same one shared, or one each), `per_thread` requests each."""
    barrier = threading.Barrier(len(fns) + 1)
    results: list[list[int]] = [[] for _ in fns]
    errors: list[BaseException] = []
    clock = time.perf_counter_ns

    def worker(fn: Call, out: list[int]) -> None:
        barrier.wait()
        try:
            for _ in range(per_thread):
                t = clock()
                fn()
                out.append(clock() - t)
        except BaseException as exc:  # reported after join: a failed run must not look fast
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(fn, out), name=f"bench-{k}")
            for k, (fn, out) in enumerate(zip(fns, results, strict=True))]
    for th in pool:
        th.start()
    barrier.wait()
    cpu = time.process_time_ns()
    start = clock()
    for th in pool:
        th.join()
    wall = clock() - start
    cpu = time.process_time_ns() - cpu
    if errors:
        raise RuntimeError(f"{len(errors)} benchmark thread(s) failed: {errors[0]!r}") from errors[0]
    return _summary([x for r in results for x in r], wall, cpu)


def _fresh(factory: Factory, url: str, n: int, warmup: int, extra_vars: int) -> dict[str, float]:
    """Set `extra_vars` dummy variables, then build a client, warm it and time `n` requests."""
    with extra_environ(extra_vars), contextlib.ExitStack() as stack:
        fn = factory(stack, url)
        _sequential(fn, warmup)
        return _sequential(fn, n)


def _best_of(plan: dict[str, Callable[[], dict[str, float]]], rounds: int,
             reset: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """Each round runs every entry once, in order; keeps each entry's best round (by wall time
    per request), the lowest CPU per request of all rounds and every round's req/s."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in plan}
    for _ in range(rounds):
        for name, measure in plan.items():
            reset()
            gc.collect()
            runs[name].append(measure())
    return {name: {**min(rs, key=lambda r: r["mean_us"]), "cpu_us": min(r["cpu_us"] for r in rs),
                   "rounds_rps": [round(r["rps"]) for r in rs]} for name, rs in runs.items()}


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """a over b: wall and CPU time per request (< 1: a is cheaper), and throughput (> 1: a is faster)."""
    return {"wall": a["mean_us"] / b["mean_us"], "cpu": a["cpu_us"] / b["cpu_us"], "throughput": a["rps"] / b["rps"]}


def bench_http(sequential: int = 500, threads: int = 16, per_thread: int = 75, streams: int = 200,
               env_requests: int = 300, extra_vars: int = 200, rounds: int = 3, warmup: int = 50,
               upstream_kind: str = "auto") -> dict[str, Any]:
    """Every peer against one upstream, interleaved rounds, best of `rounds`; see the module doc."""
    notes = []
    missing = _openai_missing()
    if missing:
        notes.append(missing)
    with upstream(upstream_kind) as up, contextlib.ExitStack() as stack:
        seq: dict[str, Call] = {"urllib3": urllib3_peer(stack, up.url), "requests": requests_peer(stack, up.url)}
        if not missing:
            seq["openai"] = openai_peer(stack, up.url)
        seq["mesh"] = mesh_peer(stack, up.url)
        shared_pool = urllib3_peer(stack, up.url, maxsize=threads)
        par: dict[str, list[Call]] = {
            "requests": [requests_peer(stack, up.url) for _ in range(threads)],  # one Session per thread
            "urllib3": [shared_pool] * threads,
            "mesh": [seq["mesh"]] * threads,
        }
        stream = {"requests": requests_stream_peer(stack, up.stream_url), "mesh": mesh_stream_peer(stack, up.stream_url)}

        answers = {name: fn() for name, fn in seq.items()}
        if set(answers.values()) != {REPLY}:
            raise AssertionError(f"the peers got different answers: {answers}")
        streamed = {name: fn() for name, fn in stream.items()}
        if any(pieces != list(PIECES) for pieces in streamed.values()):
            raise AssertionError(f"the streaming peers got different chunks: {streamed}")
        for fn in seq.values():
            _sequential(fn, warmup)
        for fns in par.values():
            _threaded(fns, max(2, warmup // threads))
        for fn in stream.values():
            _sequential(fn, max(1, warmup // 5))

        plan: dict[str, Callable[[], dict[str, float]]] = {}
        for name, fn in seq.items():
            plan[f"sequential/{name}"] = lambda fn=fn: _sequential(fn, sequential)
        for name, fns in par.items():
            plan[f"threaded/{name}"] = lambda fns=fns: _threaded(fns, per_thread)
        for name, fn in stream.items():
            plan[f"streaming/{name}"] = lambda fn=fn: _sequential(fn, streams)
        for name, factory in (("requests", requests_peer), ("mesh", mesh_peer)):
            for env, count in (("base", 0), ("extra", extra_vars)):
                plan[f"environment/{name}/{env}"] = (
                    lambda factory=factory, count=count: _fresh(factory, up.url, env_requests, warmup, count))
        best = _best_of(plan, rounds, up.reset)

    out: dict[str, Any] = {
        "upstream": {"name": up.name, "detail": up.detail},
        "params": {"sequential": sequential, "threads": threads, "per_thread": per_thread, "streams": streams,
                   "stream_chunks": len(PIECES), "env_requests": env_requests, "extra_vars": extra_vars,
                   "rounds": rounds, "warmup": warmup},
        "versions": {p: _version(p) for p in ("requests", "urllib3", "openai", "orjson")},
        "notes": notes,
        "sequential": {}, "threaded": {}, "streaming": {}, "environment": {"base_vars": len(os.environ)},
    }
    for key, r in best.items():
        section, _, name = key.partition("/")
        if section == "environment":
            name, _, env = name.partition("/")
            out[section].setdefault(name, {})[env] = r
        else:
            out[section][name] = r
    for name in ("requests", "mesh"):
        e = out["environment"][name]
        e["growth_us"] = e["extra"]["mean_us"] - e["base"]["mean_us"]
        e["growth_cpu_us"] = e["extra"]["cpu_us"] - e["base"]["cpu_us"]
    s, t, st = out["sequential"], out["threaded"], out["streaming"]
    out["ratios"] = {
        "sequential_mesh_requests": _ratio(s["mesh"], s["requests"]),
        "sequential_mesh_urllib3": _ratio(s["mesh"], s["urllib3"]),
        "sequential_openai_requests": _ratio(s["openai"], s["requests"]) if "openai" in s else None,
        "threaded_mesh_requests": _ratio(t["mesh"], t["requests"]),
        "threaded_mesh_urllib3": _ratio(t["mesh"], t["urllib3"]),
        "streaming_mesh_requests": _ratio(st["mesh"], st["requests"]),
    }
    return out


# -- no socket: what the mesh adds on top of requests itself --------------------------------------

def _canned_session() -> Any:
    """A requests.Session whose adapter answers every request with a prebuilt response."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    body = completion_body().encode()

    class Canned(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> requests.Response:
            r = requests.Response()
            r.status_code, r._content, r.encoding = 200, body, "utf-8"
            r.headers = CaseInsensitiveDict({"Content-Type": "application/json", "Content-Length": str(len(body)),
                                             "Server": "FakeUpstream/1", "Date": "Mon, 23 Nov 2026 10:00:00 GMT"})
            r.url, r.request = request.url, request
            return r

        def close(self) -> None:
            return None

    session = requests.Session()
    session.mount("http://", Canned())
    return session


def bench_overhead(n: int = 3000, rounds: int = 3) -> dict[str, Any]:
    """requests and the mesh with the socket taken out (both on a Session with a canned adapter):
    what the mesh adds per request on top of requests itself, free of server and network noise.
    Median us."""
    url = "http://canned.invalid/v1"
    with contextlib.ExitStack() as stack:
        fns = {"requests": requests_peer(stack, url, session=_canned_session()),
               "mesh": mesh_peer(stack, url, session=_canned_session())}
        if fns["requests"]() != fns["mesh"]():
            raise AssertionError("requests and mesh clients got different answers")
        for fn in fns.values():
            _sequential(fn, n // 10)
        best: dict[str, float] = {"requests": float("inf"), "mesh": float("inf")}
        for _ in range(rounds):
            for name, fn in fns.items():
                gc.collect()
                best[name] = min(best[name], _sequential(fn, n)["median_latency_us"])
    return {"requests_us": best["requests"], "mesh_us": best["mesh"], "added_us": best["mesh"] - best["requests"],
            "ratio": best["mesh"] / best["requests"]}
