"""`MeshClient(base_url=..., api_key=...)` with no configuration: a one-provider mesh made
as `openai.OpenAI(...)` is, so migrating is a one-line change, and the open catalogue that
lets it serve whatever model is named."""
from __future__ import annotations

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._core import _mesh
from modelmesh.testing import Error, FakeUpstream

KEY = "sk-one-provider-0123456789"
MSG = [{"role": "user", "content": "Say hi"}]


def test_base_url_and_api_key_make_a_one_provider_mesh_that_serves_any_model_named():
    with FakeUpstream("openai", models=["gpt-5-nano"]) as up:
        with modelmesh.MeshClient(base_url=up.url, api_key=KEY, organization="org-1", environ={}) as client:
            r = client.chat.completions.create(model="gpt-5-nano", messages=MSG)
            again = client.chat.completions.create(model="openai/gpt-5-nano", messages=MSG)
        sent = up.requests[0]
    assert r.choices[0].message.content and r.mesh.provider == "openai" and again.mesh.model == "gpt-5-nano"
    assert sent.json["model"] == "gpt-5-nano" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["openai-organization"] == "org-1"
    assert KEY not in repr(client)


def test_the_sdks_variables_stand_in_for_the_arguments():
    with FakeUpstream("openai", models=["m"]) as up:
        env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": up.url, "OPENAI_PROJECT_ID": "proj-1"}
        with modelmesh.MeshClient(environ=env) as client:
            client.chat.completions.create(model="m", messages=MSG)
        assert up.requests[0].headers["openai-project"] == "proj-1"


def test_without_a_key_or_with_both_ways_at_once_the_error_says_what_to_pass():
    with pytest.raises(E.ConfigurationError, match="api_key= \\(or set OPENAI_API_KEY\\)"):
        modelmesh.MeshClient(environ={})
    with pytest.raises(E.ConfigurationError, match="either config= or base_url="):
        modelmesh.MeshClient({"providers": {}}, api_key=KEY, environ={})


def test_a_model_the_provider_does_not_know_is_its_404_as_the_sdk_raises_it():
    with FakeUpstream("openai", models=["m"]) as up, \
            modelmesh.MeshClient(base_url=up.url, api_key=KEY, environ={}) as client:
        up.always(Error(404, code="model_not_found"))
        with pytest.raises(E.NotFoundError) as info:
            client.chat.completions.create(model="no-such-model", messages=MSG)
    assert info.value.status_code == 404 and info.value.code == "model_not_found"


def test_an_open_catalogue_takes_a_bounded_number_of_unlisted_names(monkeypatch):
    monkeypatch.setattr(_mesh, "MAX_UNLISTED", 2)
    with FakeUpstream("openai", models=["m"]) as up, \
            modelmesh.MeshClient(base_url=up.url, api_key=KEY, environ={}) as client:
        for name in ("a", "b"):
            client.chat.completions.create(model=name, messages=MSG)
        with pytest.raises(E.NotFoundError, match="already took 2 unlisted model names"):
            client.chat.completions.create(model="c", messages=MSG)
        client.chat.completions.create(model="a", messages=MSG)  # known ones still go
    assert [r.json["model"] for r in up.requests] == ["a", "b", "a"]


def test_a_closed_catalogue_still_refuses_names_it_does_not_list():
    with FakeUpstream("openai", models=["m"]) as up:
        cfg = {"providers": {"p": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": KEY}, "models": ["m"]}}}}
        with modelmesh.MeshClient(cfg, environ={}) as client, pytest.raises(E.NotFoundError, match="did you mean 'm'"):
            client.chat.completions.create(model="mm", messages=MSG)
    assert up.requests == []


def test_the_guides_one_line_migration_runs():
    import pathlib
    import re

    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    section = guide.split("## From `openai.OpenAI(...)` in one line", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    with FakeUpstream("openai", models=["gpt-4o-mini"]) as up:
        scope = {"url": up.url, "key": KEY}
        exec(compile(block, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
        scope["client"].close()
    assert scope["r"].choices[0].message.content and up.requests[0].json["model"] == "gpt-4o-mini"
