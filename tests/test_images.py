"""Images end to end over real HTTP on loopback: generation and edits through the OpenAI fake,
on both clients: formats, multipart parts, failover, capability refusals."""
from __future__ import annotations

import base64

import pytest
from media_shells import media_client

from modelmesh import errors as E
from modelmesh.testing import Drop, Error, FakeClock, FakeUpstream, FormFile, HtmlError

from core_helpers import MECHANICS
from shells import SHELLS

KEY = "sk-images-0123456789abcdef"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MASK = b"\x89PNG\r\n\x1a\n" + b"\xff" * 32


@pytest.fixture(autouse=True, params=SHELLS)
def shell(request):
    return request.param


def prov(url, *models):
    return {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": KEY}, "models": list(models),
                                              "timeout": "2s", "connect_timeout": "1s"}}


def client_for(shell, providers, order, **pool):
    clock = FakeClock()
    config = {"providers": providers, "routing": MECHANICS, "pools": {"p": {
        "models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}, **pool}}}
    return media_client(shell, config, clock=clock, sleep=clock.sleep, environ={})


def one(shell, *models):
    up = FakeUpstream("openai", api_key=KEY, models=list(models))
    return up, client_for(shell, {"a": prov(up.url, *models)}, [f"a/{m}" for m in models])


def test_generate_urls_and_base64(shell):
    up, client = one(shell, "dall-e-3")
    with up, client:
        r = client.images.generate(model="p", prompt="a red fox", n=2, size="1024x1024", quality="hd")
        assert len(r.data) == 2 and r.data[0].url.startswith(up.root_url) and r.data[0].b64_json is None
        assert r.created == 0 and r.mesh.model == "dall-e-3"
        sent = up.last_request
        assert sent.path == "/v1/images/generations" and sent.headers["authorization"] == f"Bearer {KEY}"
        assert sent.json == {"model": "dall-e-3", "prompt": "a red fox", "n": 2, "size": "1024x1024",
                             "quality": "hd"}
        b64 = client.images.generate(model="p", prompt="a red fox", response_format="b64_json")
        assert base64.b64decode(b64.data[0].b64_json).startswith(b"\x89PNG") and b64.data[0].url is None
        assert b64.model_dump()["data"][0]["revised_prompt"] is None


def test_edit_sends_image_and_mask_as_multipart(shell, tmp_path):
    path = tmp_path / "fox.png"
    path.write_bytes(PNG)
    up, client = one(shell, "dall-e-2")
    with up, client:
        r = client.images.edit(model="p", image=path, mask=("mask.png", MASK), prompt="add a hat", n=1,
                               size="512x512")
        assert r.data[0].url and r.mesh.provider == "a"
        sent = up.last_request
        assert sent.path == "/v1/images/edits" and sent.headers["content-type"].startswith("multipart/form-data")
        form = sent.form
        assert form["image"] == [FormFile("fox.png", "image/png", PNG)] and form["image"][0].data == PNG
        assert form["mask"][0].data == MASK and form["mask"][0].filename == "mask.png"
        assert form["prompt"] == ["add a hat"] and form["model"] == ["dall-e-2"] and form["size"] == ["512x512"]


def test_edit_with_several_images_sends_image_list(shell):
    up, client = one(shell, "gpt-image-1")
    with up, client:
        r = client.images.edit(model="p", image=[PNG, ("b.png", PNG)], prompt="merge them")
        assert r.data[0].b64_json  # the GPT image models answer in base64
        files = up.last_request.form["image[]"]
        assert [f.filename for f in files] == ["upload.png", "b.png"] and all(f.data == PNG for f in files)


@pytest.mark.parametrize("fault", [Error(429), Error(500), Error(503), HtmlError(502), Drop()])
@pytest.mark.parametrize("op", ["generate", "edit"])
def test_image_requests_fail_over(shell, fault, op):
    with FakeUpstream("openai", name="one", api_key=KEY, models=["dall-e-2"]) as a, \
            FakeUpstream("openai", name="two", api_key=KEY, models=["gpt-image-1"]) as b:
        a.script(fault)
        with client_for(shell, {"a": prov(a.url, "dall-e-2"), "b": prov(b.url, "gpt-image-1")},
                        ["a/dall-e-2", "b/gpt-image-1"]) as client:
            if op == "generate":
                r = client.images.generate(model="p", prompt="a fox")
            else:
                r = client.images.edit(model="p", image=PNG, prompt="a fox")
            assert r.mesh.provider == "b" and len(a.requests) == 1 and len(b.requests) == 1
            assert [x.provider for x in r.mesh.attempts] == ["a", "b"]
            if op == "edit":  # the fallback got the same image
                assert b.last_request.form["image"][0].data == PNG


def test_capability_mismatch_is_refused_before_sending(shell):
    up, client = one(shell, "dall-e-3", "gpt-4o")
    with up, client:
        with pytest.raises(E.BadRequestError, match="cannot take a image editing request.*nothing was sent"):
            client.images.edit(model="p", image=PNG, prompt="x")  # DALL-E 3 draws but does not edit
        assert client.images.generate(model="p", prompt="x").mesh.model == "dall-e-3"  # never gpt-4o
        with pytest.raises(E.BadRequestError, match="text-to-image"):
            client.images.generate(model="a/gpt-4o", prompt="x")
        assert [r.path for r in up.requests] == ["/v1/images/generations"]


def test_bad_image_arguments_name_what_was_wrong(shell):
    up, client = one(shell, "dall-e-2")
    with up, client:
        with pytest.raises(E.InvalidArgumentError, match="'prompt' is required"):
            client.images.generate(model="p")
        with pytest.raises(E.InvalidArgumentError, match="'image' is required"):
            client.images.edit(model="p", prompt="x")
        with pytest.raises(E.InvalidArgumentError, match=r"'image\[1\]'"):
            client.images.edit(model="p", prompt="x", image=[PNG, 3])
        with pytest.raises(E.InvalidArgumentError, match="'mask'.*empty"):
            client.images.edit(model="p", prompt="x", image=PNG, mask=b"")
        assert up.requests == []


@pytest.mark.parametrize("failover", [True, False])
def test_a_content_policy_refusal_follows_the_pool_setting(shell, failover):
    with FakeUpstream("openai", name="one", api_key=KEY, models=["dall-e-3"]) as a, \
            FakeUpstream("openai", name="two", api_key=KEY, models=["dall-e-3"]) as b:
        a.script(Error(400, code="content_policy_violation", message="Your request was rejected."))
        with client_for(shell, {"a": prov(a.url, "dall-e-3"), "b": prov(b.url, "dall-e-3")},
                        ["a/dall-e-3", "b/dall-e-3"], content_filter_failover=failover) as client:
            if not failover:
                with pytest.raises(E.ContentFilteredError, match="Your request was rejected"):
                    client.images.generate(model="p", prompt="something")
                assert b.requests == []
                return
            r = client.images.generate(model="p", prompt="something")
            assert r.mesh.provider == "b" and r.mesh.attempts[0].outcome == "content_filtered"
