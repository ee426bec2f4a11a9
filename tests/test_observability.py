"""Observability sinks from configuration: console, JSON Lines file, filters; unbuilt backends refuse.

The webhook, callback and custom sinks, logging, statistics and tracing: test_observability_sinks.py."""
from __future__ import annotations

import json

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.testing import Error, FakeClock, FakeUpstream


def cfg(url, **top):
    data = {"providers": {
        "a": {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": "sk-obs-secret-0123456789"},
                                              "models": ["m1"]}},
        "b": {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": "sk-obs-secret-0123456789"},
                                              "models": ["m2"]}}},
        "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}}}
    data.update(top)
    return data


def test_file_sink_writes_filtered_json_lines_without_secrets(tmp_path):
    log = tmp_path / "events.jsonl"
    with FakeUpstream("openai", models=["m1", "m2"]) as up:
        up.script(Error(429, retry_after=30, message="key sk-obs-secret-0123456789 is rate limited"))
        clock = FakeClock()
        obs = {"connectors": [{"connector": "file", "config": {"path": str(log)}}],
               "events": {"filter": ["deactivation", "errors"]}}
        with modelmesh.MeshClient(cfg(up.url, observability=obs), clock=clock, sleep=clock.sleep, environ={}) as client:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["attempt_failed", "model_deactivated"]
    assert lines[1]["model"] == "a/m1" and lines[1]["reason"] == "rate_limited"
    assert "sk-obs-secret" not in log.read_text()


def test_console_sink_prints_one_line_per_event(capsys):
    with FakeUpstream("openai", models=["m1", "m2"]) as up:
        clock = FakeClock()
        with modelmesh.MeshClient(cfg(up.url, observability={"connector": "console"}), clock=clock, environ={}) as client:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    err = capsys.readouterr().err.splitlines()
    assert any("request_routed" in line and "provider=a" in line for line in err)
    assert any("request_completed" in line for line in err)


@pytest.mark.parametrize("top,words", [
    ({"storage": {"connector": "mypkg.store:Custom"}}, "mypkg.store:Custom"),
])
def test_backends_not_built_yet_are_refused_not_ignored(top, words):
    with pytest.raises(E.ConfigurationError, match=words):
        modelmesh.MeshClient(cfg("http://127.0.0.1:9/v1", **top), environ={})


