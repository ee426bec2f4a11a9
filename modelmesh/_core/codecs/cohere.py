"""Cohere's v2 API <-> OpenAI Chat Completions and Embeddings.

Theory of operation. The base URL is the API root (`https://api.cohere.com`): chat goes to
`POST /v2/chat`, embeddings to `POST /v2/embed`, the model list is `GET /v1/models`; the key
is a bearer token. Cohere v2 takes OpenAI-like messages (system/user/assistant/tool roles,
string or text-part content, assistant `tool_calls`, tool results by `tool_call_id`) and
OpenAI-shaped `tools`, so requests mostly keep their shape. Renamed: `top_p` -> `p`,
`stop` -> `stop_sequences`, `max_completion_tokens` -> `max_tokens`; `tool_choice`
"required"/"none" -> "REQUIRED"/"NONE" ("auto" is Cohere's default and is left out; naming one
function has no Cohere form and is refused). `response_format` json_object/json_schema ->
`{"type": "json_object", "json_schema": ...}`. Parameters with no Cohere meaning are dropped
only when listed with their reason in `UNSUPPORTED_PARAMS`; `n > 1`, images and
`encoding_format: base64` are refused (the attempt skips this model, no penalty). Other keys
pass through, so Cohere's own (`k`, `safety_mode`, `documents`, `input_type`) still work.

Responses: the assistant message's text parts are joined into `content`, its tool calls
kept, `finish_reason` COMPLETE/STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL ->
tool_calls, ERROR -> a server error; usage from `usage.tokens` (what the model processed),
else `usage.billed_units`. Streams are named SSE events: message-start, content-start,
content-delta (the text), tool-call-start/-delta/-end, tool-plan-delta, content-end and
message-end (finish reason and usage), which ends the stream; Cohere sends no `[DONE]`.
Embeddings ask for float vectors (`embedding_types: ["float"]`) with `input_type`
"search_document" unless the request names one. Errors are `{"id", "message"}`: 402 and a
trial key's monthly limit are a spent quota, 498 (Cohere's invalid-token status) is an
auth failure, 429 otherwise a rate limit.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._sse import SSEEvent
from .._types import ErrorInfo, ErrorKind, WireRequest
from ._base import (
    Codec,
    CodecError,
    StreamDone,
    StreamError,
    StreamItem,
    Target,
    TranslatingStreamDecoder,
    as_dict,
    kind_for_status,
    load_json,
    malformed,
    merge_headers,
    opt_str,
    require_mapping,
)
from ._shape import ShapeError, check_completion, check_embeddings, check_models, count, opt_text

__all__ = ["CohereCodec", "UNSUPPORTED_PARAMS"]

UNSUPPORTED_PARAMS: dict[str, str] = {
    "logit_bias": "Cohere has no token biasing",
    "top_logprobs": "Cohere returns at most the chosen token's log-probability",
    "stream_options": "Cohere streams always end with usage; nothing to request",
    "store": "OpenAI-side storage of completions; no Cohere equivalent",
    "metadata": "OpenAI's free-form metadata has no Cohere field",
    "user": "Cohere v2 chat has no end-user field",
    "parallel_tool_calls": "Cohere decides how many tools to call",
    "service_tier": "OpenAI service tiers do not correspond to Cohere's",
    "reasoning_effort": "use Cohere's native `thinking` parameter, which passes through",
    "modalities": "Cohere chat produces text only",
    "prediction": "OpenAI predicted outputs have no Cohere equivalent",
    "functions": "deprecated OpenAI function calling; send `tools` instead",
    "function_call": "deprecated OpenAI function calling; send `tool_choice` instead",
}

_RENAMED = {"top_p": "p", "stop": "stop_sequences", "max_completion_tokens": "max_tokens"}
_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
_QUOTA_WORDS = ("api calls / month", "calls / month", "billing", "payment", "credit")


def _bad(message: str) -> CodecError:
    return CodecError.of(ErrorKind.BAD_REQUEST, message)


class CohereCodec(Codec):
    name = "cohere"
    default_base_url = "https://api.cohere.com"

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,
                      stream: bool) -> WireRequest:
        self._check_op(op, stream)
        root = self.base_url(target).rstrip("/")
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        if op == "models":
            return WireRequest(method="GET", url=f"{root}/v1/models", headers=merge_headers(headers, target.headers))
        headers["Content-Type"] = "application/json"
        body = require_mapping(body)
        if op == "embeddings":
            payload, path = _embed_request(body, target), "/v2/embed"
        else:
            payload, path = _chat_request(body, target, stream=stream), "/v2/chat"
        return WireRequest(method="POST", url=f"{root}{path}", headers=merge_headers(headers, target.headers),
                           json=payload, stream=stream)

    def parse_response(self, target: Target, op: str, status: int,
                       headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        self._check_op(op)
        data = load_json(body)
        if not isinstance(data, dict):
            raise malformed(f"Cohere {op} response is not a JSON object", status)
        try:
            if op == "models":
                return _models(target, data)
            if op == "embeddings":
                return _embeddings(target, data)
            return _completion(self, target, data)
        except ShapeError as err:
            raise malformed(f"Cohere {op} response out of shape: {err}", status) from None

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> CohereStreamDecoder:
        self._check_op(op, stream=True)
        return CohereStreamDecoder(self, target, created)

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        data = as_dict(payload)
        message = opt_str(data.get("message")) or ""
        lowered = message.lower()
        if status == 498:
            kind = ErrorKind.AUTH
        elif kind in (ErrorKind.RATE_LIMITED, ErrorKind.BAD_REQUEST) and any(w in lowered for w in _QUOTA_WORDS):
            kind = ErrorKind.QUOTA_EXHAUSTED
        elif kind is ErrorKind.BAD_REQUEST and "too many tokens" in lowered:
            kind = ErrorKind.CONTEXT_LENGTH
        return ErrorInfo(kind=kind, message=message, status=status)


# -- OpenAI request -> Cohere request --------------------------------------------------------

def _chat_request(body: Mapping[str, Any], target: Target, *, stream: bool) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("chat request needs a non-empty 'messages' list")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad(f"Cohere returns one answer per request; n={n!r} is not supported")
    out: dict[str, Any] = {"model": target.model, "messages": [_message(m, i) for i, m in enumerate(messages)]}
    for key, value in body.items():
        if key in ("model", "messages", "n", "stream", "tool_choice", "response_format", "logprobs") \
                or key in UNSUPPORTED_PARAMS or value is None:
            continue
        if key == "stop" and isinstance(value, str):
            value = [value]
        out[_RENAMED.get(key, key)] = value
    if body.get("logprobs"):
        out["logprobs"] = True
    choice = _tool_choice(body.get("tool_choice"))
    if choice:
        out["tool_choice"] = choice
    fmt = _response_format(body.get("response_format"))
    if fmt:
        out["response_format"] = fmt
    if stream:
        out["stream"] = True
    return out


def _message(msg: Any, i: int) -> dict[str, Any]:
    if not isinstance(msg, Mapping):
        raise _bad(f"messages[{i}] must be an object")
    role = msg.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise _bad(f"messages[{i}].role {role!r} has no Cohere form (system, user, assistant, tool)")
    out: dict[str, Any] = {"role": role}
    content = msg.get("content")
    if content is not None:
        out["content"] = _content(content, i)
    if role == "assistant" and msg.get("tool_calls"):
        out["tool_calls"] = [dict(c) for c in msg["tool_calls"] if isinstance(c, Mapping)]
    if role == "tool":
        if not isinstance(msg.get("tool_call_id"), str):
            raise _bad(f"messages[{i}] is a tool result without a 'tool_call_id'")
        out["tool_call_id"] = msg["tool_call_id"]
        out.setdefault("content", "")
    elif "content" not in out and "tool_calls" not in out:
        out["content"] = ""
    return out


def _content(content: Any, i: int) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"messages[{i}].content must be a string or a list of parts")
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise _bad(f"messages[{i}].content[{j}]: Cohere chat takes text parts only, not {kind!r}")
        parts.append({"type": "text", "text": part["text"]})
    return parts


def _tool_choice(choice: Any) -> str | None:
    if choice is None or choice == "auto":
        return None
    if choice in ("required", "none"):
        return str(choice).upper()
    raise _bad(f"tool_choice {choice!r} has no Cohere form (auto, required or none)")


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, Mapping) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = as_dict(fmt.get("json_schema")).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if isinstance(schema, Mapping) else {})}
    raise _bad(f"response_format type {fmt.get('type')!r} has no Cohere form")


def _embed_request(body: Mapping[str, Any], target: Target) -> dict[str, Any]:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _bad("Cohere embeddings need `input` as a string or a list of strings (not token ids)")
    if body.get("encoding_format") not in (None, "float"):
        raise _bad("Cohere embeddings are asked for as floats here; encoding_format must be 'float'")
    out: dict[str, Any] = {"model": target.model, "texts": texts, "embedding_types": ["float"],
                           "input_type": body.get("input_type") or "search_document"}
    if body.get("dimensions"):
        out["output_dimension"] = body["dimensions"]
    if body.get("truncate"):
        out["truncate"] = body["truncate"]
    return out


# -- Cohere response -> OpenAI response -----------------------------------------------------------

def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not isinstance(usage, dict):
        raise ShapeError("usage is not an object")
    counted = usage.get("tokens") if isinstance(usage.get("tokens"), dict) else usage.get("billed_units")
    counted = counted if isinstance(counted, dict) else {}
    prompt = count(counted.get("input_tokens", 0) or 0, "usage.input_tokens")
    completion = count(counted.get("output_tokens", 0) or 0, "usage.output_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _text_of(content: Any, what: str) -> str | None:
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ShapeError(f"{what} is not a list of parts")
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise ShapeError(f"{what}[{i}] is not an object")
        if part.get("type") == "text":
            texts.append(opt_text(part.get("text"), f"{what}[{i}].text") or "")
    return "".join(texts)


def _calls(raw: Any, what: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ShapeError(f"{what} is not a list")
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ShapeError(f"{what}[{i}] is not a function call with a name")
        arguments = fn.get("arguments")
        calls.append({"id": opt_str(call.get("id")) or f"call_{i}", "type": "function",
                      "function": {"name": fn["name"], "arguments": arguments if isinstance(arguments, str) else "{}"}})
    return calls


def _finish(codec: CohereCodec, reason: str | None) -> str | None:
    if reason == "ERROR":
        raise CodecError(codec.stream_error({"message": "Cohere ended the answer with finish_reason ERROR"}))
    return _FINISH.get(reason, "stop") if reason else None


def _completion(codec: CohereCodec, target: Target, data: dict[str, Any]) -> dict[str, Any]:
    message = data.get("message")
    if not isinstance(message, dict):
        raise ShapeError("the answer has no 'message' object")
    calls = _calls(message.get("tool_calls"), "message.tool_calls")
    text = _text_of(message.get("content"), "message.content")
    out: dict[str, Any] = {"role": "assistant", "content": text if text is not None or not calls else None}
    if text is None and not calls:
        out["content"] = ""
    if calls:
        out["tool_calls"] = calls
    reason = opt_text(data.get("finish_reason"), "finish_reason")
    return check_completion({
        "id": opt_str(data.get("id")) or "cohere", "object": "chat.completion", "created": 0, "model": target.model,
        "choices": [{"index": 0, "message": out, "logprobs": None, "finish_reason": _finish(codec, reason)}],
        "usage": _usage(data.get("usage")),
    })


def _embeddings(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    embeddings = data.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise ShapeError("the answer has no 'embeddings.float' list")
    billed = as_dict(as_dict(data.get("meta")).get("billed_units"))
    tokens = count(billed.get("input_tokens", 0) or 0, "meta.billed_units.input_tokens")
    return check_embeddings({
        "object": "list", "model": target.model,
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def _models(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("models")
    if not isinstance(items, list):
        raise ShapeError("the model list has no 'models' list")
    models = [{"id": item["name"], "object": "model", "created": 0, "owned_by": target.provider}
              for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)]
    return check_models({"object": "list", "data": models})


class CohereStreamDecoder(TranslatingStreamDecoder):
    """Cohere's named events as OpenAI chunks; `message-end` ends the stream with its usage."""

    def __init__(self, codec: CohereCodec, target: Target, created: int) -> None:
        super().__init__(codec, target, created, "cohere")
        self._cohere = codec
        self._tools = 0  # tool calls started so far

    def _on_event(self, event: SSEEvent) -> list[StreamItem]:
        data = load_json(event.data)
        if not isinstance(data, dict):
            return [StreamError(info=self.NOT_JSON)]
        kind = data.get("type") or event.event
        delta = as_dict(as_dict(data.get("delta")).get("message"))
        if kind == "message-start":
            self._id = opt_str(data.get("id")) or self._id
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            content = delta.get("content")
            if not isinstance(content, dict):
                raise ShapeError("content-delta has no delta.message.content object")
            return [self._chunk({"content": opt_text(content.get("text"), "content.text") or ""})]
        if kind == "tool-call-start":
            call = _calls([delta.get("tool_calls")], "delta.message.tool_calls")[0]
            call["function"]["arguments"] = opt_str(as_dict(delta.get("tool_calls")).get("function", {}).get(
                "arguments")) or ""
            self._tools += 1
            return [self._chunk({"tool_calls": [{"index": self._tools - 1, **call}]})]
        if kind == "tool-call-delta":
            if not self._tools:
                raise ShapeError("tool-call-delta before any tool-call-start")
            fn = as_dict(as_dict(delta.get("tool_calls")).get("function"))
            piece = opt_text(fn.get("arguments"), "function.arguments") or ""
            return [self._chunk({"tool_calls": [{"index": self._tools - 1, "function": {"arguments": piece}}]})]
        if kind == "message-end":
            end = as_dict(data.get("delta"))
            reason = opt_text(end.get("finish_reason"), "delta.finish_reason")
            if reason == "ERROR":
                return [StreamError(info=self._cohere.stream_error(
                    {"message": opt_str(end.get("error")) or "Cohere ended the stream with finish_reason ERROR"},
                    self._target.secrets))]
            return [self._chunk({}, finish=_FINISH.get(reason or "", "stop")),
                    self._chunk(usage=_usage(end.get("usage"))), StreamDone()]
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations: no chunk field
