"""The codec contract: pure translation between OpenAI-shaped requests and a vendor's wire.

Theory of operation: the core speaks OpenAI (`chat.completion`, `chat.completion.chunk`,
embeddings and model lists). For each attempt it asks the target's codec to
`build_request` — a `WireRequest` the shell sends verbatim — and then feeds back what
came home: a 2xx body goes to `parse_response` (which returns OpenAI-shaped data or
raises `CodecError(MALFORMED)`), an error status goes to `classify_error` (which returns
an `ErrorInfo` whose `kind` drives failover), and a streamed body goes through the
`StreamDecoder` from `stream_decoder`, which yields OpenAI chunks, then `StreamDone` or
`StreamError`. Codecs hold no per-request state (decoders do) and never read a clock:
times come in as arguments and `created` timestamps default to 0.

Audio and images travel the same road. A file in a request is an `Upload` (bytes the client
read); the codec puts it on the wire as the vendor wants it: `multipart()` encodes a
multipart/form-data body (OpenAI's transcriptions and image edits), or the bytes go as the
raw body (Deepgram), always as `WireRequest.content`. A binary answer (speech) parses to
`{"content": bytes, "content_type": ...}`; streamed, it goes through `BytesStreamDecoder`,
whose items are the body's bytes as they arrive.

Every vendor error goes through one funnel (`Codec.classify_error`): the HTTP status
gives a first `ErrorKind` (`kind_for_status`), the codec's `_classify_payload` refines it
from the body's own codes, and the message is scrubbed of secrets and cut to 300
characters. Errors that arrive *inside* a 200 stream use the same refinement with
`status=None`, whose default kind is SERVER_ERROR.
"""
from __future__ import annotations

import abc
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .._errors import redact
from .._ratelimit import parse_retry_after
from .._sse import SSEEvent, SSELineTooLong, SSEParser
from .._types import ErrorInfo, ErrorKind, Upload, WireRequest
from ._shape import ShapeError, check_chunk

__all__ = [
    "OPS",
    "Target",
    "CodecError",
    "StreamError",
    "StreamDone",
    "StreamItem",
    "StreamDecoder",
    "SSEStreamDecoder",
    "TranslatingStreamDecoder",
    "Codec",
    "kind_for_status",
    "clean_message",
    "load_json",
    "malformed",
    "parse_data_url",
    "chunk",
    "merge_headers",
    "as_int",
    "as_list",
    "as_dict",
    "require_mapping",
    "split_turns",
    "BytesStreamDecoder",
    "multipart",
    "form_fields",
    "STREAMABLE",
]

# every operation a request may name; a codec's `ops` says which of them its vendor has
OPS = frozenset({"chat", "embeddings", "models", "speech", "transcriptions", "translations", "images",
                 "image_edits"})
STREAMABLE = frozenset({"chat", "speech"})  # a chat answer streams as SSE chunks, speech as its bytes
MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where an attempt goes. `api_key` never shows in a repr."""

    provider: str
    model: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    api_version: str | None = None
    deployment: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # what a codec worked out from this target alone and reuses (its built-in headers); a
    # target is rebuilt when its configuration or key changes, and the memo with it
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("provider", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Target.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.base_url, str):
            raise ValueError(f"Target.base_url must be a string, got {self.base_url!r}")
        # "" means "the codec's default endpoint" (Codec.default_base_url).
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"Target.base_url must start with http:// or https://, got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()


class CodecError(Exception):
    """A codec could not build a request or make sense of a response; `.info` says why."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info

    @classmethod
    def of(cls, kind: ErrorKind, message: str, *, code: str | None = None,
           status: int | None = None) -> CodecError:
        return cls(ErrorInfo(kind=kind, message=clean_message(message), code=code, status=status))


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    """The stream failed; nothing more will come from this decoder."""

    info: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDone:
    """The vendor's terminal marker arrived: the stream completed normally."""


StreamItem = dict[str, Any] | bytes | StreamError | StreamDone


class StreamDecoder(abc.ABC):
    """Turns a streamed body into OpenAI `chat.completion.chunk` dicts."""

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[StreamItem]: ...

    @abc.abstractmethod
    def close(self) -> list[StreamItem]: ...


class BytesStreamDecoder(StreamDecoder):
    """A binary body streamed as it is (speech audio): each read is one item, and the end of
    the body is the end of the answer (HTTP framing tells a cut body from a whole one)."""

    def feed(self, data: bytes) -> list[StreamItem]:
        return [bytes(data)] if data else []

    def close(self) -> list[StreamItem]:
        return [StreamDone()]


class SSEStreamDecoder(StreamDecoder):
    """Shared plumbing for SSE-based vendors: after a `StreamDone` or `StreamError`
    the decoder is finished and ignores further input; `close()` reports a stream that
    ended before its terminal marker as a CONNECTION error, unless a chunk already carried
    its `finish_reason`: then the answer is whole and only the marker was lost."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self.finished = False
        self._finish_seen = False

    @abc.abstractmethod
    def _on_event(self, event: SSEEvent) -> list[StreamItem]: ...

    def _on_end(self) -> list[StreamItem]:
        """Called by `close()` when no terminal item was produced."""
        if self._finish_seen:
            return [StreamDone()]
        return [StreamError(info=ErrorInfo(kind=ErrorKind.CONNECTION,
                                           message="stream ended before completion"))]

    def feed(self, data: bytes) -> list[StreamItem]:
        if self.finished:
            return []
        try:
            events = self._sse.feed(data)
        except SSELineTooLong as exc:
            self.finished = True
            return [StreamError(info=ErrorInfo(kind=ErrorKind.MALFORMED, message=str(exc)))]
        return self._run(events)

    def close(self) -> list[StreamItem]:
        if self.finished:
            return []
        items = self._run(self._sse.close())
        if not self.finished:
            items += self._on_end()
            self.finished = True
        return items

    def _run(self, events: list[SSEEvent]) -> list[StreamItem]:
        items: list[StreamItem] = []
        for event in events:
            for item in self._checked(event):
                items.append(item)
                if isinstance(item, dict) and any(isinstance(c, Mapping) and c.get("finish_reason")
                                                  for c in item.get("choices") or ()):
                    self._finish_seen = True
                if isinstance(item, (StreamDone, StreamError)):
                    self.finished = True
                    return items
        return items

    def _checked(self, event: SSEEvent) -> list[StreamItem]:
        """The items of one event, every chunk in OpenAI shape; a vendor event that is
        not the shape its API documents ends the stream as MALFORMED."""
        try:
            out = self._on_event(event)
            for item in out:
                if isinstance(item, dict):
                    check_chunk(item)
        except (CodecError, ShapeError) as err:
            info = err.info if isinstance(err, CodecError) else malformed(err).info
            return [StreamError(info=info)]
        return out


class TranslatingStreamDecoder(SSEStreamDecoder):
    """A vendor stream re-emitted as OpenAI chunks that share one id and model, both
    learnt from the vendor's events as they come (Anthropic, Gemini)."""

    NOT_JSON = ErrorInfo(kind=ErrorKind.MALFORMED, message="stream event is not JSON")

    def __init__(self, codec: Codec, target: Target, created: int, default_id: str) -> None:
        super().__init__()
        self._codec, self._target, self._created = codec, target, created
        self._id, self._model = default_id, target.model

    def _chunk(self, delta: Mapping[str, Any] | None = None, finish: str | None = None,
               usage: Mapping[str, Any] | None = None, index: int = 0) -> dict[str, Any]:
        return chunk(id=self._id, model=self._model, created=self._created, delta=delta,
                     finish_reason=finish, usage=usage, index=index)


class Codec(abc.ABC):
    """One vendor's wire format. Instances are stateless and shared."""

    name: str = ""
    ops: frozenset[str] = frozenset({"chat", "embeddings", "models"})
    default_base_url: str | None = None  # used when a Target's base_url is ""
    prefill: bool = False  # the vendor continues a trailing assistant message (models may override)
    # the infrastructure interfaces a custom connector class offers (see codecs.INTERFACES);
    # none by default: a subclass opts in by naming them. Built-in connectors' are in the registry.
    infrastructure: frozenset[str] = frozenset()

    def base_url(self, target: Target) -> str:
        url = target.base_url or self.default_base_url
        if not url:
            raise ValueError(f"the {self.name} codec needs a base_url for provider {target.provider!r}")
        return url

    @abc.abstractmethod
    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,
                      stream: bool) -> WireRequest: ...

    @abc.abstractmethod
    def parse_response(self, target: Target, op: str, status: int,
                       headers: Mapping[str, str], body: bytes) -> dict[str, Any]: ...

    @abc.abstractmethod
    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> StreamDecoder: ...

    @abc.abstractmethod
    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        """Refine `kind_for_status(status)` with the vendor's body codes. `payload` is
        the decoded JSON body or None; `status` None means an error inside a 2xx body."""

    def classify_error(self, status: int | None, headers: Mapping[str, str], body: bytes, *,
                       now: float | None = None, secrets: Sequence[str] = ()) -> ErrorInfo:
        """Map a failed attempt to an `ErrorInfo`. `status` None = no HTTP response at all."""
        text = _body_text(body)
        if status is None:
            return ErrorInfo(kind=ErrorKind.CONNECTION,
                             message=clean_message(text or "connection failed", secrets))
        info = self._classify_payload(status, load_json(body))
        retry_after = parse_retry_after(headers or {}, now)
        return ErrorInfo(
            kind=info.kind,
            message=clean_message(info.message or text or f"HTTP {status}", secrets),
            status=status,
            code=info.code,
            retry_after=retry_after if retry_after is not None else info.retry_after,
            type=info.type,
            param=info.param,
        )

    def stream_error(self, payload: Any, secrets: Sequence[str] = ()) -> ErrorInfo:
        """Classify an error object that arrived inside a 200 body or stream."""
        info = self._classify_payload(None, payload)
        return replace(info, message=clean_message(info.message or "error in response stream", secrets))

    def _check_op(self, op: str, stream: bool = False) -> None:
        if op not in self.ops:
            raise ValueError(f"{self.name} codec has no operation {op!r}; it supports {sorted(self.ops)}")
        if stream and op not in STREAMABLE:
            raise ValueError(f"only {' and '.join(sorted(STREAMABLE))} can stream, not {op!r}")


# -- helpers shared by the codecs -----------------------------------------------------------

def kind_for_status(status: int | None) -> ErrorKind:
    """The first guess from the HTTP status alone; codecs refine it from the body."""
    if status is None:
        return ErrorKind.SERVER_ERROR  # an error object inside a 2xx body or stream
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 402:
        return ErrorKind.QUOTA_EXHAUSTED
    if status == 404:
        return ErrorKind.MODEL_NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status in (409, 425):
        return ErrorKind.SERVER_ERROR  # conflicts and too-early are transient: retryable
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if 400 <= status < 500:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.SERVER_ERROR  # 5xx, and any status a healthy API should not send


_WS = re.compile(r"\s+")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def clean_message(text: str, secrets: Sequence[str] = ()) -> str:
    """Redact secrets, collapse whitespace, cut to 300 characters."""
    text = _WS.sub(" ", redact(str(text), secrets)).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _body_text(body: bytes | None) -> str:
    """Something readable from a body that is not the JSON we hoped for."""
    if not body:
        return ""
    title = _TITLE.search(body)
    if title:
        return title.group(1).decode("utf-8", errors="replace").strip()
    text = body[:4096].decode("utf-8", errors="replace")
    return _WS.sub(" ", _TAGS.sub(" ", text)).strip()


_NO_JSON: Any = None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one, not one per call as json.loads(..., kw) makes

_orjson: Any
try:  # the optional fast parser (`pip install modelmesh-lite[fast]`): strict already, and 5-10x quicker
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


_BOM_FIRST = (0xEF, "\ufeff")  # body[0] of a byte-order mark: in bytes (an int) and in text


def load_json(body: bytes | str | None) -> Any:
    """Decoded JSON, or None when the body is empty or not JSON.

    Strict JSON: Python's parser accepts `NaN` and `Infinity`, which RFC 8259 does not
    and no vendor documents, so they make a body "not JSON"; nesting too deep for the
    parser's recursion (a hostile or broken upstream) does too. With orjson installed it
    parses instead; it refuses the same (and also integers beyond 64 bits and lone
    surrogates, which no vendor sends)."""
    if not body:
        return _NO_JSON
    if _orjson is not None:
        if body[0] in _BOM_FIRST:  # a byte-order mark, which the standard parser skips in bytes
            body = body[3:] if isinstance(body, (bytes, bytearray)) and body[:3] == b"\xef\xbb\xbf" else body
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            return _NO_JSON
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass") if isinstance(body, (bytes, bytearray)) else body
        return _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _NO_JSON


def malformed(problem: ShapeError | str, status: int | None = None) -> CodecError:
    """The error for a 2xx body (or stream event) that is not the shape it should be."""
    return CodecError.of(ErrorKind.MALFORMED, str(problem), status=status)


_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,(.*)", re.DOTALL)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` -> ("image/png", "AAAA"); None if not a base64 data URL."""
    match = _DATA_URL.fullmatch(url.strip()) if isinstance(url, str) else None
    if not match:
        return None
    return (match.group(1) or "application/octet-stream", match.group(3))


def chunk(*, id: str, model: str, created: int, delta: Mapping[str, Any] | None = None,
          finish_reason: str | None = None, index: int = 0,
          usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAI `chat.completion.chunk`; with `usage` and no delta it is the usage chunk."""
    choices = [] if delta is None else [
        {"index": index, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}]
    out: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": choices}
    if usage is not None:
        out["usage"] = dict(usage)
    return out


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Configured extra headers win, matched case-insensitively (a proxy may need its own auth)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        for existing in [k for k in out if k.lower() == str(key).lower()]:
            del out[existing]
        out[str(key)] = str(value)
    return out


def as_int(value: Any, default: int = 0) -> int:
    """A vendor's number as int; anything unreadable counts as `default`."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def opt_str(value: Any) -> str | None:
    """A vendor's field as str; anything else counts as absent."""
    return value if isinstance(value, str) else None


def require_mapping(body: Any, what: str = "request body") -> Mapping[str, Any]:
    if type(body) is not dict and not isinstance(body, Mapping):  # exact dict first: the ABC check costs
        raise TypeError(f"{what} must be a mapping, got {type(body).__name__}")
    return body


def split_turns(
    messages: list[Any], convert: Any, *, key: str, vendor: str,
) -> tuple[list[tuple[int, Mapping[str, Any]]], list[dict[str, Any]]]:
    """OpenAI messages -> (the system/developer messages with their index, the vendor's turns).

    `convert(i, msg)` gives (vendor role, items) for every other message. Consecutive turns
    of one role are merged, since Anthropic and Gemini both want roles to alternate."""
    system: list[tuple[int, Mapping[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"messages[{i}] must be an object")
        if msg.get("role") in ("system", "developer"):
            system.append((i, msg))
            continue
        role, items = convert(i, msg)
        if not items:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1][key].extend(items)
        else:
            turns.append({"role": role, key: items})
    if not turns:
        raise CodecError.of(ErrorKind.BAD_REQUEST,
                            f"{vendor} needs at least one user or assistant message besides the system prompt")
    return system, turns


# -- multipart/form-data (RFC 7578), for the vendors that take files that way -----------------------

def form_fields(body: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> list[tuple[str, str | Upload]]:
    """A request body as form fields, spelled as the OpenAI SDK spells them: a list is repeated
    as `name[]`, an object as `name[key]`, booleans as `true`/`false`; None is left out."""
    out: list[tuple[str, str | Upload]] = []

    def add(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Upload):
            out.append((name, value))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        elif isinstance(value, (str, int, float)):
            out.append((name, str(value)))
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                add(f"{name}[{key}]", inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                add(f"{name}[]", inner)
        else:
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"request parameter '{name}' cannot be sent as a form field "
                                                       f"({type(value).__name__})")

    for key, value in body.items():
        if key not in skip:
            add(key, value)
    return out


def multipart(fields: Sequence[tuple[str, str | Upload]]) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data request. The boundary is derived from the
    content, so the same request encodes to the same bytes (a recorded session replays), and it
    is checked not to occur in any part."""
    for name, _ in fields:
        if not name or any(c in name for c in '"\r\n'):
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"form field name {name!r} cannot be sent")
    seed = hashlib.sha256()
    for name, value in fields:
        seed.update(name.encode())
        seed.update(value.data if isinstance(value, Upload) else value.encode())
    salt = 0
    while True:
        boundary = f"modelmesh-{seed.hexdigest()[:24]}{salt or ''}"
        mark = boundary.encode()
        if not any(mark in (v.data if isinstance(v, Upload) else v.encode()) for _, v in fields):
            break
        salt += 1
    parts: list[bytes] = []
    for name, value in fields:
        if isinstance(value, Upload):
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{value.filename}"\r\n'
                    f"Content-Type: {value.content_type}\r\n\r\n").encode()
            data = bytes(value.data)
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            data = value.encode("utf-8")
        parts.append(b"--" + mark + b"\r\n" + head + data + b"\r\n")
    parts.append(b"--" + mark + b"--\r\n")
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
