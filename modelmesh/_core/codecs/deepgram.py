"""Deepgram pre-recorded speech-to-text: OpenAI's `audio.transcriptions` on Deepgram's wire.

Theory of operation: `POST {base}/listen?model=M&...` with `Authorization: Token <key>`,
the audio itself as the body and its type as `Content-Type` (one request, no upload-then-poll).
The answer is `{"metadata": {"duration", ...}, "results": {"channels": [{"alternatives":
[{"transcript", "confidence", "words": [{"word", "start", "end", ...}]}], "detected_language"}]}}`;
the transcript is `results.channels[0].alternatives[0].transcript`.

The OpenAI request maps onto it: the model id -> `model`; `language` -> `language`, and
without one `detect_language=true` (OpenAI detects the language; Deepgram would assume
English); `smart_format=true` unless the caller says otherwise, since Whisper's text comes
punctuated. `response_format` `json` and `text` are the transcript; `verbose_json` adds the
language, the duration and the words with their times. Deepgram's own options (`diarize`,
`keyterm`, `punctuate`, ...) pass through as query parameters. What it cannot do (`srt`,
`vtt`, a `prompt`, a `temperature`, translation) makes the request one this vendor cannot
express: the core skips the model without blaming it.

Errors are `{"err_code", "err_msg", "request_id"}` (older) or `{"category", "message",
"details", "request_id"}`; `INVALID_AUTH` is a bad key, `ASR_PAYMENT_REQUIRED` and
`INSUFFICIENT_CREDITS` a spent balance.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .._types import ErrorInfo, ErrorKind, Upload, WireRequest
from ._base import Codec, CodecError, StreamDecoder, Target, kind_for_status, load_json, malformed, merge_headers, require_mapping
from ._shape import ShapeError, check_models

__all__ = ["DeepgramCodec"]

_FORMATS = frozenset({"json", "text", "verbose_json"})
_UNSAYABLE = ("prompt", "temperature", "timestamp_granularities", "chunking_strategy", "include")
_QUOTA = {"ASR_PAYMENT_REQUIRED", "INSUFFICIENT_CREDITS", "PAYMENT_REQUIRED"}
_AUTH = {"INVALID_AUTH", "ACCESS_DENIED", "FORBIDDEN"}
_RATE = {"TOO_MANY_REQUESTS", "RATE_LIMIT_EXCEEDED"}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mpga": "audio/mpeg", "mpeg": "audio/mpeg",
                "m4a": "audio/mp4", "mp4": "audio/mp4", "ogg": "audio/ogg", "oga": "audio/ogg", "opus": "audio/ogg",
                "flac": "audio/flac", "webm": "audio/webm", "aac": "audio/aac"}


class DeepgramCodec(Codec):
    name = "deepgram"
    ops = frozenset({"transcriptions", "models"})
    default_base_url: str | None = "https://api.deepgram.com/v1"

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *, stream: bool) -> WireRequest:
        self._check_op(op, stream)
        headers = {"Accept": "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Token {target.api_key}"
        root = self.base_url(target)
        if op == "models":
            return WireRequest(method="GET", url=f"{root}/models", headers=merge_headers(headers, target.headers))
        body = require_mapping(body)
        audio = body.get("file")
        if not isinstance(audio, Upload):
            raise CodecError.of(ErrorKind.BAD_REQUEST, "transcription request needs 'file', the audio")
        fmt = body.get("response_format") or "json"
        if fmt not in _FORMATS:
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"Deepgram cannot produce response_format {fmt!r} "
                                                       f"(it answers {', '.join(sorted(_FORMATS))})")
        unsayable = [k for k in _UNSAYABLE if body.get(k) is not None]
        if unsayable:
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"Deepgram has no {', '.join(map(repr, unsayable))} parameter")
        query: dict[str, Any] = {"model": target.model}
        if body.get("language"):
            query["language"] = body["language"]
        else:
            query["detect_language"] = "true"
        query["smart_format"] = "true"
        for key, value in body.items():  # Deepgram's own options, as query parameters
            if key in ("file", "model", "response_format", "language", "stream") or value is None:
                continue
            query[key] = _query_value(key, value)
        headers["Content-Type"] = _audio_type(audio)
        return WireRequest(method="POST", url=f"{root}/listen?{urlencode(query, doseq=True)}",
                           headers=merge_headers(headers, target.headers), content=bytes(audio.data))

    def parse_response(self, target: Target, op: str, status: int, headers: Mapping[str, str],
                       body: bytes) -> dict[str, Any]:
        self._check_op(op)
        data = load_json(body)
        if not isinstance(data, dict):
            raise malformed(f"{target.provider} sent a {status} response that is not a JSON object", status)
        if op == "models":
            items = [m for key in ("stt", "tts") for m in (data.get(key) or []) if isinstance(m, dict)]
            try:
                return check_models({"object": "list", "data": [
                    {"id": m.get("canonical_name") or m["name"], "object": "model", "created": 0, "owned_by": "deepgram"}
                    for m in items if isinstance(m.get("canonical_name") or m.get("name"), str)]})
            except ShapeError as err:
                raise malformed(f"{target.provider} sent a model list out of shape: {err}", status) from None
        try:
            channel = data["results"]["channels"][0]
            best = channel["alternatives"][0]
            text = best["transcript"]
        except (KeyError, IndexError, TypeError):
            raise malformed(f"{target.provider} sent a transcription without "
                            "results.channels[0].alternatives[0].transcript", status) from None
        if not isinstance(text, str):
            raise malformed(f"{target.provider} sent a transcript that is not text", status)
        found = data.get("metadata")
        meta: dict[str, Any] = found if isinstance(found, dict) else {}
        duration = meta.get("duration") if isinstance(meta.get("duration"), (int, float)) else None
        out: dict[str, Any] = {"text": text}
        if duration is not None:
            out["usage"] = {"type": "duration", "seconds": duration}
        # what verbose_json adds (the client keeps it for that format only)
        out["language"] = channel.get("detected_language") if isinstance(channel, dict) else None
        out["duration"] = duration
        out["words"] = [{"word": w.get("punctuated_word") or w.get("word"), "start": w.get("start"), "end": w.get("end")}
                        for w in (best.get("words") or []) if isinstance(w, dict)]
        return out

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> StreamDecoder:
        self._check_op(op, stream=True)  # transcriptions and models do not stream: this raises already
        raise ValueError(f"the deepgram codec streams nothing, not {op!r}")

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        kind = kind_for_status(status)
        code: str | None = None
        message = ""
        if isinstance(payload, dict):
            raw = payload.get("err_code", payload.get("category"))
            code = raw if isinstance(raw, str) else None
            text = payload.get("err_msg", payload.get("message"))
            message = text if isinstance(text, str) else ""
            details = payload.get("details")
            if isinstance(details, str) and details:
                message = f"{message}: {details}" if message else details
        names = {code.upper().replace(" ", "_")} if code else set()
        if names & _QUOTA:
            kind = ErrorKind.QUOTA_EXHAUSTED
        elif names & _AUTH:
            kind = ErrorKind.AUTH
        elif names & _RATE:
            kind = ErrorKind.RATE_LIMITED
        return ErrorInfo(kind=kind, message=message, status=status, code=code)


def _query_value(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return list(value)
    raise CodecError.of(ErrorKind.BAD_REQUEST, f"Deepgram option {key!r} must be a string, number, boolean or "
                                               f"list of them, got {type(value).__name__}")


def _audio_type(audio: Upload) -> str:
    if audio.content_type and audio.content_type != "application/octet-stream":
        return audio.content_type
    ext = audio.filename.rsplit(".", 1)[-1].lower() if "." in audio.filename else ""
    return _AUDIO_TYPES.get(ext, "application/octet-stream")
