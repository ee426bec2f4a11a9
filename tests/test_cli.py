"""The command line: `modelmesh check | explain | status | demo`, called through cli.main(argv).

Configurations are written to tmp_path; their providers point at a port nothing listens
on, which is fine because check, explain and status never send a request.
"""
from __future__ import annotations

import json
import re

import pytest

from modelmesh import cli

SECRET = "sk-cli-secret-0123456789"

GOOD = f"""
providers:
  a:
    connector: openai
    config:
      base_url: http://127.0.0.1:9/v1
      auth: {{api_key: {SECRET}}}
      models: [{{id: gpt-x, capabilities: [chat-completion]}}]
  b:
    connector: anthropic
    config:
      base_url: http://127.0.0.1:9/v1
      auth: {{api_key: {SECRET}}}
      models: [{{id: claude-x, capabilities: [chat-completion]}}]
  c:
    connector: gemini
    config:
      base_url: http://127.0.0.1:9/v1beta
      auth: {{api_key: {SECRET}}}
      models: [{{id: gemini-x, capabilities: [chat-completion]}}]
pools:
  chat:
    capability: chat-completion
    strategy: priority
    rotation:
      selection: {{model_priority: [b/claude-x, c/gemini-x, a/gpt-x]}}
"""

BAD = f"""
providers:
  a:
    connector: openai
    config:
      base_url: http://127.0.0.1:9/v1
      auth: {{api_key: {SECRET}}}
      timeout: soon
      models: [{{id: gpt-x, capabilities: [chat-completion]}}]
pools:
  chat:
    capability: chat-completion
    strategy: fastest
    rotation:
      recovery: {{cooldown: forever}}
"""


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "modelmesh.yaml"
    path.write_text(GOOD)
    return str(path)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_a_valid_file_prints_ok_and_exits_0(capsys, good):
    code, out, err = run(capsys, "check", good)
    assert code == 0 and err == ""
    assert out.startswith(f"{good}: OK")
    assert "3 provider(s): a, b, c" in out and "pools: chat" in out
    assert SECRET not in out


def test_check_an_invalid_file_lists_every_problem_with_its_path(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(capsys, "check", str(path))
    assert code == 2 and out == ""
    assert str(path) in err and "3 problems" in err
    for where in ("providers.a.config.timeout:", "pools.chat.strategy:", "pools.chat.rotation.recovery.cooldown:"):
        assert where in err
    assert '"soon"' in err and '"fastest"' in err and '"forever"' in err
    assert SECRET not in err


def test_check_reports_yaml_syntax_errors_and_missing_files(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers:\n  a: [unclosed\n")
    code, _, err = run(capsys, "check", str(broken))
    assert code == 2 and "YAML syntax error" in err and "line " in err
    code, _, err = run(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "config file not found" in err


def test_explain_shows_the_choice_and_its_fallbacks(capsys, good):
    code, out, err = run(capsys, "explain", good, "chat")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("chat -> pool 'chat': b/claude-x")
    assert lines[1:] == ["  fallback 1: c/gemini-x", "  fallback 2: a/gpt-x"]


def test_explain_a_capability_and_a_single_model(capsys, good):
    code, out, _ = run(capsys, "explain", good, "chat-completion")
    assert code == 0 and "pool 'chat'" in out  # the configured pool for that capability
    code, out, _ = run(capsys, "explain", good, "a/gpt-x")
    assert code == 0 and out.splitlines() == ["a/gpt-x -> pool 'a/gpt-x': a/gpt-x (score 0.000)"]


def test_explain_an_unknown_name_exits_2_with_a_suggestion(capsys, good):
    code, out, err = run(capsys, "explain", good, "chta")
    assert code == 2 and out == ""
    assert "'chta' is not a pool" in err and "did you mean 'chat'" in err


def test_status_json_is_machine_readable(capsys, good):
    code, out, err = run(capsys, "status", good, "--json")
    assert code == 0 and err == ""
    snap = json.loads(out)
    assert set(snap["providers"]) == {"a", "b", "c"}
    assert all(p["up"] is True and p["reason"] is None for p in snap["providers"].values())
    rows = snap["pools"]["chat"]
    assert [r["model"] for r in rows] == ["a/gpt-x", "b/claude-x", "c/gemini-x"]
    assert all(r["status"] == "active" and r["breaker"] == "closed" and r["requests"] == 0 for r in rows)
    assert SECRET not in out


def test_status_as_text(capsys, good):
    code, out, _ = run(capsys, "status", good)
    assert code == 0
    assert "provider a: up" in out and "pool chat:" in out
    assert any(line.split()[:3] == ["b/claude-x", "active", "closed"] for line in out.splitlines())


def test_status_of_an_invalid_file_exits_2(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(capsys, "status", str(path), "--json")
    assert code == 2 and out == "" and "pools.chat.strategy" in err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_demo_tells_the_whole_story(capsys):
    code, out, err = run(capsys, "demo", "--no-color")
    assert code == 0 and err == ""
    assert "\033[" not in out  # no colour codes when asked for none (and not a tty)
    served = [line for line in out.splitlines() if line.startswith("  → served by")]  # the chat requests
    assert len(served) == 8
    assert any("served by beta/claude-demo after 2 attempt(s)" in line for line in served)   # 429 failover
    assert any("served by alpha/gpt-demo after 2 attempt(s)" in line for line in served)     # same-model retry
    assert any("served by gamma/gemini-demo after 3 attempt(s)" in line for line in served)  # stream failover
    assert any("served by alpha/gpt-demo" in line for line in served)                        # back after cooldown
    assert "StreamInterruptedError" not in out
    assert any("served by gamma/gemini-demo after 2 attempt(s): 'Hello from gamma'" in line for line in served)
    assert "on standby in pool chat (rate_limited) until t+30s" in out
    assert "on standby in pool chat (retry_limit)" in out
    assert "back in pool chat (cooldown)" in out
    assert "upstream requests seen: alpha=" in out
    assert "demo-openai-compatible-key" not in out and "demo-elevenlabs-key" not in out
    # speech fails over to the ElevenLabs-style fake before the first byte; a batch ends item by item
    assert re.search(r"speech served by delta/eleven-demo after 2 attempt\(s\): \d+ bytes of audio/mpeg in \d+ pieces",
                     out)
    assert [line.split(":")[0].strip() for line in out.splitlines() if re.match(r"    q\d: ", line)] == \
        ["q1", "q2", "q3", "q4"]
    assert "q3: NotFoundError 404" in out and out.count("served by alpha/gpt-demo: 'Hello from alpha'") == 3
    assert "batch completed: {'total': 4, 'completed': 3, 'failed': 1}" in out
