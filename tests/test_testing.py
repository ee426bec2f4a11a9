"""modelmesh.testing: the fake vendor servers and the fake clock, driven by a plain requests client."""
from __future__ import annotations

import base64
import json
import struct
import threading
import time

import pytest
import requests

from modelmesh.testing import (
    CutStream,
    Drop,
    Error,
    FakeClock,
    FakeUpstream,
    HtmlError,
    MalformedJSON,
    RecordedRequest,
    Refuse,
    Reply,
    SlowFirstByte,
    SlowStream,
    StreamErrorEvent,
    ToolCall,
    fake_embedding,
    refuse_connections,
    upstreams,
)

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "say hello please"}]}
CLAUDE = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi there"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}
AV = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def openai():
    with FakeUpstream("openai") as up:
        yield up


@pytest.fixture
def anthropic():
    with FakeUpstream("anthropic") as up:
        yield up


@pytest.fixture
def gemini():
    with FakeUpstream("gemini") as up:
        yield up


def events(response: requests.Response) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of an SSE body."""
    out, name = [], None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, line[6:]))
            name = None
    return out


def chat_stream(http, up, body=CHAT, **extra):
    return http.post(up.url + "/chat/completions", json=dict(body, stream=True, **extra), stream=True)


# -- FakeClock ----------------------------------------------------------------------------

def test_fake_clock_reads_advances_and_records_sleeps():
    clock = FakeClock()
    assert clock() == clock.now() == 1_700_000_000.0
    assert clock.advance(2.5) == 1_700_000_002.5
    clock.sleep(1)
    clock.sleep(0)
    assert clock.now() == 1_700_000_003.5
    assert clock.sleeps == [1.0, 0.0]
    assert FakeClock(start=10).now() == 10.0


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (float("nan"), ValueError),
                                      (float("inf"), ValueError), ("1", TypeError), (True, TypeError)])
def test_fake_clock_rejects_bad_durations(bad, exc):
    clock = FakeClock()
    with pytest.raises(exc):
        clock.sleep(bad)
    with pytest.raises(exc):
        clock.advance(bad)
    assert clock.now() == 1_700_000_000.0 and clock.sleeps == []


def test_fake_clock_stamps_created_on_responses(http):
    with FakeUpstream("openai", clock=FakeClock(start=1234.0)) as up:
        assert http.post(up.url + "/chat/completions", json=CHAT).json()["created"] == 1234


# -- steps and shortcuts --------------------------------------------------------------------

def test_step_shortcuts_expand(http, openai):
    openai.script(None, 200, 429, "hi", Drop, lambda req: 503)
    assert openai.pending == 6

    def post():
        return http.post(openai.url + "/chat/completions", json=CHAT)

    assert post().json()["choices"][0]["message"]["content"] == "Hello from openai"
    assert [post().status_code, post().status_code] == [200, 429]
    assert post().json()["choices"][0]["message"]["content"] == "hi"
    with pytest.raises(requests.exceptions.ConnectionError):
        post()
    assert post().status_code == 503 and openai.pending == 0


@pytest.mark.parametrize("bad", [True, object(), Error, 3.5, int])
def test_bad_steps_fail_when_scripted(openai, bad):
    with pytest.raises(TypeError):
        openai.script(bad)
    assert openai.pending == 0


def test_step_values_are_validated():
    with pytest.raises(ValueError):
        Error(399)
    with pytest.raises(ValueError):
        Reply(status=600)
    with pytest.raises(ValueError):
        Reply(status=500)
    with pytest.raises(ValueError):
        Reply(delay=-1)
    with pytest.raises(ValueError):
        CutStream(after_chunks=-1)
    with pytest.raises(TypeError):
        SlowFirstByte(0.1, then=lambda req: None)
    assert Reply(usage={"input_tokens": 3, "output_tokens": 4}).usage == (3, 4)
    assert Reply(usage={"promptTokenCount": 5, "candidatesTokenCount": 6}).usage == (5, 6)
    calls = Reply(tool_calls=[{"name": "f", "arguments": '{"a": 1}'}]).tool_calls
    assert calls == (ToolCall(name="f", arguments={"a": 1}),)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FakeUpstream("bedrock")
    with pytest.raises(TypeError):
        FakeUpstream("openai", models="gpt-4")
    with pytest.raises(TypeError):
        FakeUpstream("openai", api_key="")


# -- OpenAI ---------------------------------------------------------------------------------

def test_openai_chat_shape_and_recorded_request(http):
    with FakeUpstream("openai", name="alpha", api_key="sk-secret") as up:
        r = http.post(up.url + "/chat/completions?trace=1", json=CHAT,
                      headers={"Authorization": "Bearer sk-secret"})
        assert "sk-secret" not in repr(up)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content)
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-test" and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello from alpha", "refusal": None,
                                 "annotations": []}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 3 and body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == 6
    (seen,) = up.requests
    assert isinstance(seen, RecordedRequest)
    assert (seen.method, seen.path, seen.query) == ("POST", "/v1/chat/completions", {"trace": "1"})
    assert seen.headers["authorization"] == seen.headers["Authorization"] == "Bearer sk-secret"
    assert seen.json == CHAT and json.loads(seen.body) == CHAT
    assert seen.model == "gpt-test" and not seen.stream
    assert "sk-secret" not in repr(seen) and "/v1/chat/completions" in repr(seen)


def test_openai_keeps_connections_alive(http, openai):
    for _ in range(3):
        assert http.post(openai.url + "/chat/completions", json=CHAT).status_code == 200
    peers = {r.peer for r in openai.requests}
    assert len(openai.requests) == 3 and len(peers) == 1  # one connection served all three
    with requests.post(openai.url + "/chat/completions", json=CHAT):
        pass
    assert openai.last_request.peer not in peers


def test_openai_stream_chunks_and_done(http, openai):
    with chat_stream(http, openai) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert r.headers["Content-Type"].startswith("text/event-stream")
        data = [d for _, d in events(r)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-test" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and "usage" not in chunks[0]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert text == ["Hello", " from", " openai"]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert openai.last_request.stream


def test_openai_stream_usage_chunk_only_when_asked(http, openai):
    with chat_stream(http, openai, stream_options={"include_usage": True}) as r:
        data = [d for _, d in events(r)]
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_openai_max_tokens_truncates_with_finish_length(http, openai):
    body = http.post(openai.url + "/chat/completions", json=dict(CHAT, max_tokens=2)).json()
    assert body["choices"][0]["message"]["content"] == "Hello from"
    assert body["choices"][0]["finish_reason"] == "length"


def test_openai_tool_calls(http, openai):
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    openai.script(Reply(tool_calls=[call]), Reply(text="", tool_calls=[call]))
    message = http.post(openai.url + "/chat/completions", json=CHAT).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    (tool,) = message["message"]["tool_calls"]
    assert tool["id"].startswith("call_") and tool["type"] == "function"
    assert tool["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    with chat_stream(http, openai) as r:
        chunks = [json.loads(d) for _, d in events(r)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["content"] is None
    assert deltas[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert deltas[2]["tool_calls"][0]["function"] == {"arguments": '{"city": "Paris"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_embeddings_are_deterministic(http, openai):
    one = http.post(openai.url + "/embeddings", json={"model": "emb", "input": "abc"}).json()
    assert one["object"] == "list" and one["model"] == "emb"
    assert one["data"] == [{"object": "embedding", "index": 0, "embedding": fake_embedding("abc")}]
    assert len(fake_embedding("abc")) == 8 and fake_embedding("abc") != fake_embedding("abd")
    assert abs(sum(v * v for v in fake_embedding("abc")) - 1.0) < 1e-4
    many = http.post(openai.url + "/embeddings", json={"model": "emb", "input": ["abc", "x y"],
                                                       "dimensions": 4}).json()
    assert [d["index"] for d in many["data"]] == [0, 1]
    assert many["data"][1]["embedding"] == fake_embedding("x y", 4)
    assert many["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = http.post(openai.url + "/embeddings", json={"model": "emb", "input": "abc",
                                                         "encoding_format": "base64"}).json()
    decoded = struct.unpack("<8f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(fake_embedding("abc"), abs=1e-6)


def test_openai_models_list_and_retrieve(http):
    with FakeUpstream("openai", name="acme", models=["a-1", "b-2"]) as up:
        listed = http.get(up.url + "/models").json()
        assert listed["object"] == "list"
        assert [(m["id"], m["object"], m["owned_by"]) for m in listed["data"]] == [
            ("a-1", "model", "acme"), ("b-2", "model", "acme")]
        assert http.get(up.url + "/models/b-2").json()["id"] == "b-2"
        missing = http.get(up.url + "/models/zzz")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_default_models_list(http, openai):
    assert [m["id"] for m in http.get(openai.url + "/models").json()["data"]] == ["fake-model"]


def test_azure_paths(http):
    with FakeUpstream("openai", api_key="az-key") as up:
        path = up.root_url + "/openai/deployments/my-gpt/chat/completions"
        ok = http.post(path + "?api-version=2024-06-01", json={"messages": CHAT["messages"]},
                       headers={"api-key": "az-key"})
        no_version = http.post(path, json={"messages": CHAT["messages"]}, headers={"api-key": "az-key"})
        bad_key = http.post(path + "?api-version=2024-06-01", json={"messages": CHAT["messages"]},
                            headers={"api-key": "wrong"})
        emb = http.post(up.root_url + "/openai/deployments/emb/embeddings?api-version=2024-06-01",
                        json={"input": "q"}, headers={"api-key": "az-key"})
    assert ok.status_code == 200 and ok.json()["model"] == "my-gpt"
    assert no_version.status_code == 404 and bad_key.status_code == 401
    assert emb.json()["data"][0]["embedding"] == fake_embedding("q")
    seen = up.requests[0]
    assert seen.headers["api-key"] == "az-key" and seen.query == {"api-version": "2024-06-01"}
    assert seen.model == "my-gpt"


def test_openai_api_key_checks_never_echo_the_key(http):
    with FakeUpstream("openai", api_key="sk-right") as up:
        missing = http.post(up.url + "/chat/completions", json=CHAT)
        wrong = http.post(up.url + "/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-wrong"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] is None
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" not in wrong.text and "sk-right" not in wrong.text


def test_strict_validation_and_unknown_paths(http):
    with FakeUpstream("openai") as up:
        no_messages = http.post(up.url + "/chat/completions", json={"model": "m"}).json()["error"]
        no_model = http.post(up.url + "/chat/completions", json={"messages": []})
        not_json = http.post(up.url + "/chat/completions", data=b"{nope",
                             headers={"Content-Type": "application/json"})
        unknown = http.post(up.url + "/completions/legacy", json=CHAT)
    assert no_messages == {"message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
                           "param": "messages", "code": "missing_required_parameter"}
    assert no_model.status_code == 400 and not_json.status_code == 400
    assert unknown.status_code == 404 and "Invalid URL" in unknown.json()["error"]["message"]
    assert up.requests[2].json is None and up.requests[2].body == b"{nope"
    with FakeUpstream("openai", strict=False) as lax:
        assert http.post(lax.url + "/chat/completions", json={"messages": []}).status_code == 200


# -- errors, per style ------------------------------------------------------------------------

@pytest.mark.parametrize("step, status, error", [
    (Error(429, retry_after=2), 429, {"type": "requests", "code": "rate_limit_exceeded"}),
    (Error(429, code="insufficient_quota"), 429, {"type": "insufficient_quota", "code": "insufficient_quota"}),
    (Error(401), 401, {"type": "invalid_request_error", "code": "invalid_api_key"}),
    (Error(404, code="model_not_found"), 404, {"type": "invalid_request_error", "code": "model_not_found"}),
    (Error(400, code="context_length_exceeded"), 400, {"param": "messages", "code": "context_length_exceeded"}),
    (Error(500), 500, {"type": "server_error", "code": None}),
    (Error(429, code="RESOURCE_EXHAUSTED", message="slow down"), 429,
     {"code": "rate_limit_exceeded", "message": "slow down"}),
])
def test_openai_error_bodies(http, openai, step, status, error):
    openai.script(step)
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    assert r.status_code == status
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"]
    assert {k: body[k] for k in error} == error
    assert r.headers.get("Retry-After") == ("2" if step.retry_after else None)
    if step.code == "model_not_found":
        assert "`gpt-test`" in body["message"]


@pytest.mark.parametrize("step, status, kind, message", [
    (Error(529, code="overloaded_error"), 529, "overloaded_error", "Overloaded"),
    (Error(429), 429, "rate_limit_error", None),
    (Error(401), 401, "authentication_error", "invalid x-api-key"),
    (Error(404), 404, "not_found_error", "model: claude-test"),
    (Error(400, code="context_length_exceeded"), 400, "invalid_request_error",
     "prompt is too long: 250000 tokens > 200000 maximum"),
    (Error(500, message="boom"), 500, "api_error", "boom"),
])
def test_anthropic_error_bodies(http, anthropic, step, status, kind, message):
    anthropic.script(step)
    r = http.post(anthropic.url + "/messages", json=CLAUDE, headers=AV)
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert body["request_id"].startswith("req_") and r.headers["request-id"] == body["request_id"]
    if message:
        assert body["error"]["message"] == message


@pytest.mark.parametrize("step, status, grpc", [
    (Error(429, code="RESOURCE_EXHAUSTED"), 429, "RESOURCE_EXHAUSTED"),
    (Error(429), 429, "RESOURCE_EXHAUSTED"),
    (Error(503), 503, "UNAVAILABLE"),
    (Error(404, code="model_not_found"), 404, "NOT_FOUND"),
    (Error(529, code="overloaded_error"), 529, "UNAVAILABLE"),
])
def test_gemini_error_bodies(http, gemini, step, status, grpc):
    gemini.script(step)
    r = http.post(gemini.url + "/models/gemini-x:generateContent", json=GEMINI)
    assert r.status_code == status
    error = r.json()["error"]
    assert (error["code"], error["status"]) == (status, grpc) and error["message"]
    if grpc == "NOT_FOUND":
        assert error["message"].startswith("models/gemini-x is not found")


def test_gemini_retry_info_and_header(http, gemini):
    gemini.script(Error(429, code="RESOURCE_EXHAUSTED", retry_after=3))
    r = http.post(gemini.url + "/models/g:generateContent", json=GEMINI)
    assert r.headers["Retry-After"] == "3"
    assert r.json()["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                             "retryDelay": "3s"}]


# -- Anthropic ------------------------------------------------------------------------------

def test_anthropic_message_shape(http, anthropic):
    r = http.post(anthropic.url + "/messages", json=CLAUDE, headers=dict(AV, **{"x-api-key": "k"}))
    body = r.json()
    assert body["id"].startswith("msg_") and body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude-test"
    assert body["content"] == [{"type": "text", "text": "Hello from anthropic"}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 2 and body["usage"]["output_tokens"] == 3
    assert anthropic.last_request.headers["X-Api-Key"] == "k"


def test_anthropic_requires_version_header_and_fields(http):
    with FakeUpstream("anthropic", api_key="ak") as up:
        no_version = http.post(up.url + "/messages", json=CLAUDE, headers={"x-api-key": "ak"})
        no_max = http.post(up.url + "/messages", json={"model": "c", "messages": []},
                           headers=dict(AV, **{"x-api-key": "ak"}))
        bad_key = http.post(up.url + "/messages", json=CLAUDE, headers=dict(AV, **{"x-api-key": "nope"}))
        no_embeddings = http.post(up.url + "/embeddings", json={"input": "x"}, headers=dict(AV, **{"x-api-key": "ak"}))
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    assert no_max.json()["error"]["message"] == "max_tokens: Field required"
    assert bad_key.status_code == 401 and bad_key.json()["error"]["type"] == "authentication_error"
    assert no_embeddings.status_code == 404 and no_embeddings.json()["error"]["type"] == "not_found_error"


def test_anthropic_stream_event_sequence(http, anthropic):
    with http.post(anthropic.url + "/messages", json=dict(CLAUDE, stream=True), headers=AV, stream=True) as r:
        got = events(r)
    names = [n for n, _ in got]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    data = [json.loads(d) for _, d in got]
    assert all(d["type"] == n for n, d in zip(names, data, strict=True))
    start = data[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 2
    assert "".join(d["delta"]["text"] for d in data[3:6]) == "Hello from anthropic"
    assert data[7]["delta"]["stop_reason"] == "end_turn" and data[7]["usage"] == {"output_tokens": 3}


def test_anthropic_tool_use_stream(http, anthropic):
    anthropic.script(Reply(text="Let me check.", tool_calls=[ToolCall(name="lookup", arguments={"q": 1})]))
    with http.post(anthropic.url + "/messages", json=dict(CLAUDE, stream=True), headers=AV, stream=True) as r:
        data = [json.loads(d) for _, d in events(r)]
    starts = [d["content_block"] for d in data if d["type"] == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": starts[1]["id"], "name": "lookup", "input": {}}
    assert starts[1]["id"].startswith("toolu_")
    partial = [d["delta"]["partial_json"] for d in data if d.get("delta", {}).get("type") == "input_json_delta"]
    assert json.loads("".join(partial)) == {"q": 1}
    assert [d["index"] for d in data if d["type"] == "content_block_stop"] == [0, 1]
    assert data[-2]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_models_and_count_tokens(http):
    with FakeUpstream("anthropic", models=["claude-a", "claude-b"]) as up:
        listed = http.get(up.url + "/models", headers=AV).json()
        counted = http.post(up.url + "/messages/count_tokens", json=CLAUDE, headers=AV).json()
    assert [m["id"] for m in listed["data"]] == ["claude-a", "claude-b"]
    assert listed["data"][0]["type"] == "model" and listed["data"][0]["created_at"].endswith("Z")
    assert (listed["has_more"], listed["first_id"], listed["last_id"]) == (False, "claude-a", "claude-b")
    assert counted == {"input_tokens": 2}


# -- Gemini ---------------------------------------------------------------------------------

def test_gemini_generate_content_shape(http, gemini):
    body = http.post(gemini.url + "/models/gemini-2.0-flash:generateContent", json=GEMINI,
                     headers={"x-goog-api-key": "g"}).json()
    (candidate,) = body["candidates"]
    assert candidate["content"] == {"parts": [{"text": "Hello from gemini"}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    assert body["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}
    assert body["modelVersion"] == "gemini-2.0-flash" and body["responseId"]
    seen = gemini.last_request
    assert seen.model == "gemini-2.0-flash" and seen.headers["x-goog-api-key"] == "g"
    assert "'g'" not in repr(seen)


def test_gemini_sse_stream(http, gemini):
    url = gemini.url + "/models/g:streamGenerateContent?alt=sse"
    with http.post(url, json=GEMINI, stream=True) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        chunks = [json.loads(d) for _, d in events(r)]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "Hello from gemini"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 5
    assert gemini.last_request.stream and gemini.last_request.query == {"alt": "sse"}


def test_gemini_stream_without_sse_is_a_json_array(http, gemini):
    with http.post(gemini.url + "/models/g:streamGenerateContent", json=GEMINI, stream=True) as r:
        array = json.loads(r.content)
    assert len(array) == 3 and array[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_embeddings_models_and_keys(http):
    with FakeUpstream("gemini", api_key="gk", models=["gemini-x", "text-embedding-004"]) as up:
        batch = http.post(up.url + "/models/text-embedding-004:batchEmbedContents?key=gk", json={
            "requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
                         for t in ("a", "b")]}).json()
        single = http.post(up.url + "/models/text-embedding-004:embedContent", json={
            "content": {"parts": [{"text": "a"}]}}, headers={"x-goog-api-key": "gk"}).json()
        listed = http.get(up.url + "/models", headers={"x-goog-api-key": "gk"}).json()
        wrong = http.post(up.url + "/models/gemini-x:generateContent?key=bad", json=GEMINI)
        missing = http.post(up.url + "/models/gemini-x:generateContent", json=GEMINI)
    assert batch == {"embeddings": [{"values": fake_embedding("a")}, {"values": fake_embedding("b")}]}
    assert single == {"embedding": {"values": fake_embedding("a")}}
    assert [m["name"] for m in listed["models"]] == ["models/gemini-x", "models/text-embedding-004"]
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"


# -- scripting --------------------------------------------------------------------------------

def test_script_is_fifo_then_always_then_default(http, openai):
    def text():
        return http.post(openai.url + "/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]

    openai.script("one", "two")
    openai.always("every")
    assert [text(), text(), text(), text()] == ["one", "two", "every", "every"]
    openai.always(None)
    assert text() == "Hello from openai"
    openai.script("left over")
    openai.reset()
    assert openai.pending == 0 and openai.requests == [] and text() == "Hello from openai"


def test_callable_step_decides_per_request(http, openai):
    openai.always(lambda req: Error(404, code="model_not_found") if req.model == "gone" else "found")
    assert http.post(openai.url + "/chat/completions", json=dict(CHAT, model="gone")).status_code == 404
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    assert r.json()["choices"][0]["message"]["content"] == "found"


def test_failing_callable_step_is_reported(http, openai):
    openai.script(lambda req: 1 / 0)
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    assert r.status_code == 500 and "ZeroDivisionError" in r.text
    assert isinstance(openai.errors[0], ZeroDivisionError)


def test_reply_overrides(http, openai):
    openai.script(Reply(text="custom words", status=201, headers={"x-ratelimit-remaining-requests": "7"},
                        usage=(11, 22), finish_reason="content_filter"))
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    body = r.json()
    assert r.status_code == 201 and r.headers["x-ratelimit-remaining-requests"] == "7"
    assert body["choices"][0]["message"]["content"] == "custom words"
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (11, 22)


def test_slow_first_byte_trips_a_real_timeout_then_recovers(http, openai):
    openai.script(SlowFirstByte(0.25), SlowFirstByte(0.01, then=Error(503)))
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(openai.url + "/chat/completions", json=CHAT, timeout=0.05)
    assert http.post(openai.url + "/chat/completions", json=CHAT, timeout=2).status_code == 503
    assert http.post(openai.url + "/chat/completions", json=CHAT, timeout=2).status_code == 200


def test_reply_delay_happens_before_the_status_line(http, openai):
    openai.script(Reply(delay=0.25))
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(openai.url + "/chat/completions", json=CHAT, timeout=0.05)


@pytest.mark.parametrize("style, url, body, headers", [
    ("openai", "/chat/completions", dict(CHAT, stream=True), {}),
    ("anthropic", "/messages", dict(CLAUDE, stream=True), AV),
    ("gemini", "/models/g:streamGenerateContent?alt=sse", GEMINI, {}),
])
def test_cut_stream_breaks_the_client_mid_stream(http, style, url, body, headers):
    with FakeUpstream(style) as up:
        up.script(CutStream(after_chunks=1))
        got = []
        with pytest.raises(requests.exceptions.ChunkedEncodingError), \
                http.post(up.url + url, json=body, headers=headers, stream=True) as r:
            for line in r.iter_lines(decode_unicode=True):
                got.append(line)
        assert any("Hello" in line for line in got)
        assert not any("from" in line or "[DONE]" in line or "message_stop" in line for line in got)
        assert http.post(up.url + url, json=body, headers=headers).status_code == 200  # still serving


def test_cut_non_streamed_body(http, openai):
    openai.script(CutStream())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.post(openai.url + "/chat/completions", json=CHAT)


def test_stream_error_event_openai(http, openai):
    openai.script(StreamErrorEvent(after_chunks=2))
    with chat_stream(http, openai) as r:
        data = [d for _, d in events(r)]
    assert "[DONE]" not in data
    assert [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:3]] == ["Hello", " from"]
    assert json.loads(data[-1])["error"]["type"] == "server_error"


def test_stream_error_event_anthropic(http, anthropic):
    anthropic.script(StreamErrorEvent(after_chunks=1), StreamErrorEvent(code="rate_limit_error"))
    with http.post(anthropic.url + "/messages", json=dict(CLAUDE, stream=True), headers=AV, stream=True) as r:
        got = events(r)
    assert got[-1] == ("error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    assert "message_stop" not in [n for n, _ in got]
    plain = http.post(anthropic.url + "/messages", json=CLAUDE, headers=AV)
    assert plain.status_code == 429 and plain.json()["error"]["type"] == "rate_limit_error"


def test_stream_error_event_gemini(http, gemini):
    gemini.script(StreamErrorEvent(after_chunks=1))
    with http.post(gemini.url + "/models/g:streamGenerateContent?alt=sse", json=GEMINI, stream=True) as r:
        data = [json.loads(d) for _, d in events(r)]
    assert data[0]["candidates"][0]["content"]["parts"][0]["text"] == "Hello"
    assert data[-1]["error"]["status"] == "UNAVAILABLE" and data[-1]["error"]["code"] == 503


def test_malformed_json(http, openai):
    openai.script(MalformedJSON(), MalformedJSON())
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()
    with chat_stream(http, openai) as r:
        (data,) = [d for _, d in events(r)]
    with pytest.raises(ValueError):
        json.loads(data)


def test_html_error_page(http, openai):
    openai.script(HtmlError(), HtmlError(503))
    r = http.post(openai.url + "/chat/completions", json=CHAT)
    assert (r.status_code, r.headers["Content-Type"]) == (502, "text/html")
    assert r.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert "503 Service Unavailable" in http.post(openai.url + "/chat/completions", json=CHAT).text


@pytest.mark.parametrize("step", [Drop(), Refuse()])
def test_drop_and_refuse_break_the_connection(http, openai, step):
    openai.script(step)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(openai.url + "/chat/completions", json=CHAT)
    assert openai.requests[0].json == CHAT  # the request was read and recorded first
    assert http.post(openai.url + "/chat/completions", json=CHAT).status_code == 200


def test_slow_stream_arrives_incrementally(http, openai):
    openai.script(SlowStream(chunk_delay=0.1))
    started = time.monotonic()
    with chat_stream(http, openai) as r:
        lines = r.iter_lines(decode_unicode=True)
        first_text = next(line for line in lines if '"content":"Hello"' in line)
        first_at = time.monotonic() - started
        rest = list(lines)
        done_at = time.monotonic() - started
    assert first_text and "data: [DONE]" in rest
    assert done_at >= 0.3  # three delays: two between words, one before the finish
    assert done_at - first_at >= 0.25  # the first word was readable long before the end


def test_refused_connections(http):
    url = refuse_connections()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url + "/v1/models", timeout=2)


# -- lifecycle and threads ----------------------------------------------------------------------

def test_urls_per_style():
    with upstreams("openai", "anthropic", {"style": "gemini", "name": "g2"}) as (o, a, g):
        assert o.url.endswith("/v1") and a.url.endswith("/v1") and g.url.endswith("/v1beta")
        assert o.url.startswith("http://127.0.0.1:") and len({o.port, a.port, g.port}) == 3
        assert (o.name, g.name) == ("openai", "g2")
    assert o.closed and a.closed and g.closed
    with pytest.raises(TypeError), upstreams(42):
        pass


def test_close_is_prompt_idempotent_and_leaves_no_threads(http):
    before = {t.ident for t in threading.enumerate()}
    up = FakeUpstream("openai")
    up.script(SlowFirstByte(10))
    failures = []

    def call():
        try:
            requests.post(up.url + "/chat/completions", json=CHAT, timeout=5)
        except requests.exceptions.ConnectionError as exc:
            failures.append(exc)

    client = threading.Thread(target=call)
    client.start()
    up.wait_for_requests(1)
    started = time.monotonic()
    up.close()
    up.close()
    client.join(timeout=5)
    assert time.monotonic() - started < 1.0  # the 10 s sleep was cut short
    assert failures and not client.is_alive()
    assert {t.ident for t in threading.enumerate() if t.name.startswith("FakeUpstream")} - before == set()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(up.url + "/models", timeout=1)


def test_concurrent_requests_each_take_one_step():
    with FakeUpstream("openai") as up:
        up.script(*[f"reply {i}" for i in range(8)])
        got = []

        def call():
            with requests.Session() as s:
                r = s.post(up.url + "/chat/completions", json=CHAT, timeout=5)
                got.append(r.json()["choices"][0]["message"]["content"])

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=5)
        assert sorted(got) == sorted(f"reply {i}" for i in range(8))
        assert len(up.requests) == 8 and up.pending == 0


def test_wait_for_requests_times_out(openai):
    with pytest.raises(TimeoutError):
        openai.wait_for_requests(1, timeout=0.01)
    with pytest.raises(LookupError):
        _ = openai.last_request


def test_recorded_request_model_and_stream_properties():
    def rec(path, body=None):
        return RecordedRequest(method="POST", path=path, query={}, headers={}, json=body, body=b"")

    assert rec("/v1/chat/completions", {"model": "m", "stream": True}).model == "m"
    assert rec("/v1/chat/completions", {"model": "m", "stream": True}).stream
    assert rec("/openai/deployments/dep/chat/completions", {}).model == "dep"
    assert rec("/v1beta/models/gemini-1.5:streamGenerateContent").model == "gemini-1.5"
    assert rec("/v1beta/models/gemini-1.5:streamGenerateContent").stream
    assert rec("/v1/models").model is None and not rec("/v1/models").stream
