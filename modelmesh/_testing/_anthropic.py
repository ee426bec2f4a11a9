"""Anthropic's Messages API wire format for the fake upstream.

Theory of operation: `POST /v1/messages` (needs `x-api-key` when the fake has a key, and
always the `anthropic-version` header), `POST /v1/messages/count_tokens`, `GET
/v1/models[/{id}]`. There is no embeddings endpoint. A stream is named SSE events:
message_start (a Message with empty content), content_block_start, ping, one
content_block_delta per word, content_block_stop, message_delta (stop_reason and
output_tokens), message_stop. Tool calls are tool_use blocks streamed as
input_json_delta. Errors are `{"type": "error", "error": {"type", "message"}}`, over HTTP
(with a request_id) or mid-stream as `event: error`.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from ._openai import COMMON_STATUS
from ._steps import Error, RecordedRequest
from ._wire import Completion, Dialect, Route, StreamPlan, digest, sse

__all__ = ["AnthropicDialect"]

_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
              403: "permission_error", 404: "not_found_error", 413: "request_too_large",
              429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
_STATUS_OF = {v: k for k, v in _BY_STATUS.items()}
_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API. "
                     "Please go to Plans & Billing to upgrade or purchase credits.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "model: {model}",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization of 50 "
                        "requests per minute.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}
# Other vendors' codes, so one script can drive every style: code -> (type, message).
_ALIASES = {
    "rate_limit_exceeded": ("rate_limit_error", None), "RESOURCE_EXHAUSTED": ("rate_limit_error", None),
    "insufficient_quota": ("invalid_request_error", _MESSAGES["billing_error"]),
    "context_length_exceeded": ("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
    "model_not_found": ("not_found_error", None), "NOT_FOUND": ("not_found_error", None),
    "invalid_api_key": ("authentication_error", None), "UNAUTHENTICATED": ("authentication_error", None),
    "PERMISSION_DENIED": ("permission_error", None), "INVALID_ARGUMENT": ("invalid_request_error", None),
    "server_error": ("api_error", None), "INTERNAL": ("api_error", None),
    "UNAVAILABLE": ("overloaded_error", None),
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _required(field: str) -> Error:
    return Error(400, code="invalid_request_error", message=f"{field}: Field required")


class AnthropicDialect(Dialect):
    style = "anthropic"
    prefix = "/v1"

    def route(self, req: RecordedRequest) -> Route:
        body = req.json if isinstance(req.json, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if req.method == "POST" and req.path == "/v1/messages":
            return Route(kind="chat", model=model, stream=body.get("stream") is True)
        if req.method == "POST" and req.path == "/v1/messages/count_tokens":
            return Route(kind="count_tokens", model=model)
        if req.method == "GET" and req.path == "/v1/models":
            return Route(kind="models")
        if req.method == "GET" and req.path.startswith("/v1/models/") and len(req.path) > 11:
            return Route(kind="model", model=req.path[11:])
        return Route(kind="unknown")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        got = req.headers.get("x-api-key")
        if got is None:
            return Error(401, code="authentication_error", message="x-api-key header is required")
        return None if got == api_key else Error(401, code="authentication_error")

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.kind == "unknown":
            return None
        if "anthropic-version" not in req.headers:
            return Error(400, code="invalid_request_error", message="anthropic-version: header is required")
        if route.kind not in ("chat", "count_tokens"):
            return None
        body = req.json
        if not isinstance(body, dict):
            return Error(400, code="invalid_request_error",
                         message="There was an error parsing the body of your request. Please make "
                                 "sure it is valid JSON.")
        wanted = ("model", "messages") if route.kind == "count_tokens" else ("model", "max_tokens", "messages")
        for name in wanted:
            if name not in body:
                return _required(name)
        return None

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def new_id(self, salt: str) -> str:
        return f"msg_01{salt[:22]}"

    def request_id_headers(self, salt: str) -> dict[str, str]:
        return {"request-id": f"req_01{digest(salt, 'request')[:22]}"}

    def _blocks(self, c: Completion) -> list[dict]:
        blocks: list[dict] = []
        if c.text or not c.tool_calls:
            blocks.append({"type": "text", "text": c.text})
        for i, t in enumerate(c.tool_calls):
            blocks.append({"type": "tool_use", "id": t.id or f"toolu_01{digest(c.salt, 'tool', i)[:22]}",
                           "name": t.name, "input": dict(t.arguments)})
        return blocks

    def _message(self, c: Completion, content: list, stop: str | None, output_tokens: int) -> dict:
        return {"id": c.id, "type": "message", "role": "assistant", "model": c.model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": c.input_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": output_tokens}}

    def completion_body(self, c: Completion) -> dict:
        stop = _STOP.get(c.finish_reason, c.finish_reason)
        return self._message(c, self._blocks(c), stop, c.output_tokens)

    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        def event(name: str, **data: Any) -> bytes:
            return sse({"type": name, **data}, name)

        blocks = self._blocks(c)
        head = [event("message_start", message=self._message(c, [], None, 1))]
        pieces: list[bytes] = []
        pending_stop = b""
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                head.append(event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
                pieces.extend(event("content_block_delta", index=index,
                                    delta={"type": "text_delta", "text": p}) for p in c.pieces)
            else:
                start = dict(block, input={})
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                pieces.append(pending_stop + event("content_block_start", index=index, content_block=start)
                              + event("content_block_delta", index=index, delta=delta))
            pending_stop = event("content_block_stop", index=index)
        head.insert(2 if len(head) > 1 else 1, sse({"type": "ping"}, "ping"))
        stop = _STOP.get(c.finish_reason, c.finish_reason)
        tail = (pending_stop,
                event("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
                      usage={"output_tokens": c.output_tokens}),
                event("message_stop"))
        return StreamPlan(head=tuple(head), pieces=tuple(pieces), tail=tail)

    def status_for(self, code: str) -> int:
        return _STATUS_OF.get(code) or COMMON_STATUS.get(code, 500)

    def _type_and_message(self, err: Error, model: str | None) -> tuple[str, str]:
        code = err.code
        message = None
        if code in _ALIASES:
            code, message = _ALIASES[code]
        if not code:
            code = _BY_STATUS.get(err.status) or ("invalid_request_error" if err.status < 500 else "api_error")
        if err.message is not None:
            message = err.message
        if message is None:
            message = _MESSAGES.get(code, code).replace("{model}", model or "unknown")
        return code, message

    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        kind, message = self._type_and_message(err, model)
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": f"req_01{digest(salt, 'request')[:22]}"}

    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        kind, message = self._type_and_message(err, model)
        return sse({"type": "error", "error": {"type": kind, "message": message}}, "error")

    def malformed_event(self, route: Route) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        return {"data": [self.model_body(m, created, owner) for m in ids], "has_more": False,
                "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}

    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        stamp = datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
        return {"type": "model", "id": model_id, "display_name": model_id,
                "created_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
