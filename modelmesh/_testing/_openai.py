"""OpenAI's wire format (and Azure OpenAI's paths) for the fake upstream.

Theory of operation: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models[/{id}]`, the
audio and image endpoints (answered by `_media.py`: `/v1/audio/speech|transcriptions|
translations`, `/v1/images/generations|edits`), and
Azure's `/openai/deployments/{deployment}/(chat/completions|embeddings)?api-version=...`
authenticated by an `api-key` header. A stream is `data: {chat.completion.chunk}` events:
a role chunk, one chunk per word, a finish chunk, a usage chunk with `choices: []` only
when `stream_options.include_usage` is set (other chunks then carry `usage: null`), and
`data: [DONE]`. Errors are `{"error": {"message", "type", "param", "code"}}`; mid-stream
they arrive as a `data: {"error": {...}}` event.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from ._media import MEDIA_KINDS, MediaAnswer, openai_media, openai_media_problem
from ._steps import Error, RecordedRequest
from ._wire import Completion, Dialect, Route, StreamPlan, count_prompt_words, digest, embedding_as_base64, fake_embedding, sse

__all__ = ["OpenAIDialect", "COMMON_STATUS"]

_MEDIA_PATHS = {"/v1/audio/speech": "speech", "/v1/audio/transcriptions": "transcriptions",
                "/v1/audio/translations": "translations", "/v1/images/generations": "images",
                "/v1/images/edits": "image_edits"}
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")

# Status for a code when a step names only the code (StreamErrorEvent, Error defaults).
COMMON_STATUS = {
    "rate_limit_exceeded": 429, "rate_limit_error": 429, "RESOURCE_EXHAUSTED": 429,
    "insufficient_quota": 429, "context_length_exceeded": 400, "invalid_request_error": 400,
    "INVALID_ARGUMENT": 400, "model_not_found": 404, "not_found_error": 404, "NOT_FOUND": 404,
    "invalid_api_key": 401, "authentication_error": 401, "UNAUTHENTICATED": 401,
    "permission_error": 403, "PERMISSION_DENIED": 403, "overloaded_error": 503,
    "UNAVAILABLE": 503, "server_error": 500, "api_error": 500, "INTERNAL": 500,
}

_KNOWN = {  # code -> (type, message, param)
    "insufficient_quota": ("insufficient_quota",
                           "You exceeded your current quota, please check your plan and billing details. "
                           "For more information on this error, read the docs: "
                           "https://platform.openai.com/docs/guides/error-codes/api-errors.", None),
    "rate_limit_exceeded": ("requests", "Rate limit reached for {model} on requests per min (RPM): "
                                        "Limit 3, Used 3, Requested 1. Please try again in 20s.", None),
    "context_length_exceeded": ("invalid_request_error",
                                "This model's maximum context length is 128000 tokens. However, your "
                                "messages resulted in 250000 tokens. Please reduce the length of the "
                                "messages.", "messages"),
    "model_not_found": ("invalid_request_error",
                        "The model `{model}` does not exist or you do not have access to it.", None),
    "invalid_api_key": ("invalid_request_error", "Incorrect API key provided. You can find your API key "
                                                 "at https://platform.openai.com/account/api-keys.", None),
}
# Other vendors' codes, so one script can drive every style.
_ALIASES = {"RESOURCE_EXHAUSTED": "rate_limit_exceeded", "rate_limit_error": "rate_limit_exceeded",
            "not_found_error": "model_not_found", "NOT_FOUND": "model_not_found",
            "authentication_error": "invalid_api_key", "UNAUTHENTICATED": "invalid_api_key"}
# Codes OpenAI reports as a server_error with `code: null`.
_SERVER = {"overloaded_error": "The engine is currently overloaded, please try again later.",
           "UNAVAILABLE": "The engine is currently overloaded, please try again later.",
           "api_error": None, "INTERNAL": None, "server_error": None}
_DEFAULT_CODE = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_SERVER_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't "
             "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
             "sent was not valid JSON.)")
_NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization "
           "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
_AZURE_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                 "provide a valid key for an active subscription and use a correct regional API "
                 "endpoint for your resource.")


def _missing(param: str) -> Error:
    return Error(400, code="missing_required_parameter", message=f"Missing required parameter: '{param}'.")


class OpenAIDialect(Dialect):
    style = "openai"
    prefix = "/v1"
    stream_content_type = "text/event-stream; charset=utf-8"

    def route(self, req: RecordedRequest) -> Route:
        body = req.json if isinstance(req.json, dict) else {}
        stream = body.get("stream") is True
        azure = _AZURE.match(req.path)
        if azure and req.method == "POST":
            kind = "chat" if azure[2] == "chat/completions" else "embeddings"
            return Route(kind=kind, model=azure[1], stream=stream and kind == "chat", azure=True)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if req.method == "POST" and req.path == "/v1/chat/completions":
            return Route(kind="chat", model=model, stream=stream)
        if req.method == "POST" and req.path == "/v1/embeddings":
            return Route(kind="embeddings", model=model)
        if req.method == "POST" and req.path in _MEDIA_PATHS:
            return Route(kind=_MEDIA_PATHS[req.path], model=req.model, stream=req.path == "/v1/audio/speech")
        if req.method == "GET" and req.path == "/v1/models":
            return Route(kind="models")
        if req.method == "GET" and req.path == "/v1/key":  # OpenRouter's key endpoint
            return Route(kind="key")
        if req.method == "GET" and req.path == "/user/balance":  # DeepSeek's, on the host
            return Route(kind="balance")
        if req.method == "GET" and req.path.startswith("/v1/models/") and len(req.path) > 11:
            return Route(kind="model", model=req.path[11:])
        return Route(kind="unknown")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        if route.azure:
            ok = req.headers.get("api-key") == api_key
            return None if ok else Error(401, code="401", message=_AZURE_DENIED)
        auth = req.headers.get("authorization")
        if not auth:
            return Error(401, code="", message=_NO_KEY)
        return None if auth == f"Bearer {api_key}" else Error(401, code="invalid_api_key")

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.azure and "api-version" not in req.query:
            return Error(404, code="404", message="Resource not found")
        if route.kind in MEDIA_KINDS:
            return openai_media_problem(req, route)
        if route.kind not in ("chat", "embeddings"):
            return None
        body = req.json
        if not isinstance(body, dict):
            return Error(400, code="", message=_BAD_JSON)
        if not route.azure and not isinstance(body.get("model"), str):
            return Error(400, code="", message="you must provide a model parameter")
        if route.kind == "embeddings":
            return None if body.get("input") not in (None, "", []) else _missing("input")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _missing("messages")
        if not messages:
            return Error(400, code="empty_array", message="Invalid 'messages': empty array. Expected an "
                         "array with minimum length 1, but got an empty array instead.")
        return None

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def new_id(self, salt: str) -> str:
        return f"chatcmpl-{salt[:29]}"

    def request_id_headers(self, salt: str) -> dict[str, str]:
        return {"x-request-id": f"req_{digest(salt, 'request')[:32]}", "openai-version": "2020-10-01"}

    def _usage(self, c: Completion) -> dict:
        return {"prompt_tokens": c.input_tokens, "completion_tokens": c.output_tokens,
                "total_tokens": c.input_tokens + c.output_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}

    def _tool_id(self, c: Completion, index: int) -> str:
        return c.tool_calls[index].id or f"call_{digest(c.salt, 'tool', index)[:24]}"

    def completion_body(self, c: Completion) -> dict:
        message: dict[str, Any] = {"role": "assistant",
                                   "content": c.text if c.text or not c.tool_calls else None,
                                   "refusal": None, "annotations": []}
        if c.tool_calls:
            message["tool_calls"] = [
                {"id": self._tool_id(c, i), "type": "function",
                 "function": {"name": t.name, "arguments": json.dumps(dict(t.arguments))}}
                for i, t in enumerate(c.tool_calls)]
        return {"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": c.finish_reason}],
                "usage": self._usage(c), "service_tier": "default",
                "system_fingerprint": f"fp_{c.salt[:10]}"}

    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        body = req.json if isinstance(req.json, dict) else {}
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        frame = {"id": c.id, "object": "chat.completion.chunk", "created": c.created,
                 "model": c.model, "service_tier": "default", "system_fingerprint": f"fp_{c.salt[:10]}"}

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            out = dict(frame, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                        "finish_reason": finish}])
            return sse(dict(out, usage=None) if with_usage else out)

        opening = "" if c.text or not c.tool_calls else None
        head = (chunk({"role": "assistant", "content": opening, "refusal": None}),)
        pieces = [chunk({"content": p}) for p in c.pieces]
        for i, t in enumerate(c.tool_calls):
            pieces.append(chunk({"tool_calls": [{"index": i, "id": self._tool_id(c, i), "type": "function",
                                                 "function": {"name": t.name, "arguments": ""}}]}))
            pieces.append(chunk({"tool_calls": [{"index": i, "function": {
                "arguments": json.dumps(dict(t.arguments))}}]}))
        tail = [chunk({}, c.finish_reason)]
        if with_usage:
            tail.append(sse(dict(frame, choices=[], usage=self._usage(c))))
        tail.append(b"data: [DONE]\n\n")
        return StreamPlan(head=head, pieces=tuple(pieces), tail=tuple(tail))

    def status_for(self, code: str) -> int:
        return COMMON_STATUS.get(code, 500)

    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        code = err.code if err.code is not None else _DEFAULT_CODE.get(err.status)
        code = _ALIASES.get(code, code) if code else code
        if code in _SERVER:
            kind, message, param, code = "server_error", _SERVER[code] or _SERVER_MESSAGE, None, None
        elif code in _KNOWN:
            kind, message, param = _KNOWN[code]
        else:
            kind = "invalid_request_error" if err.status < 500 else "server_error"
            message = _SERVER_MESSAGE if err.status >= 500 else _phrase(err.status)
            param = None
        if code in ("missing_required_parameter", "empty_array") and err.message:
            found = re.search(r"'(\w+)'", err.message)
            param = found[1] if found else None
        text = err.message if err.message is not None else message.replace("{model}", model or "unknown")
        param = err.param if err.param is not None else param
        return {"error": {"message": text, "type": kind, "param": param, "code": code or None}}

    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        return sse(self.error_body(err, model, ""))

    def embeddings_body(self, req: RecordedRequest, route: Route) -> dict:
        body = req.json
        raw = body.get("input")
        one = isinstance(raw, str) or (isinstance(raw, list) and all(isinstance(x, int) for x in raw))
        items = [raw] if one else list(raw)
        dim = body.get("dimensions")
        dim = dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else 8
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(items):
            vector = fake_embedding(item if isinstance(item, str) else json.dumps(item), dim)
            data.append({"object": "embedding", "index": i,
                         "embedding": embedding_as_base64(vector) if b64 else vector})
        used = sum(count_prompt_words(i, "input") if isinstance(i, str) else len(i) for i in items)
        return {"object": "list", "data": data, "model": route.model or body.get("model"),
                "usage": {"prompt_tokens": used, "total_tokens": used}}

    def media_answer(self, req: RecordedRequest, route: Route, text: str, salt: str,
                     root_url: str) -> MediaAnswer | Error:
        return openai_media(req, route, text, salt, root_url)

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        return {"object": "list", "data": [self.model_body(m, created, owner) for m in ids]}

    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        return {"id": model_id, "object": "model", "created": created, "owned_by": owner}


# -- account endpoints of the OpenAI-compatible vendors ---------------------------------------------

def priced(listing: dict, prices: Mapping[str, tuple[float, float]]) -> dict:
    """A model listing with OpenRouter's `pricing` (USD per token, as decimal strings)."""
    for entry in listing["data"]:
        price = prices.get(entry["id"])
        if price is not None:
            entry["pricing"] = {"prompt": f"{price[0]:.10f}", "completion": f"{price[1]:.10f}", "request": "0"}
    return listing


def key_body(quota: Mapping[str, Any]) -> dict:
    """OpenRouter's GET /key: the key's limit, what is left of it and its usage, in USD."""
    limit, usage = quota.get("limit"), float(quota.get("usage", 0.0))
    return {"data": {"label": "sk-or-v1-fak...key", "limit": limit, "usage": usage, "usage_daily": usage,
                     "limit_remaining": None if limit is None else max(0.0, float(limit) - usage),
                     "is_free_tier": False, "limit_reset": None}}


def balance_body(balance: Mapping[str, Any]) -> dict:
    """DeepSeek's GET /user/balance."""
    total = str(balance.get("total", "0.00"))
    return {"is_available": bool(balance.get("available", True)), "balance_infos": [
        {"currency": balance.get("currency", "USD"), "total_balance": total, "granted_balance": "0.00",
         "topped_up_balance": total}]}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
