"""Stream timeouts end to end: `stream_first_chunk_timeout` bounds the response and its first
chunk, `stream_idle_timeout` each gap between later chunks; the two are set apart so each
test passes only if the shell applies the right one at the right read. Real loopback
servers with real delays of a few tenths of a second: the whole file takes about 2s.
"""
from __future__ import annotations

import time

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.testing import FakeClock, FakeUpstream, Reply, SlowFirstByte, SlowStream

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def up():
    with FakeUpstream("openai", name="a", models=["m"]) as a, FakeUpstream("openai", name="b", models=["m"]) as b:
        yield a, b


def client(ups, *, first_chunk, idle, **pool):
    a, b = ups

    def prov(u):
        return {"connector": "openai", "config": {
            "base_url": u.url, "auth": {"api_key": "sk-timeouts-0123456789"}, "timeout": "2s",
            "stream_first_chunk_timeout": first_chunk, "stream_idle_timeout": idle,
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}

    clock = FakeClock()
    order = ["a/m", "b/m"]
    config = {"providers": {"a": prov(a), "b": prov(b)}, "pools": {"chat": {
        "models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}, **pool}}}
    return modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={})


def text_of(stream):
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_slow_first_chunk_waits_for_the_first_chunk_timeout_not_the_idle_one(up):
    a, b = up
    a.script(SlowFirstByte(0.3, then=Reply(text="one two")))
    with client(up, first_chunk="1s", idle="100ms") as c:
        s = c.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert text_of(s) == "one two" and s.mesh.provider == "a"
    assert len(b.requests) == 0


def test_gaps_after_the_first_chunk_wait_for_the_idle_timeout_not_the_first_chunk_one(up):
    a, b = up
    a.script(SlowStream(chunk_delay=0.25, text="one two"))  # 0.25s gaps: over first_chunk, under idle
    with client(up, first_chunk="150ms", idle="1s") as c:
        s = c.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert text_of(s) == "one two" and s.mesh.provider == "a"
    assert len(b.requests) == 0


def test_a_stall_after_content_is_a_timeout_and_interrupts_the_stream(up):
    a, b = up
    a.script(SlowStream(chunk_delay=0.5, text="one two three"))
    with client(up, first_chunk="1s", idle="200ms", stream_resume=False) as c:
        s = c.chat.completions.create(model="chat", messages=MSG, stream=True)
        started = time.perf_counter()
        with pytest.raises(E.StreamInterruptedError) as info:
            text_of(s)
        assert time.perf_counter() - started < 0.45  # the idle timeout fired, not the 0.5s gap's end
    assert info.value.partial_text == "one"
    assert [r.outcome for r in info.value.attempts] == ["timeout"]
    assert len(b.requests) == 0  # with recovery off, delivered content is never continued elsewhere


def test_a_stall_after_content_is_recovered_by_a_verified_restart(up):
    a, b = up
    a.script(SlowStream(chunk_delay=0.5, text="one two three"))
    b.script(SlowStream(chunk_delay=0.0, text="one two three"))
    with client(up, first_chunk="1s", idle="200ms") as c:
        s = c.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert text_of(s) == "one two three"  # "one" from a, then " two three" from b's restart
        assert [r.outcome for r in s.mesh.attempts] == ["timeout", "ok"]


def test_a_connection_reused_after_a_stream_gets_its_own_read_timeout_back(up):
    a, _ = up
    a.script(SlowStream(chunk_delay=0.05, text="one two"), Reply(delay=0.3))
    with client(up, first_chunk="1s", idle="150ms") as c:
        assert text_of(c.chat.completions.create(model="chat", messages=MSG, stream=True)) == "one two"
        r = c.chat.completions.create(model="chat", messages=MSG)  # read timeout 2s, same keep-alive connection
        assert r.mesh.provider == "a"
    assert a.requests[0].peer == a.requests[1].peer


def test_without_a_reachable_socket_a_long_gap_is_still_reported_as_a_timeout(up, monkeypatch):
    # a session whose adapter hides the socket (MeshClient(session=...)): the shell cannot cut
    # the read short, but flags the gap once the read returns
    from modelmesh.transports import sync

    monkeypatch.setattr(sync, "_set_read_timeout", lambda response, seconds: False)
    a, b = up
    a.script(SlowStream(chunk_delay=0.4, text="one two three"))
    with client(up, first_chunk="1s", idle="150ms") as c:
        s = c.chat.completions.create(model="chat", messages=MSG, stream=True)
        with pytest.raises(E.StreamInterruptedError) as info:
            text_of(s)
    assert info.value.partial_text == "one"
    assert [r.outcome for r in info.value.attempts] == ["timeout"]
