"""The official openai SDK's files and fine_tuning.jobs, through the mesh: in process over both
clients (modelmesh.openai.OpenAI / AsyncOpenAI), and against `modelmesh serve` with two
workers, where a later call may land in the other worker (the id finds its provider)."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest

import modelmesh
from modelmesh.openai import AsyncOpenAI, OpenAI
from modelmesh.testing import FakeClock, FakeUpstream

from proxy_helpers import MASTER, UPSTREAM_KEY, serving, write_config

TRAINING = b"".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}).encode() + b"\n"
                    for i in range(3))


def provider(up, **infra):
    return {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": UPSTREAM_KEY}, "timeout": "5s", "infrastructure": infra,
        "models": [{"id": "gpt-x", "capabilities": ["chat-completion"]}]}}


@pytest.fixture
def ups():
    clock = FakeClock()
    with FakeUpstream("openai", name="alpha", api_key=UPSTREAM_KEY, clock=clock) as a, \
            FakeUpstream("openai", name="beta", api_key=UPSTREAM_KEY, clock=clock) as b:
        yield a, b


def round_trip(sdk: openai.OpenAI, up: FakeUpstream, **which) -> None:
    """Upload, list, retrieve, content, a fine-tuning job to its end, cancel one, delete."""
    up.fine_tune_polls = 2
    f = sdk.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune", **which)
    assert (f.filename, f.bytes, f.purpose) == ("train.jsonl", len(TRAINING), "fine-tune")
    assert f.id in [x.id for x in sdk.files.list(purpose="fine-tune", **which)]
    assert sdk.files.retrieve(f.id).id == f.id
    assert sdk.files.content(f.id).read() == TRAINING
    job = sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, suffix="sdk", **which)
    assert job.status == "validating_files" and job.training_file == f.id
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "running"
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.fine_tuned_model.startswith("ft:gpt-x:fake-org:sdk:")
    other = sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, **which)
    assert sdk.fine_tuning.jobs.cancel(other.id).status == "cancelled"
    page = sdk.fine_tuning.jobs.list(limit=1, **which)
    assert [j.id for j in page.data] == [other.id] and page.has_more
    assert [j.id for j in sdk.fine_tuning.jobs.list(after=other.id, **which).data] == [job.id]
    gone = sdk.files.delete(f.id)
    assert gone.deleted and gone.id == f.id
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        sdk.files.retrieve(f.id)


def test_the_sdk_in_process_over_meshclient(ups):
    a, b = ups
    mesh = modelmesh.MeshClient({"providers": {"a": provider(a, files=True, fine_tuning=True), "b": provider(b)}},
                                environ={})
    with OpenAI(mesh=mesh) as sdk:
        round_trip(sdk, a)
        with pytest.raises(openai.BadRequestError, match="provider 'b' does not offer files"):
            sdk.files.list(extra_headers={"x-modelmesh-provider": "b"})
    assert b.requests == []


def test_the_async_sdk_in_process_over_asyncmeshclient(ups):
    a, _ = ups

    async def main() -> None:
        mesh = modelmesh.AsyncMeshClient({"providers": {"a": provider(a, files=True, fine_tuning=True)}}, environ={})
        async with AsyncOpenAI(mesh=mesh) as sdk:
            f = await sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
            assert (await sdk.files.content(f.id)).read() == TRAINING
            job = await sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id)
            assert (await sdk.fine_tuning.jobs.retrieve(job.id)).status == "succeeded"
            assert [x.id async for x in sdk.files.list()][:1] == [f.id]

    asyncio.run(main())


def test_the_proxy_with_two_workers_serves_files_and_fine_tuning(tmp_path, ups):
    a, b = ups
    providers = {"a": provider(a, files=True, fine_tuning=True), "b": provider(b, files=True, fine_tuning=True)}
    cfg = write_config(tmp_path / "mesh.json", providers, {"chat": {"models": ["a/gpt-x"]}})
    with serving(cfg, "--workers", "2", "--threads", "2") as served:
        sdk = openai.OpenAI(base_url=served.base_url, api_key=MASTER, max_retries=0)
        with pytest.raises(openai.BadRequestError, match=r"several providers offer files \(a, b\)"):
            sdk.files.list()
        round_trip(sdk, b, extra_headers={"x-modelmesh-provider": "b"})  # list and create need the name
        assert not any("/files" in r.path or "/fine_tuning" in r.path for r in a.requests)
        # the id carries its provider: retrieve, content and jobs need no header, in whichever worker
        f = sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune", extra_body={"provider": "a"})
        for _ in range(4):
            assert sdk.files.content(f.id).read() == TRAINING
        assert sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id).id.endswith("~a")
        status, _, body = served.request("GET", "/v1/files", headers={"Authorization": "Bearer nope"})
        assert status == 401
        status, headers, body = served.request("PUT", "/v1/files", headers={"Authorization": f"Bearer {MASTER}"})
        assert status == 405 and headers["allow"] == "POST, GET"
    assert UPSTREAM_KEY not in served.stdout + served.stderr


def test_what_the_serving_layer_refuses_before_any_call(ups):
    from modelmesh._serving import serve

    a, _ = ups
    with modelmesh.MeshClient({"providers": {"a": provider(a, files=True, fine_tuning=True)}}, environ={}) as mesh:
        def answer(method, path, body=b"", **kw):
            got = serve(mesh, method, path, body, **kw)
            return got.status, json.loads(got.body) if got.body else None

        status, body = answer("GET", "/v1/files", permit=lambda pool: None)  # a key limited to some pools
        assert status == 403 and "files and fine-tuning belong to no pool" in body["error"]["message"]
        status, body = answer("GET", "/v1/fine_tuning/jobs", query="limit=ten")
        assert status == 400 and body["error"]["param"] == "limit"
        status, body = answer("POST", "/v1/fine_tuning/jobs", b'{"model": "gpt-x", "training_file": "f", "x": 1}',
                              content_type="application/json")
        assert status == 400 and body["error"]["code"] == "unknown_parameter" and body["error"]["param"] == "x"
        status, body = answer("POST", "/v1/fine_tuning/jobs", b'{"model": "gpt-x", "training_file": "f~a", '
                              b'"provider": "b"}', content_type="application/json", provider="a")
        assert status == 400 and body["error"]["param"] == "provider"
        status, body = answer("POST", "/v1/files", b"{}", content_type="application/json")
        assert status == 415
        status, _ = answer("GET", "/v1/files/a/b/c")
        assert status == 404
    assert a.requests == []


def test_the_sdks_auto_pagination_walks_every_page_through_the_mesh(ups):
    a, _ = ups
    mesh = modelmesh.MeshClient({"providers": {"a": provider(a, files=True, fine_tuning=True)}}, environ={})
    with OpenAI(mesh=mesh) as sdk:
        files = [sdk.files.create(file=(f"{i}.jsonl", TRAINING), purpose="fine-tune") for i in range(3)]
        assert sorted(x.id for x in sdk.files.list(limit=1)) == sorted(f.id for f in files)  # three pages
        assert [x.id for x in sdk.files.list(limit=2, order="asc").data] == [f.id for f in files[:2]]
        jobs = [sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id) for f in files]
        assert [j.id for j in sdk.fine_tuning.jobs.list(limit=1)] == [j.id for j in reversed(jobs)]
    # the next pages were asked for with the provider's own ids
    assert any(r.query.get("after", "").startswith("file-") and "~" not in r.query["after"]
               for r in a.requests if r.path == "/v1/files")
