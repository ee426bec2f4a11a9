"""The vocabulary between a call and its shell: phases, actions, inputs, routing options.

A shell asks a `Call` for its next action and carries it out:

    Attempt   send `request` (a WireRequest) to `target`, then feed what happened
    Wait      sleep `seconds`, then ask again
    Read      (streams) read the next bytes of the open stream and feed them
    Deliver   hand `chunk` to the caller
    Succeeded / Failed   the request is over

and feeds back inputs: ResponseReceived (any status), StreamOpened, DataReceived,
StreamEnded (streams only), TransportFailed (timeouts, refused or cut connections) and
Cancelled (the caller walked away). An Attempt whose `request` is a ConnectorCall (a
connector that does its own I/O) is answered instead with ResultReceived (what `complete`
returned), or StreamOpened, then ChunkReceived per item `stream` yielded and StreamEnded;
ErrorReceived is what the connector raised, as the connector classified it. All are slotted values, never changed once made. Those
made per request or per chunk (Attempt, Deliver, Succeeded, ResponseReceived,
DataReceived) are plain dataclasses: a frozen one sets each field through
`object.__setattr__`, about 2.5x the cost, on the hot path of every request.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import _errors as E
from ._types import ConnectorCall, ErrorInfo, ErrorKind, WireRequest
from .codecs._base import Target

__all__ = [
    "CallProtocolError", "Phase", "Attempt", "Wait", "Read", "Deliver", "Succeeded", "Failed",
    "ResponseReceived", "StreamOpened", "DataReceived", "StreamEnded", "TransportFailed", "Cancelled",
    "ResultReceived", "ChunkReceived", "ErrorReceived",
    "Action", "RoutingOptions", "RoutingDecision",
]


_NONE: Mapping[str, str] = MappingProxyType({})


def _none() -> Mapping[str, str]:  # a dataclass default may not be a mapping itself; one shared, read-only
    return _NONE


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingOptions:
    """What the caller says about one request besides its body: routing hints (seed 004),
    its time, and the OpenAI SDK's per-request options."""

    delivery_mode: str | None = None
    preferred_provider: str | None = None
    session_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # seconds for the whole request; caps the pool's retry deadline
    max_retries: int | None = None  # same-model retries, in place of the pool's; failover is not a retry
    extra_headers: Mapping[str, str] = field(default_factory=_none)  # sent with every attempt, over the provider's own
    extra_query: Mapping[str, str] = field(default_factory=_none)    # added to every attempt's URL


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingDecision:
    """The model a request would go to now, and what follows it if it fails (seed 004)."""

    model_id: str
    provider_id: str
    pool_id: str
    score: float
    fallback_chain: tuple[str, ...] = ()


class CallProtocolError(RuntimeError):
    """A shell fed an input the call cannot take in its current phase."""


class Phase(enum.Enum):
    READY = "ready"          # choose the next attempt
    SENDING = "sending"      # an attempt is out; its outcome must be fed
    STREAMING = "streaming"  # a stream is open; feed its bytes
    WAITING = "waiting"      # backing off until `wait_until`
    DONE = "done"            # Succeeded or Failed has been decided

    # identity hashing, in C (Enum's own __hash__ is Python): every input looks its phase up
    __hash__ = object.__hash__


# -- actions (what the shell should do) ------------------------------------------------
@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class Attempt:
    number: int
    pool: str
    ref: str
    target: Target
    request: WireRequest | ConnectorCall
    op: str
    stream: bool
    connect_timeout: float
    read_timeout: float
    first_chunk_timeout: float  # a stream: the response and its first chunk
    idle_timeout: float         # a stream: each gap between chunks after the first
    total_timeout: float        # the whole attempt, body included
    max_bytes: int              # the most a response may hold (decompressed); more is a malformed answer


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    pass


@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class Deliver:
    chunk: dict[str, Any] | bytes  # an OpenAI chunk; a binary stream's (speech) bytes
    provider: str
    model: str


@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class Succeeded:
    response: dict[str, Any] | None  # None for streams: the chunks were delivered
    request_id: str
    pool: str
    provider: str
    model: str
    attempts: tuple[E.AttemptRecord, ...]
    latency: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    headers: Mapping[str, str] = field(default_factory=_none)  # the serving response's, as the provider sent them


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    error: E.ModelMeshError


# -- inputs (what happened) --------------------------------------------------------------
@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class ResponseReceived:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened:
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class DataReceived:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailed:
    kind: ErrorKind  # TIMEOUT, CONNECTION; MALFORMED (the answer was too large to take);
    #                  MISCONFIGURED (the request could not be sent as configured)
    message: str = ""
    connect: bool = False  # the connection itself could not be made


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    pass


@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class ResultReceived:
    """What a connector's own `complete` returned (a plain dict; the codec checks its shape)."""

    response: Any
    headers: Mapping[str, str] = field(default_factory=_none)


@dataclass(slots=True, kw_only=True)  # per request or chunk: plain, see the module's note
class ChunkReceived:
    """One item a connector's own `stream` yielded: a chat.completion.chunk dict or a text delta."""

    chunk: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReceived:
    """What a connector's own I/O raised, as its `classify_exception` classified it."""

    info: ErrorInfo


Action = Attempt | Wait | Read | Deliver | Succeeded | Failed
