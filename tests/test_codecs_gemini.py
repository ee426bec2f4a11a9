"""Gemini codec: OpenAI <-> generateContent translation, embeddings, errors and streams."""
from __future__ import annotations

import itertools
import json

import pytest
import requests
import responses

from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec
from modelmesh._core.codecs.gemini import DEFAULT_BASE_URL, UNSUPPORTED_PARAMS

CODEC = get_codec("gemini")
TARGET = Target(provider="google", model="gemini-2.5-flash", base_url=DEFAULT_BASE_URL,
                api_key="AIzaSyA-abcdefghijklmnopqrstuvwxyz012345")
BASE = "https://generativelanguage.googleapis.com/v1beta"

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [
        {"type": "text", "text": "What is in this image, and the weather?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18}"},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:00"},
    {"role": "assistant", "content": "A cat; 18C at 14:00."},
    {"role": "user", "content": "Thanks"},
]
SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
          "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA,
                                           "strict": True}},
         {"type": "function", "function": {"name": "get_time"}}]
CLEAN = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}


# -- requests -------------------------------------------------------------------------------

def test_conversation_translation():
    body = {"model": "alias", "messages": CONVERSATION, "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0.3, "top_p": 0.9, "max_tokens": 256, "stop": "END", "n": 2, "seed": 42,
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}},
            "user": "dropped", "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    wire = CODEC.build_request(TARGET, "chat", body, stream=False)
    assert (wire.method, wire.url) == ("POST", f"{BASE}/models/gemini-2.5-flash:generateContent")
    assert wire.headers["x-goog-api-key"] == TARGET.api_key and "Authorization" not in wire.headers
    assert wire.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "What is in this image, and the weather?"},
                                       {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                        {"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:00"}}}]},
            {"role": "model", "parts": [{"text": "A cat; 18C at 14:00."}]},
            {"role": "user", "parts": [{"text": "Thanks"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather", "parameters": CLEAN},
                                            {"name": "get_time"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
                             "candidateCount": 2, "seed": 42, "responseMimeType": "application/json",
                             "responseSchema": CLEAN},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    assert "user" in UNSUPPORTED_PARAMS


def test_stream_url_and_model_prefixes():
    body = {"messages": [{"role": "user", "content": "hi"}]}
    wire = CODEC.build_request(TARGET, "chat", body, stream=True)
    assert wire.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse" and wire.stream
    prefixed = Target(provider="g", model="models/gemini-2.0-flash", base_url=BASE)
    assert CODEC.build_request(prefixed, "chat", body, stream=False).url == f"{BASE}/models/gemini-2.0-flash:generateContent"
    with pytest.raises(ValueError, match="model ids"):
        CODEC.build_request(Target(provider="g", model="../x?y", base_url=BASE), "chat", body, stream=False)


@pytest.mark.parametrize("choice, config", [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"})])
def test_tool_choice_modes(choice, config):
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    assert CODEC.build_request(TARGET, "chat", body, stream=False).json["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config_extras_and_callers_own_config_wins():
    body = {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 2,
            "presence_penalty": 0.1, "frequency_penalty": 0.2, "max_completion_tokens": 50,
            "response_format": {"type": "json_object"}, "generationConfig": {"maxOutputTokens": 60,
                                                                              "thinkingConfig": {"thinkingBudget": 0}}}
    config = CODEC.build_request(TARGET, "chat", body, stream=False).json["generationConfig"]
    assert config == {"responseLogprobs": True, "logprobs": 2, "presencePenalty": 0.1, "frequencyPenalty": 0.2,
                      "maxOutputTokens": 60, "responseMimeType": "application/json",
                      "thinkingConfig": {"thinkingBudget": 0}}


@pytest.mark.parametrize("messages, match", [
    ([{"role": "tool", "tool_call_id": "nobody", "content": "x"}], "no earlier assistant"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "video"),
    ([{"role": "system", "content": "only system"}], "at least one user"),
])
def test_untranslatable_requests(messages, match):
    with pytest.raises(CodecError, match=match) as err:
        CODEC.build_request(TARGET, "chat", {"messages": messages}, stream=False)
    assert err.value.info.kind is ErrorKind.BAD_REQUEST


def test_embeddings_and_models_requests():
    target = Target(provider="google", model="gemini-embedding-001", base_url=BASE, api_key="k")
    wire = CODEC.build_request(target, "embeddings", {"input": ["a", "b"], "dimensions": 768}, stream=False)
    assert wire.url == f"{BASE}/models/gemini-embedding-001:batchEmbedContents"
    assert wire.json == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 768},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 768}]}
    single = CODEC.build_request(target, "embeddings", {"input": "solo"}, stream=False).json
    assert single == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "solo"}]}}]}
    with pytest.raises(CodecError, match="token ids"):
        CODEC.build_request(target, "embeddings", {"input": [[1, 2, 3]]}, stream=False)
    assert CODEC.build_request(target, "models", {}, stream=False).url == f"{BASE}/models"


# -- responses ------------------------------------------------------------------------------

RESPONSE = {
    "candidates": [{"content": {"parts": [{"text": "thinking...", "thought": True}, {"text": "Checking "},
                                          {"text": "now."},
                                          {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                                "role": "model"},
                    "finishReason": "STOP", "index": 0,
                    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 12,
                      "totalTokenCount": 27, "cachedContentTokenCount": 4,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]},
    "modelVersion": "gemini-2.5-flash", "responseId": "Vn2aaKXfNs2yz7IPkPPG0Ao",
}


def test_response_to_chat_completion():
    out = CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(RESPONSE).encode())
    assert out == {
        "id": "Vn2aaKXfNs2yz7IPkPPG0Ao", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking now.",
            "tool_calls": [{"id": "call_0_0", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 17, "total_tokens": 27,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 12}},
    }


@pytest.mark.parametrize("reason, finish", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop")])
def test_finish_reasons(reason, finish):
    data = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": reason}]}
    assert CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(data).encode())["choices"][0]["finish_reason"] == finish


def test_blocked_prompt_is_content_filtered():
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 12559, "totalTokenCount": 12559}, "modelVersion": "gemini-1.5-flash-002"}
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(blocked).encode())
    assert (err.value.info.kind, err.value.info.code) == (ErrorKind.CONTENT_FILTERED, "PROHIBITED_CONTENT")
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, b'{"usageMetadata": {}}')
    assert err.value.info.kind is ErrorKind.MALFORMED


def test_logprobs_are_mapped():
    data = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP", "logprobsResult": {
        "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Hey", "logProbability": -2.5}]}],
        "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]}}]}
    out = CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(data).encode())
    assert out["choices"][0]["logprobs"] == {"content": [{"token": "Hi", "logprob": -0.1, "bytes": None, "top_logprobs": [
        {"token": "Hi", "logprob": -0.1, "bytes": None}, {"token": "Hey", "logprob": -2.5, "bytes": None}]}]}


def test_embeddings_and_models_responses():
    emb = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}
    out = CODEC.parse_response(TARGET, "embeddings", 200, {}, json.dumps(emb).encode())
    assert [d["embedding"] for d in out["data"]] == [[0.1, 0.2], [0.3, 0.4]] and out["data"][1]["index"] == 1
    models = {"models": [{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash",
                          "supportedGenerationMethods": ["generateContent"]}], "nextPageToken": "x"}
    assert CODEC.parse_response(TARGET, "models", 200, {}, json.dumps(models).encode())["data"][0]["id"] == "gemini-2.5-flash"


# -- errors ---------------------------------------------------------------------------------

def _err(code, status, message, details=None):
    err = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return json.dumps({"error": err}).encode()


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}


def _quota(quota_id):
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": quota_id}]}


@pytest.mark.parametrize("status, body, kind, retry", [
    (400, _err(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
     ErrorKind.AUTH, None),
    (400, _err(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens "
                                        "allowed (1048576)."), ErrorKind.CONTEXT_LENGTH, None),
    (400, _err(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"foo\""), ErrorKind.BAD_REQUEST, None),
    (400, _err(400, "FAILED_PRECONDITION", "Gemini API free tier is not available in your country. "
                                           "Please enable billing on your project in Google AI Studio."),
     ErrorKind.QUOTA_EXHAUSTED, None),
    (403, _err(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."), ErrorKind.AUTH, None),
    (404, _err(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."), ErrorKind.MODEL_NOT_FOUND, None),
    (429, _err(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing "
                                          "details.", [_quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                                                       RETRY]), ErrorKind.RATE_LIMITED, 26.0),
    (429, _err(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing "
                                          "details.", [_quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier")]),
     ErrorKind.QUOTA_EXHAUSTED, None),
    (429, _err(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details."),
     ErrorKind.QUOTA_EXHAUSTED, None),
    (429, _err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."), ErrorKind.RATE_LIMITED, None),
    (500, _err(500, "INTERNAL", "An internal error has occurred."), ErrorKind.SERVER_ERROR, None),
    (503, _err(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), ErrorKind.SERVER_ERROR, None),
    (429, b"[" + _err(429, "RESOURCE_EXHAUSTED", "Resource exhausted.") + b"]", ErrorKind.RATE_LIMITED, None),
    (502, b"<html><title>Error 502 (Server Error)!!1</title></html>", ErrorKind.SERVER_ERROR, None),
])
def test_error_classification(status, body, kind, retry):
    info = CODEC.classify_error(status, {}, body)
    assert (info.kind, info.status, info.retry_after) == (kind, status, retry)
    assert info.message and TARGET.api_key not in info.message


def test_header_retry_after_wins_over_body():
    body = _err(429, "RESOURCE_EXHAUSTED", "slow down", [RETRY])
    assert CODEC.classify_error(429, {"Retry-After": "5"}, body).retry_after == 5.0


# -- streams --------------------------------------------------------------------------------

def _sse(obj):
    return f"data: {json.dumps(obj, ensure_ascii=False)}\r\n\r\n"


STREAM = "".join([
    _sse({"candidates": [{"content": {"parts": [{"text": "The weather"}], "role": "model"}}],
          "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.0-flash",
          "responseId": "resp-1"}),
    _sse({"candidates": [{"content": {"parts": [{"text": " in Zürich is ☁"},
                                                {"functionCall": {"name": "log", "args": {"q": "Zürich"}}}],
                                      "role": "model"}}], "modelVersion": "gemini-2.0-flash", "responseId": "resp-1"}),
    _sse({"candidates": [{"content": {"parts": [{"text": "."}], "role": "model"}, "finishReason": "STOP"}],
          "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 7, "totalTokenCount": 15},
          "modelVersion": "gemini-2.0-flash", "responseId": "resp-1"}),
]).encode()


def _chunk(delta=None, finish=None, usage=None):
    out = {"id": "resp-1", "object": "chat.completion.chunk", "created": 0, "model": "gemini-2.0-flash",
           "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


EXPECTED = [
    _chunk({"role": "assistant", "content": "The weather"}),
    _chunk({"content": " in Zürich is ☁", "tool_calls": [{"index": 0, "id": "call_0_0", "type": "function",
                                                          "function": {"name": "log",
                                                                       "arguments": "{\"q\": \"Z\\u00fcrich\"}"}}]}),
    _chunk({"content": "."}, "tool_calls"),
    _chunk(usage={"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15}),
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


@pytest.mark.parametrize("cut", range(1, len(STREAM), 5))
def test_stream_split_at_many_byte_boundaries(cut):
    assert run_stream(STREAM, [cut]) == EXPECTED


def test_stream_without_finish_reason_is_cut():
    items = run_stream(STREAM[:STREAM.rindex(b"data:")])
    assert items[:2] == EXPECTED[:2]
    assert isinstance(items[-1], StreamError) and items[-1].info.kind is ErrorKind.CONNECTION


def test_stream_error_and_blocked_prompt():
    err = run_stream(_sse({"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}).encode())
    assert isinstance(err[0], StreamError) and err[0].info.kind is ErrorKind.SERVER_ERROR and len(err) == 1
    blocked = run_stream(_sse({"promptFeedback": {"blockReason": "SAFETY"}}).encode())
    assert isinstance(blocked[0], StreamError) and blocked[0].info.kind is ErrorKind.CONTENT_FILTERED


# -- the pieces fit -------------------------------------------------------------------------

@responses.activate
def test_wire_request_through_requests_session():
    url = f"{BASE}/models/gemini-2.5-flash"
    responses.add(responses.POST, f"{url}:generateContent", json=RESPONSE)
    responses.add(responses.POST, f"{url}:streamGenerateContent?alt=sse", body=STREAM, content_type="text/event-stream")
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS}
    with requests.Session() as session:
        wire = CODEC.build_request(TARGET, "chat", body, stream=False)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json)
        out = CODEC.parse_response(TARGET, "chat", resp.status_code, resp.headers, resp.content)
        assert out["choices"][0]["message"]["content"] == "Checking now."
        sent = responses.calls[0].request
        assert sent.headers["x-goog-api-key"] == TARGET.api_key
        assert json.loads(sent.body)["contents"] == [{"role": "user", "parts": [{"text": "weather?"}]}]

        wire = CODEC.build_request(TARGET, "chat", body, stream=True)
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json, stream=True)
        assert responses.calls[1].request.url.endswith(":streamGenerateContent?alt=sse")
        decoder = CODEC.stream_decoder(TARGET, "chat")
        items = [i for piece in resp.iter_content(chunk_size=3) for i in decoder.feed(piece)] + decoder.close()
        assert items == EXPECTED
