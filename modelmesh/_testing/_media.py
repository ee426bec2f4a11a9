"""Audio and images for the fake upstream: OpenAI's endpoints, ElevenLabs and Deepgram.

Theory of operation: a media request is routed like any other (`Route.kind` is `speech`,
`transcriptions`, `translations`, `images` or `image_edits`), passes the same key check and
the vendor's own validation, and is then answered by `media_answer`, which returns a
`MediaAnswer`: a content type and a body, and for speech the body again in `pieces` that
the exchange sends as a chunked stream (so `CutStream(after_chunks=n)` and `SlowStream`
apply to audio as they do to chat). The answers are deterministic: speech audio is derived
from the model, voice and text (a real WAV for `wav`); a transcript is the step's text (the
upstream's `text` by default), its duration read from the uploaded WAV when it is one; an
image is a digest of the prompt. Multipart bodies are parsed (`parse_form`) so tests assert
on the parts that were sent.
"""
from __future__ import annotations

import base64
import io
import struct
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._steps import Error, FormFile, RecordedRequest
from ._wire import Completion, Dialect, Route, StreamPlan, digest, json_bytes

__all__ = ["MediaAnswer", "MEDIA_KINDS", "openai_media", "openai_media_problem", "fake_speech",
           "ElevenLabsDialect", "DeepgramDialect", "wav_duration"]

MEDIA_KINDS = frozenset({"speech", "transcriptions", "translations", "images", "image_edits"})
SPEECH_PIECE = 1024  # bytes per chunk of a streamed speech answer


@dataclass(frozen=True, slots=True)
class MediaAnswer:
    content_type: str
    body: bytes
    pieces: tuple[bytes, ...] = ()  # set: sent as a chunked stream, one piece per chunk


# -- deterministic media -------------------------------------------------------------------------
def fake_speech(model: str, voice: str, text: str, fmt: str) -> bytes:
    """Audio bytes for `text`: a valid WAV for wav (silence, 0.1 s per word), else a tagged
    deterministic byte string, at least several pieces long so a stream has several chunks."""
    words = max(1, len(text.split()))
    if fmt.startswith("wav"):
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x00\x00" * 800 * words)
        return buf.getvalue()
    seed = digest(model, voice, text, fmt).encode()
    size = SPEECH_PIECE * (3 + words)
    head = b"ID3\x04\x00" if fmt.startswith("mp3") else f"FAKE-{fmt}:".encode()
    return (head + seed * (size // len(seed) + 1))[:size]


def wav_duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return round(w.getnframes() / float(w.getframerate()), 3)
    except (wave.Error, EOFError, ZeroDivisionError, struct.error):
        return None


def _pieces(audio: bytes) -> tuple[bytes, ...]:
    return tuple(audio[i:i + SPEECH_PIECE] for i in range(0, len(audio), SPEECH_PIECE))


_SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "audio/pcm"}


def _srt_time(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def transcript_body(fmt: str, text: str, duration: float, task: str, language: str) -> MediaAnswer:
    if fmt == "text":
        return MediaAnswer("text/plain; charset=utf-8", text.encode())
    if fmt == "srt":
        return MediaAnswer("text/plain; charset=utf-8",
                           f"1\n{_srt_time(0, ',')} --> {_srt_time(duration, ',')}\n{text}\n\n".encode())
    if fmt == "vtt":
        return MediaAnswer("text/vtt; charset=utf-8",
                           f"WEBVTT\n\n{_srt_time(0, '.')} --> {_srt_time(duration, '.')}\n{text}\n\n".encode())
    if fmt == "verbose_json":
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text, "tokens": [],
                   "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}
        return MediaAnswer("application/json", json_bytes({"task": task, "language": language, "duration": duration,
                                                           "text": text, "segments": [segment]}))
    return MediaAnswer("application/json", json_bytes({"text": text, "usage": {"type": "duration",
                                                                              "seconds": max(1, round(duration))}}))


def _image(prompt: str, salt: str) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + digest(prompt, salt).encode()


def openai_media(req: RecordedRequest, route: Route, text: str, salt: str, root_url: str) -> MediaAnswer | Error:
    """OpenAI's answer to an audio or image request (validated already)."""
    if route.kind == "speech":
        body = req.json if isinstance(req.json, dict) else {}
        fmt = body.get("response_format") or "mp3"
        audio = fake_speech(route.model or "", str(body.get("voice")), str(body.get("input")), fmt)
        return MediaAnswer(_SPEECH_TYPES.get(fmt, "application/octet-stream"), audio, _pieces(audio))
    form = req.form
    if route.kind in ("transcriptions", "translations"):
        fmt = _first(form, "response_format") or "json"
        upload = _first(form, "file")
        duration = (wav_duration(upload.data) if isinstance(upload, FormFile) else None) or 1.0
        task = "transcribe" if route.kind == "transcriptions" else "translate"
        language = "english" if task == "translate" else (_first(form, "language") or "english")
        return transcript_body(fmt, text, duration, task, language)
    fields: Mapping[str, Any] = form if route.kind == "image_edits" else (req.json if isinstance(req.json, dict) else {})
    prompt, n, fmt = (_first(fields, k) for k in ("prompt", "n", "response_format"))
    n = int(n or 1)
    fmt = fmt or ("b64_json" if (route.model or "").startswith("gpt-image") else "url")
    data = []
    for i in range(n):
        png = _image(str(prompt), f"{salt}:{i}")
        data.append({"b64_json": base64.b64encode(png).decode()} if fmt == "b64_json"
                    else {"url": f"{root_url}/files/img-{digest(salt, i)[:16]}.png"})
    return MediaAnswer("application/json", json_bytes({"created": 0, "data": data}))


def _first(form: Mapping[str, Any], name: str) -> Any:
    values = form.get(name)
    if isinstance(values, list):
        return values[0] if values else None
    return values


def openai_media_problem(req: RecordedRequest, route: Route) -> Error | None:
    """What OpenAI refuses in an audio or image request before answering."""
    if route.kind in ("speech", "images"):
        body = req.json
        if not isinstance(body, dict):
            return Error(400, code="", message="We could not parse the JSON body of your request.")
        need = ("model", "input", "voice") if route.kind == "speech" else ("prompt",)
        missing = [n for n in need if body.get(n) in (None, "")]
        return Error(400, code="missing_required_parameter", message=f"Missing required parameter: '{missing[0]}'.") \
            if missing else None
    if "multipart/form-data" not in req.headers.get("content-type", ""):
        return Error(400, code="", message="Invalid Content-Type header (expected multipart/form-data)")
    form = req.form
    files = ("file",) if route.kind != "image_edits" else ("image",)
    for name in files:
        found = form.get(name) or form.get(f"{name}[]")
        if not found or not all(isinstance(v, FormFile) for v in found):
            return Error(400, code="missing_required_parameter", message=f"Missing required parameter: '{name}'.")
    if route.kind != "image_edits" and not form.get("model"):
        return Error(400, code="missing_required_parameter", message="Missing required parameter: 'model'.")
    if route.kind == "image_edits" and not form.get("prompt"):
        return Error(400, code="missing_required_parameter", message="Missing required parameter: 'prompt'.")
    return None


# -- speech vendors with their own wire -----------------------------------------------------------------
class MediaDialect(Dialect):
    """A vendor without a chat endpoint: its routes never lead to the chat methods."""

    def _no_chat(self) -> LookupError:
        return LookupError(f"the {self.style} style has no chat endpoint")

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        return None

    def new_id(self, salt: str) -> str:
        return f"{self.style}-{salt[:24]}"

    def completion_body(self, c: Completion) -> dict:
        raise self._no_chat()

    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        raise self._no_chat()

    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        return b""  # a binary stream has no in-band errors: the exchange cuts it instead

    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        return {"id": model_id}


_ELEVEN_CODES = {401: ("invalid_api_key", "Invalid API key"), 402: ("payment_required", "Payment required"),
                 404: ("voice_not_found", "A voice with the voice_id was not found."),
                 429: ("too_many_concurrent_requests",
                       "Too many concurrent requests. Your plan allows 2 concurrent requests."),
                 503: ("system_busy", "Our services are experiencing high traffic. Please try again later.")}
_ELEVEN_TYPES = {"mp3": "audio/mpeg", "pcm": "audio/pcm", "ulaw": "audio/basic", "opus": "audio/ogg",
                 "wav": "audio/wav", "alaw": "audio/basic"}


class ElevenLabsDialect(MediaDialect):
    """`POST /v1/text-to-speech/{voice_id}[/stream]?output_format=F` with `xi-api-key`;
    errors `{"detail": {"status", "message"}}`, validation errors `{"detail": [{"loc", "msg", "type"}]}`."""

    style = "elevenlabs"
    prefix = "/v1"

    def route(self, req: RecordedRequest) -> Route:
        parts = req.path.split("/")
        if req.method == "POST" and len(parts) in (4, 5) and parts[:3] == ["", "v1", "text-to-speech"] and parts[3] \
                and (len(parts) == 4 or parts[4] == "stream"):
            return Route(kind="speech", model=req.model, stream=len(parts) == 5)
        if req.method == "GET" and req.path == "/v1/models":
            return Route(kind="models")
        return Route(kind="unknown")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        return None if req.headers.get("xi-api-key") == api_key else Error(401, code="invalid_api_key")

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.kind != "speech":
            return None
        body = req.json if isinstance(req.json, dict) else None
        missing = ["text"] if body is None or not isinstance(body.get("text"), str) else []
        if missing:
            return Error(422, code="validation", message="field required")
        fmt = req.query.get("output_format", "mp3_44100_128")
        if fmt.split("_")[0] not in _ELEVEN_TYPES:
            return Error(400, code="invalid_output_format", message=f"Invalid output format: {fmt}")
        return None

    def status_for(self, code: str) -> int:
        return next((s for s, (c, _) in _ELEVEN_CODES.items() if c == code), 500)

    def error_body(self, err: Error, model: str | None, salt: str) -> Any:
        if err.code == "validation":
            return {"detail": [{"loc": ["body", "text"], "msg": err.message or "field required",
                                "type": "value_error.missing"}]}
        code, message = _ELEVEN_CODES.get(err.status, ("internal_server_error" if err.status >= 500 else "bad_request",
                                                       "An internal server error occurred." if err.status >= 500
                                                       else "Bad request"))
        return {"detail": {"status": err.code or code, "message": err.message or message}}

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> Any:
        return [{"model_id": m, "name": m, "can_do_text_to_speech": True} for m in ids]

    def media_answer(self, req: RecordedRequest, route: Route, text: str, salt: str, root_url: str) -> MediaAnswer:
        fmt = req.query.get("output_format", "mp3_44100_128")
        voice = req.path.split("/")[3]
        audio = fake_speech(route.model or "", voice, str(req.json.get("text")), fmt)
        return MediaAnswer(_ELEVEN_TYPES.get(fmt.split("_")[0], "application/octet-stream"), audio, _pieces(audio))


_DEEPGRAM_CODES = {401: ("INVALID_AUTH", "Invalid credentials."), 402: ("ASR_PAYMENT_REQUIRED",
                                                                       "Project does not have enough credits."),
                   403: ("ACCESS_DENIED", "Access denied."), 429: ("TOO_MANY_REQUESTS", "Too many requests."),
                   400: ("Bad Request", "Bad Request: failed to process audio: corrupt or unsupported data")}


class DeepgramDialect(MediaDialect):
    """`POST /v1/listen?model=M` with `Authorization: Token <key>` and the audio as the body;
    errors `{"err_code", "err_msg", "request_id"}`."""

    style = "deepgram"
    prefix = "/v1"

    def route(self, req: RecordedRequest) -> Route:
        if req.method == "POST" and req.path == "/v1/listen":
            return Route(kind="transcriptions", model=req.query.get("model") or "base")
        if req.method == "GET" and req.path == "/v1/models":
            return Route(kind="models")
        return Route(kind="unknown")

    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        return None if req.headers.get("authorization") == f"Token {api_key}" else Error(401, code="INVALID_AUTH")

    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        if route.kind != "transcriptions":
            return None
        ctype = req.headers.get("content-type", "")
        if not req.body or not (ctype.startswith("audio/") or ctype.startswith("application/octet-stream")):
            return Error(400, code="Bad Request")
        return None

    def status_for(self, code: str) -> int:
        return next((s for s, (c, _) in _DEEPGRAM_CODES.items() if c == code), 500)

    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        code, message = _DEEPGRAM_CODES.get(err.status, ("INTERNAL_SERVER_ERROR", "Internal server error."))
        return {"err_code": err.code or code, "err_msg": err.message or message,
                "request_id": _uuid(salt)}

    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        return {"stt": [{"name": m, "canonical_name": m, "architecture": m.split("-")[0]} for m in ids], "tts": []}

    def media_answer(self, req: RecordedRequest, route: Route, text: str, salt: str, root_url: str) -> MediaAnswer:
        duration = wav_duration(req.body) or 1.0
        words = text.split()
        step = duration / max(1, len(words))
        detected = "detect_language" in req.query
        channel: dict[str, Any] = {"alternatives": [{
            "transcript": text, "confidence": 0.99,
            "words": [{"word": w.lower().strip(".,!?"), "punctuated_word": w, "start": round(i * step, 3),
                       "end": round((i + 1) * step, 3), "confidence": 0.99} for i, w in enumerate(words)]}]}
        if detected:
            channel = {**channel, "detected_language": "en", "language_confidence": 0.98}
        return MediaAnswer("application/json", json_bytes({
            "metadata": {"request_id": _uuid(salt), "sha256": digest(req.body)[:64], "created": "2024-01-01T00:00:00.000Z",
                         "duration": duration, "channels": 1, "models": [digest(route.model)[:36]]},
            "results": {"channels": [channel]}}))


def _uuid(salt: str) -> str:
    h = digest(salt, "uuid")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
