"""What a fake upstream is told to do with one request, and what it saw.

Theory of operation: a test scripts a `FakeUpstream` with *steps*, one per incoming
request. A step is a frozen value naming a behaviour (`Reply`, `Error`, `CutStream`, ...);
the server interprets it in `_exchange.py`. Shortcuts keep scripts short: `None` is the
default reply, an int is a status (`429` -> `Error(429)`, `200` -> `Reply()`), a str is a
reply text, a step class with no required fields stands for its instance (`Drop`), and a
callable `(RecordedRequest) -> step` decides per request. `coerce_step` turns all of these
into a step or a callable once, when scripted, so a bad script fails in the test that
wrote it and not inside the server thread.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

__all__ = [
    "Headers",
    "RecordedRequest",
    "ToolCall",
    "Reply",
    "Error",
    "SlowFirstByte",
    "CutStream",
    "StreamErrorEvent",
    "MalformedJSON",
    "HtmlError",
    "Refuse",
    "Drop",
    "SlowStream",
    "Step",
    "StepLike",
    "coerce_step",
    "resolve_step",
]


class Headers(dict):
    """Request headers with lower-case keys; lookups ignore case like HTTP does."""

    def __init__(self, items: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((str(k).lower(), str(v)) for k, v in pairs)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})


@dataclass(frozen=True, slots=True)
class FormFile:
    """A file part of a multipart body."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


def parse_form(content_type: str, body: bytes) -> dict[str, list[Any]]:
    """multipart/form-data -> {name: [value, ...]}; a value is a str or a FormFile. What is not
    a readable form is an empty one: the test asserting on it says what it expected."""
    from .._form import FormError, form_parts

    if "multipart/form-data" not in content_type:
        return {}
    try:
        parts = form_parts(body, content_type)
    except FormError:
        return {}
    out: dict[str, list[Any]] = {}
    for p in parts:
        value: Any = (FormFile(p.filename, p.content_type, p.data) if p.filename is not None
                      else p.data.decode(p.charset or "utf-8", "replace"))
        out.setdefault(p.name, []).append(value)
    return out


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class RecordedRequest:
    """One request exactly as the fake server received it. Credentials are readable as
    attributes (tests assert on them) but masked in the repr, which ends up in CI logs."""

    method: str
    path: str                      # without the query string, percent-decoded
    query: dict[str, str]
    headers: Headers
    json: Any                      # parsed body, or None when empty or not JSON
    body: bytes
    peer: tuple[str, int] | None = None  # the client's address: same peer, same connection

    def __repr__(self) -> str:
        headers = {k: ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        query = {k: ("***" if k == "key" else v) for k, v in self.query.items()}
        return (f"RecordedRequest(method={self.method!r}, path={self.path!r}, query={query!r}, "
                f"headers={headers!r}, json={self.json!r})")

    @property
    def form(self) -> dict[str, list[Any]]:
        """A multipart/form-data body's fields: name -> its values in order, each a str or, for a
        file part, a `FormFile` (filename, content_type, data). Empty for any other body."""
        return parse_form(self.headers.get("content-type", ""), self.body)

    @property
    def model(self) -> str | None:
        """The model the request names: body `model` (JSON or form), ElevenLabs' `model_id`,
        a `model` query parameter (Deepgram), Azure deployment or Gemini path."""
        if isinstance(self.json, dict):
            for key in ("model", "model_id"):
                if isinstance(self.json.get(key), str):
                    return str(self.json[key])
        if "multipart/form-data" in self.headers.get("content-type", ""):
            found = self.form.get("model")
            if found and isinstance(found[0], str):
                return found[0]
        if isinstance(self.query.get("model"), str):
            return self.query["model"]
        parts = self.path.split("/")
        if "deployments" in parts[:-1]:
            return parts[parts.index("deployments") + 1]
        if "models" in parts[:-1]:
            return unquote(parts[parts.index("models") + 1]).split(":")[0] or None
        return None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed answer."""
        if self.path.endswith(":streamGenerateContent"):
            return True
        return isinstance(self.json, dict) and self.json.get("stream") is True


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A function call the fake model makes; `arguments` is a JSON object."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def of(cls, value: ToolCall | Mapping[str, Any]) -> ToolCall:
        if isinstance(value, ToolCall):
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise TypeError(f"a tool call needs a mapping with a str 'name', got {value!r}")
        args = value.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args)
        if not isinstance(args, Mapping):
            raise TypeError(f"tool call arguments must be a JSON object, got {args!r}")
        return cls(name=value["name"], arguments=dict(args), id=value.get("id"))


def _status(value: Any, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 599:
        raise ValueError(f"{what} status must be an int in {low}..599, got {value!r}")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be finite and >= 0, got {value!r}")
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    return value


def _headers(step: object, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"headers must be a mapping, got {value!r}")
    object.__setattr__(step, "headers", {str(k): str(v) for k, v in value.items()})


def _text(value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"text must be a str or None, got {value!r}")


_USAGE_KEYS = (
    ("prompt_tokens", "completion_tokens"),
    ("input_tokens", "output_tokens"),
    ("promptTokenCount", "candidatesTokenCount"),
)


def _usage(value: Any) -> tuple[int, int] | None:
    """Accept (input, output) or any vendor's usage mapping; keep (input, output)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        for ins, outs in _USAGE_KEYS:
            if ins in value or outs in value:
                value = (value.get(ins, 0), value.get(outs, 0))
                break
        else:
            raise ValueError(f"usage mapping needs prompt/completion or input/output token counts, got {value!r}")
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"usage must be (input_tokens, output_tokens) or a usage mapping, got {value!r}")
    return (_count(value[0], "usage input tokens"), _count(value[1], "usage output tokens"))


@dataclass(frozen=True, slots=True)
class Reply:
    """A normal, successful answer. `delay` is real seconds before the status line.

    `finish_reason` uses OpenAI's words (stop, length, tool_calls, content_filter); each
    style translates them (Anthropic end_turn/max_tokens/tool_use, Gemini STOP/MAX_TOKENS).
    """

    text: str | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: Any = None
    finish_reason: str = "stop"
    tool_calls: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        _text(self.text)
        if _status(self.status, 200, "Reply") > 299 or self.status in (204, 205):
            raise ValueError(f"Reply status must be a 2xx that carries a body, got {self.status}; "
                             "use Error(...) for failures")
        _headers(self, self.headers)
        object.__setattr__(self, "delay", _seconds(self.delay, "Reply delay"))
        object.__setattr__(self, "usage", _usage(self.usage))
        if not isinstance(self.finish_reason, str) or not self.finish_reason:
            raise ValueError(f"finish_reason must be a non-empty str, got {self.finish_reason!r}")
        if self.tool_calls is not None:
            object.__setattr__(self, "tool_calls", tuple(ToolCall.of(t) for t in self.tool_calls))


@dataclass(frozen=True, slots=True)
class Error:
    """A vendor-shaped error response. `code` is the vendor's code or type
    (`insufficient_quota`, `overloaded_error`, `RESOURCE_EXHAUSTED`); each style also
    understands the other styles' common codes. `retry_after` sets Retry-After; `param`
    names the request parameter at fault, where the vendor's error body says one."""

    status: int
    code: str | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    param: str | None = None

    def __post_init__(self) -> None:
        _status(self.status, 400, "Error")
        if self.code is not None and not isinstance(self.code, str):
            raise TypeError(f"Error code must be a str or None, got {self.code!r}")
        if self.message is not None and not isinstance(self.message, str):
            raise TypeError(f"Error message must be a str or None, got {self.message!r}")
        _headers(self, self.headers)
        if self.retry_after is not None:
            object.__setattr__(self, "retry_after", _seconds(self.retry_after, "retry_after"))


@dataclass(frozen=True, slots=True)
class SlowFirstByte:
    """Wait `seconds` (real time) before sending anything, then behave as `then`."""

    seconds: float
    then: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", _seconds(self.seconds, "SlowFirstByte seconds"))
        then = coerce_step(self.then)
        if callable(then) and not isinstance(then, _STEP_TYPES):
            raise TypeError("SlowFirstByte(then=...) takes a step, not a callable")
        object.__setattr__(self, "then", then)


@dataclass(frozen=True, slots=True)
class CutStream:
    """Send `after_chunks` pieces of content, then drop the connection mid-response.

    A piece is one text (or tool-call) delta; Anthropic's message_start and OpenAI's role
    chunk come before and are not counted. A non-streamed answer is cut halfway through.
    """

    after_chunks: int = 0
    text: str | None = None

    def __post_init__(self) -> None:
        _count(self.after_chunks, "after_chunks")
        _text(self.text)


@dataclass(frozen=True, slots=True)
class StreamErrorEvent:
    """Send `after_chunks` pieces, then an in-stream error event in the style's format,
    then end the stream. A non-streamed request gets the same error as an HTTP error."""

    after_chunks: int = 0
    code: str = "overloaded_error"
    message: str | None = None
    status: int | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        _count(self.after_chunks, "after_chunks")
        if not isinstance(self.code, str) or not self.code:
            raise ValueError(f"StreamErrorEvent code must be a non-empty str, got {self.code!r}")
        if self.status is not None:
            _status(self.status, 400, "StreamErrorEvent")
        _text(self.text)


@dataclass(frozen=True, slots=True)
class MalformedJSON:
    """A 2xx answer whose JSON (or stream event data) does not parse."""

    status: int = 200

    def __post_init__(self) -> None:
        _status(self.status, 200, "MalformedJSON")


@dataclass(frozen=True, slots=True)
class HtmlError:
    """An HTML error page, as a proxy or load balancer in front of the vendor sends."""

    status: int = 502

    def __post_init__(self) -> None:
        _status(self.status, 400, "HtmlError")


@dataclass(frozen=True, slots=True)
class Refuse:
    """Read the request, then reset the connection (RST) without answering."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Read the request, then close the connection (FIN) without answering."""


@dataclass(frozen=True, slots=True)
class SlowStream:
    """A normal answer with `chunk_delay` real seconds between pieces."""

    chunk_delay: float = 0.05
    text: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunk_delay", _seconds(self.chunk_delay, "chunk_delay"))
        _text(self.text)


Step = (Reply | Error | SlowFirstByte | CutStream | StreamErrorEvent | MalformedJSON
        | HtmlError | Refuse | Drop | SlowStream)
_STEP_TYPES = (Reply, Error, SlowFirstByte, CutStream, StreamErrorEvent, MalformedJSON,
               HtmlError, Refuse, Drop, SlowStream)
StepLike = Step | int | str | None | type | Callable[[RecordedRequest], Any]


def coerce_step(value: Any) -> Any:
    """A step, or a callable to be asked per request; shortcuts expanded."""
    if isinstance(value, _STEP_TYPES):
        return value
    if value is None:
        return Reply()
    if isinstance(value, bool):
        raise TypeError(f"a step cannot be a bool, got {value!r}")
    if isinstance(value, int):
        return Reply(status=value) if value < 400 else Error(value)
    if isinstance(value, str):
        return Reply(text=value)
    if isinstance(value, type):
        if issubclass(value, _STEP_TYPES):
            step_class: type = value  # some step classes need arguments: calling them bare is checked at run time
            try:
                return step_class()
            except TypeError as exc:
                raise TypeError(f"{value.__name__} needs arguments; script {value.__name__}(...)") from exc
        raise TypeError(f"not a step class: {value.__name__}")
    if callable(value):
        return value
    raise TypeError(
        "a step is Reply/Error/SlowFirstByte/CutStream/StreamErrorEvent/MalformedJSON/"
        f"HtmlError/Refuse/Drop/SlowStream, None, an int status, a str text or a callable; got {value!r}"
    )


def resolve_step(value: Any, request: RecordedRequest) -> Step:
    """Ask a callable step what to do with this request."""
    if isinstance(value, _STEP_TYPES):
        return value
    result = coerce_step(value(request))
    if not isinstance(result, _STEP_TYPES):
        raise TypeError(f"a callable step must return a step, got {result!r}")
    return result
