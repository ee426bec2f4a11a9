"""ElevenLabs text-to-speech: OpenAI's `audio.speech` request on ElevenLabs' wire.

Theory of operation: `POST {base}/text-to-speech/{voice_id}?output_format=F` (its
`/stream` variant when the caller streams) with the key in an `xi-api-key` header and a
JSON body `{"text", "model_id"}`; the answer is the audio itself. The OpenAI request maps
onto it field by field: `input` -> `text`, the model id -> `model_id`, `voice` -> the voice
id in the path (ElevenLabs voices are ids, not OpenAI's names), `response_format` -> the
`output_format` query (`mp3` -> `mp3_44100_128`, `opus` -> `opus_48000_128`, `pcm` ->
`pcm_24000`, which is what OpenAI's pcm is; an ElevenLabs name such as `mp3_22050_32`
passes as it is) and `speed` -> `voice_settings.speed`. ElevenLabs' own body fields
(`voice_settings`, `language_code`, `seed`, `previous_text`, `next_text`,
`apply_text_normalization`, `pronunciation_dictionary_locators`) pass through. What it
cannot say (OpenAI's `instructions`, `aac` or `flac` audio) makes the request one this
vendor cannot express: the core skips the model without blaming it.

Errors are `{"detail": {"status": "<code>", "message": "..."}}` (422 validation errors:
`{"detail": [{"loc", "msg", "type"}]}`). The code refines the HTTP status: a spent quota
arrives as 401 `quota_exceeded` and is a quota, not a bad key; `too_many_concurrent_requests`
is a rate limit (`system_busy`, an overload, is what its status says: 429 or 5xx);
`max_character_limit_exceeded` is a text too long for this model (another may take it).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .._types import ErrorInfo, ErrorKind, WireRequest
from ._base import (
    BytesStreamDecoder,
    Codec,
    CodecError,
    Target,
    kind_for_status,
    load_json,
    malformed,
    merge_headers,
    require_mapping,
)
from ._shape import ShapeError, check_models

__all__ = ["ElevenLabsCodec"]

_FORMATS = {"mp3": "mp3_44100_128", "opus": "opus_48000_128", "pcm": "pcm_24000", "wav": "wav_44100"}
_NATIVE = ("voice_settings", "language_code", "seed", "previous_text", "next_text", "previous_request_ids",
           "next_request_ids", "apply_text_normalization", "apply_language_text_normalization",
           "pronunciation_dictionary_locators", "use_pvc_as_ivc")
_OURS = frozenset({"model", "input", "voice", "response_format", "speed", "stream", *_NATIVE})
_QUOTA = {"quota_exceeded", "payment_required", "insufficient_credits"}
_RATE = {"too_many_concurrent_requests", "rate_limit_exceeded"}  # `system_busy` keeps its status's kind
_AUTH = {"invalid_api_key", "needs_authorization", "missing_permissions", "detected_unusual_activity"}
_TOO_LONG = {"max_character_limit_exceeded", "text_too_long"}


class ElevenLabsCodec(Codec):
    name = "elevenlabs"
    ops = frozenset({"speech", "models"})
    default_base_url: str | None = "https://api.elevenlabs.io/v1"

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *, stream: bool) -> WireRequest:
        self._check_op(op, stream)
        headers = {"Accept": "application/json"} if op == "models" else {"Content-Type": "application/json"}
        if target.api_key:
            headers["xi-api-key"] = target.api_key
        headers = merge_headers(headers, target.headers)
        root = self.base_url(target)
        if op == "models":
            return WireRequest(method="GET", url=f"{root}/models", headers=headers)
        body = require_mapping(body)
        text, voice = body.get("input"), body.get("voice")
        if not isinstance(text, str) or not text:
            raise CodecError.of(ErrorKind.BAD_REQUEST, "speech request needs 'input', the text to speak")
        if not isinstance(voice, str) or not voice:
            raise CodecError.of(ErrorKind.BAD_REQUEST, "speech request needs 'voice' (an ElevenLabs voice id)")
        unknown = sorted(k for k in body if k not in _OURS)
        if unknown:
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"ElevenLabs speech has no parameter {', '.join(map(repr, unknown))}")
        payload: dict[str, Any] = {"text": text, "model_id": target.model}
        payload.update({k: body[k] for k in _NATIVE if body.get(k) is not None})
        if body.get("speed") is not None:
            payload["voice_settings"] = {**dict(payload.get("voice_settings") or {}), "speed": body["speed"]}
        path = f"{root}/text-to-speech/{quote(voice, safe='')}" + ("/stream" if stream else "")
        query = urlencode({"output_format": _output_format(body.get("response_format"))})
        return WireRequest(method="POST", url=f"{path}?{query}", headers=headers, json=payload, stream=stream)

    def parse_response(self, target: Target, op: str, status: int, headers: Mapping[str, str],
                       body: bytes) -> dict[str, Any]:
        self._check_op(op)
        if op == "models":
            data = load_json(body)
            items = data if isinstance(data, list) else []
            try:
                return check_models({"object": "list", "data": [
                    {"id": m["model_id"], "object": "model", "created": 0, "owned_by": "elevenlabs"}
                    for m in items if isinstance(m, dict) and isinstance(m.get("model_id"), str)]})
            except ShapeError as err:
                raise malformed(f"{target.provider} sent a model list out of shape: {err}", status) from None
        if not body:
            raise malformed(f"{target.provider} sent an empty speech response", status)
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/octet-stream")
        return {"object": "audio.speech", "content": bytes(body), "content_type": ctype}

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> BytesStreamDecoder:
        self._check_op(op, stream=True)
        return BytesStreamDecoder()

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        code, message = _detail(payload)
        if code in _QUOTA:
            kind = ErrorKind.QUOTA_EXHAUSTED
        elif code in _RATE:
            kind = ErrorKind.RATE_LIMITED
        elif code in _TOO_LONG:
            kind = ErrorKind.CONTEXT_LENGTH
        elif code in _AUTH:
            kind = ErrorKind.AUTH
        elif code == "voice_not_found":
            kind = ErrorKind.BAD_REQUEST  # the caller's voice id, not a missing model
        return ErrorInfo(kind=kind, message=message, status=status, code=code)


def _output_format(value: Any) -> str:
    if value is None:
        return _FORMATS["mp3"]  # OpenAI's default format
    if isinstance(value, str) and value in _FORMATS:
        return _FORMATS[value]
    if isinstance(value, str) and "_" in value and value.replace("_", "").isalnum():
        return value  # ElevenLabs' own name (mp3_22050_32, ulaw_8000, ...)
    raise CodecError.of(ErrorKind.BAD_REQUEST, f"ElevenLabs cannot produce response_format {value!r} "
                                               f"(it makes {', '.join(sorted(_FORMATS))} or its own formats "
                                               "such as mp3_44100_128)")


def _detail(payload: Any) -> tuple[str | None, str]:
    """(status code, message) from `{"detail": {...}}`, `{"detail": [{...}]}` or `{"detail": "..."}`."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):
        return None, detail
    if isinstance(detail, list):
        msgs = [f"{'.'.join(map(str, d.get('loc') or ()))}: {d.get('msg')}" for d in detail if isinstance(d, dict)]
        return None, "; ".join(msgs)
    if isinstance(detail, dict):
        code = detail.get("status") if isinstance(detail.get("status"), str) else None
        message = detail.get("message") if isinstance(detail.get("message"), str) else ""
        return code, message or (code or "")
    return None, ""
