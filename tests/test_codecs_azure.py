"""Azure OpenAI codec: deployment URLs, api-key auth, content filtering."""
from __future__ import annotations

import json

import pytest
import requests
import responses

from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec
from modelmesh._core.codecs.azure import DEFAULT_API_VERSION

CODEC = get_codec("azure-openai")
BASE = "https://contoso.openai.azure.com"
TARGET = Target(provider="azure", model="gpt-4o", base_url=BASE, api_key="0123456789abcdef0123456789abcdef",
                deployment="gpt4o-prod", api_version="2024-10-21")
CHAT = {"messages": [{"role": "user", "content": "hi"}], "seed": 3}


def test_deployment_url_api_version_and_api_key_header():
    wire = CODEC.build_request(TARGET, "chat", CHAT, stream=False)
    assert wire.url == f"{BASE}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert wire.headers["api-key"] == TARGET.api_key and "Authorization" not in wire.headers
    assert wire.json == {**CHAT, "model": "gpt4o-prod"}


def test_defaults_deployment_to_model_and_api_version_to_ga():
    target = Target(provider="azure", model="text-embedding-3-small", base_url=BASE + "/openai/", api_key="k")
    wire = CODEC.build_request(target, "embeddings", {"input": "x"}, stream=False)
    assert wire.url == (f"{BASE}/openai/deployments/text-embedding-3-small/embeddings"
                        f"?api-version={DEFAULT_API_VERSION}")
    assert CODEC.build_request(target, "models", {}, stream=False).url == \
        f"{BASE}/openai/models?api-version={DEFAULT_API_VERSION}"


def test_v1_surface_bearer_auth_and_stream_usage():
    target = Target(provider="azure", model="gpt-4o", base_url=BASE, api_key="entra-token", api_version="v1",
                    options={"auth": "bearer"})
    wire = CODEC.build_request(target, "chat", CHAT, stream=True)
    assert wire.url == f"{BASE}/openai/v1/chat/completions"
    assert wire.headers["Authorization"] == "Bearer entra-token" and "api-key" not in wire.headers
    assert wire.json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("field, value, match", [
    ("deployment", "bad/deploy", "deployment names"), ("api_version", "latest", "api_version")])
def test_bad_addressing_is_refused(field, value, match):
    target = Target(provider="azure", model="m", base_url=BASE, **{field: value})
    with pytest.raises(ValueError, match=match):
        CODEC.build_request(target, "chat", CHAT, stream=False)


def test_prompt_filter_400_is_content_filtered():
    body = {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy.", "type": None, "param": "prompt", "code": "content_filter",
                      "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                          "hate": {"filtered": True, "severity": "high"}}}}}
    info = CODEC.classify_error(400, {}, json.dumps(body).encode())
    assert (info.kind, info.code) == (ErrorKind.CONTENT_FILTERED, "content_filter")


def test_azure_429_deployment_404_and_401():
    throttled = {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure "
                                                     "OpenAI API version 2024-10-21 have exceeded token rate limit of "
                                                     "your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}
    info = CODEC.classify_error(429, {}, json.dumps(throttled).encode())
    assert (info.kind, info.retry_after) == (ErrorKind.RATE_LIMITED, 6.0)
    missing = {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}
    assert CODEC.classify_error(404, {}, json.dumps(missing).encode()).kind is ErrorKind.MODEL_NOT_FOUND
    denied = {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}
    assert CODEC.classify_error(401, {}, json.dumps(denied).encode()).kind is ErrorKind.AUTH


def _completion(finish, content):
    return {"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content},
                         "content_filter_results": {"violence": {"filtered": finish == "content_filter",
                                                                 "severity": "high"}}}]}


def test_fully_filtered_completion_is_an_error_partial_is_returned():
    with pytest.raises(CodecError) as err:
        CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(_completion("content_filter", None)).encode())
    assert err.value.info.kind is ErrorKind.CONTENT_FILTERED
    partial = _completion("content_filter", "Once upon a")
    assert CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(partial).encode()) == partial
    fine = _completion("stop", "ok")
    assert CODEC.parse_response(TARGET, "chat", 200, {}, json.dumps(fine).encode()) == fine


def _chunk(delta, finish=None):
    return {"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "content_filter_results": {}}]}


PROMPT_FILTER_CHUNK = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                       "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}


def _sse(chunks):
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def test_stream_filtered_before_content_is_an_error():
    decoder = CODEC.stream_decoder(TARGET, "chat")
    items = decoder.feed(_sse([PROMPT_FILTER_CHUNK, _chunk({"role": "assistant", "content": ""}),
                               _chunk({}, "content_filter")])) + decoder.close()
    assert items[:2] == [PROMPT_FILTER_CHUNK, _chunk({"role": "assistant", "content": ""})]
    assert isinstance(items[2], StreamError) and items[2].info.kind is ErrorKind.CONTENT_FILTERED
    assert len(items) == 3


def test_stream_filtered_after_content_passes_through():
    chunks = [_chunk({"role": "assistant", "content": "Once"}), _chunk({}, "content_filter")]
    decoder = CODEC.stream_decoder(TARGET, "chat")
    items = decoder.feed(_sse(chunks)) + decoder.close()
    assert items[:-1] == chunks and isinstance(items[-1], StreamDone)


@responses.activate
def test_wire_request_through_requests_session():
    url = f"{BASE}/openai/deployments/gpt4o-prod/chat/completions"
    responses.add(responses.POST, url, json=_completion("stop", "Hello from Azure"),
                  match=[responses.matchers.query_param_matcher({"api-version": "2024-10-21"}),
                         responses.matchers.header_matcher({"api-key": TARGET.api_key})])
    wire = CODEC.build_request(TARGET, "chat", CHAT, stream=False)
    with requests.Session() as session:
        resp = session.request(wire.method, wire.url, headers=dict(wire.headers), json=wire.json)
    out = CODEC.parse_response(TARGET, "chat", resp.status_code, resp.headers, resp.content)
    assert out["choices"][0]["message"]["content"] == "Hello from Azure"
