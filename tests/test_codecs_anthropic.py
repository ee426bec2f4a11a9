"""Anthropic Messages codec: OpenAI <-> Anthropic translation, errors and streams."""
from __future__ import annotations

import itertools
import json

import pytest
import requests
import responses

from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec
from modelmesh._core.codecs.anthropic import UNSUPPORTED_PARAMS

CODEC = get_codec("anthropic")
TARGET = Target(provider="anthropic", model="claude-sonnet-4-20250514", base_url="https://api.anthropic.com/v1",
                api_key="sk-ant-api03-abcdefghijklmnop")

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [
        {"type": "text", "text": "What is in this image, and the weather?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "toolu_2", "content": "14:00"},
    {"role": "assistant", "content": "A cat. Paris: 18C at 14:00."},
    {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
    {"role": "user", "content": "Thanks"},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time"}}]


def build(body, stream=False, target=TARGET):
    return CODEC.build_request(target, "chat", {"messages": [{"role": "user", "content": "hi"}], **body},
                               stream=stream)


# -- requests -------------------------------------------------------------------------------

def test_conversation_translation():
    wire = CODEC.build_request(TARGET, "chat", {"messages": CONVERSATION, "tools": TOOLS}, stream=False)
    assert wire.url == "https://api.anthropic.com/v1/messages" and wire.method == "POST"
    assert wire.headers["x-api-key"] == "sk-ant-api03-abcdefghijklmnop"
    assert wire.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in wire.headers
    assert wire.json == {
        "model": "claude-sonnet-4-20250514", "max_tokens": 4096, "system": "You are terse.\n\nBe kind.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image, and the weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "14:00"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A cat. Paris: 18C at 14:00."}]},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}],
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"]}},
                  {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}],
    }


def test_sampling_parameters_map():
    wire = build({"temperature": 1.7, "top_p": 0.9, "stop": "END", "user": "u-42", "max_completion_tokens": 300,
                  "top_k": 5, "seed": 1, "logprobs": True, "presence_penalty": 0.5, "n": 1}, stream=True)
    j = wire.json
    assert (j["temperature"], j["top_p"], j["stop_sequences"], j["max_tokens"]) == (1.0, 0.9, ["END"], 300)
    assert j["metadata"] == {"user_id": "u-42"} and j["stream"] is True and j["top_k"] == 5
    assert not {"seed", "logprobs", "presence_penalty", "n", "user", "stop"} & set(j)
    assert {"seed", "logprobs", "presence_penalty"} <= set(UNSUPPORTED_PARAMS)


def test_max_tokens_sources():
    assert build({"max_tokens": 10, "max_completion_tokens": 20}).json["max_tokens"] == 10
    opts = Target(provider="a", model="m", base_url="https://x/v1", options={"default_max_tokens": 777})
    assert build({}, target=opts).json["max_tokens"] == 777
    with pytest.raises(CodecError, match="max_tokens"):
        build({"max_tokens": 0})


@pytest.mark.parametrize("choice, parallel, expected", [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice(choice, parallel, expected):
    body = {"tools": TOOLS, "tool_choice": choice, "parallel_tool_calls": parallel}
    assert build({k: v for k, v in body.items() if v is not None}).json["tool_choice"] == expected


def test_response_format_becomes_a_system_instruction():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    j = build({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}).json
    assert j["system"].startswith("S\n\nRespond with a single valid JSON value")
    assert json.dumps(schema, sort_keys=True) in j["system"] and "response_format" not in j


@pytest.mark.parametrize("body, match", [
    ({"n": 2}, "n=2"),
    ({"messages": [{"role": "system", "content": "only"}]}, "at least one user"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "unsupported role"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "input_audio"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{x"}}]}]},
     "not JSON"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
])
def test_untranslatable_requests_are_bad_requests(body, match):
    with pytest.raises(CodecError, match=match) as err:
        build(body)
    assert err.value.info.kind is ErrorKind.BAD_REQUEST


def test_no_embeddings_and_models_request():
    with pytest.raises(ValueError, match="no operation 'embeddings'"):
        CODEC.build_request(TARGET, "embeddings", {"input": "x"}, stream=False)
    wire = CODEC.build_request(TARGET, "models", {}, stream=False)
    assert (wire.method, wire.url) == ("GET", "https://api.anthropic.com/v1/models")


# -- responses ------------------------------------------------------------------------------

MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Let me check"}, {"type": "text", "text": " that."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 91, "cache_creation_input_tokens": 20,
              "cache_read_input_tokens": 100},
}


def test_message_to_chat_completion():
    out = CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(MESSAGE).encode())
    assert out == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "created": 0,
        "model": "claude-sonnet-4-20250514",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check that.",
            "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"}}]}}],
        "usage": {"prompt_tokens": 592, "completion_tokens": 91, "total_tokens": 683,
                  "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 20}},
    }


@pytest.mark.parametrize("reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                            ("max_tokens", "length"), ("refusal", "content_filter")])
def test_stop_reasons(reason, finish):
    msg = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": reason,
           "usage": {"input_tokens": 1, "output_tokens": 2}}
    out = CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(msg).encode())
    assert out["choices"][0]["finish_reason"] == finish and "tool_calls" not in out["choices"][0]["message"]
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_malformed_message_and_models_list():
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, b'{"type": "message"}')
    assert err.value.info.kind is ErrorKind.MALFORMED
    models = {"data": [{"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
                        "created_at": "2025-05-22T00:00:00Z"}], "has_more": False,
              "first_id": "claude-sonnet-4-20250514", "last_id": "claude-sonnet-4-20250514"}
    out = CODEC.parse_response(TARGET, "models", 200, {}, json.dumps(models).encode())
    assert out["data"] == [{"id": "claude-sonnet-4-20250514", "object": "model", "created": 1747872000,
                            "owned_by": "anthropic", "display_name": "Claude Sonnet 4"}]


# -- errors ---------------------------------------------------------------------------------

def _err(etype, message, **extra):
    return json.dumps({"type": "error", "error": {"type": etype, "message": message, **extra},
                       "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}).encode()


@pytest.mark.parametrize("status, body, kind", [
    (400, _err("invalid_request_error", "messages: roles must alternate"), ErrorKind.BAD_REQUEST),
    (400, _err("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"), ErrorKind.CONTEXT_LENGTH),
    (400, _err("invalid_request_error", "Your credit balance is too low to access the Anthropic API. "
                                        "Please go to Plans & Billing to upgrade or purchase credits."),
     ErrorKind.QUOTA_EXHAUSTED),
    (401, _err("authentication_error", "invalid x-api-key"), ErrorKind.AUTH),
    (402, _err("billing_error", "billing issue"), ErrorKind.QUOTA_EXHAUSTED),
    (403, _err("permission_error", "not allowed"), ErrorKind.AUTH),
    (404, _err("not_found_error", "model: claude-9"), ErrorKind.MODEL_NOT_FOUND),
    (413, _err("request_too_large", "Request exceeds the maximum allowed number of bytes."), ErrorKind.CONTEXT_LENGTH),
    (413, b"<html><title>413 Request Entity Too Large</title></html>", ErrorKind.BAD_REQUEST),
    (429, _err("rate_limit_error", "This request would exceed the rate limit for your organization."),
     ErrorKind.RATE_LIMITED),
    (429, _err("rate_limit_error", "You have reached your monthly spend limit.",
               details={"error_code": "enforced_spend_limit_reached"}), ErrorKind.QUOTA_EXHAUSTED),
    (500, _err("api_error", "Internal server error"), ErrorKind.SERVER_ERROR),
    (529, _err("overloaded_error", "Overloaded"), ErrorKind.SERVER_ERROR),
])
def test_error_classification(status, body, kind):
    info = CODEC.classify_error(status, {"retry-after": "12"}, body)
    assert (info.kind, info.status, info.retry_after) == (kind, status, 12.0)
    assert info.message


def test_overloaded_keeps_its_code():
    info = CODEC.classify_error(529, {}, _err("overloaded_error", "Overloaded"))
    assert (info.kind, info.code, info.message) == (ErrorKind.SERVER_ERROR, "overloaded_error", "Overloaded")


# -- streams --------------------------------------------------------------------------------

def _ev(name, data):
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


STREAM = "".join([
    _ev("message_start", {"type": "message_start", "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 2}, "content": [], "stop_reason": None}}),
    _ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    _ev("ping", {"type": "ping"}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": "Okay — let's check ☀"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _ev("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}),
    _ev("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}),
    _ev("content_block_stop", {"type": "content_block_stop", "index": 1}),
    _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 89}}),
    _ev("message_stop", {"type": "message_stop"}),
]).encode()


def _chunk(delta=None, finish=None, usage=None):
    out = {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "object": "chat.completion.chunk", "created": 0,
           "model": "claude-sonnet-4-20250514",
           "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


EXPECTED = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Okay — let's check ☀"}),
    _chunk({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\": \"San Fra"}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ncisco, CA\"}"}}]}),
    _chunk({}, "tool_calls"),
    _chunk(usage={"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}),
    StreamDone(),
]


def run_stream(data, cuts=()):
    decoder = CODEC.stream_decoder(TARGET, "chat")
    items, edges = [], [0, *cuts, len(data)]
    for a, b in itertools.pairwise(edges):
        items += decoder.feed(data[a:b])
    return items + decoder.close()


def test_stream_translation():
    assert run_stream(STREAM) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM), 7))
def test_stream_split_at_many_byte_boundaries(cut):
    assert run_stream(STREAM, [cut]) == EXPECTED


def test_stream_overloaded_error_event():
    data = STREAM[:STREAM.index(b"event: content_block_stop")] + _ev(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
    items = run_stream(data)
    assert items[:2] == EXPECTED[:2]
    assert isinstance(items[-1], StreamError) and len(items) == 3
    assert (items[-1].info.kind, items[-1].info.code) == (ErrorKind.SERVER_ERROR, "overloaded_error")


def test_stream_cut_after_its_stop_reason_is_whole():
    items = run_stream(STREAM[:STREAM.index(b"event: message_stop")])
    assert items[:-1] == EXPECTED[:6]
    assert isinstance(items[-1], StreamDone)  # the stop reason and usage came: only the marker was lost


def test_stream_cut_before_its_stop_reason():
    items = run_stream(STREAM[:STREAM.index(b"event: message_delta")])
    assert isinstance(items[-1], StreamError) and items[-1].info.kind is ErrorKind.CONNECTION


# -- the pieces fit -------------------------------------------------------------------------

@responses.activate
def test_wire_request_through_requests_session():
    responses.add(responses.POST, "https://api.anthropic.com/v1/messages", json=MESSAGE)
    responses.add(responses.POST, "https://api.anthropic.com/v1/messages", body=STREAM, content_type="text/event-stream")
    responses.add(responses.POST, "https://api.anthropic.com/v1/messages", status=529,
                  body=_err("overloaded_error", "Overloaded"), headers={"retry-after": "3"})
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS}
    with requests.Session() as session:
        wire = CODEC.build_request(TARGET, "chat", body, stream=False)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json)
        out = CODEC.parse_response(TARGET, "chat", resp.status_code, resp.headers, resp.content)
        assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        sent = responses.calls[0].request
        assert sent.headers["x-api-key"] == TARGET.api_key and sent.headers["anthropic-version"] == "2023-06-01"
        assert json.loads(sent.body)["max_tokens"] == 4096

        wire = CODEC.build_request(TARGET, "chat", body, stream=True)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json, stream=True)
        decoder = CODEC.stream_decoder(TARGET, "chat")
        items = [i for piece in resp.iter_content(chunk_size=11) for i in decoder.feed(piece)] + decoder.close()
        assert items == EXPECTED

        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json)
        info = CODEC.classify_error(resp.status_code, resp.headers, resp.content)
        assert (info.kind, info.code, info.retry_after) == (ErrorKind.SERVER_ERROR, "overloaded_error", 3.0)
