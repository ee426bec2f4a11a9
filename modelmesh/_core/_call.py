"""The per-request state machine: one logical request, its attempts, retries and failover.

Theory of operation. A shell asks `call.next_action(now)` and carries out what it gets:

    Attempt   send `request` (a WireRequest) to `target`, then feed what happened
    Wait      sleep `seconds`, then ask again
    Read      (streams) read the next bytes of the open stream and feed them
    Deliver   hand `chunk` to the caller
    Succeeded / Failed   the request is over

and feeds the outcome back with `call.feed(input, now)`: ResponseReceived (any status),
StreamOpened, DataReceived, StreamEnded, TransportFailed (timeouts, refused or cut
connections), ResultReceived / ErrorReceived / ChunkReceived (connectors that do their
own I/O), Cancelled (the caller walked away). The call classifies every outcome through
the provider's codec, updates the shared health of models and providers, and decides the
next step. Which input is legal in which phase is the table `_TRANSITIONS`; anything else
raises `CallProtocolError`.

Streams fail over only while that is invisible: chunks without content are held back
until the first chunk with content, and before that any failure moves to the next model.
Once content reached the caller a failure either resumes on another model from the
partial answer (pool option `stream_resume`) or ends in StreamInterruptedError carrying
the partial text. Nothing delivered is repeated or dropped, and an interrupted stream is
never reported as a success.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from . import _errors as E
from ._breaker import BreakerState
from ._events import AttemptFailed, RequestCompleted, RequestFailed, RequestRouted, RetryScheduled, PoolExhausted
from ._policies import Deactivation, DeactivationReason
from ._ratelimit import parse_rate_limit_headers
from ._types import ErrorInfo, ErrorKind, WireRequest
from .codecs._base import CodecError, StreamDone, StreamError, Target

if TYPE_CHECKING:
    from ._mesh import MeshCore, RoutingOptions
    from ._pool import ModelInfo, Pool

__all__ = [
    "Call", "CallProtocolError", "Phase",
    "Attempt", "Wait", "Read", "Deliver", "Succeeded", "Failed",
    "ResponseReceived", "StreamOpened", "DataReceived", "StreamEnded", "TransportFailed",
    "ResultReceived", "ErrorReceived", "ChunkReceived", "Cancelled",
]


class CallProtocolError(RuntimeError):
    """A shell fed an input the call cannot take in its current phase."""


class Phase(enum.Enum):
    READY = "ready"          # choose the next attempt
    SENDING = "sending"      # an attempt is out; its outcome must be fed
    STREAMING = "streaming"  # a stream is open; feed its bytes
    WAITING = "waiting"      # backing off until `wait_until`
    DONE = "done"            # Succeeded or Failed has been decided


# -- actions (what the shell should do) ------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    number: int
    pool: str
    ref: str
    target: Target
    request: WireRequest
    op: str
    stream: bool
    connect_timeout: float
    read_timeout: float
    first_chunk_timeout: float
    total_timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    chunk: dict
    provider: str
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeeded:
    response: dict | None  # None for streams: the chunks were delivered
    request_id: str
    pool: str
    provider: str
    model: str
    attempts: tuple[E.AttemptRecord, ...]
    latency: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    error: E.ModelMeshError


# -- inputs (what happened) --------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened:
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailed:
    kind: ErrorKind  # TIMEOUT or CONNECTION
    message: str = ""
    connect: bool = False  # the connection itself could not be made


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultReceived:
    response: dict
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReceived:
    info: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkReceived:
    chunk: dict | None  # None = the connector's stream finished


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    pass


_TRANSITIONS: dict[tuple[Phase, type], str] = {
    (Phase.SENDING, ResponseReceived): "_on_response",
    (Phase.SENDING, StreamOpened): "_on_stream_opened",
    (Phase.SENDING, TransportFailed): "_on_transport_failed",
    (Phase.SENDING, ResultReceived): "_on_result",
    (Phase.SENDING, ErrorReceived): "_on_error_received",
    (Phase.SENDING, ChunkReceived): "_on_chunk_opened",
    (Phase.STREAMING, DataReceived): "_on_data",
    (Phase.STREAMING, ChunkReceived): "_on_chunk",
    (Phase.STREAMING, StreamEnded): "_on_stream_ended",
    (Phase.STREAMING, TransportFailed): "_on_transport_failed",
    (Phase.STREAMING, ErrorReceived): "_on_error_received",
    (Phase.READY, Cancelled): "_on_cancel",
    (Phase.SENDING, Cancelled): "_on_cancel",
    (Phase.STREAMING, Cancelled): "_on_cancel",
    (Phase.WAITING, Cancelled): "_on_cancel",
    (Phase.DONE, Cancelled): "_ignore",
}

# failure kinds that count against a model's health
_PENALISED = {ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.MALFORMED}
_RESUME_PROMPT = "Continue exactly where your previous answer stopped. Do not repeat any of it."


class Call:
    """One logical request. Not thread-safe by itself: the shell holds the mesh lock."""

    def __init__(
        self, mesh: MeshCore, pool: Pool, op: str, body: Mapping[str, Any], *, stream: bool,
        options: RoutingOptions, now: float, request_id: str,
    ) -> None:
        self.mesh = mesh
        self.pool = pool
        self.op = op
        self.body = dict(body)
        self.stream = stream
        self.options = options
        self.request_id = request_id
        self.started = now
        retry = pool.config.retry
        self.retry = retry
        limits = [t for t in (retry.deadline, options.timeout) if t]
        self.deadline = now + min(limits) if limits else None
        self.phase = Phase.READY
        self.attempts: list[E.AttemptRecord] = []
        self._queue: deque = deque()
        self._final: Succeeded | Failed | None = None
        self._excluded: set[str] = set()      # for this request: filtered, too short, incompatible
        self._round: set[str] = set()         # failed in the current round of attempts
        self._same_model: dict[str, int] = {}  # same-model retries used per ref
        self._retry_after: float | None = None
        self._min_context: int | None = None
        self._restrict: frozenset[str] | None = None
        self._wait_until = now
        self._round_no = 0
        self._last_error: ErrorInfo | None = None
        self._retry_ref: str | None = None
        # per attempt
        self._ref: str | None = None
        self._model: ModelInfo | None = None
        self._target: Target | None = None
        self._attempt_started = now
        self._decoder: Any = None
        self._held: list[dict] = []
        self._delivered = False
        self._parts: list[str] = []           # delivered text, for resume and interruption
        self._usage: dict[str, int] = {}
        self._finished = False
        self._want_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))

    def __repr__(self) -> str:
        return f"Call(id={self.request_id!r}, pool={self.pool.name!r}, phase={self.phase.value})"

    # -- the protocol ------------------------------------------------------------------
    def next_action(self, now: float) -> Attempt | Wait | Read | Deliver | Succeeded | Failed:
        if self._queue:
            return self._queue.popleft()
        if self._final is not None:
            return self._final
        if self.phase is Phase.SENDING:
            raise CallProtocolError(f"{self!r}: feed the outcome of the attempt before asking what to do next")
        if self.phase is Phase.STREAMING:
            return Read()
        if self.phase is Phase.WAITING:
            if now < self._wait_until:
                return Wait(seconds=self._wait_until - now)
            self.phase = Phase.READY
        return self._choose(now)

    def feed(self, event: Any, now: float) -> None:
        handler = _TRANSITIONS.get((self.phase, type(event)))
        if handler is None:
            raise CallProtocolError(f"{self!r} cannot take {type(event).__name__} in phase {self.phase.value}")
        getattr(self, handler)(event, now)

    @property
    def partial_text(self) -> str:
        return "".join(self._parts)

    # -- choosing an attempt -----------------------------------------------------------
    def _choose(self, now: float):
        mesh, pool = self.mesh, self.pool
        if self.deadline is not None and now >= self.deadline and self.attempts:
            return self._fail(now, timeout=True)
        if len(self.attempts) >= self.retry.max_attempts:
            return self._fail(now)
        if self._retry_ref is not None:
            ref, self._retry_ref = self._retry_ref, None
            if pool.model_block(ref, now, mesh.providers, mesh.events) is None:
                return self._attempt(ref, 0.0, (), now)
        cands, earliest = pool.candidates(now, mesh.providers, mesh.events, restrict=self._restrict)
        cands = [c for c in cands if c.ref not in self._excluded]
        if self._min_context is not None:
            cands = [c for c in cands if c.context_window is None or c.context_window >= self._min_context]
        fresh = [c for c in cands if c.ref not in self._round]
        if not fresh:
            return self._exhausted(now, cands, earliest)
        ctx = pool.context(now, mesh.rng, self.options)
        ranked = pool.strategy.rank(fresh, ctx)
        if not ranked:
            return self._exhausted(now, [], earliest)
        best = ranked[0]
        score = pool.strategy.score(pool.full(best, now, mesh.providers), ctx)
        return self._attempt(best.ref, score, tuple(c.ref for c in ranked[1:]), now)

    def _exhausted(self, now: float, tried_but_available: list, earliest: float | None):
        """Nothing fresh to try: start a new round after a backoff, wait for a recovery, or fail."""
        retry = self.retry
        if tried_but_available and len(self.attempts) < retry.max_attempts:
            delay = self._backoff(now)
            if delay is not None:
                self._round.clear()
                return self._wait(now, delay, "every model of the pool failed once; retrying")
        elif earliest is not None and self.pool.config.on_exhausted == "wait":
            delay = max(0.0, earliest - now)
            if delay <= self.pool.config.max_wait and (self.deadline is None or earliest <= self.deadline):
                self._round.clear()  # what recovers gets a fresh try, without another backoff
                return self._wait(now, delay, "every model is on standby; waiting for the first recovery")
        if not tried_but_available:
            self.mesh.events.append(PoolExhausted(at=now, pool=self.pool.name, recovery_at=earliest))
        return self._fail(now, recovery_at=earliest)

    def _backoff(self, now: float) -> float | None:
        retry = self.retry
        self._round_no += 1
        if retry.backoff == "fixed":
            delay = retry.base_delay
        else:
            delay = min(retry.max_delay, retry.base_delay * (2 ** (self._round_no - 1)))
            if retry.jitter:
                delay = delay * (0.5 + self.mesh.rng.random() / 2)  # "equal jitter": keeps a floor
        if self._retry_after is not None and retry.respect_retry_after:
            if self._retry_after > retry.max_retry_after:
                return None  # the provider asks for longer than we may wait
            delay = max(delay, self._retry_after)
        if self.deadline is not None and now + delay > self.deadline:
            return None
        return delay

    def _wait(self, now: float, delay: float, reason: str) -> Wait:
        self.phase = Phase.WAITING
        self._wait_until = now + delay
        self._retry_after = None
        self.mesh.events.append(RetryScheduled(at=now, request_id=self.request_id, pool=self.pool.name, delay=delay, reason=reason))
        return Wait(seconds=delay)

    def _attempt(self, ref: str, score: float, fallback: tuple[str, ...], now: float):
        mesh, pool = self.mesh, self.pool
        model = pool.by_ref[ref]
        provider = mesh.providers[model.provider]
        target = provider.target(model)
        body = self._body_for_attempt(model)
        try:
            request = provider.codec.build_request(target, self.op, body, stream=self.stream)
        except (CodecError, ValueError) as exc:  # this vendor cannot express the request: skip it, no penalty
            info = exc.info if isinstance(exc, CodecError) else ErrorInfo(kind=ErrorKind.BAD_REQUEST, message=str(exc))
            self._excluded.add(ref)
            self._record(ref, model, info, now)
            self._last_error, self._model = info, model
            return self._choose(now)
        state = pool.states[ref]
        state.breaker.on_request(now)
        state.last_used = now
        if self._restrict is None:
            if self.retry.scope == "same-model":
                self._restrict = frozenset({ref})
            elif self.retry.scope == "same-provider":
                self._restrict = frozenset(m.ref for m in pool.members if m.provider == model.provider)
        self.phase = Phase.SENDING
        self._ref, self._model, self._target = ref, model, target
        self._attempt_started = now
        self._decoder = None
        self._held = []
        self._finished = False
        number = len(self.attempts) + 1
        mesh.events.append(RequestRouted(
            at=now, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
            attempt=number, score=score, fallback_chain=fallback,
        ))
        cfg = provider.config
        remaining = (self.deadline - now) if self.deadline is not None else cfg.stream_total_timeout
        total = min(cfg.stream_total_timeout, remaining) if self.stream else min(cfg.timeout, remaining)
        return Attempt(
            number=number, pool=pool.name, ref=ref, target=target, request=request, op=self.op, stream=self.stream,
            connect_timeout=min(cfg.connect_timeout, max(remaining, 0.001)), read_timeout=min(cfg.timeout, max(remaining, 0.001)),
            first_chunk_timeout=min(cfg.stream_first_chunk_timeout, max(remaining, 0.001)), total_timeout=max(total, 0.001),
        )

    def _body_for_attempt(self, model: ModelInfo) -> dict:
        body = dict(self.body)
        body["model"] = model.model
        if self._parts and self.stream:  # resuming an interrupted stream on another model
            body["messages"] = list(body.get("messages") or []) + [
                {"role": "assistant", "content": self.partial_text},
                {"role": "user", "content": _RESUME_PROMPT},
            ]
        return body

    # -- outcomes -------------------------------------------------------------------------
    def _on_response(self, ev: ResponseReceived, now: float) -> None:
        self._absorb_headers(ev.headers, now)
        codec = self.mesh.providers[self._model.provider].codec
        if 200 <= ev.status < 300:
            try:
                response = codec.parse_response(self._target, self.op, ev.status, ev.headers, ev.body)
            except CodecError as exc:
                self._failure(exc.info, now)
                return
            self._success(response, now)
        else:
            self._failure(codec.classify_error(ev.status, ev.headers, ev.body, now=now, secrets=self._secrets()), now)

    def _on_result(self, ev: ResultReceived, now: float) -> None:
        self._absorb_headers(ev.headers, now)
        self._success(dict(ev.response), now)

    def _on_error_received(self, ev: ErrorReceived, now: float) -> None:
        if self.phase is Phase.STREAMING:
            self._stream_failure(ev.info, now)
        else:
            self._failure(ev.info, now)

    def _on_transport_failed(self, ev: TransportFailed, now: float) -> None:
        info = ErrorInfo(kind=ev.kind, message=E.redact(ev.message, self._secrets()), code="connect" if ev.connect else None)
        if self.phase is Phase.STREAMING:
            self._stream_failure(info, now)
        else:
            self._failure(info, now)

    def _on_stream_opened(self, ev: StreamOpened, now: float) -> None:
        self._absorb_headers(ev.headers, now)
        self._decoder = self.mesh.providers[self._model.provider].codec.stream_decoder(self._target, self.op)
        self.phase = Phase.STREAMING

    def _on_chunk_opened(self, ev: ChunkReceived, now: float) -> None:
        self.phase = Phase.STREAMING
        self._on_chunk(ev, now)

    def _on_data(self, ev: DataReceived, now: float) -> None:
        self._take(self._decoder.feed(ev.data), now)

    def _on_chunk(self, ev: ChunkReceived, now: float) -> None:
        self._take([StreamDone()] if ev.chunk is None else [ev.chunk], now)

    def _on_stream_ended(self, ev: StreamEnded, now: float) -> None:
        if self._decoder is not None:
            self._take(self._decoder.close(), now)
        if self.phase is Phase.STREAMING and not self._finished:
            info = ErrorInfo(kind=ErrorKind.CONNECTION, message="stream ended before completion")
            self._stream_failure(info, now)
        elif self.phase is Phase.STREAMING:
            self._stream_success(now)

    def _on_cancel(self, ev: Cancelled, now: float) -> None:
        if self.phase in (Phase.SENDING, Phase.STREAMING) and self._ref is not None:
            self.pool.states[self._ref].breaker.release(now)  # no verdict on the model
        self.phase = Phase.DONE
        self._queue.clear()
        self._final = Failed(error=E.ModelMeshError("request cancelled by the caller", attempts=self.attempts))

    def _ignore(self, ev: Any, now: float) -> None:
        return None

    # -- streams -----------------------------------------------------------------------------
    def _take(self, items: list, now: float) -> None:
        for item in items:
            if self.phase is not Phase.STREAMING:
                return  # a failure earlier in this batch already decided
            if isinstance(item, StreamDone):
                self._finished = True
            elif isinstance(item, StreamError):
                self._stream_failure(item.info, now)
            else:
                self._chunk(item)

    def _chunk(self, chunk: dict) -> None:
        usage = chunk.get("usage")
        if usage:
            self._usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        choices = chunk.get("choices") or []
        if not choices:
            if usage and self._want_usage:
                self._emit(chunk)
            return
        delta = choices[0].get("delta") or {}
        text = delta.get("content")
        has_content = bool(text) or bool(delta.get("tool_calls")) or choices[0].get("finish_reason") is not None
        if self._parts and delta.get("role") and not text:
            return  # a resumed stream's opening role chunk: the caller already has one
        if not self._delivered and not has_content:
            self._held.append(chunk)
            return
        for held in self._held:
            self._emit(held)
        self._held = []
        self._delivered = True
        if text:
            self._parts.append(text)
        self._emit(chunk)

    def _emit(self, chunk: dict) -> None:
        self._queue.append(Deliver(chunk=chunk, provider=self._model.provider, model=self._model.model))

    def _stream_failure(self, info: ErrorInfo, now: float) -> None:
        if not self._delivered:
            self._failure(info, now)  # nothing reached the caller: fail over invisibly
            return
        self._record(self._ref, self._model, info, now)
        self._penalise(info, now)
        self._last_error = info
        if self.pool.config.stream_resume and len(self.attempts) < self.retry.max_attempts:
            self._round.add(self._ref)
            self.phase = Phase.READY
            return
        reason = f"{info.kind.value}: {info.message}" if info.message else info.kind.value
        err = E.StreamInterruptedError(
            f"stream from {self._ref} broke after content was delivered ({reason})",
            partial_text=self.partial_text, reason=reason, provider=self._model.provider, model=self._model.model,
            status=info.status, attempts=self.attempts,
        )
        self._finish_failed(err, now)

    def _stream_success(self, now: float) -> None:
        for held in self._held:  # a stream that never carried content still ends properly
            self._emit(held)
        self._held = []
        self._success(None, now)

    # -- shared health -------------------------------------------------------------------------
    def _secrets(self) -> tuple[str, ...]:
        return self.mesh.secret_values

    def _absorb_headers(self, headers: Mapping[str, str], now: float) -> None:
        if not headers:
            return
        info = parse_rate_limit_headers(headers, now)
        if info.is_empty():
            return
        state = self.pool.states[self._ref]
        if info.limit_requests is not None:
            state.limit_requests = info.limit_requests
        if info.limit_tokens is not None:
            state.limit_tokens = info.limit_tokens
        state.remaining_requests = info.remaining_requests
        state.remaining_tokens = info.remaining_tokens
        resets = [r for r in (info.reset_requests, info.reset_tokens) if r is not None]
        state.rate_reset_at = now + max(resets) if resets else None

    def _success(self, response: dict | None, now: float) -> None:
        model, pool, ref = self._model, self.pool, self._ref
        usage = (response or {}).get("usage") or self._usage
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cost = model.cost(prompt, completion)
        latency = now - self._attempt_started
        state = pool.states[ref]
        state.record_success(now, latency, tokens=prompt + completion, cost=cost)
        pool.reactivate_after_trial(ref, now, self.mesh.events)
        provider = self.mesh.providers[model.provider]
        provider.add_spend(now, cost)
        provider.state.total_quota_used += prompt + completion
        decision = pool.deactivation.should_deactivate(state, now)
        if decision is not None:  # a limit reached by this very request: rotate away before the next
            pool.deactivate(ref, decision, now, self.mesh.events)
        pool.previous = ref
        self.attempts.append(E.AttemptRecord(provider=model.provider, model=model.model, pool=pool.name, latency=latency))
        self.mesh.events.append(RequestCompleted(
            at=now, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
            attempts=len(self.attempts), latency=now - self.started, prompt_tokens=prompt, completion_tokens=completion,
            cost=cost, stream=self.stream,
        ))
        self.phase = Phase.DONE
        self._final = Succeeded(
            response=response, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
            attempts=tuple(self.attempts), latency=now - self.started, prompt_tokens=prompt,
            completion_tokens=completion, cost=cost,
        )

    def _record(self, ref: str, model: ModelInfo, info: ErrorInfo, now: float) -> None:
        latency = now - self._attempt_started if ref == self._ref else None
        self.attempts.append(E.AttemptRecord(
            provider=model.provider, model=model.model, pool=self.pool.name, outcome=info.kind.value,
            status=info.status, message=info.message, latency=latency,
        ))
        self.mesh.events.append(AttemptFailed(
            at=now, request_id=self.request_id, pool=self.pool.name, provider=model.provider, model=model.model,
            attempt=len(self.attempts), kind=info.kind.value, status=info.status, message=info.message,
        ))

    def _failure(self, info: ErrorInfo, now: float) -> None:
        """An attempt failed before anything reached the caller: decide the model's fate and what next."""
        ref, model = self._ref, self._model
        self._record(ref, model, info, now)
        self._last_error = info
        self.phase = Phase.READY
        kind = info.kind
        state = self.pool.states[ref]
        if kind is ErrorKind.BAD_REQUEST:
            state.breaker.release(now)
            self._finish_failed(self._error_for(info, "the request was rejected as invalid"), now)
            return
        if kind is ErrorKind.CONTEXT_LENGTH:
            state.breaker.release(now)
            self._excluded.add(ref)
            if model.context_window:
                self._min_context = max(self._min_context or 0, model.context_window + 1)
            return
        if kind is ErrorKind.CONTENT_FILTERED:
            state.breaker.release(now)
            self._excluded.add(ref)
            return
        self._penalise(info, now)
        if not self.mesh.providers[model.provider].is_up(now):
            return  # the whole provider went on standby; selection skips its models
        used = self._same_model.get(ref, 0)
        if kind in _PENALISED and used < self.retry.same_model_retries and self.pool.model_block(ref, now, self.mesh.providers, self.mesh.events) is None:
            delay = self._backoff(now)
            if delay is not None:
                self._same_model[ref] = used + 1
                self._retry_ref = ref
                self._wait(now, delay, f"retrying {ref}")
                return
        self._round.add(ref)
        if info.retry_after is not None:
            self._retry_after = max(self._retry_after or 0.0, info.retry_after)

    def _penalise(self, info: ErrorInfo, now: float) -> None:
        """Count a failure against the model, and against its provider when the provider is at fault."""
        mesh, pool, ref, model = self.mesh, self.pool, self._ref, self._model
        state = pool.states[ref]
        provider = mesh.providers[model.provider]
        kind = info.kind
        # a malformed 2xx is the provider's fault, whatever its status said: count it like a timeout
        state.record_failure(now, kind.value, None if kind is ErrorKind.MALFORMED else info.status)
        provider_rules = pool.config.rotation.provider_deactivation
        if kind is ErrorKind.AUTH:
            state.breaker.release(now)
            if "on_auth_failure" in provider_rules:
                provider.deactivate(now, DeactivationReason.AUTH_FAILURE.value, None, mesh.events)
            else:
                pool.deactivate(ref, Deactivation(reason=DeactivationReason.AUTH_FAILURE, detail=info.message, until=None), now, mesh.events)
            return
        if kind is ErrorKind.QUOTA_EXHAUSTED:
            state.breaker.release(now)
            until = pool.quota_reset_at(provider, now) or now + pool.config.rotation.recovery.cooldown
            provider.deactivate(now, DeactivationReason.QUOTA_EXHAUSTED.value, until, mesh.events)
            return
        if kind is ErrorKind.CONNECTION and info.code == "connect" and "on_api_outage" in provider_rules:
            state.breaker.release(now)
            until = now + pool.config.rotation.recovery.cooldown
            provider.deactivate(now, DeactivationReason.PROVIDER_OUTAGE.value, until, mesh.events)
            return
        if kind is ErrorKind.MODEL_NOT_FOUND:
            state.breaker.release(now)
            pool.deactivate(ref, Deactivation(reason=DeactivationReason.MODEL_NOT_FOUND, detail=info.message, until=None), now, mesh.events)
            return
        if kind is ErrorKind.RATE_LIMITED and info.retry_after is not None:
            state.breaker.release(now)
            pool.deactivate(ref, Deactivation(reason=DeactivationReason.RATE_LIMITED, detail=info.message, until=now + info.retry_after), now, mesh.events)
            return
        was_trial = state.breaker.state is BreakerState.HALF_OPEN
        if was_trial:
            state.breaker.record_failure(now)
        else:
            state.breaker.release(now)
        decision = pool.deactivation.should_deactivate(state, now)
        if decision is None and was_trial:
            decision = Deactivation(reason=state.reason or DeactivationReason.RETRY_LIMIT, detail="trial request failed", until=None)
        if decision is not None:
            pool.deactivate(ref, decision, now, mesh.events)

    # -- endings -----------------------------------------------------------------------------------
    def _fail(self, now: float, *, timeout: bool = False, recovery_at: float | None = None):
        info = self._last_error
        if timeout:
            err = E.RequestTimeoutError(
                f"request to pool '{self.pool.name}' ran out of time after {len(self.attempts)} attempt(s)",
                attempts=self.attempts,
            )
        elif info is None:
            err = self._nothing_available(now, recovery_at)
        else:
            err = self._error_for(info, f"every attempt to pool '{self.pool.name}' failed")
        return self._finish_failed(err, now)

    def _nothing_available(self, now: float, recovery_at: float | None) -> E.ModelMeshError:
        name = self.pool.name
        budget = [p for p in {m.provider for m in self.pool.members} if self.mesh.providers[p].budget_block(now)]
        if budget and len(budget) == len({m.provider for m in self.pool.members}):
            return E.BudgetExceededError(f"pool '{name}': every provider has spent its budget ({', '.join(sorted(budget))})")
        if recovery_at is not None:
            return E.NoModelAvailableError(
                f"pool '{name}': every model is on standby; the first recovers in {recovery_at - now:.1f}s",
                recovery_at=recovery_at, retry_after=max(0.0, recovery_at - now), attempts=self.attempts,
            )
        if self._min_context is not None:
            return E.ContextLengthError(f"pool '{name}': no model has a context window of {self._min_context} tokens or more", attempts=self.attempts)
        return E.NoModelAvailableError(f"pool '{name}': no model is available and none recovers by time (probe or manual recovery needed)", attempts=self.attempts)

    def _error_for(self, info: ErrorInfo, head: str) -> E.ModelMeshError:
        cls = {
            ErrorKind.AUTH: E.AuthenticationError,
            ErrorKind.RATE_LIMITED: E.RateLimitError,
            ErrorKind.TIMEOUT: E.RequestTimeoutError,
            ErrorKind.BAD_REQUEST: E.BadRequestError,
            ErrorKind.CONTEXT_LENGTH: E.ContextLengthError,
            ErrorKind.CONTENT_FILTERED: E.ContentFilteredError,
            ErrorKind.QUOTA_EXHAUSTED: E.BudgetExceededError,
        }.get(info.kind, E.ProviderError)
        last = f"{self._model.provider}/{self._model.model}" if self._model else "?"
        detail = f" (last: {last}: {info.kind.value}{f' {info.status}' if info.status else ''}" + (f": {info.message})" if info.message else ")")
        return cls(
            head + detail, status=info.status, provider=self._model.provider if self._model else None,
            model=self._model.model if self._model else None, retry_after=info.retry_after, attempts=self.attempts,
            code=info.code,
        )

    def _finish_failed(self, err: E.ModelMeshError, now: float) -> Failed:
        if self._parts and not isinstance(err, E.StreamInterruptedError):
            # a resumed stream found no model to finish it: the caller still gets what was delivered
            err = E.StreamInterruptedError(
                f"stream broke after content was delivered and could not be resumed: {err.message}",
                partial_text=self.partial_text, reason=err.message, provider=err.provider, model=err.model,
                status=err.status, attempts=self.attempts)
        self.phase = Phase.DONE  # queued deliveries still go out first: nothing delivered is lost
        self.mesh.events.append(RequestFailed(at=now, request_id=self.request_id, pool=self.pool.name, error=type(err).__name__, attempts=len(self.attempts)))
        self._final = Failed(error=err)
        return self._final

