"""OpenAI Chat Completions, Embeddings and Models, and every OpenAI-compatible server.

Theory of operation: the request body is already OpenAI-shaped, so the codec's job on the
way out is small and deliberately conservative: copy the caller's body untouched (tools,
tool_choice, response_format, seed, n, logprobs, stop, user, parallel_tool_calls, and
whatever OpenAI adds next), set `model` to the target's vendor id, and settle streaming:
with `stream=True` we send `"stream": true` and ask for the final usage chunk with
`stream_options.include_usage` unless the caller chose `stream_options` themselves;
without streaming both keys are removed, because the API rejects `stream_options` on a
non-streaming request. Auth is `Authorization: Bearer`, left out when there is no key
(local servers such as Ollama or vLLM); `OpenAI-Organization` / `OpenAI-Project` come
from `target.options["organization"]` / `["project"]`.

On the way back, responses and stream chunks are passed through as dicts (the final usage
chunk has empty `choices`), `data: [DONE]` ends a stream, and an `{"error": {...}}`
object — in a stream or in a 200 body from a compatible server — becomes an error.
Error bodies are `{"error": {"message", "type", "param", "code"}}`; the `code`/`type`
names (`insufficient_quota`, `context_length_exceeded`, `content_policy_violation`, ...)
refine what the HTTP status alone would say.

Audio and images: `/audio/speech` takes JSON and answers with the audio bytes (parsed to
`{"content", "content_type"}`; streamed, the bytes pass through as they come);
`/audio/transcriptions` and `/audio/translations` take multipart/form-data with the file
as the `file` part, and answer JSON (`json`, `verbose_json`) or plain text (`text`, `srt`,
`vtt`, parsed to `{"text": ...}`); `/images/generations` takes JSON, `/images/edits`
multipart (`image`, or `image[]` for several, and `mask`); both answer `{"created",
"data": [{"url" | "b64_json", "revised_prompt"}]}`. Groq's Whisper and the other
compatible servers serve the same paths under their base URL.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._ratelimit import parse_duration
from .._sse import SSEEvent
from .._types import ErrorInfo, ErrorKind, Upload, WireRequest
from ._base import (
    OPS,
    BytesStreamDecoder,
    Codec,
    CodecError,
    SSEStreamDecoder,
    StreamDone,
    StreamError,
    StreamItem,
    Target,
    form_fields,
    kind_for_status,
    load_json,
    malformed,
    merge_headers,
    multipart,
    require_mapping,
)
from ._shape import ShapeError, check_completion, check_embeddings, check_models, check_optional_usage

__all__ = ["OpenAICodec", "OpenAIStreamDecoder", "TEXT_FORMATS", "parse_media"]

_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models", "speech": "/audio/speech",
          "transcriptions": "/audio/transcriptions", "translations": "/audio/translations",
          "images": "/images/generations", "image_edits": "/images/edits"}
_MULTIPART = {"transcriptions": ("file",), "translations": ("file",), "image_edits": ("image", "mask")}
TEXT_FORMATS = frozenset({"text", "srt", "vtt"})  # transcription formats answered as plain text
_IMAGE_FIELDS = ("url", "b64_json", "revised_prompt")

_QUOTA = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "quota_exceeded"}
_CONTEXT = {"context_length_exceeded"}
_FILTERED = {"content_filter", "content_policy_violation", "responsibleaipolicyviolation"}
_AUTH = {"invalid_api_key", "invalid_authentication", "authentication_error", "permission_denied"}
_NOT_FOUND = {"model_not_found", "deploymentnotfound"}
_RATE = {"rate_limit_exceeded"}
# "Please try again in 20s" / "in 6m0s" / "in 120ms" (OpenAI), "Please retry after 6 seconds" (Azure).
_CHECKS = {"chat": check_completion, "embeddings": check_embeddings, "models": check_models}
_RETRY_IN_TEXT = re.compile(
    r"try again in\s+((?:\d+(?:\.\d+)?(?:h|ms|m|s))+)\b"
    r"|retry after\s+(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b",
    re.IGNORECASE,
)


class OpenAICodec(Codec):
    name = "openai"
    ops = OPS
    default_base_url: str | None = "https://api.openai.com/v1"

    # -- requests ------------------------------------------------------------------------

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,
                      stream: bool) -> WireRequest:
        self._check_op(op, stream)
        if op in _MEDIA_OPS:
            return self._media_request(target, op, require_mapping(body))
        payload: dict[str, Any] | None = None
        if op != "models":
            payload = dict(require_mapping(body))
            payload["model"] = self._body_model(target)
            if op == "chat":
                self._settle_stream(payload, body, stream)
        return WireRequest(method="GET" if op == "models" else "POST", url=self._url(target, op),
                           headers=self._headers(target, op, stream), json=payload, stream=stream)

    def _headers(self, target: Target, op: str, stream: bool) -> dict[str, str]:
        """Accept, Content-Type, `_get_headers` and the configured ones over them. Worked out once
        per target when `_get_headers` is one of ours (its answer depends on the target alone); a
        subclass's own `_get_headers` is asked for every request, so it may sign or stamp each."""
        static = type(self)._get_headers in _STATIC_HEADERS
        if static:
            known = target.memo.get((op, stream))
            if known is not None:
                return dict(known)
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        headers.update(self._get_headers(target))
        if op != "models":
            headers["Content-Type"] = "application/json"
        headers = merge_headers(headers, target.headers)
        if static:
            target.memo[(op, stream)] = headers
            return dict(headers)
        return headers

    def _media_request(self, target: Target, op: str, body: Mapping[str, Any]) -> WireRequest:
        payload = {k: v for k, v in body.items() if k != "stream"}  # speech streams as plain HTTP
        payload["model"] = self._body_model(target)
        check_media(op, payload)
        headers = {"Accept": "application/octet-stream" if op == "speech" else "application/json"}
        headers.update(self._get_headers(target))
        content: bytes | None = None
        if op in _MULTIPART:
            content, headers["Content-Type"] = multipart(form_fields(payload))
            payload = {}
        else:
            headers["Content-Type"] = "application/json"
        return WireRequest(method="POST", url=self._url(target, op), headers=merge_headers(headers, target.headers),
                           json=payload or None, content=content, stream=op == "speech")

    @staticmethod
    def _settle_stream(payload: dict[str, Any], body: Mapping[str, Any], stream: bool) -> None:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise CodecError.of(ErrorKind.BAD_REQUEST, "chat request needs a non-empty 'messages' list")
        if stream:
            payload["stream"] = True
            if body.get("stream_options") is None:
                payload["stream_options"] = {"include_usage": True}
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)

    def _url(self, target: Target, op: str) -> str:
        return self.base_url(target) + _PATHS[op]

    def _body_model(self, target: Target) -> str:
        return target.model

    def _get_headers(self, target: Target) -> dict[str, str]:
        headers: dict[str, str] = {}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        organization = target.options.get("organization")
        if organization:
            headers["OpenAI-Organization"] = str(organization)
        project = target.options.get("project")
        if project:
            headers["OpenAI-Project"] = str(project)
        return headers

    # -- responses -----------------------------------------------------------------------

    def parse_response(self, target: Target, op: str, status: int,
                       headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        self._check_op(op)
        if op in _MEDIA_OPS:
            return parse_media(self, target, op, status, headers, body)
        data = load_json(body)
        if not isinstance(data, dict):
            raise CodecError.of(ErrorKind.MALFORMED,
                                f"{target.provider} sent a {status} response that is not a JSON object",
                                status=status)
        if "error" in data and not isinstance(data.get("choices" if op == "chat" else "data"), list):
            # Some compatible servers answer 200 with an error object.
            raise CodecError(self.stream_error(data, target.secrets))
        if op == "chat" and isinstance(data.get("choices"), list):
            self._check_chat(target, data)  # a filtered completion may lack its message
        try:
            return _CHECKS[op](data)
        except ShapeError as err:
            raise malformed(f"{target.provider} sent a {op} response out of shape: {err}", status) from None

    def _check_chat(self, target: Target, data: dict[str, Any]) -> None:
        """Hook for vendors that signal failures inside a 200 chat completion."""

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> OpenAIStreamDecoder | BytesStreamDecoder:
        self._check_op(op, stream=True)
        if op == "speech":
            return BytesStreamDecoder()
        return OpenAIStreamDecoder(self, target)

    # -- errors --------------------------------------------------------------------------

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        message, names = _error_fields(payload)
        lowered = message.lower()
        if status is None or status < 500:
            if names & _QUOTA:
                kind = ErrorKind.QUOTA_EXHAUSTED
            elif names & _CONTEXT or "maximum context length" in lowered:
                kind = ErrorKind.CONTEXT_LENGTH
            elif names & _FILTERED:
                kind = ErrorKind.CONTENT_FILTERED
            elif names & _AUTH:
                kind = ErrorKind.AUTH
            elif names & _NOT_FOUND:
                kind = ErrorKind.MODEL_NOT_FOUND
            elif names & _RATE and kind is not ErrorKind.AUTH:
                kind = ErrorKind.RATE_LIMITED
        code, type_, param = _vendor_fields(payload)
        return ErrorInfo(kind=kind, message=message, status=status, code=code, type=type_, param=param,
                         retry_after=_retry_from_text(message))


class OpenAIStreamDecoder(SSEStreamDecoder):
    """`data: {chunk}` ... `data: [DONE]`. With `codec.filter_is_error` (Azure), a
    `content_filter` finish before any content arrived is reported as CONTENT_FILTERED so
    the core can fail over cleanly; after content, the chunk passes through as is."""

    def __init__(self, codec: OpenAICodec, target: Target) -> None:
        super().__init__()
        self._codec = codec
        self._target = target
        self._delivered = False

    def _on_event(self, event: SSEEvent) -> list[StreamItem]:
        data = event.data.strip()
        if data == "[DONE]":
            return [StreamDone()]
        if not data:
            return []
        obj = load_json(data)
        if not isinstance(obj, dict):
            return [StreamError(info=ErrorInfo(kind=ErrorKind.MALFORMED,
                                               message="stream chunk is not a JSON object"))]
        if event.event == "error" or ("error" in obj and "choices" not in obj):
            return [StreamError(info=self._codec.stream_error(obj, self._target.secrets))]
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return [StreamError(info=ErrorInfo(kind=ErrorKind.MALFORMED,
                                               message="stream chunk has no 'choices' list"))]
        if (getattr(self._codec, "filter_is_error", False) and not self._delivered
                and any(isinstance(c, dict) and c.get("finish_reason") == "content_filter" for c in choices)):
            return [StreamError(info=ErrorInfo(kind=ErrorKind.CONTENT_FILTERED, code="content_filter",
                                               message="the response was filtered by the content filter"))]
        self._delivered = self._delivered or any(_has_content(c) for c in choices)
        return [obj]


def _has_content(choice: Any) -> bool:
    delta = choice.get("delta") if isinstance(choice, dict) else None
    return isinstance(delta, dict) and bool(delta.get("content") or delta.get("tool_calls"))


def _error_fields(payload: Any) -> tuple[str, set[str]]:
    """(message, lower-cased code/type names) from the shapes OpenAI-likes use."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return "", set()
    err = payload.get("error", payload)
    if isinstance(err, str):
        return err, set()
    if not isinstance(err, dict):
        return "", set()
    names = {str(err.get(k)).lower() for k in ("code", "type") if isinstance(err.get(k), str)}
    inner = err.get("innererror")
    if isinstance(inner, dict) and isinstance(inner.get("code"), str):
        names.add(inner["code"].lower())
    message = err.get("message")
    return (message if isinstance(message, str) else ""), names


def _vendor_fields(payload: Any) -> tuple[str | None, str | None, str | None]:
    """The error's (code, type, param) as sent (an error's `code` may be null while its
    `type` says `server_error`: each stays what it was, as the OpenAI SDK shows them)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    err = payload.get("error", payload) if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return None, None, None
    code, type_, param = (err.get(k) if isinstance(err.get(k), str) and err.get(k) else None
                          for k in ("code", "type", "param"))
    return code, type_, param


def _retry_from_text(message: str) -> float | None:
    match = _RETRY_IN_TEXT.search(message or "")
    if not match:
        return None
    if match.group(1):
        return parse_duration(match.group(1))
    return float(match.group(2))


# -- audio and images --------------------------------------------------------------------------
# the `_get_headers` whose answer depends on the target alone (ours), so `_headers` keeps it per target
_STATIC_HEADERS: set[Any] = {OpenAICodec._get_headers}

_MEDIA_OPS = frozenset({"speech", "transcriptions", "translations", "images", "image_edits"})
_REQUIRED = {"speech": ("input", "voice"), "transcriptions": ("file",), "translations": ("file",),
             "images": ("prompt",), "image_edits": ("image", "prompt")}


def check_media(op: str, body: Mapping[str, Any]) -> None:
    """What every vendor of `op` needs, checked before anything is sent."""
    for name in _REQUIRED[op]:
        if body.get(name) in (None, ""):
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"{op} request needs '{name}'")
    for name in _MULTIPART.get(op, ()):
        value = body.get(name)
        items = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, Upload) for v in items):
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"{op} request: '{name}' must be a file")


def parse_media(codec: Codec, target: Target, op: str, status: int, headers: Mapping[str, str],
                body: bytes) -> dict[str, Any]:
    """An OpenAI-shaped answer to an audio or image request, from the OpenAI-compatible wire."""
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if op == "speech":
        if not body:
            raise malformed(f"{target.provider} sent an empty speech response", status)
        if ctype.startswith("application/json"):  # JSON is no audio: an error inside a 200, or a broken answer
            data = load_json(body)
            if isinstance(data, dict) and "error" in data:
                raise CodecError(codec.stream_error(data, target.secrets))
            raise malformed(f"{target.provider} answered a speech request with JSON, not audio", status)
        return {"object": "audio.speech", "content": bytes(body), "content_type": ctype or "application/octet-stream"}
    data = load_json(body)
    if op in ("transcriptions", "translations"):
        if data is None and ctype.startswith("application/json"):
            raise malformed(f"{target.provider} sent a {op} answer that is not the JSON it says it is", status)
        if not isinstance(data, dict):  # text, srt, vtt: the answer is the body
            try:
                return {"text": body.decode("utf-8")}
            except UnicodeDecodeError:
                raise malformed(f"{target.provider} sent a {op} answer that is neither JSON nor UTF-8 text",
                                status) from None
        if "error" in data and not isinstance(data.get("text"), str):
            raise CodecError(codec.stream_error(data, target.secrets))
        if not isinstance(data.get("text"), str):
            raise malformed(f"{target.provider} sent a {op} response without 'text'", status)
        return _usage_checked(target, op, status, data)
    if not isinstance(data, dict):
        raise malformed(f"{target.provider} sent a {status} images response that is not a JSON object", status)
    if "error" in data and not isinstance(data.get("data"), list):
        raise CodecError(codec.stream_error(data, target.secrets))
    items = data.get("data")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise malformed(f"{target.provider} sent an images response without a 'data' list of images", status)
    out = dict(data)
    out["created"] = data.get("created") if isinstance(data.get("created"), int) else 0
    out["data"] = [{**{k: None for k in _IMAGE_FIELDS}, **item} for item in items]
    return _usage_checked(target, op, status, out)


def _usage_checked(target: Target, op: str, status: int, data: dict[str, Any]) -> dict[str, Any]:
    try:
        check_optional_usage(data)
    except ShapeError as err:
        raise malformed(f"{target.provider} sent a {op} response out of shape: {err}", status) from None
    return data
