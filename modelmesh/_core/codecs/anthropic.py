"""Anthropic Messages API <-> OpenAI Chat Completions.

Theory of operation. Requests: POST `{base_url}/messages` (the base URL includes `/v1`)
with `x-api-key`, `anthropic-version: 2023-06-01` (override with
the provider's `api_version`, or `target.options["anthropic_version"]`) and a JSON body translated from OpenAI's:

* system/developer messages -> top-level `system`; user and assistant turns -> content
  blocks (text; `image_url` data URLs -> base64 `image` blocks, http(s) URLs -> `url`
  image sources; PDF `file` parts -> `document` blocks); assistant `tool_calls` ->
  `tool_use` blocks; `tool` messages -> `tool_result` blocks in a user turn.
  Consecutive turns of one role are merged (so parallel tool results share one user turn).
* tools -> `{name, description, input_schema}`; tool_choice auto/none/required/{function}
  -> auto/none/any/tool; `parallel_tool_calls: false` -> `disable_parallel_tool_use`.
* `max_tokens` is required by Anthropic: `max_tokens`, else `max_completion_tokens`, else
  `target.options["default_max_tokens"]`, else 4096. `stop` -> `stop_sequences`,
  `user` -> `metadata.user_id`, temperature is clamped to Anthropic's 0..1 range.
* `response_format` json_object / json_schema has no Anthropic field: it becomes a system
  instruction asking for JSON (with the schema), which is the mapping Anthropic documents
  for JSON output without tools.
* `n > 1` is refused (CodecError BAD_REQUEST). Parameters with no Anthropic meaning are
  dropped only if listed with their reason in `UNSUPPORTED_PARAMS`; any other key is
  passed through, so Anthropic-native ones (`top_k`, `thinking`, ...) still work.

Responses: text blocks are joined into `message.content`, `tool_use` blocks become
`tool_calls` with JSON-string arguments, `stop_reason` maps to `finish_reason`, and usage
becomes prompt/completion/total tokens (Anthropic's `input_tokens` excludes cache reads
and writes, so prompt_tokens adds them back and reports reads as `cached_tokens`).
Streams: the `message_start` ... `message_stop` event sequence is re-emitted as OpenAI
chunks with a final usage chunk; `event: error` (e.g. `overloaded_error`) is a StreamError.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._ratelimit import parse_rfc3339
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
    as_list,
    kind_for_status,
    load_json,
    malformed,
    merge_headers,
    opt_str,
    parse_data_url,
    require_mapping,
    split_turns,
)
from ._shape import ShapeError, check_completion, check_models, count, dump_json, opt_text

__all__ = ["AnthropicCodec", "UNSUPPORTED_PARAMS", "ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

UNSUPPORTED_PARAMS: dict[str, str] = {
    "logprobs": "Anthropic returns no token log-probabilities",
    "top_logprobs": "Anthropic returns no token log-probabilities",
    "logit_bias": "Anthropic has no token biasing",
    "seed": "Anthropic has no deterministic sampling seed",
    "presence_penalty": "Anthropic has no presence penalty",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "stream_options": "Anthropic streams always report usage; nothing to request",
    "store": "OpenAI-side storage of completions; no Anthropic equivalent",
    "metadata": "OpenAI's free-form metadata; Anthropic metadata only holds user_id (mapped from `user`)",
    "modalities": "Anthropic Messages produces text only",
    "audio": "Anthropic Messages produces text only",
    "prediction": "OpenAI predicted outputs have no Anthropic equivalent",
    "reasoning_effort": "use Anthropic's native `thinking` parameter, which passes through",
    "service_tier": "OpenAI service tiers do not correspond to Anthropic's",
    "web_search_options": "OpenAI's built-in web search is not an Anthropic parameter",
    "verbosity": "OpenAI-only output-length hint",
    "functions": "deprecated OpenAI function calling; send `tools` instead",
    "function_call": "deprecated OpenAI function calling; send `tool_choice` instead",
}

_HANDLED = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
            "stop", "user", "stream", "n", "tools", "tool_choice", "parallel_tool_calls",
            "response_format"}

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "tool_use": "tool_calls",
           "max_tokens": "length", "model_context_window_exceeded": "length", "refusal": "content_filter"}

_TYPE_KIND = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "not_found_error": ErrorKind.MODEL_NOT_FOUND,
    "request_too_large": ErrorKind.CONTEXT_LENGTH,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.SERVER_ERROR,
    "overloaded_error": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
}
_QUOTA_WORDS = ("credit balance is too low", "spend limit", "usage limits", "billing")


def _bad(message: str) -> CodecError:
    return CodecError.of(ErrorKind.BAD_REQUEST, message)


class AnthropicCodec(Codec):
    name = "anthropic"
    prefill = True  # Messages API: a final assistant turn is continued, not answered
    default_base_url = "https://api.anthropic.com/v1"
    ops = frozenset({"chat", "models"})  # Anthropic has no embeddings endpoint

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,
                      stream: bool) -> WireRequest:
        self._check_op(op, stream)
        version = target.api_version or target.options.get("anthropic_version", ANTHROPIC_VERSION)
        headers = {"anthropic-version": str(version),
                   "Accept": "text/event-stream" if stream else "application/json"}
        if target.api_key:
            headers["x-api-key"] = target.api_key
        if op == "models":
            return WireRequest(method="GET", url=f"{self.base_url(target)}/models",
                               headers=merge_headers(headers, target.headers))
        headers["Content-Type"] = "application/json"
        payload = to_anthropic(require_mapping(body), target, stream=stream)
        return WireRequest(method="POST", url=f"{self.base_url(target)}/messages",
                           headers=merge_headers(headers, target.headers), json=payload, stream=stream)

    def parse_response(self, target: Target, op: str, status: int,
                       headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        self._check_op(op)
        data = load_json(body)
        if isinstance(data, dict) and data.get("type") == "error":
            raise CodecError(self.stream_error(data, target.secrets))
        if not isinstance(data, dict):
            raise malformed("Anthropic response is not a JSON object", status)
        try:
            return _models(target, data) if op == "models" else _completion(target, data)
        except ShapeError as err:
            raise malformed(f"Anthropic {op} response out of shape: {err}", status) from None

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> AnthropicStreamDecoder:
        self._check_op(op, stream=True)
        return AnthropicStreamDecoder(self, target, created)

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        err = payload.get("error") if isinstance(payload, dict) else None
        err = err if isinstance(err, dict) else {}
        etype = opt_str(err.get("type"))
        message = opt_str(err.get("message")) or ""
        details = as_dict(err.get("details"))
        lowered = message.lower()
        if etype in _TYPE_KIND and (status is None or status < 500 or etype == "overloaded_error"):
            kind = _TYPE_KIND[etype]
        if kind is ErrorKind.BAD_REQUEST and "prompt is too long" in lowered:
            kind = ErrorKind.CONTEXT_LENGTH
        if status == 413 and etype != "request_too_large":
            kind = ErrorKind.BAD_REQUEST
        if details.get("error_code") == "enforced_spend_limit_reached" or (
                kind in (ErrorKind.BAD_REQUEST, ErrorKind.RATE_LIMITED)
                and any(w in lowered for w in _QUOTA_WORDS)):
            kind = ErrorKind.QUOTA_EXHAUSTED
        return ErrorInfo(kind=kind, message=message, status=status, code=etype)


# -- OpenAI request -> Anthropic request -------------------------------------------------------

def to_anthropic(body: Mapping[str, Any], target: Target, *, stream: bool) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("chat request needs a non-empty 'messages' list")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad(f"Anthropic returns one choice per request; n={n!r} is not supported")
    system, turns = _translate_messages(messages)
    extra_system = _response_format_instruction(body.get("response_format"))
    if extra_system:
        system.append(extra_system)
    out: dict[str, Any] = {"model": target.model, "messages": turns, "max_tokens": _max_tokens(body, target)}
    if system:
        out["system"] = "\n\n".join(system)
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            raise _bad(f"temperature must be a number, got {temperature!r}")
        out["temperature"] = min(float(temperature), 1.0)  # OpenAI allows up to 2, Anthropic up to 1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"]]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(body.get("tools")))
    if choice is not None:
        out["tool_choice"] = choice
    if stream:
        out["stream"] = True
    for key, value in body.items():
        if key not in _HANDLED and key not in UNSUPPORTED_PARAMS:
            out[key] = value  # vendor-native parameters (top_k, thinking, ...) pass through
    return out


def _max_tokens(body: Mapping[str, Any], target: Target) -> int:
    for value in (body.get("max_tokens"), body.get("max_completion_tokens"),
                  target.options.get("default_max_tokens"), DEFAULT_MAX_TOKENS):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _bad(f"max_tokens must be a positive integer, got {value!r}")
            return value
    return DEFAULT_MAX_TOKENS


def _translate_messages(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    def convert(i: int, msg: Mapping[str, Any]) -> tuple[str, list[Any]]:
        role = msg.get("role")
        if role == "user":
            return "user", _user_blocks(msg.get("content"), i)
        if role == "assistant":
            return "assistant", _assistant_blocks(msg, i)
        if role == "tool":
            return "user", [_tool_result(msg, i)]
        raise _bad(f"messages[{i}] has unsupported role {role!r}")

    system, turns = split_turns(messages, convert, key="content", vendor="Anthropic")
    return [_plain_text(msg.get("content"), i) for i, msg in system], turns


def _plain_text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        if len(texts) == len(content):
            return "\n".join(texts)
    raise _bad(f"messages[{i}] content must be text here")


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"messages[{i}].content must be a string or a list of parts")
    return [_part(p, i) for p in content]


def _part(part: Any, i: int) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise _bad(f"messages[{i}] image_url part has no url")
        decoded = parse_data_url(url)
        if decoded:
            return {"type": "image", "source": {"type": "base64", "media_type": decoded[0], "data": decoded[1]}}
        if url.startswith(("http://", "https://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise _bad(f"messages[{i}] image url must be a base64 data URL or http(s) URL")
    if kind == "file":
        file = part.get("file") if isinstance(part.get("file"), Mapping) else {}
        decoded = parse_data_url(str(file.get("file_data", "")))
        if decoded and decoded[0] == "application/pdf":
            return {"type": "document", "source": {"type": "base64", "media_type": decoded[0], "data": decoded[1]}}
        raise _bad(f"messages[{i}] file parts must carry a base64 PDF data URL for Anthropic")
    raise _bad(f"messages[{i}] has a content part of type {kind!r} that Anthropic cannot take")


def _assistant_blocks(msg: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    content = msg.get("content")
    blocks = [] if content is None else [b for b in _user_blocks(content, i) if b.get("text", True)]
    for call in as_list(msg.get("tool_calls")):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name") or not call.get("id"):
            raise _bad(f"messages[{i}].tool_calls entries need an id and a function name")
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _bad(f"messages[{i}] tool call {fn['name']!r} has arguments that are not JSON") from None
        if not isinstance(args, dict):
            raise _bad(f"messages[{i}] tool call {fn['name']!r} arguments must be a JSON object")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args})
    return blocks


def _tool_result(msg: Mapping[str, Any], i: int) -> dict[str, Any]:
    if not msg.get("tool_call_id"):
        raise _bad(f"messages[{i}] (role tool) needs a tool_call_id")
    content = msg.get("content")
    result = content if isinstance(content, str) else _user_blocks(content or "", i)
    return {"type": "tool_result", "tool_use_id": msg["tool_call_id"], "content": result}


def _tool(tool: Any) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, Mapping) and tool.get("type") == "function" else None
    if not isinstance(fn, Mapping) or not fn.get("name"):
        raise _bad("Anthropic takes only function tools with a name")
    out = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any, parallel: Any, have_tools: bool) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = {"type": "auto"} if (parallel is False and have_tools) else None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise _bad(f"tool_choice {choice!r} is not one Anthropic understands")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _response_format_instruction(fmt: Any) -> str | None:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if kind == "json_schema":
        schema = as_dict(fmt.get("json_schema")).get("schema", {})
        return ("Respond with a single valid JSON value and nothing else, conforming to this JSON Schema:\n"
                + json.dumps(schema, sort_keys=True))
    if kind in (None, "text"):
        return None
    raise _bad(f"response_format type {kind!r} is not supported for Anthropic")


# -- Anthropic response -> OpenAI response ------------------------------------------------------

_COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _counts(usage: Any, what: str = "usage") -> dict[str, int]:
    """Anthropic's token counts that are present, each checked; other usage keys
    (`service_tier`, `server_tool_use`, ...) have no OpenAI field and are left behind."""
    if usage is None:
        return {}
    if not isinstance(usage, dict):
        raise ShapeError(f"{what} is not an object")
    return {k: count(usage[k], f"{what}.{k}") for k in _COUNTS if usage.get(k) is not None}


def _usage(counts: dict[str, int], output_tokens: int | None = None) -> dict[str, Any]:
    read = counts.get("cache_read_input_tokens", 0)
    written = counts.get("cache_creation_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + read + written
    completion = output_tokens if output_tokens is not None else counts.get("output_tokens", 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if read or written:
        out["prompt_tokens_details"] = {"cached_tokens": read, "cache_creation_tokens": written}
    return out


def _text(block: dict[str, Any], what: str) -> str:
    return opt_text(block.get("text"), f"{what}.text") or ""


def _tool_call(block: dict[str, Any], what: str) -> dict[str, Any]:
    """A `tool_use` block's id and name as an OpenAI tool call with empty arguments."""
    for key in ("id", "name"):
        if not isinstance(block.get(key), str):
            raise ShapeError(f"{what}.{key} is not a string")
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": ""}}


def _completion(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise ShapeError("the message has no 'content' list")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        what = f"content[{i}]"
        if not isinstance(block, dict):
            raise ShapeError(f"{what} is not an object")
        if block.get("type") == "text":
            texts.append(_text(block, what))
        elif block.get("type") == "tool_use":
            args = {} if block.get("input") is None else block["input"]
            if not isinstance(args, dict):
                raise ShapeError(f"{what}.input is not an object")
            call = _tool_call(block, what)
            call["function"]["arguments"] = dump_json(args, f"{what}.input")
            calls.append(call)
        # thinking, redacted_thinking and server tool blocks have no chat.completion field
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    reason = opt_text(data.get("stop_reason"), "stop_reason")
    return check_completion({
        "id": opt_str(data.get("id")) or "msg", "object": "chat.completion", "created": 0,
        "model": opt_str(data.get("model")) or target.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _FINISH.get(reason, "stop") if reason else None}],
        "usage": _usage(_counts(data.get("usage"))),
    })


def _models(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("data")
    if not isinstance(items, list):
        raise ShapeError("the model list has no 'data' list")
    models = []
    for item in items:
        if isinstance(item, dict) and item.get("id"):
            created = parse_rfc3339(opt_str(item.get("created_at")) or "")
            models.append({"id": item["id"], "object": "model", "created": int(created or 0),
                           "owned_by": target.provider, "display_name": opt_str(item.get("display_name"))})
    return check_models({"object": "list", "data": models})


class AnthropicStreamDecoder(TranslatingStreamDecoder):
    """Re-emits `message_start` .. `message_stop` as OpenAI chunks.

    Events are dispatched by their `type` through `_HANDLERS`. `ping` and
    `content_block_stop` carry nothing for a chunk and are not in the table; an event type
    not in the table is skipped, because Anthropic's streaming docs say new event types may be added and
    clients should handle unknown ones gracefully. A known event whose fields are not
    the documented shape ends the stream as MALFORMED."""

    def __init__(self, codec: AnthropicCodec, target: Target, created: int) -> None:
        super().__init__(codec, target, created, "msg")
        self._usage: dict[str, int] = {}
        self._output_tokens: int | None = None
        self._tools: dict[int, int] = {}  # content block index -> OpenAI tool_calls index

    def _on_event(self, event: SSEEvent) -> list[StreamItem]:
        data = load_json(event.data)
        if not isinstance(data, dict):
            return [StreamError(info=self.NOT_JSON)]
        kind = data.get("type") or event.event
        if kind == "error" or event.event == "error":
            return [StreamError(info=self._codec.stream_error(data, self._target.secrets))]
        if not isinstance(kind, str):
            raise ShapeError("stream event has no string 'type'")
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler else []

    def _on_message_start(self, data: dict[str, Any]) -> list[StreamItem]:
        message = data.get("message")
        if not isinstance(message, dict):
            raise ShapeError("message_start has no 'message' object")
        self._id = opt_str(message.get("id")) or self._id
        self._model = opt_str(message.get("model")) or self._model
        self._usage = _counts(message.get("usage"), "message.usage")
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict[str, Any]) -> list[StreamItem]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            raise ShapeError("content_block_start has no 'content_block' object")
        if block.get("type") == "text":
            text = _text(block, "content_block")
            return [self._chunk({"content": text})] if text else []
        if block.get("type") != "tool_use":
            return []
        index = self._tools.setdefault(_block_index(data), len(self._tools))
        call = {"index": index, **_tool_call(block, "content_block")}
        return [self._chunk({"tool_calls": [call]})]

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[StreamItem]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise ShapeError("content_block_delta has no 'delta' object")
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": _text(delta, "delta")})]
        if delta.get("type") == "input_json_delta":
            index = self._tools.get(_block_index(data))
            if index is None:
                raise ShapeError("tool input delta for an unknown content block")
            partial = opt_text(delta.get("partial_json"), "delta.partial_json") or ""
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})]
        return []  # thinking, signature and citation deltas have no chat.completion.chunk field

    def _on_message_delta(self, data: dict[str, Any]) -> list[StreamItem]:
        usage = _counts(data.get("usage"))
        if "output_tokens" in usage:
            self._output_tokens = usage.pop("output_tokens")  # cumulative, not a delta
        # Newer API versions also report (cumulative) input and cache counts here.
        self._usage = {**self._usage, **usage}
        delta = data.get("delta")
        if delta is not None and not isinstance(delta, dict):
            raise ShapeError("message_delta 'delta' is not an object")
        reason = opt_text((delta or {}).get("stop_reason"), "delta.stop_reason")
        return [self._chunk({}, finish=_FINISH.get(reason, "stop"))] if reason else []

    def _on_message_stop(self, data: dict[str, Any]) -> list[StreamItem]:
        return [self._chunk(usage=_usage(self._usage, self._output_tokens)), StreamDone()]


def _block_index(data: dict[str, Any]) -> int:
    index = data.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ShapeError("content block event has no 'index'")
    return index


_Handler = Callable[[AnthropicStreamDecoder, dict[str, Any]], list[StreamItem]]
_HANDLERS: dict[str, _Handler] = {
    "message_start": AnthropicStreamDecoder._on_message_start,
    "content_block_start": AnthropicStreamDecoder._on_content_block_start,
    "content_block_delta": AnthropicStreamDecoder._on_content_block_delta,
    "message_delta": AnthropicStreamDecoder._on_message_delta,
    "message_stop": AnthropicStreamDecoder._on_message_stop,
}
