"""Cohere's own wire format (v2 chat and embed, v1 models): the codec alone, and end to end
against the fake upstream's `cohere` style, failover to another vendor included."""
from __future__ import annotations

import json

import pytest

import modelmesh
from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec
from modelmesh.testing import CutStream, Error, FakeUpstream, Reply, ToolCall

from shells import SHELLS, make_client

KEY = "co-test-key-0123456789"
TARGET = Target(provider="co", model="command-r", base_url="https://api.cohere.com", api_key=KEY)
codec = get_codec("cohere")


def build(body, op="chat", stream=False):
    return codec.build_request(TARGET, op, body, stream=stream)


# -- requests ---------------------------------------------------------------------------------

def test_chat_request_keeps_openai_messages_and_renames_the_sampling_parameters():
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    req = build({"model": "chat", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
        "top_p": 0.5, "stop": "END", "max_completion_tokens": 20, "temperature": 0.3, "seed": 7, "tools": tools,
        "tool_choice": "required", "user": "u1", "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object"}}}}, stream=True)
    assert (req.method, req.url) == ("POST", "https://api.cohere.com/v2/chat")
    assert req.headers["Authorization"] == f"Bearer {KEY}" and req.headers["Accept"] == "text/event-stream"
    body = req.json
    assert body["model"] == "command-r" and body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][1]["content"] == [{"type": "text", "text": "hi"}]
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "weather"
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert (body["p"], body["stop_sequences"], body["max_tokens"], body["seed"]) == (0.5, ["END"], 20, 7)
    assert body["tool_choice"] == "REQUIRED" and body["tools"] == tools
    assert body["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}
    assert "user" not in body and "top_p" not in body


def test_embed_request_asks_for_floats_with_an_input_type():
    req = build({"model": "e", "input": "hello"}, op="embeddings")
    assert req.url == "https://api.cohere.com/v2/embed"
    assert req.json == {"model": "command-r", "texts": ["hello"], "embedding_types": ["float"],
                        "input_type": "search_document"}
    assert build({"input": ["a"], "input_type": "search_query", "dimensions": 256}, op="embeddings").json[
        "input_type"] == "search_query"
    assert build({"models": 1}, op="models").url == "https://api.cohere.com/v1/models"


@pytest.mark.parametrize("body, op, match", [
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "chat", "one answer per request"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "chat",
     "text parts only"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function",
                                                                        "function": {"name": "f"}}}, "chat", "no Cohere form"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "chat", "without a 'tool_call_id'"),
    ({"input": [1, 2]}, "embeddings", "not token ids"),
    ({"input": "x", "encoding_format": "base64"}, "embeddings", "must be 'float'"),
])
def test_what_cohere_cannot_express_is_a_bad_request(body, op, match):
    with pytest.raises(CodecError, match=match) as caught:
        build(body, op=op)
    assert caught.value.info.kind is ErrorKind.BAD_REQUEST


# -- responses --------------------------------------------------------------------------------

def test_an_answer_with_text_and_tool_calls_becomes_a_chat_completion():
    body = json.dumps({"id": "abc", "finish_reason": "TOOL_CALL", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "Let me "}, {"type": "text", "text": "check"}],
        "tool_plan": "call weather", "tool_calls": [
            {"id": "w1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 4}, "tokens": {"input_tokens": 9,
                                                                                       "output_tokens": 4}}}).encode()
    out = codec.parse_response(TARGET, "chat", 200, {}, body)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}
    assert out["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


@pytest.mark.parametrize("reason, finish", [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"),
                                            ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")])
def test_finish_reasons(reason, finish):
    body = json.dumps({"id": "x", "finish_reason": reason, "message": {"role": "assistant", "content": []}}).encode()
    assert codec.parse_response(TARGET, "chat", 200, {}, body)["choices"][0]["finish_reason"] == finish


def test_an_answer_that_ended_in_error_is_a_server_error():
    body = json.dumps({"id": "x", "finish_reason": "ERROR", "message": {"role": "assistant", "content": []}}).encode()
    with pytest.raises(CodecError) as caught:
        codec.parse_response(TARGET, "chat", 200, {}, body)
    assert caught.value.info.kind is ErrorKind.SERVER_ERROR


@pytest.mark.parametrize("status, message, kind", [
    (401, "invalid api token", ErrorKind.AUTH),
    (498, "invalid api token", ErrorKind.AUTH),
    (402, "Please add or update your payment method to continue.", ErrorKind.QUOTA_EXHAUSTED),
    (429, "You are using a Trial key, which is limited to 10 API calls / minute.", ErrorKind.RATE_LIMITED),
    (429, "You are using a Trial key, which is limited to 1000 API calls / month.", ErrorKind.QUOTA_EXHAUSTED),
    (400, "too many tokens: size limit exceeded by 11326 tokens.", ErrorKind.CONTEXT_LENGTH),
    (400, "invalid request: messages must be specified", ErrorKind.BAD_REQUEST),
    (404, "model 'x' not found", ErrorKind.MODEL_NOT_FOUND),
    (500, "internal server error", ErrorKind.SERVER_ERROR),
])
def test_error_bodies_are_classified(status, message, kind):
    info = codec.classify_error(status, {}, json.dumps({"id": "e", "message": message}).encode(), secrets=(KEY,))
    assert info.kind is kind and info.status == status and info.message == message


def test_a_stream_of_named_events_becomes_openai_chunks():
    raw = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in [
        ("message-start", {"type": "message-start", "id": "s1", "delta": {"message": {"role": "assistant"}}}),
        ("content-start", {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text"}}}}),
        ("content-delta", {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}),
        ("tool-call-start", {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}}}}),
        ("tool-call-delta", {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
            "function": {"arguments": "{}"}}}}}),
        ("message-end", {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {
            "tokens": {"input_tokens": 2, "output_tokens": 3}}}}),
    ])
    for cut in range(0, len(raw), 37):  # any split of the bytes decodes the same
        decoder = codec.stream_decoder(TARGET, "chat")
        items = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.close()
        assert isinstance(items[-1], StreamDone)
        chunks = items[:-1]
        assert chunks[0]["id"] == "s1" and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
        assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "f"
        assert chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"
        assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
        assert chunks[5]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_a_stream_ending_in_error_or_cut_short_fails():
    decoder = codec.stream_decoder(TARGET, "chat")
    items = decoder.feed(b'event: message-end\ndata: {"type": "message-end", "delta": {"finish_reason": "ERROR"}}\n\n')
    assert isinstance(items[-1], StreamError) and items[-1].info.kind is ErrorKind.SERVER_ERROR
    decoder = codec.stream_decoder(TARGET, "chat")
    decoder.feed(b'event: content-delta\ndata: {"type": "content-delta", "delta": {"message": {"content": {"text": "a"}}}}\n\n')
    assert decoder.close()[-1].info.kind is ErrorKind.CONNECTION


# -- end to end ---------------------------------------------------------------------------------

def config(co, oa):
    return {"providers": {
        "co": {"connector": "cohere", "config": {"base_url": co.url, "auth": {"api_key": KEY},
                                                 "models": ["command-r", "embed-english-v3.0"]}},
        "oa": {"connector": "openai", "config": {"base_url": oa.url, "auth": {"api_key": "sk-oa-0123456789"},
                                                 "models": ["gpt-4o-mini"]}}},
        "pools": {"chat": {"models": ["co/command-r", "oa/gpt-4o-mini"], "strategy": "priority",
                           "rotation": {"selection": {"model_priority": ["co/command-r", "oa/gpt-4o-mini"]}}}},
        "routing": {"retry": {"same_model_retries": 0}}}


@pytest.fixture
def ups():
    with FakeUpstream("cohere", name="co", models=["command-r", "embed-english-v3.0"], api_key=KEY) as co, \
            FakeUpstream("openai", name="oa", models=["gpt-4o-mini"]) as oa:
        yield co, oa


@pytest.mark.parametrize("shell", SHELLS)
def test_chat_stream_and_embeddings_over_the_cohere_wire(shell, ups):
    co, oa = ups
    co.script(Reply(text="tool time", tool_calls=[ToolCall(name="weather", arguments={"city": "Oslo"})]))
    with make_client(shell, config(co, oa), environ={}) as client:
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "weather?"}])
        assert r.mesh.provider == "co" and r.choices[0].finish_reason == "tool_calls"
        assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo"}
        assert co.requests[-1].path == "/v2/chat" and co.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="co/command-r", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices)
        assert text == "Hello from co"
        e = client.embeddings.create(model="co/embed-english-v3.0", input=["one two", "three"])
        assert len(e.data) == 2 and len(e.data[0].embedding) == 8 and e.usage.prompt_tokens == 3
        assert co.requests[-1].json["input_type"] == "search_document"
    assert oa.requests == []


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("step, outcome", [
    (Error(500), "server_error"), (Error(429), "rate_limited"), (Error(402), "quota_exhausted"),
    (Error(498), "auth"), (CutStream(after_chunks=0), "connection")])
def test_a_failing_cohere_model_fails_over_to_another_vendor(shell, ups, step, outcome):
    co, oa = ups
    co.script(step)
    with make_client(shell, config(co, oa), environ={}) as client:
        stream = isinstance(step, CutStream)
        answer = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}],
                                                stream=stream)
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == "Hello from oa"
        assert answer.mesh.provider == "oa"
        first = answer.mesh.attempts[0]
        assert (first.provider, first.outcome) == ("co", outcome)
    assert len(oa.requests) == 1


def test_a_request_cohere_cannot_express_skips_it_without_penalty(ups):
    co, oa = ups
    with modelmesh.MeshClient(config(co, oa), environ={}) as client:
        r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], n=2)
        assert r.mesh.provider == "oa" and co.requests == []
        assert all(row["status"] == "active" for row in client.status()["pools"]["chat"])


def test_the_preset_reads_the_key_from_the_environment():
    mesh = modelmesh.MeshClient({"providers": {"cohere": {"connector": "cohere", "config": {"models": ["command-r"]}}}},
                                environ={"CO_API_KEY": "co-env-key-0123456789"})
    with mesh:
        assert mesh.core.providers["cohere"].config.base_url == "https://api.cohere.com"
        assert "co-env-key" not in repr(mesh)
