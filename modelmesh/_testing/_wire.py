"""What the three vendor styles share: routes, completions, stream plans, the Dialect base.

Theory of operation: the server turns a request into a `Route` (which endpoint, which
model, streamed or not) with the style's `Dialect`, builds one neutral `Completion` (text
split into word pieces, token counts, finish reason, tool calls) and asks the dialect to
render it: a JSON body, or a `StreamPlan` of ready-to-send SSE events in three parts:
`head` (preamble such as Anthropic's message_start), `pieces` (one per content delta;
these are what `CutStream(after_chunks=n)` counts) and `tail` (finish, usage, [DONE]).
Dialects are pure: bytes and dicts in, bytes and dicts out; the I/O is in `_exchange.py`.
"""
from __future__ import annotations

import abc
import hashlib
import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._steps import Error, RecordedRequest, ToolCall

__all__ = [
    "Route",
    "Completion",
    "StreamPlan",
    "Dialect",
    "sse",
    "split_words",
    "count_prompt_words",
    "fake_embedding",
    "embedding_as_base64",
    "digest",
    "json_bytes",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Which endpoint a request hit. kind: chat, embeddings, models, model, count_tokens, unknown,
    and the media kinds (speech, transcriptions, translations, images, image_edits)."""

    kind: str
    model: str | None = None
    stream: bool = False
    azure: bool = False
    sse: bool = True          # Gemini streams a JSON array unless ?alt=sse
    single: bool = False      # Gemini embedContent (one) rather than batchEmbedContents


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One fake model answer, before any vendor's wire shape is put on it."""

    id: str
    model: str
    created: int
    text: str
    pieces: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    finish_reason: str        # OpenAI's words: stop, length, tool_calls, content_filter
    tool_calls: tuple[ToolCall, ...]
    salt: str                 # hex, for ids derived from this answer (tool call ids, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamPlan:
    head: tuple[bytes, ...]
    pieces: tuple[bytes, ...]
    tail: tuple[bytes, ...]


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already a str."""
    payload = data if isinstance(data, str) else json_bytes(data).decode("utf-8")
    nl = "\r\n" if crlf else "\n"
    head = f"event: {event}{nl}" if event else ""
    return f"{head}data: {payload}{nl}{nl}".encode()


def split_words(text: str) -> tuple[str, ...]:
    """Word pieces with their leading whitespace, as token streams arrive; they join back to `text`."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)):]
    if rest:
        pieces = pieces[:-1] + [pieces[-1] + rest] if pieces else [rest]
    return tuple(pieces)


_TEXT_KEYS = frozenset({"content", "text", "system", "input"})


def count_prompt_words(obj: Any, key: str | None = None) -> int:
    """Words in the strings a prompt is made of: a stand-in for a tokenizer, at least 1."""
    def walk(x: Any, k: str | None) -> int:
        if isinstance(x, str):
            return len(x.split()) if k in _TEXT_KEYS else 0
        if isinstance(x, list):
            return sum(walk(i, k) for i in x)
        if isinstance(x, dict):
            return sum(walk(v, kk) for kk, v in x.items())
        return 0
    return max(1, walk(obj, key))


def digest(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode("utf-8")).hexdigest()


def fake_embedding(text: str, dim: int = 8) -> list[float]:
    """A deterministic unit vector for `text`: same text, same vector, in every process."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"embedding dimension must be an int >= 1, got {dim!r}")
    raw = [int(digest(i, text)[:8], 16) / 0xFFFFFFFF * 2.0 - 1.0 for i in range(dim)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


def embedding_as_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32, base64-encoded."""
    import base64
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class Dialect(abc.ABC):
    """One vendor's wire format; see `_openai.py`, `_anthropic.py`, `_gemini.py`."""

    style: str = ""
    prefix: str = ""
    stream_content_type = "text/event-stream"

    @abc.abstractmethod
    def route(self, req: RecordedRequest) -> Route:
        ...

    @abc.abstractmethod
    def check_key(self, req: RecordedRequest, route: Route, api_key: str) -> Error | None:
        ...

    @abc.abstractmethod
    def validate(self, req: RecordedRequest, route: Route) -> Error | None:
        ...

    @abc.abstractmethod
    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        ...

    @abc.abstractmethod
    def new_id(self, salt: str) -> str:
        ...

    def request_id_headers(self, salt: str) -> dict[str, str]:
        return {}

    @abc.abstractmethod
    def completion_body(self, c: Completion) -> dict:
        ...

    @abc.abstractmethod
    def stream_plan(self, c: Completion, req: RecordedRequest, route: Route) -> StreamPlan:
        ...

    @abc.abstractmethod
    def status_for(self, code: str) -> int:
        ...

    @abc.abstractmethod
    def error_body(self, err: Error, model: str | None, salt: str) -> dict:
        ...

    @abc.abstractmethod
    def stream_error(self, err: Error, model: str | None, route: Route, sent: int) -> bytes:
        """The in-stream error event, after `sent` content pieces."""

    def malformed_event(self, route: Route) -> bytes:
        return b'data: {"id": "broken", "choices": [\n\n'

    def embeddings_body(self, req: RecordedRequest, route: Route) -> dict:
        raise LookupError(f"the {self.style} style has no embeddings endpoint")

    @abc.abstractmethod
    def models_body(self, ids: tuple[str, ...], created: int, owner: str) -> dict:
        ...

    @abc.abstractmethod
    def model_body(self, model_id: str, created: int, owner: str) -> dict:
        ...

    def media_answer(self, req: RecordedRequest, route: Route, text: str, salt: str, root_url: str) -> Any:
        """The answer to an audio or image request (a `_media.MediaAnswer`, or an Error)."""
        raise LookupError(f"the {self.style} style has no {route.kind} endpoint")

    def count_tokens_body(self, req: RecordedRequest) -> dict:
        return {"input_tokens": count_prompt_words(req.json)}
