"""Value types shared by every part of the sans-IO core.

These are the nouns the core and its shells exchange: what went wrong with an attempt
(`ErrorKind`, `ErrorInfo`), what a provider told us about its limits (`RateLimitInfo`),
the HTTP request a codec wants sent (`WireRequest`) and a model's address
(`ModelRef`). They are frozen, slotted value objects; nothing here does I/O.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ErrorKind",
    "ErrorInfo",
    "RateLimitInfo",
    "WireRequest",
    "ConnectorCall",
    "Upload",
    "ModelRef",
    "parse_model_ref",
    "Rng",
    "DeactivationReason",
    "QUOTA_REASONS",
]


class Rng(Protocol):
    """What the core needs of its injected randomness; a `random.Random` is one."""

    def random(self) -> float: ...


class ErrorKind(enum.Enum):
    """Why an attempt failed; each kind has one handling in the request state machine."""

    RATE_LIMITED = "rate_limited"          # 429 / rate limit: rotate, honour Retry-After
    SERVER_ERROR = "server_error"          # 5xx, Anthropic 529 overloaded: retry / rotate
    TIMEOUT = "timeout"                    # connect/read/first-chunk/total timeout
    CONNECTION = "connection"              # refused, reset, DNS, stream cut
    AUTH = "auth"                          # 401/403: the whole provider goes on standby
    QUOTA_EXHAUSTED = "quota_exhausted"    # billing/quota spent: standby until quota resets
    MODEL_NOT_FOUND = "model_not_found"    # 404 for the model: this model goes on standby
    CONTEXT_LENGTH = "context_length"      # prompt too long: go to a model with a larger window
    CONTENT_FILTERED = "content_filtered"  # safety refusal: try another model, no penalty
    BAD_REQUEST = "bad_request"            # caller's fault: fail fast, no penalty
    MALFORMED = "malformed"                # 2xx with a body we cannot parse (or too large): provider fault
    MISCONFIGURED = "misconfigured"        # a redirect, a key that cannot be sent: fix the provider's config


class DeactivationReason(enum.Enum):
    RETRY_LIMIT = "retry_limit"
    ERROR_RATE = "error_rate"
    REQUEST_LIMIT = "request_limit"
    TOKEN_LIMIT = "token_limit"
    BUDGET_LIMIT = "budget_limit"
    QUOTA_WINDOW = "quota_window"          # a limit of the daily/monthly period is spent
    QUOTA_EXHAUSTED = "quota_exhausted"    # the provider said the quota is spent
    QUOTA_LOW = "quota_low"                # its quota endpoint says little is left: rotated away before a 429
    MAINTENANCE = "maintenance"
    AUTH_FAILURE = "auth_failure"
    PROVIDER_OUTAGE = "provider_outage"
    MODEL_NOT_FOUND = "model_not_found"
    RATE_LIMITED = "rate_limited"
    MISCONFIGURED = "misconfigured"
    MANUAL = "manual"
    DEPRECATED = "deprecated"              # gone from the provider's model listing (discovery.sync)


# reasons that a quota reset cures
QUOTA_REASONS = frozenset({
    DeactivationReason.REQUEST_LIMIT,
    DeactivationReason.TOKEN_LIMIT,
    DeactivationReason.BUDGET_LIMIT,
    DeactivationReason.QUOTA_WINDOW,
    DeactivationReason.QUOTA_EXHAUSTED,
})


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """A classified failure: what a codec makes of an error status and body."""

    kind: ErrorKind
    message: str = ""
    status: int | None = None
    code: str | None = None          # the vendor's own error code/type, e.g. "insufficient_quota"
    retry_after: float | None = None  # seconds, from Retry-After or the body
    type: str | None = None          # OpenAI-likes: the error's `type` and `param`, as sent
    param: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """What a provider's response headers say about its limits. None = not reported."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None  # seconds from now until the request budget resets
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None    # seconds from now until the token budget resets
    retry_after: float | None = None     # seconds

    def is_empty(self) -> bool:  # on every answer: spelt out, not a loop over the fields
        return (self.limit_requests is None and self.remaining_requests is None and self.reset_requests is None
                and self.limit_tokens is None and self.remaining_tokens is None and self.reset_tokens is None
                and self.retry_after is None)


@dataclass(slots=True, kw_only=True)  # one per attempt: plain, as _protocol.py explains; never changed once made
class WireRequest:
    """An HTTP request a codec wants sent. `headers` may hold credentials: never print them.
    The body is `json` (encoded by the shell) or, for what is not JSON (a multipart upload,
    raw audio), `content`: bytes sent as they are."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    stream: bool = False
    content: bytes | None = None

    def __post_init__(self) -> None:
        if self.content is not None and self.json is not None:
            raise ValueError("a WireRequest has a JSON body or raw content, not both")

    def __repr__(self) -> str:  # credentials live in headers; keep them out of reprs and logs
        return f"WireRequest(method={self.method!r}, url={self.url!r}, stream={self.stream})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorCall:
    """What a connector that does its own I/O (the CDK's `BaseProvider`) is asked to do, in
    place of a WireRequest: the shell hands it to the connector (`complete`, `stream`; `check`
    for a probe, `list_models` for a listing) and feeds back what came of it as
    ResultReceived, ChunkReceived, ErrorReceived. It reads like a WireRequest where logs and
    recordings look (`method`, `url`, `json`), and never shows the key."""

    connector: Any           # the connector whose methods the shell calls
    target: Any              # the codecs' Target: model, base_url, key, headers, options
    op: str                  # "chat", "embeddings", ...; "models" for a provider check or a listing
    body: Mapping[str, Any] = field(default_factory=dict)  # OpenAI-shaped, `model` set to the target's
    stream: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)  # the caller's extra headers
    query: Mapping[str, str] = field(default_factory=dict)    # the caller's extra query parameters

    @property
    def method(self) -> str:
        return "STREAM" if self.stream else "CALL"

    @property
    def url(self) -> str:
        return f"{self.target.base_url or 'connector:'}#{self.op}"

    @property
    def json(self) -> Any:
        return self.body or None

    content = None

    def __repr__(self) -> str:
        return f"ConnectorCall(connector={type(self.connector).__name__}, op={self.op!r}, stream={self.stream})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A file in a request body (the audio to transcribe, the image to edit), already read into
    memory by the client: the core never opens a file. Its bytes stay out of reprs."""

    filename: str
    data: bytes = field(repr=False)
    content_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray)):
            raise TypeError(f"Upload.data must be bytes, got {type(self.data).__name__}")
        if not isinstance(self.filename, str) or not self.filename or any(c in self.filename for c in '"\r\n'):
            raise ValueError(f"Upload.filename must be a non-empty name without quotes or line breaks, "
                             f"got {self.filename!r}")

    def __repr__(self) -> str:
        return f"Upload(filename={self.filename!r}, size={len(self.data)}, content_type={self.content_type!r})"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """`provider/model-id`. The model id keeps every dot and slash of its own."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


def parse_model_ref(text: str) -> ModelRef:
    """Split `provider/model-id` at the first slash: `together/meta-llama/llama-3.1-8b`
    is provider `together`, model `meta-llama/llama-3.1-8b`."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"expected a model reference like 'provider/model-id', got {text!r}")
    provider, _, model = text.partition("/")
    if not provider or not model:
        raise ValueError(f"expected a model reference like 'provider/model-id', got {text!r}")
    return ModelRef(provider, model)
