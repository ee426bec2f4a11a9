"""Cohere's v2 API wire format for the fake upstream.

Theory of operation: `POST /v2/chat` (streamed when the body says `"stream": true`),
`POST /v2/embed`, `GET /v1/models[/{name}]`, with the key as a bearer token. An answer is
`{id, finish_reason, message: {role, content: [{type: text, text}], tool_calls}, usage:
{billed_units, tokens}}`; a stream is named SSE events (message-start, content-start, one
content-delta per word, content-end, tool-call-start/-end per call, message-end with the
finish reason and usage), with no `[DONE]`. Errors are `{"id", "message"}`; a failure
inside a stream is Cohere's `message-end` with finish_reason ERROR.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._openai import COMMON_STATUS
from ._steps import Error, RecordedRequest
from ._wire import Completion, Dialect, Route, StreamPlan, digest, fake_embedding, sse

__all__ = ["CohereDialect"]

_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL", "content_filter": "ERROR"}
_MESSAGES = {
    400: "invalid request: message must be at least 1 token long or tool results must be specified.",
    401: "invalid api token", 402: "Please add or update your payment method to continue.",
    404: "model '{model}' not found, make sure the correct model ID was used and that you have access to the model.",
    429: "You are using a Trial key, which is limited to 10 API calls / minute. You can continue to use the Trial "
         "key for free or upgrade to a Production key with higher rate limits.",
    498: "invalid api token", 500: "internal server error, this has been reported to our developers",
    503: "service unavailable",
}
# other vendors' codes, so one script drives every style: code -> (status, message or None)
_CODES = {
    "insufficient_quota": (429, "You are using a Trial key, which is limited to 1000 API calls / month. You can "
                                "continue to use the Trial key for free or upgrade to a Production key."),
    "context_length_exceeded": (400, "too many tokens: size limit exceeded by 11326 tokens. Try using shorter or "
                                     "fewer inputs, or setting prompt_truncation='AUTO'."),
}


class CohereDialect(Dialect):
    style = "cohere"
    prefix = ""

    def route(self, req: RecordedRequest) -> Route:
        body = req.json if isinstance(req.json, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if req.method == "POST" and req.path == "/v2/chat":
            return Route(kind="chat", model=model, stream=body.get("stream") is True)
        if req.method == "POST" and req.path == "/v2/embed":
            return Route(kind="embeddings", model=model)
        if req.method == "GET" and req.path == "/v1/models":
            return Route(kind="models")
        if req.method == "GET" and req.path.startswith("/v1/models/") and len(req.path) > 11:
            return Route(kind="model", model=req.path[11:])
        return Route(kind="unknown")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        got = req.headers.get("Authorization")
        if got is None:
            return Error(401, message="no api key supplied")
        return None if got == f"Bearer {api_key}" else Error(401)

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.kind not in ("chat", "embeddings"):
            return None
        body = req.json
        if not isinstance(body, dict):
            return Error(400, message="invalid request: the request body is not valid JSON")
        if not route.model:
            return Error(400, message="invalid request: model must be specified")
        if route.kind == "chat" and not isinstance(body.get("messages"), list):
            return Error(400, message="invalid request: messages must be specified")
        if route.kind == "embeddings":
            if not isinstance(body.get("texts"), list) or not body["texts"]:
                return Error(400, message="invalid request: texts must be a non-empty list")
            if not body.get("input_type"):
                return Error(400, message="invalid request: valid input_type must be provided with the provided model")
        return None

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def new_id(self, salt: str) -> str:
        return f"{salt[:8]}-{salt[8:12]}-{salt[12:16]}-{salt[16:20]}-{salt[20:32]}"

    def _usage(self, c: Completion) -> dict:
        counts = {"input_tokens": c.input_tokens, "output_tokens": c.output_tokens}
        return {"billed_units": dict(counts), "tokens": dict(counts)}

    def _calls(self, c: Completion) -> list[dict]:
        return [{"id": t.id or f"{t.name}_{digest(c.salt, 'tool', i)[:8]}", "type": "function",
                 "function": {"name": t.name, "arguments": json.dumps(dict(t.arguments))}}
                for i, t in enumerate(c.tool_calls)]

    def completion_body(self, c: Completion) -> dict:
        message: dict[str, Any] = {"role": "assistant"}
        if c.text or not c.tool_calls:
            message["content"] = [{"type": "text", "text": c.text}]
        if c.tool_calls:
            message["tool_plan"] = "I will call the tools."
            message["tool_calls"] = self._calls(c)
        return {"id": c.id, "finish_reason": _FINISH.get(c.finish_reason, "COMPLETE"), "message": message,
                "usage": self._usage(c)}

    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        def event(name: str, **data: Any) -> bytes:
            return sse({"type": name, **data}, name)

        head = [event("message-start", id=c.id, delta={"message": {"role": "assistant", "content": [],
                                                                    "tool_plan": "", "tool_calls": [],
                                                                    "citations": []}})]
        pieces: list[bytes] = []
        tail: list[bytes] = []
        if c.text or not c.tool_calls:
            head.append(event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}))
            pieces.extend(event("content-delta", index=0, delta={"message": {"content": {"text": p}}})
                          for p in c.pieces)
            tail.append(event("content-end", index=0))
        for i, call in enumerate(self._calls(c)):
            start = {"id": call["id"], "type": "function", "function": {"name": call["function"]["name"],
                                                                         "arguments": ""}}
            pieces.append(event("tool-call-start", index=i, delta={"message": {"tool_calls": start}})
                          + event("tool-call-delta", index=i, delta={"message": {"tool_calls": {
                              "function": {"arguments": call["function"]["arguments"]}}}})
                          + event("tool-call-end", index=i))
        tail.append(event("message-end", delta={"finish_reason": _FINISH.get(c.finish_reason, "COMPLETE"),
                                                "usage": self._usage(c)}))
        return StreamPlan(head=tuple(head), pieces=tuple(pieces), tail=tuple(tail))

    def status_for(self, code: str) -> int:
        return _CODES[code][0] if code in _CODES else COMMON_STATUS.get(code, 500)

    def _message(self, err: Error, model: str | None) -> str:
        if err.message is not None:
            return err.message
        if err.code in _CODES and _CODES[err.code][1]:
            return str(_CODES[err.code][1])
        return _MESSAGES.get(err.status, "internal server error").replace("{model}", model or "unknown")

    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        return {"id": self.new_id(digest(salt, "error")), "message": self._message(err, model)}

    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        return sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": self._message(err, model)}},
                   "message-end")

    def malformed_event(self, route: Route) -> bytes:
        return b'event: content-delta\ndata: {"type": "content-delta", "index": 0, "delta": {\n\n'

    def embeddings_body(self, req: RecordedRequest, route: Route) -> dict:
        body = req.json
        texts = [t if isinstance(t, str) else json.dumps(t) for t in body["texts"]]
        dim = body.get("output_dimension")
        dim = dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else 8
        tokens = sum(len(t.split()) for t in texts)
        return {"id": self.new_id(digest(*texts)), "embeddings": {"float": [fake_embedding(t, dim) for t in texts]},
                "texts": texts, "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type"}

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        return {"models": [self.model_body(m, created, owner) for m in ids]}

    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        endpoints = ["embed"] if "embed" in model_id else ["chat"]
        return {"name": model_id, "endpoints": endpoints, "finetuned": False, "context_length": 128000,
                "default_endpoints": endpoints}
