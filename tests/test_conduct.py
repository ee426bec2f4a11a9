"""Failover conduct with nothing configured but a pool: what a careful client does with each fault.

End to end over loopback against the OpenAI, Anthropic and Gemini fakes, with a fake clock:
each test asserts what the caller got and what the upstreams saw (how many attempts, and
how far apart). Core-level tests cover cooldown growth and the caps.
"""
from __future__ import annotations

import contextlib
import json

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._core._protocol import DataReceived, StreamEnded, StreamOpened, Succeeded
from modelmesh.testing import Drop, Error, FakeClock, FakeUpstream, SlowFirstByte

from core_helpers import T0, Clock, drive, health_of, make_mesh, member, provider

STYLES = ["openai", "anthropic", "gemini"]
KEY = "sk-conduct-0123456789"
MSG = [{"role": "user", "content": "hello"}]


def _prov(style, url, model):
    return {"connector": style, "config": {"base_url": url, "auth": {"api_key": KEY}, "timeout": "1s",
                                           "stream_first_chunk_timeout": "1s",
                                           "models": [{"id": model, "capabilities": ["chat-completion"]}]}}


@pytest.fixture(params=STYLES)
def pair(request):
    """A primary of each wire format and an OpenAI fallback, in a priority pool with defaults."""
    style = request.param
    with FakeUpstream(style, name="primary", models=["p"]) as primary, \
            FakeUpstream("openai", name="fallback", models=["f"]) as fallback:
        config = {"providers": {"pri": _prov(style, primary.url, "p"), "fb": _prov("openai", fallback.url, "f")},
                  "pools": {"chat": {"models": ["pri/p", "fb/f"], "strategy": "priority",
                                     "rotation": {"selection": {"model_priority": ["pri/p", "fb/f"]}}}}}
        clock = FakeClock()
        sleeps: list[float] = []

        def sleep(seconds):
            sleeps.append(seconds)
            clock.sleep(seconds)

        with modelmesh.MeshClient(config, clock=clock, sleep=sleep, environ={}) as client:
            yield client, clock, primary, fallback, sleeps


def _ask(client, stream=False):
    if stream:
        s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        return text, s.mesh
    r = client.chat.completions.create(model="chat", messages=MSG)
    return r.choices[0].message.content, r.mesh


@pytest.mark.parametrize("stream", [False, True])
def test_a_transient_500_is_retried_once_on_the_same_model_after_a_short_backoff(pair, stream):
    client, clock, primary, fallback, sleeps = pair
    primary.script(Error(500))
    text, served = _ask(client, stream)
    assert served.provider == "pri" and [a.outcome for a in served.attempts] == ["server_error", "ok"]
    assert text and len(fallback.requests) == 0
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # jittered, never a tight loop


def test_a_reset_before_headers_is_retried_then_fails_over(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(Drop, Drop)
    _, served = _ask(client)
    assert served.provider == "fb" and [a.outcome for a in served.attempts] == ["connection", "connection", "ok"]
    assert len(primary.requests) == 2 and sleeps and sleeps[0] > 0


def test_a_short_retry_after_is_waited_out_on_the_preferred_model(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(Error(429, retry_after=2))
    _, served = _ask(client)
    assert served.provider == "pri" and len(fallback.requests) == 0
    assert sleeps == [pytest.approx(2.0)]


def test_a_long_retry_after_fails_over_and_the_standby_is_capped(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(Error(429, retry_after=31_536_000))  # a year
    _, served = _ask(client)
    assert served.provider == "fb" and sleeps == []
    row = next(r for r in client.status()["pools"]["chat"] if r["model"] == "pri/p")
    assert row["status"] == "standby" and row["until"] == pytest.approx(clock() + 300, abs=1)


def test_a_persistent_429_without_retry_after_backs_off_then_fails_over(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(Error(429, message="Too many requests"), Error(429, message="Too many requests"))
    _, served = _ask(client)
    assert served.provider == "fb" and len(primary.requests) == 2
    assert len(sleeps) == 1 and sleeps[0] >= 0.25


def test_a_timeout_is_not_retried_on_the_same_model(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(SlowFirstByte(1.5))
    _, served = _ask(client)
    assert served.provider == "fb" and [a.outcome for a in served.attempts] == ["timeout", "ok"]
    assert len(primary.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_content_filter_refusal_is_the_callers_answer_not_a_failover(pair, stream):
    client, clock, primary, fallback, sleeps = pair
    if primary.style != "openai":
        pytest.skip("Anthropic has no content-filter error status; Gemini's comes in a 200 body")
    primary.script(Error(400, code="content_policy_violation", message="The prompt was flagged"))
    with pytest.raises(E.ContentFilteredError, match="flagged") as info:
        _ask(client, stream)
    assert len(info.value.attempts) == 1 and len(fallback.requests) == 0


def test_never_more_than_two_attempts_to_a_sick_model_within_one_and_a_half_seconds(pair):
    client, clock, primary, fallback, sleeps = pair
    primary.script(*[Error(503)] * 20)
    for _ in range(5):
        _, served = _ask(client)
        assert served.provider == "fb"
        clock.advance(0.3)
    assert len(primary.requests) == 2  # retried once, then on standby for the rest of the window
    assert sleeps[0] >= 0.25  # and the retry came after a backoff


def test_a_pool_of_eight_with_seven_broken_answers_its_first_request():
    faults = [Error(500), Error(503), Drop, Error(502), Error(429, message="slow down"),
              Error(529, code="overloaded_error"), Error(504)]
    with contextlib.ExitStack() as stack:
        ups = [stack.enter_context(FakeUpstream("openai", name=f"u{i}", models=[f"m{i}"])) for i in range(8)]
        for up, fault in zip(ups[:7], faults, strict=True):  # the eighth is healthy
            up.script(fault, fault)
        order = [f"p{i}/m{i}" for i in range(8)]
        config = {"providers": {f"p{i}": _prov("openai", up.url, f"m{i}") for i, up in enumerate(ups)},
                  "pools": {"chat": {"models": order, "strategy": "priority",
                                     "rotation": {"selection": {"model_priority": order}}}}}
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}) as client:
            _, served = _ask(client)
        assert served.provider == "p7" and len(served.attempts) == 15  # seven twice, then the eighth


# -- core level: a stream's end, cooldown growth -------------------------------------------------

def _chunk(delta, finish=None, usage=None):
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_a_stream_with_its_finish_reason_but_no_done_marker_is_whole():
    mesh = make_mesh({"a": provider(["m1"])}, {"chat": {"models": ["a/m1"]}})
    call = mesh.start("chat", {"messages": MSG}, model="chat", stream=True, now=T0)
    call.next_action(T0)
    call.feed(StreamOpened(headers={}), T0)
    for data in (_chunk({"role": "assistant", "content": "Hi"}), _chunk({}, finish="stop"),
                 b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
                 b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n'):
        call.feed(DataReceived(data=data), T0)
    call.feed(StreamEnded(), T0)
    actions = [call.next_action(T0) for _ in range(3)]
    assert isinstance(actions[-1], Succeeded)


def test_cooldowns_start_short_and_double_for_a_model_that_fails_again_soon():
    mesh = make_mesh({"a": provider(["m1"]), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                               "rotation": {"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "30s"},
                                            "selection": {"model_priority": ["a/m1"]}}}})
    clock = Clock()
    lengths = []
    for _ in range(5):
        call = mesh.start("chat", {"messages": MSG}, model="chat", now=clock())
        final, _ = drive(call, {"a/m1": [500], "b/m2": [200]}, clock, latency=0)
        assert final.provider == "b"
        row = member(mesh, "a/m1", clock())
        lengths.append(round(row["until"] - clock()))
        clock.t = row["until"]  # its trial comes (and fails) as soon as it may
    assert lengths == [5, 10, 20, 30, 30]
    clock.t += 120  # healthy for a long while: the next standby is short again
    health_of(mesh, "a/m1").breaker.reset(clock())
    call = mesh.start("chat", {"messages": MSG}, model="chat", now=clock())
    drive(call, {"a/m1": [500], "b/m2": [200]}, clock, latency=0)
    assert round(member(mesh, "a/m1", clock())["until"] - clock()) == 5
