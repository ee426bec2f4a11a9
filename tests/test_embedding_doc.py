"""The shell in docs/embedding.md runs as written: its two code blocks are taken from the page
and executed against loopback fakes (modelmesh.testing), with failover (the first upstream
answers 500, the second serves), streams (and a stream that fails over before its first
chunk), an early exit from a stream, and the public module it imports from."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time

import pytest
import yaml

import modelmesh
from modelmesh.core import Failed
from modelmesh.testing import CutStream, Error, FakeUpstream, SlowStream

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
KEYS = {"alpha": "sk-embed-alpha-0123456789", "beta": "sk-embed-beta-0123456789"}


def blocks() -> list[str]:
    found = re.findall(r"```python\n(.*?)```", (DOCS / "embedding.md").read_text(), flags=re.S)
    assert len(found) == 2, "docs/embedding.md: the shell, then its use"
    return found


def write_config(tmp_path, *ups: FakeUpstream) -> None:
    providers = {up.name: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": KEYS[up.name]}, "timeout": "2s",
        "models": [{"id": "gpt-x", "capabilities": ["chat-completion"]}]}} for up in ups}
    order = [f"{up.name}/gpt-x" for up in ups]
    pools = {"chat": {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}}
    config = {"providers": providers, "pools": pools, "routing": {"retry": {"same_model_retries": 0}}}
    (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def two(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a, \
            FakeUpstream("openai", name="beta", models=["gpt-x"]) as b:
        write_config(tmp_path, a, b)
        yield a, b


def run_page() -> dict:
    shell, use = blocks()
    scope: dict = {"__name__": "embedding_doc"}
    exec(compile(shell, "docs/embedding.md (shell)", "exec"), scope)  # noqa: S102 - our own documentation
    exec(compile(use, "docs/embedding.md (use)", "exec"), scope)  # noqa: S102
    return scope


def chats(up: FakeUpstream) -> list:
    return [r for r in up.requests if r.path.endswith("/chat/completions")]


def test_the_page_runs_a_request_and_a_stream(two, capsys):
    a, b = two
    scope = run_page()
    out = capsys.readouterr().out.splitlines()
    assert scope["answer"]["choices"][0]["message"]["content"] == "Hello from alpha"
    assert scope["text"] == "Hello from alpha" and out.count("Hello from alpha") == 2
    assert a.requests[-1].json["stream"] is True and a.requests[-1].headers["authorization"] == f"Bearer {KEYS['alpha']}"
    assert chats(b) == []


def test_a_500_from_the_first_upstream_fails_over_to_the_second(two, capsys):
    a, b = two
    a.script(Error(500))
    scope = run_page()
    assert scope["answer"]["choices"][0]["message"]["content"] == "Hello from beta"
    events = capsys.readouterr().out
    assert "event: attempt_failed" in events and events.index("attempt_failed") < events.index("Hello from beta")
    assert len(chats(a)) == 2 and len(chats(b)) == 1  # alpha failed, beta answered; the stream went to alpha
    assert scope["text"] == "Hello from alpha"


def test_a_stream_cut_before_its_first_chunk_fails_over(two):
    a, b = two
    scope = run_page()
    a.script(CutStream(after_chunks=0))
    chunks = list(scope["stream"](scope["built"].core, scope["hi"], "chat"))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello from beta"
    assert chats(b)[-1].json["stream"] is True


def test_every_upstream_failing_raises_the_mesh_error_naming_each_attempt(two):
    a, b = two
    scope = run_page()
    a.script(Error(503))
    b.script(Error(503))
    with pytest.raises(modelmesh.InternalServerError) as info:
        scope["complete"](scope["built"].core, "chat", scope["hi"], "chat")
    assert info.value.status_code == 503 and [x.provider for x in info.value.attempts] == ["alpha", "beta"]
    assert KEYS["alpha"] not in str(info.value) and KEYS["beta"] not in str(info.value)


def test_a_stream_cut_after_content_continues_on_the_next_model_without_repeating(two):
    a, b = two
    scope = run_page()
    a.script(CutStream(after_chunks=2))
    chunks = list(scope["stream"](scope["built"].core, scope["hi"], "chat"))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello from beta"
    assert len(chats(b)) == 1


def test_leaving_a_stream_early_cancels_the_call_without_blaming_the_model(two):
    a, b = two
    scope = run_page()
    core = scope["built"].core
    a.script(SlowStream(chunk_delay=0.05))
    call = core.start("chat", dict(scope["hi"]), model="chat", stream=True, now=time.time())
    chunks = scope["drive"](call)
    assert next(chunks)["choices"][0]["delta"]
    chunks.close()  # what leaving a `for` loop over stream(...) does
    end = call.next_action(time.time())
    assert isinstance(end, Failed) and "cancelled by the caller" in str(end.error)
    assert [e.type for e in call.drain_events() if e.type == "attempt_failed"] == []
    assert core.route("chat", now=time.time()).provider_id == "alpha"
    again = scope["complete"](core, "chat", scope["hi"], "chat")
    assert again["choices"][0]["message"]["content"] == "Hello from alpha"


def test_the_public_core_module_loads_no_http_library_and_import_modelmesh_does_not_load_it():
    code = ("import sys, modelmesh; assert 'modelmesh.core' not in sys.modules; import modelmesh.core; "
            "print(sorted(m for m in ('requests', 'urllib3', 'httpx', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_public_core_module_re_exports_the_cores_own_classes():
    import modelmesh.core as core
    from modelmesh._core import _protocol
    from modelmesh._core._mesh import MeshCore

    assert core.MeshCore is MeshCore and core.Attempt is _protocol.Attempt and core.Cancelled is _protocol.Cancelled
    assert all(hasattr(core, name) for name in core.__all__)
