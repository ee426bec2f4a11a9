"""modelmesh.openai.AsyncOpenAI: the official openai SDK's async client with the mesh as its
httpx transport, end to end over loopback upstreams. It mirrors the sync client's tests that
matter (test_openai_sdk_client.py, test_openai_sdk_errors.py): what the SDK returns is the
SDK's own; what is ours shows in the headers and in what the upstreams received. Each test
runs its own event loop (`asyncio.run`)."""
from __future__ import annotations

import asyncio
import base64
import struct
import time

import httpx
import openai
import pytest
from openai_sdk_helpers import MSG, chat_requests, config, fakes, key

import modelmesh
from modelmesh.openai import MESH_BASE_URL, AsyncMeshTransport, AsyncOpenAI
from modelmesh.testing import (
    CutStream,
    Error,
    FakeClock,
    SlowFirstByte,
    SlowStream,
    StreamErrorEvent,
    fake_embedding,
    refuse_connections,
)


def asdk(cfg: dict, **openai_kwargs) -> AsyncOpenAI:
    clock = FakeClock()
    mesh = modelmesh.AsyncMeshClient(cfg, clock=clock, sleep=clock.sleep, environ={})
    return AsyncOpenAI(mesh=mesh, **openai_kwargs)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def two():
    with fakes("alpha", "beta") as ups:
        yield ups


async def _wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


# -- chat ---------------------------------------------------------------------------------------

def test_chat_is_the_sdks_own_chat_completion_served_by_the_first_model(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            assert isinstance(client, openai.AsyncOpenAI) and isinstance(client, AsyncOpenAI)
            return await client.chat.completions.create(model="chat", messages=MSG, temperature=0.25, user="u-1")

    r = run(main())
    assert type(r) is openai.types.chat.ChatCompletion
    assert r.choices[0].message.content == "Hello from alpha" and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    sent = a.last_request
    assert sent.json["model"] == "gpt-x" and sent.json["temperature"] == 0.25 and sent.json["user"] == "u-1"
    assert sent.headers["authorization"] == f"Bearer {key('alpha')}"  # the provider's key, not the SDK's
    assert chat_requests(b) == []


def test_raw_response_headers_say_who_served_and_parse_gives_the_sdk_object(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            raw = await client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
            return raw, raw.parse()

    raw, r = run(main())
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    assert raw.headers["x-modelmesh-provider"] == "alpha" and raw.headers["x-modelmesh-model"] == "gpt-x"
    assert raw.headers["x-modelmesh-attempts"] == "1" and raw.headers["x-modelmesh-pool"] == "chat"
    assert raw.headers["x-request-id"].startswith("mm-") and r._request_id == raw.headers["x-request-id"]
    assert r.choices[0].message.content == "Hello from alpha"


def test_failover_from_a_failing_upstream_to_a_good_one_shows_in_the_headers(two):
    a, b = two
    a.script(Error(500))

    async def main():
        async with asdk(config(a, b)) as client:
            return await client.chat.completions.with_raw_response.create(model="chat", messages=MSG)

    raw = run(main())
    assert raw.parse().choices[0].message.content == "Hello from beta"
    assert (raw.headers["x-modelmesh-provider"], raw.headers["x-modelmesh-attempts"]) == ("beta", "2")
    assert len(chat_requests(a)) == len(chat_requests(b)) == 1


def test_with_options_keeps_the_class_and_the_mesh_and_closing_closes_it_once(two):
    a, b = two

    async def main():
        client = asdk(config(a, b))
        async with client:
            quick = client.with_options(timeout=5)
            assert type(quick) is AsyncOpenAI and quick.mesh is client.mesh and quick.max_retries == 0
            assert (await quick.chat.completions.create(model="chat", messages=MSG)).choices[0].message.content
            assert client.mesh.transport._prober is not None
        assert client.is_closed() and quick.is_closed() and client.mesh.transport._closed
        await client.close()  # again: nothing more to do

    run(main())


# -- streams -------------------------------------------------------------------------------------

def test_a_stream_reads_with_async_for_and_ends_with_usage(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True,
                                                          stream_options={"include_usage": True})
            assert isinstance(stream, openai.AsyncStream)
            return [c async for c in stream]

    chunks = run(main())
    assert type(chunks[0]) is openai.types.chat.ChatCompletionChunk and chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from alpha"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert a.last_request.json["stream"] is True


def test_a_stream_is_produced_lazily_and_fails_over_before_its_first_chunk(two):
    a, b = two
    a.script(CutStream(after_chunks=0))

    async def main():
        async with asdk(config(a, b)) as client, client.chat.completions.with_streaming_response.create(
                model="chat", messages=MSG, stream=True) as raw:
            assert raw.headers["content-type"].startswith("text/event-stream")
            assert raw.headers["x-modelmesh-provider"] == "beta" and raw.headers["x-modelmesh-attempts"] == "2"
            pieces = raw.http_response.aiter_bytes()
            first = await pieces.__anext__()  # one event arrives before the rest is pulled
            return first, b"".join([p async for p in pieces])

    first, rest = run(main())
    assert first.startswith(b"data: {") and rest.endswith(b"data: [DONE]\n\n")
    assert len(chat_requests(a)) == len(chat_requests(b)) == 1


def test_a_stream_broken_after_content_raises_the_sdks_api_error_while_iterating():
    with fakes("alpha") as (a,):
        a.script(StreamErrorEvent(after_chunks=2, code="server_error"))

        async def main():
            got = []
            async with asdk(config(a)) as client:
                stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
                with pytest.raises(openai.APIError) as info:
                    async for chunk in stream:
                        got.append(chunk.choices[0].delta.content)
            return got, info.value

        got, err = run(main())
    assert "".join(x or "" for x in got) == "Hello from"
    assert "stream" in err.message and err.body["type"] == "server_error"


def test_closing_a_stream_early_ends_the_mesh_call(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
            await stream.__anext__()
            await stream.close()
            return (await client.chat.completions.create(model="chat", messages=MSG)).choices[0].message.content

    assert run(main()) == "Hello from alpha"


def test_cancelling_a_task_mid_stream_cancels_the_call_and_releases_its_connection(two):
    a, b = two
    a.script(SlowStream(chunk_delay=30.0))

    async def main():
        async with asdk(config(a, b)) as client:
            got = []

            async def reader():
                stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
                async for chunk in stream:
                    got.append(chunk)

            task = asyncio.create_task(reader())
            await _wait_for(lambda: got)  # the first chunk is out: the stream is being read
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the call is over: nothing held, no verdict on alpha, its next request is served by it
            r = await client.chat.completions.create(model="chat", messages=MSG)
            assert r.choices[0].message.content == "Hello from alpha" and client.mesh.route("chat").provider_id == "alpha"
            pools = [http._transport._pool for http in client.mesh.transport.http.clients()]
            connections = [c for pool in pools for c in pool.connections]
            assert connections and all(c.is_idle() for c in connections)  # the cut one is gone, none is held

    run(main())
    assert len(chat_requests(a)) == 2 and chat_requests(b) == []


# -- embeddings, models, unknown routes -------------------------------------------------------------

def test_embeddings_in_the_sdks_default_base64_and_as_floats(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            r = await client.embeddings.create(model="text-embeddings", input=["one", "two"])
            floats = await client.embeddings.create(model="text-embeddings", input="one", encoding_format="float")
            return r, floats

    r, floats = run(main())
    assert "encoding_format" not in a.requests[0].json and a.requests[1].json["encoding_format"] == "float"
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[1].embedding == pytest.approx(fake_embedding("two", 8), rel=1e-6)
    assert floats.data[0].embedding == pytest.approx(fake_embedding("one", 8), rel=1e-6)


def test_raw_base64_embeddings_are_little_endian_float32(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            return await client.embeddings.with_raw_response.create(model="text-embeddings", input="one",
                                                                    encoding_format="base64")

    raw = run(main())
    packed = base64.b64decode(raw.parse().data[0].embedding)
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == pytest.approx(fake_embedding("one", 8), rel=1e-6)
    assert raw.headers["x-modelmesh-provider"] == "alpha"


def test_models_list_iterates_and_retrieve_finds_pools_and_provider_models(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            ids = [m.id async for m in client.models.list()]
            model = await client.models.retrieve("beta/gpt-x")
            with pytest.raises(openai.NotFoundError) as info:
                await client.models.retrieve("nope/none")
            return ids, model, info.value

    ids, model, err = run(main())
    assert ids == ["alpha/gpt-x", "beta/gpt-x", "chat"]
    assert type(model) is openai.types.Model and model.owned_by == "beta"
    assert err.status_code == 404 and err.code == "model_not_found"
    assert [r for r in a.requests if "/models" in r.path] == []  # the mesh knows its models: nothing sent


def test_an_endpoint_the_mesh_does_not_serve_is_the_sdks_not_found_error(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            with pytest.raises(openai.NotFoundError) as info:
                await client.completions.create(model="chat", prompt="legacy")
            return info.value

    err = run(main())
    assert err.code == "unknown_url" and "POST /v1/completions" in err.message
    assert a.requests == [] and b.requests == []


# -- errors ------------------------------------------------------------------------------------------

CASES = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (404, openai.NotFoundError),
    (429, openai.RateLimitError),
    (503, openai.InternalServerError),
]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize(("upstream", "sdk_error"), CASES, ids=[str(c[0]) for c in CASES])
def test_an_upstream_error_is_the_sdks_exception_raised_from_create(upstream, sdk_error, stream):
    with fakes("alpha") as (a,):
        a.always(Error(upstream))

        async def main():
            async with asdk(config(a)) as client:
                with pytest.raises(sdk_error) as info:
                    await client.chat.completions.create(model="chat", messages=MSG, stream=stream)
            return info.value

        err = run(main())
    assert type(err) is sdk_error and err.status_code == upstream == err.response.status_code
    assert set(err.body) == {"message", "type", "param", "code"}
    assert "alpha/gpt-x -> " in err.message and f" {upstream}" in err.message
    assert err.response.headers["x-modelmesh-attempts"] == "1" and err.response.headers["x-modelmesh-provider"] == "alpha"
    assert len(chat_requests(a)) == 1  # one mesh attempt; the SDK did not retry


def test_refused_connections_are_the_sdks_connection_error_with_the_mesh_error_as_cause():
    with fakes("alpha") as (a,):
        cfg = config(a)
        cfg["providers"]["alpha"]["config"]["base_url"] = refuse_connections() + "/v1"

        async def main():
            async with asdk(cfg) as client:
                with pytest.raises(openai.APIConnectionError) as info:
                    await client.chat.completions.create(model="chat", messages=MSG)
            return info.value

        err = run(main())
    assert type(err) is openai.APIConnectionError
    assert isinstance(err.__cause__.__cause__, modelmesh.ModelMeshError) and "connection refused" in str(err.__cause__)


def test_an_upstream_that_never_answers_in_time_is_the_sdks_timeout_error():
    with fakes("alpha") as (a,):
        a.always(SlowFirstByte(1.0))

        async def main():
            async with asdk(config(a, timeout="0.2s")) as client:
                with pytest.raises(openai.APITimeoutError) as info:
                    await client.chat.completions.create(model="chat", messages=MSG)
            return info.value

        err = run(main())
    assert isinstance(err.__cause__.__cause__, modelmesh.ModelMeshError)


def test_no_secret_reaches_an_error_its_body_or_its_headers():
    with fakes("alpha") as (a,):
        secret = key("alpha")
        a.always(Error(401, message=f"Incorrect API key provided: {secret}. Check it."))

        async def main():
            async with asdk(config(a)) as client:
                with pytest.raises(openai.AuthenticationError) as info:
                    await client.chat.completions.create(model="chat", messages=MSG)
            return info.value

        err = run(main())
    shown = [str(err), repr(err), str(err.body), err.response.text, str(dict(err.response.headers))]
    assert "Incorrect API key provided" in str(err)
    assert not [s for s in shown if secret in s or secret[:12] in s]


# -- construction ------------------------------------------------------------------------------------

def test_built_from_config_and_closed_with_the_sdk_client(two):
    a, b = two

    async def main():
        client = AsyncOpenAI(config=config(a, b))
        mesh = client.mesh
        async with client:
            assert (await client.chat.completions.create(model="chat", messages=MSG)).choices[0].message.content
        assert client.is_closed() and mesh.transport._closed
        assert isinstance(client._client._transport, AsyncMeshTransport)
        return repr(client)

    assert "modelmesh.openai.AsyncOpenAI(mesh=AsyncMeshClient(providers=['alpha', 'beta']" in run(main())


@pytest.mark.parametrize(("kwargs", "words"), [
    ({}, "exactly one of config="),
    ({"api_key": "sk-real-key-0123456789"}, "takes no api_key"),
    ({"base_url": "https://api.openai.com/v1"}, "takes no base_url"),
    ({"http_client": httpx.AsyncClient()}, "takes no http_client"),
    ({"mesh": object()}, "must be a modelmesh.AsyncMeshClient"),
])
def test_construction_mistakes_are_clear_type_errors(kwargs, words):
    with pytest.raises(TypeError, match=words) as info:
        AsyncOpenAI(**kwargs)
    assert "sk-real-key" not in str(info.value)


def test_a_sync_mesh_client_is_refused_by_name():
    with fakes("alpha") as (a,):
        mesh = modelmesh.MeshClient(config(a), environ={})
        with mesh, pytest.raises(TypeError, match="must be a modelmesh.AsyncMeshClient, got MeshClient"):
            AsyncOpenAI(mesh=mesh)


def test_the_sdk_never_sends_openai_api_key(two, monkeypatch):
    a, b = two
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-should-stay-home-0123")

    async def main():
        async with asdk(config(a, b)) as client:
            await client.chat.completions.create(model="chat", messages=MSG)
            return client.api_key, str(client.base_url)

    assert run(main()) == ("modelmesh", MESH_BASE_URL + "/")
    assert all("sk-env-key" not in str(v) for r in a.requests for v in r.headers.values())


def test_many_tasks_share_one_client(two):
    a, b = two

    async def main():
        async with asdk(config(a, b)) as client:
            async def one(i: int) -> str:
                if i % 2:
                    stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
                    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                return (await client.chat.completions.create(model="chat", messages=MSG)).choices[0].message.content
            return await asyncio.gather(*(one(i) for i in range(32)))

    assert run(main()) == ["Hello from alpha"] * 32 and len(chat_requests(a)) == 32
