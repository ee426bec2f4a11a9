"""The code of the guide's section on the official SDK over the mesh runs, block by block in one
namespace, against a fake upstream on loopback; the compatibility page names only what exists."""
from __future__ import annotations

import pathlib
import re

import yaml

from modelmesh.testing import Error, FakeUpstream, Reply, ToolCall

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else None]


def _answer(request):
    """Answers as a model would: a tool call when a tool is forced (instructor), else text."""
    body = request.json if isinstance(request.json, dict) else {}
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return Reply(tool_calls=[ToolCall(name=choice["function"]["name"], arguments={"name": "Ada", "age": 36})])
    return Reply()


def test_the_guides_sdk_section_runs(tmp_path, monkeypatch, capsys):
    section = _section((DOCS / "guide.md").read_text(), "## The official openai SDK over the mesh")
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    with FakeUpstream("openai", name="docs", models=["m", "e"], text="hello from the docs") as up:
        up.always(_answer)
        config = {"providers": {"docs": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-docs-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion"]},
                       {"id": "e", "capabilities": ["text-embeddings"]}]}}},
            "pools": {"chat": {"capability": "chat-completion"}},
            "routing": {"retry": {"same_model_retries": 0}}}  # the 429 below is answered, not waited out
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.chdir(tmp_path)
        scope: dict = {}
        exec(compile(blocks[0], "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
        out = capsys.readouterr().out
        assert "hello from the docs\ndocs 1\nhello from the docs" in out and "'docs/m'" in out
        up.script(Error(429, retry_after=5))
        exec(compile(blocks[1], "docs/guide.md", "exec"), scope)  # noqa: S102
        assert capsys.readouterr().out == "429 rate_limit_exceeded 5\n"
        exec(compile(blocks[2], "docs/guide.md", "exec"), scope)  # noqa: S102
    assert capsys.readouterr().out == "hello from the docs\n"
    assert scope["person"].model_dump() == {"name": "Ada", "age": 36}
    assert scope["client"].is_closed() and len(scope["vectors"]) == 2


def test_the_compatibility_page_links_the_guide_and_names_the_tested_surfaces():
    page = (DOCS / "openai-compatibility.md").read_text()
    guide = (DOCS / "guide.md").read_text()
    assert "(guide.md#the-official-openai-sdk-over-the-mesh)" in page and "## The official openai SDK over the mesh" in guide
    assert "(openai-compatibility.md)" in guide
    tests = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_openai_sdk_*.py"))
    # every SDK method the page names is called by a test
    for surface in set(re.findall(r"`((?:chat\.completions|embeddings|models)\.\w+|with_\w+)", page)):
        assert surface.split(".")[-1] in tests, surface
