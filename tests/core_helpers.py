"""Helpers for driving the sans-IO core in tests: a mesh from a dict, and a scripted driver.

`drive(call, script, clock)` plays the shell: for each Attempt it looks up what the
scripted upstream for that model answers (a status, a (status, body) pair, a
(status, body, headers) triple, a TransportFailed, or a list of stream byte chunks) and
feeds it back. It records every action so tests can assert on the whole conversation.
"""
from __future__ import annotations

import json
import random
from typing import Any

from modelmesh._core._call import (
    Attempt,
    DataReceived,
    Deliver,
    Failed,
    Read,
    ResponseReceived,
    StreamEnded,
    StreamOpened,
    Succeeded,
    TransportFailed,
    Wait,
)
from modelmesh._core._config import parse_config
from modelmesh._core._mesh import MeshCore

T0 = 1_700_000_000.0


def provider(model_ids, connector="openai-compatible", **cfg):
    models = []
    for m in model_ids:
        models.append(m if isinstance(m, dict) else {"id": m, "capabilities": ["chat-completion"]})
    config = {"base_url": f"http://{connector}.test/v1", "auth": {"api_key": "sk-test-secret-123456"}, "models": models}
    config.update(cfg)
    return {"connector": connector, "config": config}


# The mechanics tests drive one fault at a time: without the default same-model retry, a fault
# scripted once is seen by the failover it is meant to test (tests of the defaults say so).
MECHANICS = {"retry": {"same_model_retries": 0}}


def make_mesh(providers: dict, pools: dict | None = None, seed: int = 0, now: float = T0, **top: Any) -> MeshCore:
    data = {"providers": providers, "routing": MECHANICS}
    if pools is not None:
        data["pools"] = pools
    data.update(top)
    cfg = parse_config(data)
    return MeshCore(cfg, rng=random.Random(seed))


def ok_body(text="hi", model="m", prompt=3, completion=2) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }).encode()


def err_body(message="boom", type_="server_error", code=None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def sse_chunks(texts, model="m", done=True) -> list[bytes]:
    out = [b'data: ' + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                                  "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]}).encode() + b"\n\n"]
    for t in texts:
        out.append(b'data: ' + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                                          "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
                                         ).encode() + b"\n\n")
    if done:
        out.append(b'data: ' + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                                          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\n")
        out.append(b"data: [DONE]\n\n")
    return out


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Stream:
    """A scripted stream answer: these byte chunks, then `end` (None = clean EOF, or a TransportFailed)."""

    def __init__(self, chunks, end=None) -> None:
        self.chunks = list(chunks)
        self.end = end


def drive(call, script: dict, clock: Clock | None = None, latency: float = 0.1, max_steps: int = 500):
    """Run `call` to the end. `script` maps "provider/model" to a list of answers (consumed in
    order; the last one repeats). Returns (final action, list of every action seen)."""
    clock = clock or Clock()
    seen = []
    stream_state: dict[str, Any] = {}
    queues = {k: list(v) for k, v in script.items()}
    for _ in range(max_steps):
        action = call.next_action(clock())
        seen.append(action)
        if isinstance(action, (Succeeded, Failed)):
            return action, seen
        if isinstance(action, Wait):
            clock.t += action.seconds
            continue
        if isinstance(action, Deliver):
            continue
        if isinstance(action, Read):
            st = stream_state["current"]
            if st.chunks:
                call.feed(DataReceived(data=st.chunks.pop(0)), clock())
            else:
                call.feed(st.end or StreamEnded(), clock())
            continue
        assert isinstance(action, Attempt), action
        q = queues[action.ref]
        answer = q.pop(0) if len(q) > 1 else q[0]
        clock.t += latency
        if isinstance(answer, TransportFailed):
            call.feed(answer, clock())
        elif isinstance(answer, Stream):
            stream_state["current"] = Stream(answer.chunks, answer.end)
            call.feed(StreamOpened(headers={}), clock())
        elif isinstance(answer, int):
            body = ok_body(model=action.target.model) if answer == 200 else err_body()
            call.feed(ResponseReceived(status=answer, headers={}, body=body), clock())
        else:
            status, body, *rest = answer
            call.feed(ResponseReceived(status=status, headers=rest[0] if rest else {}, body=body), clock())
    raise AssertionError("call did not finish")


def health_of(mesh: MeshCore, ref: str, pool: str = "chat"):
    """The health record of `ref` in `pool`."""
    return mesh.health.state(pool, ref)


def provider_up(mesh: MeshCore, pid: str, now: float) -> bool:
    return mesh.snapshot(now)["providers"][pid]["up"]


def member(mesh: MeshCore, ref: str, now: float, pool: str = "chat") -> dict:
    """`ref`'s row of the status view at `now`."""
    return next(r for r in mesh.snapshot(now)["pools"][pool] if r["model"] == ref)
