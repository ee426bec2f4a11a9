"""Google Gemini's (Generative Language API) wire format for the fake upstream.

Theory of operation: `/v1beta/models/{model}:generateContent`, `:streamGenerateContent`
(SSE with `?alt=sse`, otherwise one JSON array streamed element by element),
`:embedContent`, `:batchEmbedContents`, `:countTokens`, and `GET /v1beta/models[/{id}]`;
`/v1/...` is served the same. The key travels in `x-goog-api-key` or `?key=`. Every
answer is a GenerateContentResponse (candidates[].content.parts[], finishReason,
usageMetadata, modelVersion, responseId); a stream sends one per word and the last one
carries finishReason and the full usage. Errors are `{"error": {"code", "message",
"status", "details"?}}`; a wrong key is a 400 INVALID_ARGUMENT with reason
API_KEY_INVALID, as the real service answers.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._openai import COMMON_STATUS
from ._steps import Error, RecordedRequest
from ._wire import Completion, Dialect, Route, StreamPlan, count_prompt_words, fake_embedding, json_bytes, sse

__all__ = ["GeminiDialect"]

_PATH = re.compile(r"^/(?:v1beta|v1)/models(?:/(.+))?$")
_BY_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
              500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_STATUS_OF = {v: k for k, v in _BY_STATUS.items()}
_MESSAGES = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "NOT_FOUND": "models/{model} is not found for API version v1beta, or is not supported for "
                 "generateContent. Call ListModels to see the list of available models and their "
                 "supported methods.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "INTERNAL": "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
}
_BAD_KEY = "API key not valid. Please pass a valid API key."
_ALIASES = {  # other vendors' codes -> (status, message)
    "rate_limit_exceeded": ("RESOURCE_EXHAUSTED", None), "rate_limit_error": ("RESOURCE_EXHAUSTED", None),
    "insufficient_quota": ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan "
                           "and billing details. For more information on this error, head to: "
                           "https://ai.google.dev/gemini-api/docs/rate-limits."),
    "context_length_exceeded": ("INVALID_ARGUMENT", "The input token count (2500000) exceeds the maximum "
                                "number of tokens allowed (1048576)."),
    "model_not_found": ("NOT_FOUND", None), "not_found_error": ("NOT_FOUND", None),
    "overloaded_error": ("UNAVAILABLE", None), "api_error": ("INTERNAL", None),
    "server_error": ("INTERNAL", None), "authentication_error": ("UNAUTHENTICATED", None),
    "permission_error": ("PERMISSION_DENIED", None), "invalid_request_error": ("INVALID_ARGUMENT", None),
    "invalid_api_key": ("INVALID_ARGUMENT", _BAD_KEY), "API_KEY_INVALID": ("INVALID_ARGUMENT", _BAD_KEY),
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_METHODS = {"generateContent": "chat", "streamGenerateContent": "chat", "embedContent": "embeddings",
            "batchEmbedContents": "embeddings", "countTokens": "count_tokens"}


def _invalid(message: str) -> Error:
    return Error(400, code="INVALID_ARGUMENT", message=message)


class GeminiDialect(Dialect):
    style = "gemini"
    prefix = "/v1beta"

    def route(self, req: RecordedRequest) -> Route:
        found = _PATH.match(req.path)
        if not found:
            return Route(kind="unknown")
        rest = found[1]
        if rest is None:
            return Route(kind="models") if req.method == "GET" else Route(kind="unknown")
        model, sep, method = rest.rpartition(":")
        if not sep:
            return Route(kind="model", model=rest) if req.method == "GET" else Route(kind="unknown")
        if req.method != "POST" or method not in _METHODS or not model:
            return Route(kind="unknown", model=model or None)
        stream = method == "streamGenerateContent"
        return Route(kind=_METHODS[method], model=model, stream=stream,
                     sse=req.query.get("alt") == "sse", single=method == "embedContent")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        got = req.headers.get("x-goog-api-key") or req.query.get("key")
        if got is None:
            return Error(403, code="PERMISSION_DENIED",
                         message="Method doesn't allow unregistered callers (callers without established "
                                 "identity). Please use API Key or other form of API consumer identity "
                                 "to call this API.")
        return None if got == api_key else Error(400, code="API_KEY_INVALID")

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.kind not in ("chat", "embeddings", "count_tokens"):
            return None
        body = req.json
        if not isinstance(body, dict):
            return _invalid("Invalid JSON payload received. Unexpected token.")
        if route.kind == "chat" and not body.get("contents"):
            return _invalid("* GenerateContentRequest.contents: contents is not specified\n")
        if route.kind == "embeddings" and route.single and not body.get("content"):
            return _invalid("* EmbedContentRequest.content: content is not specified\n")
        if route.kind == "embeddings" and not route.single and not body.get("requests"):
            return _invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
        return None

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        config = body.get("generationConfig")
        value = config.get("maxOutputTokens") if isinstance(config, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def new_id(self, salt: str) -> str:
        return salt[:22]

    def _response(self, c: Completion, parts: list[dict], finish: bool) -> dict:
        candidate: dict[str, Any] = {}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish:
            candidate["finishReason"] = _FINISH.get(c.finish_reason, c.finish_reason)
        candidate["index"] = 0
        usage = {"promptTokenCount": c.input_tokens, "totalTokenCount": c.input_tokens}
        if finish:
            usage = {"promptTokenCount": c.input_tokens, "candidatesTokenCount": c.output_tokens,
                     "totalTokenCount": c.input_tokens + c.output_tokens}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": c.model,
                "responseId": c.id}

    def _calls(self, c: Completion) -> list[dict]:
        return [{"functionCall": {"name": t.name, "args": dict(t.arguments)}} for t in c.tool_calls]

    def completion_body(self, c: Completion) -> dict:
        parts = ([{"text": c.text}] if c.text else []) + self._calls(c)
        if not parts and c.finish_reason != "content_filter":
            parts = [{"text": ""}]
        return self._response(c, parts, finish=True)

    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        groups = [[{"text": p}] for p in c.pieces] + [[call] for call in self._calls(c)]
        bodies = [self._response(c, g, finish=i == len(groups) - 1) for i, g in enumerate(groups)]
        ending = [] if bodies else [self._response(c, [{"text": ""}], finish=True)]
        if route.sse:
            return StreamPlan(head=(), pieces=tuple(sse(b, crlf=True) for b in bodies),
                              tail=tuple(sse(b, crlf=True) for b in ending))
        # Without alt=sse the service streams one JSON array, an element at a time.
        pieces = tuple((b"" if i == 0 else b",\r\n") + json_bytes(b) for i, b in enumerate(bodies))
        tail = tuple((b",\r\n" if bodies else b"") + json_bytes(b) for b in ending) + (b"]",)
        return StreamPlan(head=(b"[",), pieces=pieces, tail=tail)

    def status_for(self, code: str) -> int:
        return _STATUS_OF.get(code) or COMMON_STATUS.get(code, 500)

    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        status, message = err.code, None
        if status in _ALIASES:
            status, message = _ALIASES[status]
        if not status:
            status = _BY_STATUS.get(err.status, "INTERNAL" if err.status >= 500 else "INVALID_ARGUMENT")
        if err.message is not None:
            message = err.message
        if message is None:
            message = _MESSAGES.get(status, status).replace("{model}", model or "unknown")
        body: dict[str, Any] = {"code": err.status, "message": message, "status": status}
        details = []
        if err.code in ("invalid_api_key", "API_KEY_INVALID"):
            details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                            "metadata": {"service": "generativelanguage.googleapis.com"}})
        if err.retry_after is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{err.retry_after:g}s"})
        if details:
            body["details"] = details
        return {"error": body}

    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        body = self.error_body(err, model, "")
        if route.sse:
            return sse(body, crlf=True)
        return (b",\r\n" if sent else b"") + json_bytes(body) + b"]"

    def malformed_event(self, route: Route) -> bytes:
        return b'data: {"candidates": [{"content": {\r\n\r\n' if route.sse else b'{"candidates": [{'

    def embeddings_body(self, req: RecordedRequest, route: Route) -> dict:
        body = req.json
        requests = [body] if route.single else list(body["requests"])
        vectors = []
        for item in requests:
            content = item.get("content") if isinstance(item, dict) else None
            parts = content.get("parts", []) if isinstance(content, dict) else []
            text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
            dim = item.get("outputDimensionality") if isinstance(item, dict) else None
            dim = dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else 8
            vectors.append({"values": fake_embedding(text, dim)})
        return {"embedding": vectors[0]} if route.single else {"embeddings": vectors}

    def count_tokens_body(self, req: RecordedRequest) -> dict:
        return {"totalTokens": count_prompt_words(req.json)}

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        return {"models": [self.model_body(m, created, owner) for m in ids]}

    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        embeds = "embed" in model_id
        methods = ["embedContent", "batchEmbedContents"] if embeds else ["generateContent", "countTokens"]
        return {"name": f"models/{model_id}", "version": "001", "displayName": model_id,
                "description": f"{model_id} served by {owner}", "inputTokenLimit": 1048576,
                "outputTokenLimit": 8192, "supportedGenerationMethods": methods}

