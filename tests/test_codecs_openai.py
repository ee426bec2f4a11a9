"""OpenAI codec: request building, responses, error classification and streams."""
from __future__ import annotations

import itertools
import json

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import (
    CodecError,
    StreamDone,
    StreamError,
    Target,
    codec_names,
    get_codec,
)

CODEC = get_codec("openai")
TARGET = Target(provider="openai", model="gpt-4o-mini", base_url="https://api.openai.com/v1/",
                api_key="sk-test-abcdefghijklmnop")

CHAT_RESPONSE = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_06737a9306",
}


def _c(delta, finish=None, choices=True, usage=None):
    body = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []}
    if usage:
        body["usage"] = usage
    return body


STREAM_CHUNKS = [
    _c({"role": "assistant", "content": "", "refusal": None}),
    _c({"content": "Héllo"}),
    _c({"content": " ☃ world"}),
    _c({}, "stop"),
    _c(None, choices=False, usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
]
STREAM = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in STREAM_CHUNKS).encode() + b"data: [DONE]\n\n"


def run_stream(data: bytes, cuts=()):
    decoder = CODEC.stream_decoder(TARGET, "chat")
    items, edges = [], [0, *cuts, len(data)]
    for a, b in itertools.pairwise(edges):
        items += decoder.feed(data[a:b])
    return items + decoder.close()


# -- requests -------------------------------------------------------------------------------

def test_registry_knows_all_codecs():
    assert codec_names() == ["anthropic", "azure-openai", "cohere", "deepgram", "elevenlabs", "gemini", "openai"]
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        get_codec("nope")


def test_chat_request_passes_every_parameter_through():
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "response_format": {"type": "json_object"}, "seed": 7, "n": 2,
            "logprobs": True, "top_logprobs": 3, "stop": ["\n"], "user": "u1", "parallel_tool_calls": False,
            "some_future_param": {"x": 1}}
    wire = CODEC.build_request(TARGET, "chat", body, stream=False)
    assert wire.method == "POST" and wire.url == "https://api.openai.com/v1/chat/completions"
    assert wire.json == {**body, "model": "gpt-4o-mini"}
    assert wire.headers["Authorization"] == "Bearer sk-test-abcdefghijklmnop"
    assert wire.stream is False
    assert body["model"] == "alias"  # the caller's dict is not mutated


def test_stream_adds_include_usage_unless_caller_chose():
    body = {"messages": [{"role": "user", "content": "hi"}]}
    wire = CODEC.build_request(TARGET, "chat", body, stream=True)
    assert wire.json["stream"] is True and wire.json["stream_options"] == {"include_usage": True}
    assert wire.stream is True and wire.headers["Accept"] == "text/event-stream"
    mine = CODEC.build_request(TARGET, "chat", {**body, "stream_options": {"include_usage": False}}, stream=True)
    assert mine.json["stream_options"] == {"include_usage": False}


def test_non_stream_request_drops_stream_keys():
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}}
    wire = CODEC.build_request(TARGET, "chat", body, stream=False)
    assert "stream" not in wire.json and "stream_options" not in wire.json


def test_no_key_no_auth_header_and_org_project_and_extra_headers():
    local = Target(provider="ollama", model="llama3.1:8b", base_url="http://localhost:11434/v1")
    assert "Authorization" not in CODEC.build_request(local, "models", {}, stream=False).headers
    org = Target(provider="openai", model="m", base_url="https://api.openai.com/v1", api_key="sk-x",
                 options={"organization": "org-1", "project": "proj_2"}, headers={"X-Trace": "t"})
    headers = CODEC.build_request(org, "chat", {"messages": [{"role": "user", "content": "x"}]},
                                  stream=False).headers
    assert headers["OpenAI-Organization"] == "org-1" and headers["OpenAI-Project"] == "proj_2"
    assert headers["X-Trace"] == "t"


def test_embeddings_and_models_requests():
    wire = CODEC.build_request(TARGET, "embeddings", {"input": ["a", "b"], "dimensions": 256}, stream=False)
    assert wire.url.endswith("/v1/embeddings") and wire.json == {"input": ["a", "b"], "dimensions": 256,
                                                                  "model": "gpt-4o-mini"}
    models = CODEC.build_request(TARGET, "models", {}, stream=False)
    assert (models.method, models.url, models.json) == ("GET", "https://api.openai.com/v1/models", None)


def test_bad_requests_are_refused_clearly():
    with pytest.raises(ValueError, match="no operation 'rerank'"):
        CODEC.build_request(TARGET, "rerank", {}, stream=False)
    with pytest.raises(CodecError, match="images request needs 'prompt'"):
        CODEC.build_request(TARGET, "images", {}, stream=False)
    with pytest.raises(ValueError, match="only chat and speech can stream"):
        CODEC.build_request(TARGET, "embeddings", {"input": "x"}, stream=True)
    with pytest.raises(TypeError, match="mapping"):
        CODEC.build_request(TARGET, "chat", [], stream=False)  # type: ignore[arg-type]
    with pytest.raises(CodecError) as err:
        CODEC.build_request(TARGET, "chat", {"messages": []}, stream=False)
    assert err.value.info.kind is ErrorKind.BAD_REQUEST


@pytest.mark.parametrize("name, url", [
    ("openai", "https://api.openai.com/v1/models"), ("anthropic", "https://api.anthropic.com/v1/models"),
    ("gemini", "https://generativelanguage.googleapis.com/v1beta/models")])
def test_empty_base_url_means_the_vendor_default(name, url):
    target = Target(provider="p", model="m", base_url="")
    assert get_codec(name).build_request(target, "models", {}, stream=False).url == url


def test_azure_has_no_default_endpoint_and_targets_validate():
    with pytest.raises(ValueError, match="needs a base_url"):
        get_codec("azure-openai").build_request(Target(provider="az", model="m", base_url=""), "models", {},
                                                stream=False)
    with pytest.raises(ValueError, match="http"):
        Target(provider="p", model="m", base_url="ftp://x")
    with pytest.raises(ValueError, match="model"):
        Target(provider="p", model="", base_url="")


def test_wire_request_and_target_reprs_hide_the_key():
    wire = CODEC.build_request(TARGET, "models", {}, stream=False)
    assert "sk-test" not in repr(wire) and "sk-test" not in repr(TARGET)


# -- responses ------------------------------------------------------------------------------

def test_chat_response_passes_through():
    assert CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(CHAT_RESPONSE).encode()) == CHAT_RESPONSE


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b"[1,2]", b'{"object": "chat.completion"}'])
def test_unexpected_2xx_bodies_are_malformed(body):
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, body)
    assert err.value.info.kind is ErrorKind.MALFORMED


def test_200_with_error_object_is_classified():
    body = json.dumps({"error": {"message": "This model's maximum context length is 8192 tokens",
                                 "type": "BadRequestError", "code": 400}}).encode()
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, body)
    assert err.value.info.kind is ErrorKind.CONTEXT_LENGTH


def test_embeddings_and_models_responses():
    emb = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
           "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    assert CODEC.parse_response(TARGET, "embeddings", 200, {}, json.dumps(emb).encode()) == emb
    models = {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"}]}
    assert CODEC.parse_response(TARGET, "models", 200, {}, json.dumps(models).encode()) == models


# -- errors ---------------------------------------------------------------------------------

def _err(message, type_=None, code=None):
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


@pytest.mark.parametrize("status, body, kind, code", [
    (401, _err("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuv.", "invalid_request_error",
               "invalid_api_key"), ErrorKind.AUTH, "invalid_api_key"),
    (403, _err("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory"),
     ErrorKind.AUTH, "unsupported_country_region_territory"),
    (429, _err("Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
               "Used 29000, Requested 1500. Please try again in 1.2s.", "tokens", "rate_limit_exceeded"),
     ErrorKind.RATE_LIMITED, "rate_limit_exceeded"),
    (429, _err("You exceeded your current quota, please check your plan and billing details.",
               "insufficient_quota", "insufficient_quota"), ErrorKind.QUOTA_EXHAUSTED, "insufficient_quota"),
    (400, _err("This model's maximum context length is 128000 tokens. However, your messages resulted in "
               "130000 tokens.", "invalid_request_error", "context_length_exceeded"),
     ErrorKind.CONTEXT_LENGTH, "context_length_exceeded"),
    (400, _err("Your request was rejected as a result of our safety system.", "invalid_request_error",
               "content_policy_violation"), ErrorKind.CONTENT_FILTERED, "content_policy_violation"),
    (400, _err("Invalid value for 'temperature'.", "invalid_request_error"), ErrorKind.BAD_REQUEST, None),
    (404, _err("The model `gpt-9` does not exist or you do not have access to it.", "invalid_request_error",
               "model_not_found"), ErrorKind.MODEL_NOT_FOUND, "model_not_found"),
    (402, b"", ErrorKind.QUOTA_EXHAUSTED, None),
    (408, b"", ErrorKind.TIMEOUT, None),
    (409, b"", ErrorKind.SERVER_ERROR, None),
    (425, b"", ErrorKind.SERVER_ERROR, None),
    (413, b"", ErrorKind.BAD_REQUEST, None),
    (422, _err("Unprocessable"), ErrorKind.BAD_REQUEST, None),
    (500, _err("The server had an error while processing your request. Sorry about that!", "server_error"),
     ErrorKind.SERVER_ERROR, None),
    (503, b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>",
     ErrorKind.SERVER_ERROR, None),
    (502, b"upstream connect error {not json", ErrorKind.SERVER_ERROR, None),
])
def test_error_classification(status, body, kind, code):
    info = CODEC.classify_error(status, {}, body)
    assert (info.kind, info.code, info.status) == (kind, code, status)
    assert info.message


def test_an_errors_code_type_and_param_are_kept_as_sent():
    body = json.dumps({"error": {"message": "bad", "type": "invalid_request_error", "param": "temperature",
                                 "code": None}}).encode()
    info = CODEC.classify_error(400, {}, body)
    assert (info.code, info.type, info.param) == (None, "invalid_request_error", "temperature")


def test_error_message_is_redacted_truncated_and_html_titled():
    info = CODEC.classify_error(401, {}, _err("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuv " + "x" * 400))
    assert "sk-proj" not in info.message and len(info.message) <= 300
    raw = CODEC.classify_error(400, {}, _err("echo mysecretvalue123"), secrets=["mysecretvalue123"])
    assert "mysecretvalue123" not in raw.message
    html = CODEC.classify_error(503, {}, b"<html><title>503 Service Unavailable</title></html>")
    assert html.message == "503 Service Unavailable"


def test_retry_after_from_headers_then_message():
    body = _err("Please try again in 1.2s.", "tokens", "rate_limit_exceeded")
    assert CODEC.classify_error(429, {"Retry-After": "7"}, body).retry_after == 7.0
    assert CODEC.classify_error(429, {"retry-after-ms": "250"}, body).retry_after == 0.25
    assert CODEC.classify_error(429, {}, body).retry_after == pytest.approx(1.2)
    assert CODEC.classify_error(429, {}, _err("try again in 6m0s", None, "rate_limit_exceeded")).retry_after == 360.0


def test_no_status_is_connection():
    info = CODEC.classify_error(None, {}, b"")
    assert info.kind is ErrorKind.CONNECTION and info.status is None


# -- streams --------------------------------------------------------------------------------

def test_stream_passes_chunks_and_done():
    items = run_stream(STREAM)
    assert items[:-1] == STREAM_CHUNKS and isinstance(items[-1], StreamDone)


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_stream_split_at_every_byte_boundary(cut):
    items = run_stream(STREAM, [cut])
    assert items[:-1] == STREAM_CHUNKS and isinstance(items[-1], StreamDone)


def test_stream_without_done_after_its_finish_reason_is_whole():
    items = run_stream(STREAM[: STREAM.index(b"data: [DONE]")])
    assert items[:-1] == STREAM_CHUNKS and isinstance(items[-1], StreamDone)


def test_stream_cut_before_its_finish_reason_is_a_connection_error():
    cut = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in STREAM_CHUNKS[:3]).encode()
    items = run_stream(cut)
    assert isinstance(items[-1], StreamError) and items[-1].info.kind is ErrorKind.CONNECTION
    assert "ended before completion" in items[-1].info.message


def test_error_object_in_stream_is_a_stream_error_and_stops_the_decoder():
    err = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    data = f"data: {json.dumps(STREAM_CHUNKS[1])}\n\ndata: {json.dumps(err)}\n\ndata: [DONE]\n\n".encode()
    items = run_stream(data)
    assert items[0] == STREAM_CHUNKS[1]
    assert isinstance(items[1], StreamError) and items[1].info.kind is ErrorKind.SERVER_ERROR
    assert len(items) == 2  # nothing after the error, not even at close


def test_garbage_chunk_is_malformed():
    items = run_stream(b"data: {not json\n\n")
    assert isinstance(items[0], StreamError) and items[0].info.kind is ErrorKind.MALFORMED


def test_tool_call_stream_chunks_pass_through():
    calls = [
        _c({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        _c({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
        _c({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
        _c({}, "tool_calls"),
    ]
    data = "".join(f"data: {json.dumps(c)}\n\n" for c in calls).encode() + b"data: [DONE]\n\n"
    assert run_stream(data)[:-1] == calls


# -- the pieces fit: WireRequest through a real requests.Session ---------------------------------

@responses.activate
def test_wire_request_through_requests_session():
    responses.add(responses.POST, "https://api.openai.com/v1/chat/completions", json=CHAT_RESPONSE)
    responses.add(responses.POST, "https://api.openai.com/v1/chat/completions", body=STREAM,
                  content_type="text/event-stream")
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
    with requests.Session() as session:
        wire = CODEC.build_request(TARGET, "chat", body, stream=False)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json)
        parsed = CODEC.parse_response(TARGET, "chat", resp.status_code, resp.headers, resp.content)
        assert parsed["choices"][0]["message"]["content"] == "Hello! How can I help?"
        sent = responses.calls[0].request
        assert sent.headers["Authorization"] == "Bearer sk-test-abcdefghijklmnop"
        assert json.loads(sent.body) == {"messages": body["messages"], "temperature": 0.2, "model": "gpt-4o-mini"}

        wire = CODEC.build_request(TARGET, "chat", body, stream=True)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json, stream=True)
        decoder = CODEC.stream_decoder(TARGET, "chat")
        items = [i for piece in resp.iter_content(chunk_size=5) for i in decoder.feed(piece)] + decoder.close()
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in items[:4]) == "Héllo ☃ world"
        assert isinstance(items[-1], StreamDone)


# -- every codec: hostile vendor payloads never crash the core ----------------------------------

_KEYS = ["type", "error", "message", "choices", "candidates", "content", "delta", "index", "usage", "stop_reason",
         "content_block", "parts", "text", "functionCall", "finishReason", "promptFeedback", "blockReason",
         "details", "status", "code", "input_tokens", "usageMetadata", "data", "id", "name", "args",
         "partial_json", "models", "embeddings", "values", "finish_reason", "tool_calls", "reason", "violations"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=6),
    max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(["openai", "anthropic", "gemini", "azure-openai"]), payload=_JSON,
       event=st.sampled_from(["message_start", "content_block_start", "content_block_delta", "message_delta",
                              "message_stop", "error", None]),
       status=st.sampled_from([None, 400, 401, 404, 429, 500, 529]))
def test_hostile_payloads_give_items_or_codec_errors(name, payload, event, status):
    codec = get_codec(name)
    raw = json.dumps(payload)
    decoder = codec.stream_decoder(TARGET, "chat")
    items = decoder.feed(((f"event: {event}\n" if event else "") + f"data: {raw}\n\n").encode()) + decoder.close()
    assert all(isinstance(i, (dict, StreamDone, StreamError)) for i in items)
    assert codec.classify_error(status, {}, raw.encode()).kind is not None
    for op in codec.ops:
        try:
            assert isinstance(codec.parse_response(TARGET, op, 200, {}, raw.encode()), dict)
        except CodecError as err:
            assert err.info.kind is not None
