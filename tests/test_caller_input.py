"""Careless callers: their mistakes end their own request, clearly, and no model pays for them."""
from __future__ import annotations

import math
import re

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._core._protocol import Attempt, Cancelled, Failed, TransportFailed
from modelmesh._core._types import ErrorKind
from modelmesh.testing import FakeUpstream, SlowFirstByte

from core_helpers import T0, Clock, drive, make_mesh, member, provider

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra, where", [
    ({"temperature": math.nan}, "temperature"),
    ({"top_p": math.inf}, "top_p"),
    ({"metadata": {"a": [1, {"b": -math.inf}]}}, "metadata.a[1].b"),
    ({"stop": {"x"}}, "stop"),
    ({"logit_bias": {1: 5}}, "logit_bias"),
])
def test_a_value_that_is_not_json_is_a_bad_request_before_anything_is_sent(extra, where):
    with FakeUpstream("openai", name="a", models=["m"]) as up:
        config = {"providers": {"a": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-input-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
        with modelmesh.MeshClient(config, environ={}) as client:
            for _ in range(3):
                with pytest.raises(E.BadRequestError, match=re.escape(f"'{where}'")):
                    client.chat.completions.create(model="a/m", messages=MSG, **extra)
            assert up.requests == []
            assert client.chat.completions.create(model="a/m", messages=MSG).choices[0].message.content
            row = client.status()["pools"]["a/m"][0]
            assert row["status"] == "active" and row["failures"] == 0 and row["requests"] == 1


def test_a_short_timeout_chosen_by_the_caller_does_not_count_against_the_model():
    with FakeUpstream("openai", name="a", models=["m"]) as up:
        config = {"providers": {"a": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-input-0123456789"}, "timeout": "5s",
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
        up.always(SlowFirstByte(0.5))
        with modelmesh.MeshClient(config, environ={}) as client:
            for _ in range(3):
                with pytest.raises(E.APITimeoutError, match="ran out of its time"):
                    client.chat.completions.create(model="a/m", messages=MSG, timeout=0.2)
            row = client.status()["pools"]["a/m"][0]
            assert row["status"] == "active" and row["failures"] == 0


def test_a_trial_nobody_finishes_lapses_and_the_error_says_when():
    mesh = make_mesh({"a": provider(["m1"], timeout="10s", stream_total_timeout="20s", connect_timeout="1s")},
                     {"chat": {"models": ["a/m1"], "rotation": {"deactivation": {"retry_limit": 1},
                                                                "recovery": {"cooldown": "5s"}}}})
    drive(mesh.start("chat", {"messages": MSG}, model="chat", now=T0), {"a/m1": [500]}, Clock(), latency=0)
    later = T0 + 6  # the cooldown is over: one trial may go
    held = mesh.start("chat", {"messages": MSG}, model="chat", stream=True, now=later)
    assert isinstance(held.next_action(later), Attempt)  # ...and is never finished
    blocked = mesh.start("chat", {"messages": MSG}, model="chat", now=later + 1)
    final = blocked.next_action(later + 1)
    assert isinstance(final, Failed) and "recovers in 20.0s" in str(final.error)  # 20s stream + 1s connect - 1s
    assert member(mesh, "a/m1", later + 21)["status"] == "active"  # lapsed
    final, _ = drive(mesh.start("chat", {"messages": MSG}, model="chat", now=later + 21), {"a/m1": [200]},
                     Clock(later + 21))
    assert final.provider == "a"
    held.feed(Cancelled(), later + 30)  # the straggler ends: nothing breaks


def test_a_timeout_at_the_requests_deadline_is_no_verdict_on_the_model():
    mesh = make_mesh({"a": provider(["m1"], timeout="30s")}, {"chat": {"models": ["a/m1"], "retry": {"deadline": "10s"}}})
    call = mesh.start("chat", {"messages": MSG}, model="chat", now=T0)
    attempt = call.next_action(T0)
    assert attempt.read_timeout == pytest.approx(10)
    call.feed(TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout"), T0 + 10)
    final = call.next_action(T0 + 10)
    assert isinstance(final.error, E.APITimeoutError)
    assert member(mesh, "a/m1", T0 + 10)["failures"] == 0
