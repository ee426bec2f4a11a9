"""Google Gemini API (generativelanguage, v1beta) <-> OpenAI Chat Completions and Embeddings.

Theory of operation. Requests: POST `{base_url}/models/{model}:generateContent` (or
`:streamGenerateContent?alt=sse` to stream) with `x-goog-api-key`; the default base URL
is `https://generativelanguage.googleapis.com/v1beta`. The OpenAI body is translated:

* system/developer messages -> `systemInstruction`; user -> role `user`, assistant ->
  role `model`; text parts, `image_url`/`input_audio`/`file` parts -> `inlineData` (data
  URLs) or `fileData` (http(s)/gs URLs); assistant `tool_calls` -> `functionCall` parts;
  `tool` messages -> `functionResponse` parts (named after the call they answer) in a user
  turn. Consecutive turns of one role are merged, as Gemini wants parallel function
  responses together.
* tools -> `functionDeclarations`; tool_choice auto/none/required/{function} ->
  `toolConfig.functionCallingConfig` AUTO/NONE/ANY/ANY+allowedFunctionNames.
* `generationConfig` from temperature, top_p, max_tokens / max_completion_tokens, stop,
  n (candidateCount), seed, presence/frequency penalties, logprobs/top_logprobs and
  response_format (responseMimeType + responseSchema). A caller's own `generationConfig`
  is merged over ours. JSON Schemas lose the keys Gemini's Schema object rejects
  (`$schema`, `additionalProperties`), which only loosens them.
* Parameters with no Gemini meaning are dropped only if listed in `UNSUPPORTED_PARAMS`;
  other keys pass through (Gemini-native `safetySettings`, `cachedContent`, ...).

Responses: candidates -> choices; finishReason STOP -> stop (tool_calls when the candidate
called functions), MAX_TOKENS -> length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/
SPII/IMAGE_SAFETY -> content_filter; a prompt blocked by `promptFeedback.blockReason` is a
CONTENT_FILTERED error; usageMetadata -> usage. Embeddings use `:batchEmbedContents`.
Streams: every SSE event is a whole GenerateContentResponse turned into chunks; Gemini has
no end marker, so `close()` reports StreamDone (after a usage chunk) if a finishReason was
seen and a cut stream otherwise.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .._ratelimit import parse_duration
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
from ._shape import ShapeError, check_completion, check_embeddings, check_models, count, dump_json, opt_text

__all__ = ["GeminiCodec", "UNSUPPORTED_PARAMS", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

UNSUPPORTED_PARAMS: dict[str, str] = {
    "user": "Gemini has no end-user identifier field",
    "logit_bias": "Gemini has no token biasing",
    "parallel_tool_calls": "Gemini has no switch for parallel function calls",
    "stream_options": "Gemini streams always carry usageMetadata; nothing to request",
    "store": "OpenAI-side storage of completions; no Gemini equivalent",
    "metadata": "OpenAI's free-form metadata; no Gemini equivalent",
    "modalities": "text output only through this codec",
    "audio": "text output only through this codec",
    "prediction": "OpenAI predicted outputs have no Gemini equivalent",
    "reasoning_effort": "use Gemini's native generationConfig.thinkingConfig, which passes through",
    "service_tier": "OpenAI service tiers do not correspond to Gemini's",
    "web_search_options": "OpenAI's built-in web search is not a Gemini parameter",
    "verbosity": "OpenAI-only output-length hint",
    "functions": "deprecated OpenAI function calling; send `tools` instead",
    "function_call": "deprecated OpenAI function calling; send `tool_choice` instead",
}

_HANDLED = {"model", "messages", "stream", "tools", "tool_choice", "generationConfig",
            "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n", "seed",
            "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "response_format"}
_GEN_KEYS = {"temperature": "temperature", "top_p": "topP", "n": "candidateCount", "seed": "seed",
             "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty",
             "top_logprobs": "logprobs"}
_SCHEMA_DROP = {"$schema", "additionalProperties"}
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_MODEL_PATH = re.compile(r"(?:models/|tunedModels/)?[A-Za-z0-9][A-Za-z0-9._-]*")
_MIME_BY_EXT = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
                "webp": "image/webp", "pdf": "application/pdf", "mp3": "audio/mp3", "wav": "audio/wav"}


def _bad(message: str) -> CodecError:
    return CodecError.of(ErrorKind.BAD_REQUEST, message)


class GeminiCodec(Codec):
    name = "gemini"
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,
                      stream: bool) -> WireRequest:
        self._check_op(op, stream)
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        base = self.base_url(target)
        if op == "models":
            return WireRequest(method="GET", url=f"{base}/models", headers=merge_headers(headers, target.headers))
        headers["Content-Type"] = "application/json"
        path = _model_path(target.model)
        body = require_mapping(body)
        if op == "embeddings":
            url, payload = f"{base}/{path}:batchEmbedContents", _embed_request(body, path)
        elif stream:
            url, payload = f"{base}/{path}:streamGenerateContent?alt=sse", to_gemini(body)
        else:
            url, payload = f"{base}/{path}:generateContent", to_gemini(body)
        return WireRequest(method="POST", url=url, headers=merge_headers(headers, target.headers),
                           json=payload, stream=stream)

    def parse_response(self, target: Target, op: str, status: int,
                       headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        self._check_op(op)
        data = load_json(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise CodecError(self.stream_error(data, target.secrets))
        if not isinstance(data, dict):
            raise malformed("Gemini response is not a JSON object", status)
        try:
            if op == "embeddings":
                return _embeddings(target, data)
            if op == "models":
                return _models(target, data)
            return _completion(target, data)
        except ShapeError as err:
            raise malformed(f"Gemini {op} response out of shape: {err}", status) from None

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> GeminiStreamDecoder:
        self._check_op(op, stream=True)
        return GeminiStreamDecoder(self, target, created)

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        if isinstance(payload, list) and payload:
            payload = payload[0]  # some Google front ends wrap the error in a list
        err = payload.get("error") if isinstance(payload, dict) else None
        err = err if isinstance(err, dict) else {}
        message = opt_str(err.get("message")) or ""
        gstatus = opt_str(err.get("status"))
        details = [d for d in as_list(err.get("details")) if isinstance(d, dict)]
        if status is None or status < 500:
            kind = _refine(kind, gstatus, message, details)
        return ErrorInfo(kind=kind, message=message, status=status, code=gstatus,
                         retry_after=_retry_delay(details))


def _refine(kind: ErrorKind, gstatus: str | None, message: str, details: list[dict[str, Any]]) -> ErrorKind:
    lowered = message.lower()
    reasons = {d.get("reason") for d in details if isinstance(d.get("reason"), str)}
    if "api key not valid" in lowered or "API_KEY_INVALID" in reasons or gstatus in (
            "UNAUTHENTICATED", "PERMISSION_DENIED"):
        return ErrorKind.AUTH
    if gstatus == "NOT_FOUND":
        return ErrorKind.MODEL_NOT_FOUND
    if gstatus == "RESOURCE_EXHAUSTED" or kind is ErrorKind.RATE_LIMITED:
        return _exhausted(lowered, details)
    if gstatus == "FAILED_PRECONDITION":
        return ErrorKind.QUOTA_EXHAUSTED  # e.g. free tier unavailable here: billing must be enabled
    if "exceeds the maximum number of tokens" in lowered:
        return ErrorKind.CONTEXT_LENGTH
    if gstatus == "INVALID_ARGUMENT":
        return ErrorKind.BAD_REQUEST
    if gstatus in ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return ErrorKind.SERVER_ERROR
    return kind


def _exhausted(lowered: str, details: list[dict[str, Any]]) -> ErrorKind:
    """RESOURCE_EXHAUSTED is both "slow down" and "spent": per-day quotas and billing
    wording without a per-minute quota or a retry hint mean the quota is gone."""
    quota_ids = [opt_str(v.get("quotaId")) or "" for d in details for v in as_list(d.get("violations"))
                 if isinstance(v, dict)]
    if any("PerDay" in q for q in quota_ids):
        return ErrorKind.QUOTA_EXHAUSTED
    transient = any("PerMinute" in q for q in quota_ids) or _retry_delay(details) is not None
    if "billing" in lowered and not transient:
        return ErrorKind.QUOTA_EXHAUSTED
    return ErrorKind.RATE_LIMITED


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for d in details:
        if (opt_str(d.get("@type")) or "").endswith("RetryInfo") and isinstance(d.get("retryDelay"), str):
            return parse_duration(d["retryDelay"])
    return None


def _model_path(model: str) -> str:
    if not _MODEL_PATH.fullmatch(model):
        raise ValueError(f"Gemini model ids use letters, digits, '.', '_' and '-'; got {model!r}")
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


# -- OpenAI request -> Gemini request ------------------------------------------------------------

def to_gemini(body: Mapping[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("chat request needs a non-empty 'messages' list")
    system, contents = _translate_messages(messages)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if body.get("tools"):
        out["tools"] = [{"functionDeclarations": [_declaration(t) for t in body["tools"]]}]
    if body.get("tool_choice") is not None:
        out["toolConfig"] = {"functionCallingConfig": _calling_config(body["tool_choice"])}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    for key, value in body.items():
        if key not in _HANDLED and key not in UNSUPPORTED_PARAMS:
            out[key] = value
    return out


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config = {gkey: body[key] for key, gkey in _GEN_KEYS.items() if body.get(key) is not None}
    max_tokens = body.get("max_tokens")
    max_tokens = max_tokens if max_tokens is not None else body.get("max_completion_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        config["responseLogprobs"] = True
    raw_fmt = body.get("response_format")
    fmt: Mapping[str, Any] = raw_fmt if isinstance(raw_fmt, Mapping) else {}
    kind = fmt.get("type")
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = as_dict(fmt.get("json_schema")).get("schema") if kind == "json_schema" else None
        if schema:
            config["responseSchema"] = _clean_schema(schema)
    elif kind not in (None, "text"):
        raise _bad(f"response_format type {kind!r} is not supported for Gemini")
    if isinstance(body.get("generationConfig"), Mapping):
        config.update(body["generationConfig"])
    return config


def _translate_messages(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    call_names: dict[str, str] = {}  # tool_call id -> function name, for functionResponse parts

    def convert(i: int, msg: Mapping[str, Any]) -> tuple[str, list[Any]]:
        role = msg.get("role")
        if role == "user":
            return "user", _parts(msg.get("content"), i)
        if role == "assistant":
            return "model", _model_parts(msg, i, call_names)
        if role == "tool":
            return "user", [_function_response(msg, i, call_names)]
        raise _bad(f"messages[{i}] has unsupported role {role!r}")

    system_msgs, contents = split_turns(messages, convert, key="parts", vendor="Gemini")
    system = [p["text"] for i, msg in system_msgs for p in _parts(msg.get("content"), i) if "text" in p]
    return system, contents


def _parts(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"messages[{i}].content must be a string or a list of parts")
    return [_part(p, i) for p in content]


def _part(part: Any, i: int) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text":
        return {"text": str(part.get("text", ""))}
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        audio = part["input_audio"]
        return {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}}
    if kind in ("image_url", "file"):
        inner = part.get(kind)
        url = inner if isinstance(inner, str) else as_dict(inner).get("url" if kind == "image_url" else "file_data")
        decoded = parse_data_url(url) if isinstance(url, str) else None
        if decoded:
            return {"inlineData": {"mimeType": decoded[0], "data": decoded[1]}}
        if isinstance(url, str) and url.startswith(("http://", "https://", "gs://")):
            ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
            return {"fileData": {"mimeType": _MIME_BY_EXT.get(ext, "image/jpeg"), "fileUri": url}}
        raise _bad(f"messages[{i}] {kind} part needs a base64 data URL or an http(s)/gs URL")
    raise _bad(f"messages[{i}] has a content part of type {kind!r} that Gemini cannot take")


def _model_parts(msg: Mapping[str, Any], i: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    parts = [p for p in _parts(msg.get("content"), i) if p.get("text", True)]
    for call in as_list(msg.get("tool_calls")):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise _bad(f"messages[{i}].tool_calls entries need a function name")
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _bad(f"messages[{i}] tool call {fn['name']!r} has arguments that are not JSON") from None
        if call.get("id"):
            call_names[str(call["id"])] = fn["name"]
        parts.append({"functionCall": {"name": fn["name"], "args": args}})
    return parts


def _function_response(msg: Mapping[str, Any], i: int, call_names: dict[str, str]) -> dict[str, Any]:
    name = call_names.get(str(msg.get("tool_call_id"))) or msg.get("name")
    if not name:
        raise _bad(f"messages[{i}] (role tool) answers tool_call_id {msg.get('tool_call_id')!r}, "
                   "which no earlier assistant message called")
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    parsed = load_json(content) if isinstance(content, str) else None
    response = parsed if isinstance(parsed, dict) else {"content": content}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(tool: Any) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, Mapping) and tool.get("type") == "function" else None
    if not isinstance(fn, Mapping) or not fn.get("name"):
        raise _bad("Gemini takes only function tools with a name")
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    if fn.get("parameters"):
        out["parameters"] = _clean_schema(fn["parameters"])
    return out


def _calling_config(choice: Any) -> dict[str, Any]:
    if choice in ("auto", "none"):
        return {"mode": choice.upper()}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    raise _bad(f"tool_choice {choice!r} is not one Gemini understands")


def _clean_schema(schema: Any) -> Any:
    if isinstance(schema, Mapping):
        return {k: _clean_schema(v) for k, v in schema.items() if k not in _SCHEMA_DROP}
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def _embed_request(body: Mapping[str, Any], path: str) -> dict[str, Any]:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _bad("Gemini embeddings need `input` as a string or a list of strings (not token ids)")
    if body.get("encoding_format") not in (None, "float"):
        raise _bad("Gemini embeddings are returned as floats; encoding_format must be 'float'")
    extra = {"outputDimensionality": body["dimensions"]} if body.get("dimensions") else {}
    return {"requests": [{"model": path, "content": {"parts": [{"text": t}]}, **extra} for t in texts]}


# -- Gemini response -> OpenAI response ------------------------------------------------------------

_COUNTS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount",
           "cachedContentTokenCount", "toolUsePromptTokenCount")


def _usage(meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise ShapeError("usageMetadata is not an object")
    counts = {k: count(meta[k], f"usageMetadata.{k}") for k in _COUNTS if meta.get(k) is not None}
    prompt = counts.get("promptTokenCount", 0)
    thoughts = counts.get("thoughtsTokenCount", 0)
    completion = counts.get("candidatesTokenCount", 0) + thoughts
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": counts.get("totalTokenCount", prompt + completion)}
    if counts.get("cachedContentTokenCount"):
        out["prompt_tokens_details"] = {"cached_tokens": counts["cachedContentTokenCount"]}
    if thoughts:
        out["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return out


def _candidate_output(cand: dict[str, Any], ordinal: int, first_call: int = 0) -> tuple[str | None, list[dict[str, Any]]]:
    """(text or None, OpenAI tool_calls) of one candidate; thought parts are not output."""
    content = cand.get("content")
    if content is None:
        return None, []  # e.g. a candidate that only reports its finishReason
    parts = content.get("parts") if isinstance(content, dict) else "no content object"
    if parts is None:
        return None, []
    if not isinstance(parts, list):
        raise ShapeError("a candidate's content has no 'parts' list")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise ShapeError(f"parts[{i}] is not an object")
        if part.get("thought"):
            continue
        if part.get("text") is not None:
            texts.append(opt_text(part["text"], f"parts[{i}].text") or "")
        elif part.get("functionCall") is not None:
            calls.append(_function_call(part["functionCall"], f"parts[{i}].functionCall",
                                        ordinal, first_call + len(calls)))
        # executableCode, inlineData and other parts have no chat.completion field
    return ("".join(texts) if texts else None), calls


def _function_call(fc: Any, what: str, ordinal: int, n: int) -> dict[str, Any]:
    if not isinstance(fc, dict) or not isinstance(fc.get("name"), str):
        raise ShapeError(f"{what} is not a call with a string name")
    args = {} if fc.get("args") is None else fc["args"]
    if not isinstance(args, dict):
        raise ShapeError(f"{what}.args is not an object")
    return {"index": n, "id": opt_str(fc.get("id")) or f"call_{ordinal}_{n}", "type": "function",
            "function": {"name": fc["name"], "arguments": dump_json(args, f"{what}.args")}}


def _logprobs(cand: dict[str, Any]) -> dict[str, Any] | None:
    """Gemini `logprobsResult` -> OpenAI `choices[].logprobs`."""
    result = cand.get("logprobsResult")
    if not isinstance(result, dict):
        return None
    chosen = [c for c in as_list(result.get("chosenCandidates")) if isinstance(c, dict)]
    tops = [as_list(t.get("candidates")) for t in as_list(result.get("topCandidates")) if isinstance(t, dict)]
    content = []
    for i, token in enumerate(chosen):
        alternatives = tops[i] if i < len(tops) else []
        content.append({"token": opt_str(token.get("token")) or "", "logprob": _logprob(token), "bytes": None,
                        "top_logprobs": [{"token": opt_str(a.get("token")) or "", "logprob": _logprob(a),
                                          "bytes": None} for a in alternatives if isinstance(a, dict)]})
    return {"content": content}


def _logprob(token: dict[str, Any]) -> float | None:
    value = token.get("logProbability")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _candidates(data: dict[str, Any]) -> list[dict[str, Any]]:
    candidates = [] if data.get("candidates") is None else data["candidates"]
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise ShapeError("'candidates' is not a list of objects")
    return candidates


def _index(cand: dict[str, Any], ordinal: int) -> int:
    index = cand.get("index")  # proto3 JSON omits index 0
    return index if isinstance(index, int) and not isinstance(index, bool) else ordinal


def _finish(reason: Any, called: bool) -> str | None:
    if not isinstance(reason, str) or not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def _blocked(data: dict[str, Any]) -> CodecError | None:
    feedback = as_dict(data.get("promptFeedback"))
    reason = opt_str(feedback.get("blockReason"))
    if not reason:
        return None
    message = opt_str(feedback.get("blockReasonMessage"))
    detail = f": {message}" if message else ""
    return CodecError.of(ErrorKind.CONTENT_FILTERED, f"Gemini blocked the prompt ({reason}){detail}",
                         code=reason)


def _completion(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    blocked = _blocked(data)
    candidates = _candidates(data) if blocked is None else []
    if not candidates:
        raise blocked or ShapeError("the response has no candidates")
    choices = []
    for ordinal, cand in enumerate(candidates):
        text, calls = _candidate_output(cand, ordinal)
        message: dict[str, Any] = {"role": "assistant", "content": text if text is not None or not calls else None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        choices.append({"index": _index(cand, ordinal), "message": message, "logprobs": _logprobs(cand),
                        "finish_reason": _finish(cand.get("finishReason"), bool(calls)) or "stop"})
    out = {"id": opt_str(data.get("responseId")) or "gemini", "object": "chat.completion", "created": 0,
           "model": opt_str(data.get("modelVersion")) or target.model, "choices": choices}
    usage = _usage(data.get("usageMetadata"))
    if usage:
        out["usage"] = usage
    return check_completion(out)


def _embeddings(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("embeddings")
    if items is None and isinstance(data.get("embedding"), dict):
        items = [data["embedding"]]
    if not isinstance(items, list) or not all(isinstance(e, dict) and isinstance(e.get("values"), list)
                                              for e in items):
        raise ShapeError("no embedding values")
    return check_embeddings({
        "object": "list", "model": target.model,
        "data": [{"object": "embedding", "index": i, "embedding": e["values"]} for i, e in enumerate(items)],
        "usage": {"prompt_tokens": 0, "total_tokens": 0}})


def _models(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("models", [])
    if not isinstance(items, list):
        raise ShapeError("the model list has no 'models' list")
    models = [{"id": m["name"].removeprefix("models/"), "object": "model", "created": 0,
               "owned_by": target.provider, "display_name": opt_str(m.get("displayName"))}
              for m in items if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"]]
    return check_models({"object": "list", "data": models})


class GeminiStreamDecoder(TranslatingStreamDecoder):
    """Each event is a whole GenerateContentResponse; chunks go out per candidate."""

    def __init__(self, codec: GeminiCodec, target: Target, created: int) -> None:
        super().__init__(codec, target, created, "gemini")
        self._calls: dict[int, int] = {}    # candidate index -> tool calls emitted so far
        self._started: set[int] = set()     # candidates whose role chunk went out
        self._finished = False
        self._usage: dict[str, Any] | None = None

    def _on_event(self, event: SSEEvent) -> list[StreamItem]:
        data = load_json(event.data)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            return [StreamError(info=self.NOT_JSON)]
        if isinstance(data.get("error"), dict):
            return [StreamError(info=self._codec.stream_error(data, self._target.secrets))]
        self._id = opt_str(data.get("responseId")) or self._id
        self._model = opt_str(data.get("modelVersion")) or self._model
        self._usage = _usage(data.get("usageMetadata")) or self._usage
        candidates = _candidates(data)
        if not candidates:
            blocked = _blocked(data)
            return [StreamError(info=blocked.info)] if blocked else []
        return [self._candidate_chunk(c, ordinal) for ordinal, c in enumerate(candidates)]

    def _candidate_chunk(self, cand: dict[str, Any], ordinal: int) -> dict[str, Any]:
        index = _index(cand, ordinal)
        text, calls = _candidate_output(cand, index, self._calls.get(index, 0))
        self._calls[index] = self._calls.get(index, 0) + len(calls)
        delta: dict[str, Any] = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        if calls:
            delta["tool_calls"] = calls
        finish = _finish(cand.get("finishReason"), self._calls[index] > 0)
        self._finished = self._finished or finish is not None
        out = self._chunk(delta, finish, index=index)
        out["choices"][0]["logprobs"] = _logprobs(cand)
        return out

    def _on_end(self) -> list[StreamItem]:
        if not self._finished:
            return super()._on_end()
        usage_chunk = self._chunk(usage=self._usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        return [usage_chunk, StreamDone()]
