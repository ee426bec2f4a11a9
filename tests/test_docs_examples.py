"""The code in docs/concepts.md runs: the minimal shell, against a fake upstream on loopback."""
from __future__ import annotations

import pathlib
import re

import pytest
import yaml

import modelmesh
from modelmesh.testing import Error, FakeUpstream

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


def test_the_audio_and_images_examples_in_the_guide_run(tmp_path, monkeypatch, capsys):
    """The Audio and Images sections, against OpenAI, ElevenLabs and Deepgram fakes."""
    from media_shells import make_wav

    blocks = _python_blocks((DOCS / "guide.md").read_text())
    audio = next(b for b in blocks if 'client.audio.speech.create(model="speech"' in b)
    images = next(b for b in blocks if "client.images.generate(" in b)
    keys = {"oa": "sk-docs-0123456789", "el": "xi-docs-0123456789", "dg": "dg-docs-0123456789"}
    with FakeUpstream("openai", api_key=keys["oa"], models=["tts-1", "whisper-1", "dall-e-2"], text="Hi all.") as oa, \
            FakeUpstream("elevenlabs", api_key=keys["el"], models=["eleven_multilingual_v2"]) as el, \
            FakeUpstream("deepgram", api_key=keys["dg"], models=["nova-3"], text="Hi all.") as dg:
        def provider(connector, up, key, models):
            return {"connector": connector, "config": {"base_url": up.url, "auth": {"api_key": key}, "models": models}}

        config = {"providers": {"openai": provider("openai", oa, keys["oa"], ["tts-1", "whisper-1", "dall-e-2"]),
                                "elevenlabs": provider("elevenlabs", el, keys["el"], ["eleven_multilingual_v2"]),
                                "deepgram": provider("deepgram", dg, keys["dg"], ["nova-3"])},
                  "pools": {"speech": {"models": ["elevenlabs/eleven_multilingual_v2", "openai/tts-1"],
                                       "strategy": "priority"},
                            "transcribe": {"models": ["deepgram/nova-3", "openai/whisper-1"], "strategy": "priority"}}}
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "meeting.wav").write_bytes(make_wav(1.0))
        (tmp_path / "lighthouse.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
        (tmp_path / "mask.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\xff" * 16)
        monkeypatch.chdir(tmp_path)
        scope: dict = {"__name__": "guide"}
        exec(compile(audio, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
        exec(compile(images, "docs/guide.md", "exec"), scope)  # noqa: S102
        scope["client"].close()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("elevenlabs ") and printed[1] == "Hi all."
    assert printed[2] == "1 Hi all." and printed[3].startswith("0 http://127.0.0.1")
    assert (tmp_path / "hello.mp3").stat().st_size > 0 and (tmp_path / "long.mp3").stat().st_size > 0
    assert [r.path for r in dg.requests] == ["/v1/listen"]  # srt and the translation went to Whisper


def test_the_recorder_example_in_the_guide_records_and_replays(tmp_path, monkeypatch):
    guide = (DOCS / "guide.md").read_text()
    section = guide[guide.index("## Recording and replaying an incident"):guide.index("## Command line")]
    sink = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1))
    test_code = next(b for b in _python_blocks(section) if "assert_replays(" in b)
    (tmp_path / "tests" / "incidents").mkdir(parents=True)
    recording = sink["observability"]["connectors"][0]["config"]["path"]
    assert recording.startswith("/var/log/mesh/") and "{pid}" in recording
    sink["observability"]["connectors"][0]["config"]["path"] = str(tmp_path / "tests" / "incidents" / "4711.jsonl")
    with FakeUpstream("openai", name="docs", models=["m"]) as up, FakeUpstream("openai", name="two", models=["m"]) as two:
        up.script(Error(500))
        config = {"providers": {name: {"connector": "openai", "config": {
            "base_url": u.url, "auth": {"api_key": "sk-docs-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}} for name, u in (("docs", up), ("two", two))},
            **sink}
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.chdir(tmp_path)
        with modelmesh.MeshClient("modelmesh.yaml", environ={}, probe_check_interval=3600.0) as client:
            assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).mesh.provider
        scope: dict = {"__name__": "incidents"}
        exec(compile(test_code, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
        scope["test_incident_4711"]()
        lines = (tmp_path / "tests" / "incidents" / "4711.jsonl").read_text().splitlines()
        first = next(i for i, line in enumerate(lines) if '"status":500' in line)
        lines[first] = lines[first].replace('"status":500', '"status":200')  # the first attempt's answer, changed
        (tmp_path / "tests" / "incidents" / "4711.jsonl").write_text("\n".join(lines) + "\n")
        with pytest.raises(AssertionError, match="replay diverged at line"):
            scope["test_incident_4711"]()


def test_the_secret_store_example_in_the_cdk_guide_runs():
    example = next(b for b in _python_blocks((DOCS / "cdk.md").read_text()) if "class VaultLikeStore" in b)
    scope: dict = {"__name__": "my_stores"}
    exec(compile(example, "docs/cdk.md", "exec"), scope)  # noqa: S102 - our own documentation
    from modelmesh._core._config_schema import SecretsConfig

    made = scope["VaultLikeStore"](SecretsConfig(cache_ttl=60.0))
    assert made.get("anything") is None and not made.list()


# scenario of the CDK guide's table -> (the section holding its example, which of its code blocks)
_CDK_COSTS = {
    "OpenAI-compatible provider": ("Configuration only", (0,)),
    "OpenAI-like provider with another auth header": ("Small differences", (0,)),
    "Custom REST API provider": ("A custom REST API", (0, 1)),
    "Provider doing its own I/O": ("Your own I/O", (0, 1)),
    "Custom rotation rule": ("Rotation policies", (0, 1)),
    "Threshold rotation policy": ("Rotation policies", (2,)),
    "Secret store on another backend": ("Secret stores", (0,)),
    "Storage on another key-value backend": ("Storage", (0, 1)),
    "Health check that is not an HTTP path": ("Health checks", (0, 1)),
    "Health check on another HTTP path": ("Health checks", (2,)),
}


def test_the_cdk_guides_table_of_lines_counts_its_own_examples():
    text = (DOCS / "cdk.md").read_text()
    sections = {part.splitlines()[0][3:]: part for part in re.split(r"\n(?=## )", text) if part.startswith("## ")}
    table = {m[1]: int(m[2]) for m in re.finditer(r"^\| ([^|]+?) \| [^|]+ \| (\d+) \|$", text, flags=re.M)}
    assert set(table) == set(_CDK_COSTS)
    for scenario, (section, picks) in _CDK_COSTS.items():
        body = next(v for k, v in sections.items() if k.startswith(section))
        blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", body, flags=re.S)
        lines = sum(1 for i in picks for line in blocks[i].splitlines()
                    if line.strip() and not line.strip().startswith("#"))
        assert table[scenario] == lines, f"{scenario}: the table says {table[scenario]}, its example has {lines}"


def test_the_files_and_fine_tuning_example_in_the_guide_runs(tmp_path, monkeypatch, capsys):
    """The guide's configuration and code, the base URL pointed at a fake OpenAI."""
    import json

    text = (DOCS / "guide.md").read_text()
    section = text[text.index("## Files and fine-tuning"):text.index("## The official openai SDK over the mesh")]
    config = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[0])
    code = _python_blocks(section)[0]
    key = "sk-docs-files-0123456789"
    training = "".join(json.dumps({"messages": [{"role": "user", "content": "q"},
                                                {"role": "assistant", "content": "a"}]}) + "\n" for _ in range(2))
    with FakeUpstream("openai", name="docs", api_key=key) as up:
        config["providers"]["openai"]["config"]["base_url"] = up.url
        (tmp_path / "modelmesh.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "train.jsonl").write_text(training)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", key)
        scope: dict = {"__name__": "guide"}
        exec(compile(code, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
        scope["client"].close()
        assert [x.purpose for x in up.files] == ["fine-tune-results"]  # the training file was deleted
        assert up.fine_tuning_jobs[0].training_file == scope["f"].id.partition("~")[0]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == repr([scope["f"].id]) and printed[1] == training[:40]
    assert printed[2].startswith("succeeded ft:gpt-4o-mini-2024-07-18:fake-org:support:")
    assert printed[3] == f"{scope['job'].id} succeeded"
