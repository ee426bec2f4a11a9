"""`modelmesh demo`: the mesh at work against three fake upstreams on loopback.

Three providers speak three real wire formats (OpenAI, Anthropic Messages, Gemini) from
`modelmesh.testing` servers on 127.0.0.1. They are scripted to fail in the ways real
providers do: a 429 with Retry-After, 500s until the model goes on standby, an overload
error before a stream's first chunk, and a stream cut after content was delivered. Then
speech: a fourth fake speaks ElevenLabs' wire format, and audio fails over to it from
alpha's text-to-speech model before the first byte; and a small batch whose items end
one by one, answered or failed with their reason. Time is simulated (a FakeClock), so a
30-second cooldown passes without waiting.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["run_demo", "demo_config"]


def demo_config(alpha_url: str, beta_url: str, gamma_url: str, voice_url: str | None = None) -> dict[str, Any]:
    """The demo's mesh; with `voice_url` (an ElevenLabs-style fake) also a `speech` pool:
    alpha's text-to-speech model first, then the voice provider's."""
    def provider(connector: str, url: str, model: str, price: tuple[float, float]) -> dict[str, Any]:
        return {"connector": connector, "config": {
            "base_url": url, "auth": {"method": "api_key", "api_key": f"demo-{connector}-key"},
            "models": [{"id": model, "capabilities": ["chat-completion"], "context_window": 128000,
                        "pricing": {"input_per_1m": price[0], "output_per_1m": price[1]}}]}}

    providers = {
        "alpha": provider("openai-compatible", alpha_url, "gpt-demo", (0.15, 0.60)),
        "beta": provider("anthropic", beta_url, "claude-demo", (0.80, 4.00)),
        "gamma": provider("gemini", gamma_url, "gemini-demo", (0.10, 0.40)),
    }
    pools: dict[str, Any] = {}
    if voice_url is not None:
        providers["alpha"]["config"]["models"].append({"id": "tts-demo", "capabilities": ["text-to-speech"]})
        providers["delta"] = {"connector": "elevenlabs", "config": {
            "base_url": voice_url, "auth": {"api_key": "demo-elevenlabs-key"},
            "models": [{"id": "eleven-demo", "capabilities": ["text-to-speech"]}]}}
        pools["speech"] = {"models": ["alpha/tts-demo", "delta/eleven-demo"], "strategy": "priority",
                           "rotation": {"deactivation": {"retry_limit": 1},
                                        "selection": {"model_priority": ["alpha/tts-demo", "delta/eleven-demo"]}}}
    return {
        "providers": providers,
        "pools": {**pools, "chat": {
            "capability": "chat-completion",
            "strategy": "priority",
            "rotation": {
                "deactivation": {"retry_limit": 2},
                "recovery": {"cooldown": "60s"},
                "selection": {"model_priority": ["alpha/gpt-demo", "beta/claude-demo", "gamma/gemini-demo"]},
            },
        }},
    }


class _Printer:
    def __init__(self, out: TextIO, clock: Any, color: bool) -> None:
        self.out, self.clock, self.color = out, clock, color
        self.t0 = clock()

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def event(self, ev: Any) -> None:
        kind = ev.type
        when = lambda t: "" if t is None else f" until t+{t - self.t0:.0f}s"  # noqa: E731
        if kind == "attempt_failed":
            status = f" {ev.status}" if ev.status else ""
            self.line(self.paint(f"    ✗ {ev.provider}/{ev.model}: {ev.kind}{status} {ev.message[:60]}", "33"))
        elif kind == "model_deactivated":
            self.line(self.paint(f"    ↓ {ev.model} on standby in pool {ev.pool} ({ev.reason}){when(ev.until)}", "31"))
        elif kind == "model_recovered":
            self.line(self.paint(f"    ↑ {ev.model} back in pool {ev.pool} ({ev.how})", "32"))
        elif kind in ("provider_deactivated", "provider_recovered"):
            self.line(self.paint(f"    ! provider {ev.provider}: {kind.replace('_', ' ')}", "35"))
        elif kind == "retry":
            self.line(self.paint(f"    … waiting {ev.delay:.2f}s: {ev.reason}", "2"))

    def status(self, client: Any) -> None:
        snap = client.status()
        for row in snap["pools"]["chat"]:
            state = row["status"] if row["status"] == "active" else f"standby ({row['reason']})"
            self.line(f"      {row['model']:<20} {state:<28} requests={row['requests']} failures={row['failures']}")


def run_demo(out: TextIO = sys.stdout, color: bool = False) -> int:
    from ._response import ChatCompletion
    from .client import ChatStream, MeshClient
    from .errors import StreamInterruptedError
    from .testing import CutStream, Error, FakeClock, FakeUpstream, StreamErrorEvent

    clock = FakeClock()
    p = _Printer(out, clock, color)
    with FakeUpstream("openai", name="alpha", models=["gpt-demo", "tts-demo"]) as alpha, \
            FakeUpstream("anthropic", name="beta", models=["claude-demo"]) as beta, \
            FakeUpstream("gemini", name="gamma", models=["gemini-demo"]) as gamma, \
            FakeUpstream("elevenlabs", name="delta", models=["eleven-demo"]) as delta:
        config = demo_config(alpha.url, beta.url, gamma.url, delta.url)
        with MeshClient(config, clock=clock, sleep=clock.sleep, seed=7, on_event=p.event) as client:
            p.line(p.paint("ModelMesh Lite demo: pool 'chat' = alpha/gpt-demo (OpenAI), beta/claude-demo (Anthropic), "
                           "gamma/gemini-demo (Gemini), by priority", "1"))
            p.line(f"  fake upstreams on loopback: {alpha.url}  {beta.url}  {gamma.url}")
            n = 0

            def ask(note: str, stream: bool = False) -> None:
                nonlocal n
                n += 1
                p.line()
                p.line(p.paint(f"[t+{clock() - p.t0:.0f}s] request {n}: {note}", "1"))
                messages = [{"role": "user", "content": f"Say hello (request {n})"}]
                try:
                    if stream:
                        s = client.chat.completions.create(model="chat", messages=messages, stream=True)
                        assert isinstance(s, ChatStream)
                        text = []
                        for chunk in s:
                            if chunk.choices and chunk.choices[0].delta.content:
                                text.append(chunk.choices[0].delta.content)
                                p.line(p.paint(f"    ▸ chunk {chunk.choices[0].delta.content!r}", "36"))
                        served = s.mesh
                        reply = "".join(text)
                    else:
                        r = client.chat.completions.create(model="chat", messages=messages)
                        assert isinstance(r, ChatCompletion)
                        served, reply = r.mesh, r.choices[0].message.content
                    assert served is not None  # set on every answer that got through
                    p.line(p.paint(f"  → served by {served.provider}/{served.model} after {len(served.attempts)} attempt(s): "
                                   f"{reply!r} (${served.cost:.6f})", "32"))
                except StreamInterruptedError as exc:
                    p.line(p.paint(f"  → StreamInterruptedError: {exc.reason}; partial text kept: {exc.partial_text!r}", "31"))
                p.status(client)

            alpha.script(Error(429, retry_after=30))
            ask("alpha answers 429 with Retry-After: 30, too long to wait for: beta answers instead")
            ask("alpha is cooling down, so it is skipped without being called")
            clock.advance(31)
            ask("31 simulated seconds later alpha's cooldown is over; a trial request goes to it")
            alpha.script(Error(500))
            ask("alpha fails once with 500: a short backoff, then alpha again")
            alpha.script(Error(500), Error(500))
            ask("alpha fails twice: retry_limit=2 puts it on standby, briefly at first")
            beta.script(StreamErrorEvent(after_chunks=0, code="overloaded_error"),
                        StreamErrorEvent(after_chunks=0, code="overloaded_error"))
            ask("streaming: beta is overloaded twice before any content; the stream moves to gamma unseen",
                stream=True)
            clock.advance(6)
            beta.script(CutStream(after_chunks=2))
            ask("streaming: 6 s later beta is back on trial; its connection is cut after two chunks, and the "
                "answer goes on from gamma, whose restart is checked against what you already have", stream=True)
            clock.advance(61)
            ask("61 simulated seconds later alpha is back")
            _speech(p, client, alpha)
            _batch(p, client)
            p.line()
            p.line(f"upstream requests seen: alpha={len(alpha.requests)} beta={len(beta.requests)} "
                   f"gamma={len(gamma.requests)} delta={len(delta.requests)}")
    return 0


def _speech(p: _Printer, client: Any, alpha: Any) -> None:
    from .testing import Error

    p.line()
    p.line(p.paint(f"[t+{p.clock() - p.t0:.0f}s] speech: alpha's text-to-speech model answers 503; the audio comes "
                   "from delta (ElevenLabs' wire format), streamed as it is made", "1"))
    alpha.script(Error(503))
    with client.audio.speech.with_streaming_response.create(model="speech", input="Hello from the mesh",
                                                            voice="demo-voice") as r:
        pieces = [len(piece) for piece in r.iter_bytes()]
    served = r.mesh
    p.line(p.paint(f"  → speech served by {served.provider}/{served.model} after {len(served.attempts)} attempt(s): "
                   f"{sum(pieces)} bytes of {r.content_type} in {len(pieces)} pieces", "32"))


def _batch(p: _Printer, client: Any) -> None:
    p.line()
    p.line(p.paint(f"[t+{p.clock() - p.t0:.0f}s] a batch of 4 requests, 2 at a time, each with failover; one names "
                   "a pool that does not exist and fails with its reason, the batch goes on", "1"))
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "chat" if i != 3 else "no-such-pool",
                       "messages": [{"role": "user", "content": f"Batch question {i}"}]}} for i in range(1, 5)]
    job = client.batches.create(input=lines, max_concurrency=2).wait(timeout=10)
    for r in job.results:
        if r.ok:
            p.line(p.paint(f"    {r.custom_id}: served by {r.provider}/{r.model}: {r.content!r}", "32"))
        else:
            p.line(p.paint(f"    {r.custom_id}: {r.error.error_class} {r.error.status}: {r.error.message[:70]}", "31"))
    p.line(f"  → batch {job.status}: {job.request_counts}")
