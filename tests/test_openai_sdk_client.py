"""modelmesh.openai.OpenAI: the official openai SDK with the mesh as its HTTP transport, end to
end over loopback upstreams. What the SDK returns here is the SDK's own (its pydantic types,
its raw responses, its streams); what is ours shows in the headers and in what the
upstreams received."""
from __future__ import annotations

import base64
import json
import struct
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pydantic
import pytest
from openai_sdk_helpers import MSG, chat_requests, config, fakes, key, sdk

import modelmesh
from modelmesh.openai import MESH_BASE_URL, OpenAI
from modelmesh.testing import (
    CutStream,
    Error,
    FakeUpstream,
    Reply,
    SlowFirstByte,
    StreamErrorEvent,
    ToolCall,
    fake_embedding,
)


@pytest.fixture
def two():
    with fakes("alpha", "beta") as ups:
        yield ups


# -- chat ---------------------------------------------------------------------------------------

def test_chat_is_the_sdks_own_chat_completion_served_by_the_first_model(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        assert isinstance(client, openai.OpenAI) and isinstance(client, OpenAI)
        r = client.chat.completions.create(model="chat", messages=MSG, temperature=0.25, user="u-1")
    assert type(r) is openai.types.chat.ChatCompletion
    assert r.choices[0].message.content == "Hello from alpha" and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert r.model == "gpt-x" and r.id.startswith("chatcmpl-")
    sent = a.last_request
    assert sent.json["model"] == "gpt-x" and sent.json["temperature"] == 0.25 and sent.json["user"] == "u-1"
    assert sent.headers["authorization"] == f"Bearer {key('alpha')}"  # the provider's key, not the SDK's
    assert chat_requests(b) == []


def test_raw_response_headers_say_who_served_and_parse_gives_the_sdk_object(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
        r = raw.parse()
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    assert raw.headers["x-modelmesh-provider"] == "alpha" and raw.headers["x-modelmesh-model"] == "gpt-x"
    assert raw.headers["x-modelmesh-attempts"] == "1" and raw.headers["x-modelmesh-pool"] == "chat"
    assert raw.headers["x-request-id"].startswith("mm-") and r._request_id == raw.headers["x-request-id"]
    assert r.choices[0].message.content == "Hello from alpha"


def test_failover_from_a_failing_upstream_to_a_good_one_shows_in_the_headers(two):
    a, b = two
    a.script(Error(500))
    client, _ = sdk(config(a, b))
    with client:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.parse().choices[0].message.content == "Hello from beta"
    assert (raw.headers["x-modelmesh-provider"], raw.headers["x-modelmesh-attempts"]) == ("beta", "2")
    assert len(chat_requests(a)) == len(chat_requests(b)) == 1


def test_a_model_is_named_by_pool_capability_provider_model_or_bare_id(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        served = {name: client.chat.completions.with_raw_response.create(model=name, messages=MSG)
                  .headers["x-modelmesh-provider"] for name in ("chat", "chat-completion", "beta/gpt-x", "gpt-x")}
    assert served["chat"] == "alpha" and served["beta/gpt-x"] == "beta"
    assert served["chat-completion"] in ("alpha", "beta") and served["gpt-x"] in ("alpha", "beta")


def test_the_sdks_own_retries_are_off_so_a_failure_is_one_mesh_round(two):
    a, b = two
    a.always(Error(503))
    b.always(Error(503))
    client, _ = sdk(config(a, b))
    with client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="chat", messages=MSG)
    assert client.max_retries == 0
    assert len(chat_requests(a)) == len(chat_requests(b)) == 1  # no SDK retry on top of the mesh's failover


def test_with_options_keeps_the_class_and_the_mesh_and_its_timeout_caps_the_whole_mesh_request(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        quick = client.with_options(timeout=0.2)
        assert type(quick) is OpenAI and quick.mesh is client.mesh and quick.max_retries == 0
        a.script(SlowFirstByte(1.0))
        with pytest.raises(openai.APITimeoutError) as info:
            quick.chat.completions.create(model="chat", messages=MSG)
        assert chat_requests(b) == []  # the deadline was the request's, failover included
        mesh_error = info.value.__cause__.__cause__
        assert isinstance(mesh_error, modelmesh.APITimeoutError) and "ran out of" in str(mesh_error)
        assert client.chat.completions.create(model="chat", messages=MSG).choices[0].message.content
    assert client.is_closed() and quick.is_closed()  # copies share the one mesh and its http client


def test_extra_body_reaches_the_provider_and_the_sdks_headers_and_query_end_at_the_mesh(two):
    a, b = two
    client, _ = sdk(config(a, b), default_headers={"x-team": "t0"})
    with client:
        client.chat.completions.create(model="chat", messages=MSG, extra_body={"seed": 7},
                                       extra_headers={"x-trace": "t1"}, extra_query={"q": "1"})
    sent = a.last_request
    assert sent.json["seed"] == 7
    # providers get the headers of their configuration, not the SDK's
    assert "x-trace" not in sent.headers and "x-team" not in sent.headers and "q" not in sent.query


def test_tools_go_to_the_provider_and_tool_calls_come_back_as_the_sdks_types(two):
    a, b = two
    a.script(Reply(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})], finish_reason="tool_calls"))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    client, _ = sdk(config(a, b))
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG, tools=tools)
        call = r.choices[0].message.tool_calls[0]
        follow_up = [*MSG, r.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
        final = client.chat.completions.create(model="chat", messages=follow_up, tools=tools)
    assert type(call) is openai.types.chat.ChatCompletionMessageFunctionToolCall
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert a.requests[0].json["tools"] == tools and a.last_request.json["messages"][1]["tool_calls"][0]["id"] == call.id
    assert final.choices[0].message.content == "Hello from alpha"


# -- streams -------------------------------------------------------------------------------------

def test_a_stream_reads_with_next_and_iteration_and_ends_with_usage(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        stream = client.chat.completions.create(model="chat", messages=MSG, stream=True,
                                                stream_options={"include_usage": True})
        assert isinstance(stream, openai.Stream)
        first = next(stream)
        rest = list(stream)
    assert type(first) is openai.types.chat.ChatCompletionChunk and first.choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "Hello from alpha"
    assert rest[-1].choices == [] and rest[-1].usage.total_tokens > 0
    assert a.last_request.json["stream"] is True


def test_a_stream_is_produced_lazily_not_buffered(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True)
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.headers["x-modelmesh-provider"] == "alpha" and raw.headers["x-modelmesh-attempts"] == "1"
        events = raw.http_response.iter_bytes()
        assert next(events).startswith(b"data: {")  # one event arrives before the rest is pulled
        body = b"".join(events)
    assert body.endswith(b"data: [DONE]\n\n")


def test_a_stream_fails_over_before_its_first_chunk_and_says_so_in_its_headers(two):
    a, b = two
    a.script(CutStream(after_chunks=0))
    client, _ = sdk(config(a, b))
    with client, client.chat.completions.with_streaming_response.create(model="chat", messages=MSG, stream=True) as raw:
        assert raw.headers["x-modelmesh-provider"] == "beta" and raw.headers["x-modelmesh-attempts"] == "2"
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello from beta"


def test_a_stream_broken_after_content_raises_the_sdks_api_error_while_iterating():
    with fakes("alpha") as (a,):
        a.script(StreamErrorEvent(after_chunks=2, code="server_error"))
        client, _ = sdk(config(a))
        with client:
            stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
            got = []
            with pytest.raises(openai.APIError) as info:
                for chunk in stream:
                    got.append(chunk.choices[0].delta.content)
    assert "".join(x or "" for x in got) == "Hello from"
    assert "stream" in info.value.message and info.value.body["type"] == "server_error"


def test_closing_a_stream_early_ends_the_mesh_call(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        next(stream)
        stream.close()
        assert client.chat.completions.create(model="chat", messages=MSG).choices[0].message.content


# -- parse, embeddings, models ---------------------------------------------------------------------

class Person(pydantic.BaseModel):
    name: str
    age: int


def test_parse_with_a_pydantic_model_sends_its_schema_and_returns_it_parsed(two):
    a, b = two
    a.script(Reply(text='{"name": "Ada", "age": 36}'))
    client, _ = sdk(config(a, b))
    with client:
        r = client.chat.completions.parse(model="chat", messages=MSG, response_format=Person)
    assert r.choices[0].message.parsed == Person(name="Ada", age=36)
    fmt = a.last_request.json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"


def test_embeddings_in_the_sdks_default_base64_and_as_floats(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        r = client.embeddings.create(model="text-embeddings", input=["one", "two"])
        floats = client.embeddings.create(model="text-embeddings", input="one", encoding_format="float")
    # the SDK asks for base64 unless told otherwise: the provider is asked for floats, the
    # transport encodes them, the SDK decodes them
    assert "encoding_format" not in a.requests[0].json and a.requests[1].json["encoding_format"] == "float"
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[1].embedding == pytest.approx(fake_embedding("two", 8), rel=1e-6)
    assert floats.data[0].embedding == pytest.approx(fake_embedding("one", 8), rel=1e-6)


def test_embeddings_of_a_provider_that_refuses_base64_still_work_with_the_sdk():
    with FakeUpstream("gemini", name="g", models=["text-embedding-004"]) as g:
        cfg = {"providers": {"g": {"connector": "gemini", "config": {
            "base_url": g.url, "auth": {"api_key": "AIzaSDK0123456789abcdefghij"},
            "models": [{"id": "text-embedding-004", "capabilities": ["text-embeddings"]}]}}}}
        with OpenAI(config=cfg) as client:
            default = client.embeddings.create(model="text-embeddings", input="one")
            raw = client.embeddings.with_raw_response.create(model="text-embeddings", input="one",
                                                             encoding_format="base64")
    expected = fake_embedding("one", len(default.data[0].embedding))
    assert default.data[0].embedding == pytest.approx(expected, rel=1e-6)
    encoded = raw.parse().data[0].embedding
    assert isinstance(encoded, str) and raw.headers["x-modelmesh-provider"] == "g"
    packed = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == pytest.approx(expected, rel=1e-6)


def test_models_list_iterates_and_retrieve_finds_pools_and_provider_models(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        ids = [m.id for m in client.models.list()]
        model = client.models.retrieve("beta/gpt-x")
        pool = client.models.retrieve("chat")
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("nope/none")
    assert ids == ["alpha/gpt-x", "beta/gpt-x", "chat"]
    assert type(model) is openai.types.Model and model.owned_by == "beta" and pool.owned_by == "modelmesh"
    assert info.value.status_code == 404 and info.value.code == "model_not_found" and "nope/none" in info.value.message
    assert [r for r in a.requests if "/models" in r.path] == []  # the mesh knows its models: nothing sent


def test_an_endpoint_the_mesh_does_not_serve_is_the_sdks_not_found_error(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client, pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="chat", prompt="legacy")
    assert info.value.code == "unknown_url" and "POST /v1/completions" in info.value.message
    assert "/chat/completions" in info.value.message  # says what it does serve
    assert a.requests == [] and b.requests == []


# -- construction and lifetime ---------------------------------------------------------------------

def test_built_from_config_and_closed_with_the_sdk_client(two):
    a, b = two
    client = OpenAI(config=config(a, b))
    mesh = client.mesh
    with client:
        assert client.chat.completions.create(model="chat", messages=MSG).choices[0].message.content
        assert mesh.transport._prober is not None
    assert client.is_closed() and mesh.transport._closed
    assert "modelmesh.openai.OpenAI(mesh=MeshClient(providers=['alpha', 'beta']" in repr(client)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({}, "exactly one of config="),
    ({"api_key": "sk-real-key-0123456789"}, "takes no api_key"),
    ({"base_url": "https://api.openai.com/v1"}, "takes no base_url"),
    ({"http_client": httpx.Client()}, "takes no http_client"),
    ({"mesh": object()}, "must be a modelmesh.MeshClient"),
])
def test_construction_mistakes_are_clear_type_errors(kwargs, words):
    with pytest.raises(TypeError, match=words) as info:
        OpenAI(**kwargs)
    assert "sk-real-key" not in str(info.value)


def test_config_and_mesh_together_are_refused():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a:
        cfg = config(a)
        mesh = modelmesh.MeshClient(cfg, environ={})
        with mesh, pytest.raises(TypeError, match="exactly one"):
            OpenAI(config=cfg, mesh=mesh)


def test_the_sdk_never_needs_openai_api_key_and_never_sends_it(two, monkeypatch):
    a, b = two
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-should-stay-home-0123")
    client, _ = sdk(config(a, b))
    with client:
        client.chat.completions.create(model="chat", messages=MSG)
    assert client.api_key == "modelmesh" and str(client.base_url) == MESH_BASE_URL + "/"
    assert all("sk-env-key" not in str(v) for r in a.requests for v in r.headers.values())


def test_one_client_is_shared_by_many_threads(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client, ThreadPoolExecutor(8) as pool:
        def one(i: int) -> str:
            if i % 2:
                stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return client.chat.completions.create(model="chat", messages=MSG).choices[0].message.content
        texts = list(pool.map(one, range(32)))
    assert texts == ["Hello from alpha"] * 32 and len(chat_requests(a)) == 32
