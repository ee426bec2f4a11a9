"""The code in docs/concepts.md runs: the minimal shell, against a fake upstream on loopback."""
from __future__ import annotations

import pathlib
import re

import yaml

from modelmesh.testing import FakeUpstream

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_minimal_shell_in_concepts_runs(tmp_path, monkeypatch, capsys):
    shell = next(b for b in _python_blocks((DOCS / "concepts.md").read_text()) if "def run(core" in b)
    with FakeUpstream("openai", name="docs", models=["m"], text="hello from the docs") as up:
        config = {"providers": {"docs": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-docs-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.chdir(tmp_path)
        scope: dict = {}
        exec(compile(shell, "docs/concepts.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["response"]["choices"][0]["message"]["content"] == "hello from the docs"
    assert "event: request_completed" in capsys.readouterr().out


def test_the_async_mesh_client_example_in_the_guide_runs(tmp_path, monkeypatch, capsys):
    example = next(b for b in _python_blocks((DOCS / "guide.md").read_text()) if "AsyncMeshClient(config=" in b)
    with FakeUpstream("openai", name="docs", models=["m"], text="hello from the docs") as up:
        config = {"providers": {"docs": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-docs-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion", "text-embeddings"]}]}}},
            "pools": {"chat": {"capability": "chat-completion"}, "embeddings": {"capability": "text-embeddings"}}}
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.chdir(tmp_path)
        exec(compile(example, "docs/guide.md", "exec"), {"__name__": "guide"})  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert printed.count("hello from the docs") == 2 and "2 " in printed and printed.rstrip().endswith("docs")
