"""The per-request state machine: one logical request, its attempts, retries and failover.

Theory of operation. A shell asks `call.next_action(now)`, carries out what it gets (see
`_protocol.py` for the actions and inputs) and feeds the outcome back with
`call.feed(input, now)`. Rule 1: which input is legal in which phase, and which phases it
may lead to, is the table `TRANSITIONS` (one per mode: a stream input fed to a
non-streaming call is a `CallProtocolError`). A handler decides among the end phases the
table names for it and returns one; `feed` checks it and sets it, in one place.

A call belongs to the one thread that drives it: encoding the request, parsing the
response and decoding stream bytes happen here with no lock held. Shared state is touched
only through the health owner (`_health.Health`) and the pool's selection strategy, under
the core's injected lock, for microseconds whatever the size of a response. What a
failure means (whose fault, standby, same-model retry, fail/exclude/rotate, the error
raised) is read from the one table in `_consequences.py`; this machine only acts on it.

Events go to `call.events`, the call's own list: those it caused and those its steps
caused in shared health. The shell drains them with `drain_events()`; nobody else's
events are ever in it, and cancelling drops none.

Streams fail over only while that is invisible (see `_stream.py`). Once content reached
the caller a failure either resumes on another model from the partial answer (pool option
`stream_resume`) or ends in StreamInterruptedError carrying the partial text. Nothing
delivered is repeated or dropped, and an interrupted stream is never a success.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlencode, urlsplit
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from . import _errors as E
from ._consequences import Consequence, Effect, consequence_for
from ._events import AttemptFailed, MeshEvent, PoolExhausted, RequestCompleted, RequestFailed, RequestRouted, RetryScheduled
from ._health import Faulted, Health, Released, Sent, Served
from ._keys import KeyInput, KeyState
from ._protocol import (
    Action, Attempt, CallProtocolError, Cancelled, ChunkReceived, DataReceived, Deliver, ErrorReceived, Failed, Phase,
    Read, ResponseReceived, ResultReceived, RoutingOptions, StreamEnded, StreamOpened, Succeeded, TransportFailed, Wait,
)
from ._ratelimit import parse_rate_limit_headers
from ._stream import StreamAssembly
from ._types import ConnectorCall, DeactivationReason, ErrorInfo, ErrorKind, RateLimitInfo, Rng, WireRequest
from .codecs._base import CodecError, StreamDone, StreamError, Target

if TYPE_CHECKING:
    from ._pool import ModelInfo, Pool, ProviderRuntime

__all__ = ["Call", "TRANSITIONS"]

_P = Phase
_ANY_END = frozenset({_P.READY, _P.WAITING, _P.DONE})
_COMMON: dict[tuple[Phase, type], tuple[str, frozenset[Phase]]] = {
    (_P.SENDING, ResponseReceived): ("_on_response", _ANY_END),
    (_P.SENDING, TransportFailed): ("_on_transport_failed", _ANY_END),
    (_P.SENDING, ResultReceived): ("_on_result", _ANY_END),  # a connector with its own I/O
    (_P.SENDING, ErrorReceived): ("_on_error", _ANY_END),
    (_P.READY, Cancelled): ("_on_cancel", frozenset({_P.DONE})),
    (_P.SENDING, Cancelled): ("_on_cancel", frozenset({_P.DONE})),
    (_P.WAITING, Cancelled): ("_on_cancel", frozenset({_P.DONE})),
    (_P.DONE, Cancelled): ("_on_late_cancel", frozenset({_P.DONE})),
}
_STREAMING: dict[tuple[Phase, type], tuple[str, frozenset[Phase]]] = {
    (_P.SENDING, StreamOpened): ("_on_stream_opened", frozenset({_P.STREAMING})),
    (_P.STREAMING, DataReceived): ("_on_data", _ANY_END | {_P.STREAMING}),
    (_P.STREAMING, StreamEnded): ("_on_stream_ended", _ANY_END),
    (_P.STREAMING, TransportFailed): ("_on_transport_failed", _ANY_END),
    (_P.STREAMING, ChunkReceived): ("_on_chunk", _ANY_END | {_P.STREAMING}),
    (_P.STREAMING, ErrorReceived): ("_on_error", _ANY_END),
    (_P.STREAMING, Cancelled): ("_on_cancel", frozenset({_P.DONE})),
}
# (phase, input type) -> (handler, the phases it may end in); by mode: streaming or not
TRANSITIONS: dict[bool, dict[tuple[Phase, type], tuple[str, frozenset[Phase]]]] = {
    False: _COMMON,
    True: {**_COMMON, **_STREAMING},
}


class Call:
    """One logical request, driven by one thread."""

    __slots__ = (  # one per request: slots make it and its every attribute read cheaper
        "_answered", "_assembly", "_attempt_started", "_clipped", "_decoder", "_excluded", "_final",
        "_finished", "_headers", "_interruption", "_key_retries", "_keys_tried", "_last_error", "_limits",
        "_min_context", "_model", "_queue", "_ref", "_restrict", "_retry_after", "_retry_ref", "_round",
        "_round_no", "_same_model", "_table", "_target", "_wait_until", "attempts", "body", "budget",
        "deadline", "events", "health", "listening", "lock", "op", "options", "phase", "pool", "providers",
        "request_id", "retry", "rng", "secrets", "started", "stream",
    )

    def __init__(
        self, *, health: Health, pool: Pool, providers: Mapping[str, ProviderRuntime], rng: Rng,
        lock: AbstractContextManager[Any], secrets: tuple[str, ...], op: str, body: Mapping[str, Any],
        stream: bool, options: RoutingOptions, now: float, request_id: str, listening: bool = True,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.health = health
        self.pool = pool
        self.providers = providers
        self.rng = rng
        self.lock = lock
        self.secrets = secrets
        self.op = op
        self.body = dict(body)
        self.stream = stream
        self.options = options
        self.request_id = request_id
        self.listening = listening  # False: nobody reads RequestRouted/RequestCompleted; skip them
        self.started = now
        self.retry = retry = pool.config.retry
        self.budget = pool.attempt_budget(providers)
        deadline, timeout = retry.deadline, options.timeout  # the nearer of the two that are set
        limit = timeout if not deadline else deadline if not timeout else min(deadline, timeout)
        self.deadline = now + limit if limit else None
        self.phase = Phase.READY
        self.attempts: list[E.AttemptRecord] = []
        self.events: list[MeshEvent] = []
        self._table = TRANSITIONS[stream]
        self._queue: deque[Deliver] = deque()
        self._final: Succeeded | Failed | None = None
        self._excluded: set[str] = set(excluded)  # for this request: unfit for its operation, too short, filtered, inexpressible
        self._round: set[str] = set()          # failed in the current round of attempts
        self._same_model: dict[str, int] = {}  # same-model retries used per ref
        self._retry_after: float | None = None
        self._headers: Mapping[str, str] = {}  # the last answer's
        self._answered = False  # an answer (or an open stream) is in hand
        self._min_context: int | None = None
        self._restrict: frozenset[str] | None = None
        self._wait_until = now
        self._round_no = 0
        self._last_error: ErrorInfo | None = None
        self._retry_ref: str | None = None
        self._keys_tried: dict[str, set[int]] = {}  # per provider: positions of the keys this request sent
        self._key_retries = 0  # attempts repeated on another key: they do not spend the attempt budget
        # a stream's assembly; a non-streaming call shares one that never holds anything
        self._assembly = (StreamAssembly(bool((self.body.get("stream_options") or {}).get("include_usage")))
                          if stream else _NO_STREAM)
        # the attempt in flight (set by _attempt before any input can refer to it)
        self._ref = ""
        self._model: ModelInfo | None = None
        self._target: Target | None = None
        self._attempt_started = now
        self._decoder: Any = None
        self._limits: RateLimitInfo | None = None
        self._finished = False
        self._interruption: str | None = None  # what broke a stream after content, for the caller's error
        self._clipped = False  # the attempt's timeouts were cut short by the request's deadline

    def __repr__(self) -> str:
        return f"Call(id={self.request_id!r}, pool={self.pool.name!r}, phase={self.phase.value})"

    # -- the protocol ------------------------------------------------------------------
    def next_action(self, now: float) -> Action:
        if self._queue:
            return self._queue.popleft()
        if self._final is not None:
            return self._final
        if self.phase is Phase.SENDING:
            raise CallProtocolError(f"{self!r}: feed the outcome of the attempt before asking what to do next")
        if self.phase is Phase.STREAMING:
            return Read()
        if self.phase is Phase.WAITING and now < self._wait_until:
            return Wait(seconds=self._wait_until - now)
        action, self.phase = self._choose(now)
        return action

    def feed(self, event: Any, now: float) -> None:
        entry = self._table.get((self.phase, type(event)))
        if entry is None:
            mode = "streaming" if self.stream else "non-streaming"
            raise CallProtocolError(f"{self!r} ({mode}) cannot take {type(event).__name__} in phase {self.phase.value}")
        handler, ends = entry
        phase: Phase = getattr(self, handler)(event, now)
        if phase not in ends:  # a bug in a handler, not in the shell
            raise CallProtocolError(f"{self!r}: {handler} ended in {phase.value}, not one of its table's end phases")
        self.phase = phase

    def drain_events(self) -> list[MeshEvent]:
        events, self.events = self.events, []
        return events

    @property
    def partial_text(self) -> str:
        return self._assembly.partial_text

    @property
    def buffered(self) -> int:
        """Chunks ready to deliver without another read: a front door that writes bytes can
        send them together, in one write per network read rather than one per chunk."""
        return len(self._queue)

    @property
    def answered_by(self) -> tuple[str, str, Mapping[str, str]] | None:
        """(provider, model id, response headers) of the answer in hand: a stream's once it
        opened; None before any answer came."""
        if self._model is None or not self._answered:
            return None
        return self._model.provider, self._model.model, self._headers

    # -- choosing an attempt -----------------------------------------------------------
    def _choose(self, now: float) -> tuple[Action, Phase]:
        if self.deadline is not None and now >= self.deadline and self.attempts:
            return self._fail(now, timeout=True)
        if len(self.attempts) - self._key_retries >= self.budget:
            return self._fail(now)
        while True:
            with self.lock:
                picked = self._pick(now)
                if isinstance(picked, _Pick):
                    self.health.record(Sent(pool=self.pool.name, ref=picked.ref), now, self.events)
            if not isinstance(picked, _Pick):
                return self._exhausted(now, *picked)
            model = self.pool.by_ref[picked.ref]
            provider = self.providers[model.provider]
            target = provider.target(model)
            try:
                request: WireRequest | ConnectorCall = provider.codec.build_request(
                    target, self.op, self._body_for_attempt(model), stream=self.stream)
                if self.options.extra_headers or self.options.extra_query:
                    request = _with_extras(request, self.options)
            except (CodecError, ValueError) as exc:  # this vendor cannot express the request: skip it, no penalty
                info = exc.info if isinstance(exc, CodecError) else ErrorInfo(kind=ErrorKind.BAD_REQUEST, message=str(exc))
                with self.lock:
                    self.health.record(Released(pool=self.pool.name, ref=picked.ref), now, self.events)
                self._excluded.add(picked.ref)
                self._note_failure(model, info, now, latency=None)
                self._last_error, self._model = info, model
                continue
            return self._attempt(model, target, request, picked, now), Phase.SENDING

    def _pick(self, now: float) -> _Pick | tuple[bool, float | None]:
        """Under the lock: the next model, or (some available model failed this round, earliest recovery)."""
        health, pool = self.health, self.pool
        if self._retry_ref is not None:
            ref, self._retry_ref = self._retry_ref, None
            if health.free(pool, ref, now, self.events):
                return _Pick(ref, 0.0, ())
        if not self.listening and self.options.preferred_provider is None:
            plan = pool.plan()  # an order-only strategy: the first free member in its order is the pick
            if plan is not None:
                first = health.first_free(pool, plan, now, self.events, skip=self._excluded, also=self._round,
                                          restrict=self._restrict, need=self._min_context)
                if first is not None:
                    return _Pick(first, 0.0, ())
        cands, earliest = health.available(pool, now, self.events, restrict=self._restrict)
        ctx = pool.context(now, self.rng, self.options, excluded=frozenset(self._excluded | self._round),
                           min_context=self._min_context)
        ranked = pool.strategy.rank(cands, ctx) if cands else []
        if not ranked:
            need = self._min_context
            tried = any(c.ref in self._round and c.ref not in self._excluded
                        and (need is None or c.context_window is None or c.context_window >= need) for c in cands)
            if not tried and not self.attempts and pool.config.on_exhausted == "fail":
                # nothing is available before this request tried anything: rather than fail, give
                # the soonest-recovering model that erred (not one that is barred) a trial now
                resort = health.last_resort(pool, now, self.events, skip=frozenset(self._excluded | self._round))
                if resort is not None:  # (no attempt yet, so no retry scope restricts it)
                    return _Pick(resort, 0.0, ())
            return tried, earliest
        best = ranked[0]
        if not self.listening:  # the score and the chain are for RequestRouted alone
            return _Pick(best.ref, 0.0, ())
        score = pool.strategy.score(health.full(pool, best, now), ctx)
        return _Pick(best.ref, score, tuple(c.ref for c in ranked[1:]))

    def _exhausted(self, now: float, tried: bool, earliest: float | None) -> tuple[Action, Phase]:
        """Nothing fresh to try: start a new round after a backoff, wait for a recovery, or fail."""
        if tried and len(self.attempts) < self.budget:
            delay = self._backoff(now)
            if delay is not None:
                self._round.clear()
                return Wait(seconds=delay), self._wait(now, delay, "every model of the pool failed once; retrying")
        elif earliest is not None and self.pool.config.on_exhausted == "wait":
            delay = max(0.0, earliest - now)
            if delay <= self.pool.config.max_wait and (self.deadline is None or earliest <= self.deadline):
                self._round.clear()  # what recovers gets a fresh try, without another backoff
                return Wait(seconds=delay), self._wait(now, delay, "every model is on standby; waiting for the first recovery")
        if not tried:
            self.events.append(PoolExhausted(at=now, pool=self.pool.name, recovery_at=earliest))
        return self._fail(now, recovery_at=earliest)

    def _backoff(self, now: float) -> float | None:
        retry = self.retry
        self._round_no += 1
        if retry.backoff == "fixed":
            delay = retry.base_delay
        else:
            delay = min(retry.max_delay, retry.base_delay * (2 ** (self._round_no - 1)))
            if retry.jitter:
                delay = delay * (0.5 + self.rng.random() / 2)  # "equal jitter": keeps a floor
        if self._retry_after is not None and retry.respect_retry_after:
            if self._retry_after > retry.max_retry_after:
                return None  # the provider asks for longer than we may wait
            delay = max(delay, self._retry_after)
        if self.deadline is not None and now + delay > self.deadline:
            return None
        return delay

    def _wait(self, now: float, delay: float, reason: str) -> Phase:
        self._wait_until = now + delay
        self._retry_after = None
        self.events.append(RetryScheduled(at=now, request_id=self.request_id, pool=self.pool.name, delay=delay, reason=reason))
        return Phase.WAITING

    def _attempt(self, model: ModelInfo, target: Target, request: Any, picked: _Pick, now: float) -> Attempt:
        pool = self.pool
        if self._restrict is None:
            if self.retry.scope == "same-model":
                self._restrict = frozenset({model.ref})
            elif self.retry.scope == "same-provider":
                self._restrict = frozenset(m.ref for m in pool.members if m.provider == model.provider)
        self._ref, self._model, self._target = model.ref, model, target
        self._attempt_started = now
        self._decoder = None
        self._limits = None
        self._finished = False
        partial = ""
        if self.stream:
            self._assembly.begin()
            partial = self._assembly.partial_text
        if partial:  # recovering a stream the caller has part of
            if model.prefill:  # the model continues the answer; a prefill may not end in whitespace
                self._assembly.expect(partial[len(partial.rstrip()):], strict=False)
            else:  # the answer starts again: it must repeat exactly what was delivered
                self._assembly.expect(partial, strict=True)
        number = len(self.attempts) + 1
        if self.listening:
            self.events.append(RequestRouted(
                at=now, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
                attempt=number, score=picked.score, fallback_chain=picked.fallback,
            ))
        cfg = self.providers[model.provider].config
        remaining = (self.deadline - now) if self.deadline is not None else cfg.stream_total_timeout
        total = min(cfg.stream_total_timeout, remaining) if self.stream else min(cfg.timeout, remaining)
        # a timeout cut short by the request's own deadline is the caller's, not the model's
        self._clipped = remaining < (cfg.stream_first_chunk_timeout if self.stream else cfg.timeout)
        floor = max(remaining, 0.001)
        return Attempt(
            number=number, pool=pool.name, ref=model.ref, target=target, request=request, op=self.op, stream=self.stream,
            connect_timeout=min(cfg.connect_timeout, floor), read_timeout=min(cfg.timeout, floor),
            first_chunk_timeout=min(cfg.stream_first_chunk_timeout, floor),
            idle_timeout=min(cfg.stream_idle_timeout, floor), total_timeout=max(total, 0.001),
            max_bytes=cfg.max_response_size,
        )

    def _body_for_attempt(self, model: ModelInfo) -> dict[str, Any]:
        body = dict(self.body)
        body["model"] = model.model
        partial = self._assembly.partial_text.rstrip()
        if partial and self.stream and model.prefill:  # continue the broken answer from what was delivered
            body["messages"] = [*(body.get("messages") or []), {"role": "assistant", "content": partial}]
        return body

    # -- outcomes (no lock held: parsing is this call's own work) -------------------------
    def _on_response(self, ev: ResponseReceived, now: float) -> Phase:
        limits = parse_rate_limit_headers(ev.headers, now) if ev.headers else None
        codec = self.providers[self._m.provider].codec
        if 300 <= ev.status < 400:
            return self._failure(_redirect(self._m.provider, ev), now, limits)
        if not 200 <= ev.status < 300:
            return self._failure(codec.classify_error(ev.status, ev.headers, ev.body, now=now, secrets=self.secrets),
                                 now, limits)
        if self.stream:
            raise CallProtocolError(f"{self!r}: a stream's {ev.status} answer is fed as StreamOpened, then its bytes")
        try:
            response = codec.parse_response(self._t, self.op, ev.status, ev.headers, ev.body)
        except CodecError as exc:
            return self._failure(exc.info, now, limits)
        self._headers, self._answered = ev.headers, True
        return self._success(response, now, limits)

    def _on_transport_failed(self, ev: TransportFailed, now: float) -> Phase:
        info = ErrorInfo(kind=ev.kind, message=E.redact(ev.message, self.secrets), code="connect" if ev.connect else None)
        if ev.kind is ErrorKind.TIMEOUT and (self._clipped or (self.deadline is not None and now >= self.deadline)):
            return self._out_of_time(info, now)
        if self.phase is Phase.STREAMING:
            return self._stream_failure(info, now)
        return self._failure(info, now, None)

    def _on_stream_opened(self, ev: StreamOpened, now: float) -> Phase:
        self._headers, self._answered = ev.headers, True
        self._limits = parse_rate_limit_headers(ev.headers, now) if ev.headers else None
        self._decoder = self.providers[self._m.provider].codec.stream_decoder(self._t, self.op)
        return Phase.STREAMING

    def _on_data(self, ev: DataReceived, now: float) -> Phase:
        return self._take(self._decoder.feed(ev.data), now)

    # -- outcomes of a connector that does its own I/O (Attempt.request is a ConnectorCall) ---
    def _on_result(self, ev: ResultReceived, now: float) -> Phase:
        if self.stream:
            raise CallProtocolError(f"{self!r}: a stream's answer is fed as StreamOpened, then its chunks")
        limits = parse_rate_limit_headers(ev.headers, now) if ev.headers else None
        try:
            response = self._own_codec().parse_result(self._t, self.op, ev.response)
        except CodecError as exc:
            return self._failure(exc.info, now, limits)
        self._headers, self._answered = ev.headers, True
        return self._success(response, now, limits)

    def _on_chunk(self, ev: ChunkReceived, now: float) -> Phase:
        take = getattr(self._decoder, "take", None)
        if take is None:
            raise CallProtocolError(f"{self!r}: ChunkReceived is for a connector's own stream; feed bytes as DataReceived")
        return self._take(take(ev.chunk), now)

    def _on_error(self, ev: ErrorReceived, now: float) -> Phase:
        self._own_codec()
        info = replace(ev.info, message=E.redact(ev.info.message, self.secrets))
        if info.kind is ErrorKind.TIMEOUT and (self._clipped or (self.deadline is not None and now >= self.deadline)):
            return self._out_of_time(info, now)
        if self.phase is Phase.STREAMING:
            return self._stream_failure(info, now)
        return self._failure(info, now, None)

    def _own_codec(self) -> Any:
        codec = self.providers[self._m.provider].codec
        if not hasattr(codec, "parse_result"):
            raise CallProtocolError(f"{self!r}: {self._m.provider} speaks HTTP; feed ResponseReceived, not a "
                                    "connector's result")
        return codec

    def _on_stream_ended(self, ev: StreamEnded, now: float) -> Phase:
        phase = self._take(self._decoder.close(), now)
        if phase is not Phase.STREAMING:
            return phase
        if not self._finished:
            return self._stream_failure(ErrorInfo(kind=ErrorKind.CONNECTION, message="stream ended before completion"), now)
        self._queue.extend(self._deliver(c) for c in self._assembly.flush())
        return self._success(None, now, self._limits)

    def _on_cancel(self, ev: Cancelled, now: float) -> Phase:
        if self.phase in (Phase.SENDING, Phase.STREAMING):
            # no verdict on the model; handed over without the lock, since a cancel may come from
            # a garbage-collected stream while this very thread holds the lock
            self.health.defer(Released(pool=self.pool.name, ref=self._ref))
        self._queue.clear()
        self._final = Failed(error=E.ModelMeshError("request cancelled by the caller", attempts=self.attempts))
        return Phase.DONE

    def _on_late_cancel(self, ev: Cancelled, now: float) -> Phase:
        return Phase.DONE  # the request had already ended: nothing to release

    # -- streams -----------------------------------------------------------------------------
    def _take(self, items: list[Any], now: float) -> Phase:
        for item in items:
            if isinstance(item, StreamDone):
                self._finished = True
            elif isinstance(item, StreamError):
                return self._stream_failure(item.info, now)  # what follows in this batch is moot
            elif isinstance(item, bytes):  # a binary body (speech): every byte goes out as it came
                self._assembly.delivered = True
                self._queue.append(Deliver(chunk=item, provider=self._m.provider, model=self._m.model))
            else:
                self._queue.extend(self._deliver(c) for c in self._assembly.take(item))
                if self._assembly.mismatch:
                    return self._unverified(now)
        return Phase.STREAMING

    def _out_of_time(self, info: ErrorInfo, now: float) -> Phase:
        """The attempt ran into the request's own deadline: the request ends, and the model,
        which was given less than its timeout, gets no verdict."""
        model = self._m
        self._note_failure(model, info, now, latency=now - self._attempt_started)
        with self.lock:
            self.health.record(Released(pool=self.pool.name, ref=model.ref), now, self.events)
        return self._finish_failed(E.APITimeoutError(
            f"request to pool '{self.pool.name}' ran out of its time ({info.message or 'timeout'} at {model.ref}, "
            f"after {len(self.attempts)} attempt(s))", provider=model.provider, model=model.model,
            attempts=self.attempts), now)

    def _unverified(self, now: float) -> Phase:
        """A restarted answer did not begin with what the caller has: stop, honestly. The
        model is not at fault (answers vary), so no verdict is recorded on it."""
        with self.lock:
            self.health.record(Released(pool=self.pool.name, ref=self._ref), now, self.events)
        reason = f"{self._interruption}; the answer restarted on {self._ref} did not repeat what was delivered"
        return self._finish_failed(E.StreamInterruptedError(
            f"stream broke after content was delivered and could not be continued exactly ({reason})",
            partial_text=self.partial_text, reason=reason, provider=self._m.provider, model=self._m.model,
            attempts=self.attempts), now)

    def _deliver(self, chunk: dict[str, Any]) -> Deliver:
        return Deliver(chunk=chunk, provider=self._m.provider, model=self._m.model)

    def _stream_failure(self, info: ErrorInfo, now: float) -> Phase:
        if not self._assembly.delivered:
            return self._failure(info, now, self._limits)  # nothing reached the caller: fail over invisibly
        if self._interruption is None:
            reason = f"{info.kind.value}: {info.message}" if info.message else info.kind.value
            self._interruption = f"stream from {self._ref} broke after content was delivered ({reason})"
        if self.pool.config.stream_resume and self.op == "chat":  # continue the answer (audio cannot be continued)
            return self._failure(info, now, self._limits)
        model = self._m
        self._record_fault(info, now, self._limits)
        return self._finish_failed(E.StreamInterruptedError(
            self._interruption, partial_text=self.partial_text, reason=self._interruption,
            provider=model.provider, model=model.model, status=info.status, attempts=self.attempts,
        ), now)

    # -- verdicts ------------------------------------------------------------------------------
    def _success(self, response: dict[str, Any] | None, now: float, limits: RateLimitInfo | None) -> Phase:
        model, pool = self._m, self.pool
        usage = (response.get("usage") if response is not None else None) or self._assembly.usage
        prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
        if type(prompt) is not int or type(completion) is not int:  # counts were shape-checked: ints, as a rule
            prompt, completion = int(prompt), int(completion)
        cost = model.cost(prompt, completion)
        latency = now - self._attempt_started
        with self.lock:
            self.health.record(Served(pool=pool.name, ref=model.ref, latency=latency, prompt_tokens=prompt,
                                      completion_tokens=completion, cost=cost, limits=limits), now, self.events)
            hint = self.options.preferred_provider
            if hint is None or model.provider != hint:  # a hint moves its own request, not the pool's next ones
                pool.previous = model.ref
        self.attempts.append(E.AttemptRecord(model.provider, model.model, pool.name, "ok", None, "", latency))
        if self.listening:
            self.events.append(RequestCompleted(
                at=now, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
                attempts=len(self.attempts), latency=now - self.started, prompt_tokens=prompt,
                completion_tokens=completion, cost=cost, stream=self.stream,
            ))
        self._final = Succeeded(
            response=response, request_id=self.request_id, pool=pool.name, provider=model.provider, model=model.model,
            attempts=tuple(self.attempts), latency=now - self.started, prompt_tokens=prompt,
            completion_tokens=completion, cost=cost, headers=self._headers,
        )
        return Phase.DONE

    def _failure(self, info: ErrorInfo, now: float, limits: RateLimitInfo | None) -> Phase:
        """An attempt failed before anything reached the caller: health decides the model's fate,
        the consequence table what this request does next."""
        model = self._m
        key_events: list[MeshEvent] = []
        if info.kind in _KEY_INPUTS and self._key_failure(info, now, key_events):
            return Phase.READY
        c, free, provider_up = self._record_fault(info, now, limits, key_events)
        if c.effect is Effect.FAIL:
            head = ("the provider's content filter refused the request" if info.kind is ErrorKind.CONTENT_FILTERED
                    else "the request was rejected as invalid")
            return self._finish_failed(self._error_for(c, info, head), now)
        if c.effect is Effect.EXCLUDE:
            self._excluded.add(model.ref)
            if info.kind is ErrorKind.CONTEXT_LENGTH and model.context_window:
                self._min_context = max(self._min_context or 0, model.context_window + 1)
            return Phase.READY
        if not provider_up:
            return Phase.READY  # the whole provider went on standby; selection skips its models
        used = self._same_model.get(model.ref, 0)
        if c.same_model_retry and used < self._retries_allowed(model):
            delay = self._same_model_delay(info, free, now)
            if delay is not None:
                self._same_model[model.ref] = used + 1
                self._retry_ref = model.ref
                return self._wait(now, delay, f"retrying {model.ref}")
        self._round.add(model.ref)
        if info.retry_after is not None:
            self._retry_after = max(self._retry_after or 0.0, info.retry_after)
        return Phase.READY

    def _key_failure(self, info: ErrorInfo, now: float, key_events: list[MeshEvent]) -> bool:
        """With `auth.key_rotation`: a throttled or refused key hands the provider over to its
        next key (see `_keys.py`), and the same model is tried again on it before any verdict
        on the model or the provider. True when the failure ends there: the attempt is noted,
        health hears no fault. A refused key with others left never takes the provider down:
        when this request tried them all already, it moves on to the next model. Otherwise
        False, with the key's events in `key_events`, and the failure takes its usual course."""
        model = self._m
        provider = self.providers[model.provider]
        ring = provider.keys
        if not provider.config.auth.key_rotation or len(ring) < 2:
            return False
        what = _KEY_INPUTS[info.kind]
        with self.lock:
            index = ring.index(self._t.api_key)
            if index is None:  # a reload dropped the key this attempt sent: the next attempt sends a current one
                fresh, spare = self._key_retries < len(ring), False
            else:
                key_events += ring.feed(index, what, now, reason=info.kind.value)
                self._keys_tried.setdefault(model.provider, set()).add(index)
                fresh = (ring.state(ring.current) is KeyState.ACTIVE
                         and ring.current not in self._keys_tried[model.provider])
                spare = what is KeyInput.REFUSED and ring.active > 0
            if fresh or spare:
                self.health.record(Released(pool=self.pool.name, ref=model.ref), now, self.events)
        if not (fresh or spare):
            return False
        self._note_failure(model, info, now, latency=now - self._attempt_started)
        self.events += key_events
        self._last_error = info
        if fresh:
            self._key_retries += 1
            self._retry_ref = model.ref
        else:
            self._round.add(model.ref)
        return True

    def _record_fault(self, info: ErrorInfo, now: float, limits: RateLimitInfo | None,
                      key_events: Sequence[MeshEvent] = ()) -> tuple[Consequence, bool, bool]:
        """Note the failed attempt and record it in health, in one hold of the lock: (its
        consequence, whether the model can take a same-model retry, whether its provider is up)."""
        model = self._m
        self._note_failure(model, info, now, latency=now - self._attempt_started)
        self.events.extend(key_events)
        self._last_error = info
        spent = 0 < self._retries_allowed(model) <= self._same_model.get(model.ref, 0)
        with self.lock:
            c = self.health.record(Faulted(pool=self.pool.name, ref=model.ref, info=info, limits=limits,
                                           retries_spent=spent), now, self.events)
            assert c is not None
            free = c.effect is Effect.ROTATE and self.health.free(self.pool, model.ref, now, self.events)
            provider_up = self.health.provider_up(model.provider, now)
        return c, free, provider_up

    def _retries_allowed(self, model: ModelInfo) -> int:
        if self.options.max_retries is not None:
            return self.options.max_retries
        return self.providers[model.provider].config.max_retries or self.retry.same_model_retries

    def _same_model_delay(self, info: ErrorInfo, free: bool, now: float) -> float | None:
        """How long to wait before trying the same model again; None to move on. A short
        Retry-After (up to `retry.same_model_wait`, within the deadline) is waited out: the
        preferred model is worth two seconds. A model on standby otherwise is left alone."""
        wait = info.retry_after
        if wait is not None and self.retry.respect_retry_after:
            if wait > self.retry.same_model_wait or (self.deadline is not None and now + wait > self.deadline):
                return None
            self._round_no += 1
            return wait
        return self._backoff(now) if free else None

    def _note_failure(self, model: ModelInfo, info: ErrorInfo, now: float, *, latency: float | None) -> None:
        self.attempts.append(E.AttemptRecord(
            provider=model.provider, model=model.model, pool=self.pool.name, outcome=info.kind.value,
            status=info.status, message=info.message, latency=latency,
        ))
        self.events.append(AttemptFailed(
            at=now, request_id=self.request_id, pool=self.pool.name, provider=model.provider, model=model.model,
            attempt=len(self.attempts), kind=info.kind.value, status=info.status, message=info.message,
        ))

    # -- endings -----------------------------------------------------------------------------------
    def _fail(self, now: float, *, timeout: bool = False, recovery_at: float | None = None) -> tuple[Action, Phase]:
        info = self._last_error
        if timeout:
            err: E.ModelMeshError = E.APITimeoutError(
                f"request to pool '{self.pool.name}' ran out of time after {len(self.attempts)} attempt(s)",
                attempts=self.attempts,
            )
        elif info is None:
            err = self._nothing_available(now, recovery_at)
        else:
            err = self._exhausted_error(info)
        phase = self._finish_failed(err, now)
        assert self._final is not None
        return self._final, phase

    def _exhausted_error(self, last: ErrorInfo) -> E.ModelMeshError:
        """The error of a request whose attempts all failed, chosen from all of them, not the
        last: all failed the same way (all rate limited, all timed out, all refused the key)
        -> that kind's error, as the provider's SDK would raise it; a mixture -> a 503
        InternalServerError (the mesh as a whole is unavailable), naming the kinds."""
        kinds = {ErrorKind(a.outcome) for a in self.attempts if a.outcome != "ok"}
        head = f"every attempt to pool '{self.pool.name}' failed"
        if len(kinds) == 1:
            return self._error_for(None, last if last.kind in kinds else ErrorInfo(kind=kinds.pop()), head)
        model = self._model
        return E.InternalServerError(f"{head} ({', '.join(sorted(k.value for k in kinds))})", status_code=503,
                                     status=last.status, retry_after=self._retry_after, attempts=self.attempts,
                                     provider=model.provider if model else None, model=model.model if model else None)

    def _nothing_available(self, now: float, recovery_at: float | None) -> E.ModelMeshError:
        name = self.pool.name
        providers = {m.provider for m in self.pool.members}
        with self.lock:
            budget = sorted(p for p in providers if self.health.budget_spent(p, now))
            rows = self.health.rows(self.pool, now)
        why = "; ".join(f"{r['model']}: {r['reason'] or 'standby'}"
                        + (f" until +{r['until'] - now:.0f}s" if r["until"] is not None else "") for r in rows)
        if budget and len(budget) == len(providers):
            return E.BudgetExceededError(f"pool '{name}': every provider has spent its budget ({', '.join(budget)})")
        if self._min_context is not None and recovery_at is None:
            return E.ContextLengthError(f"pool '{name}': no model has a context window of {self._min_context} tokens or more", attempts=self.attempts)
        causes = {_STANDBY_CAUSE.get(r["reason"], (E.InternalServerError, "no_model_available")) for r in rows}
        cause, code = causes.pop() if len(causes) == 1 else (E.InternalServerError, "no_model_available")
        if recovery_at is not None:
            return E.standby_error(cause)(
                f"pool '{name}': every model is on standby; the first recovers in {recovery_at - now:.1f}s ({why})",
                recovery_at=recovery_at, retry_after=max(0.0, recovery_at - now), attempts=self.attempts, code=code)
        return E.standby_error(cause)(f"pool '{name}': no model is available and none recovers by time "
                                      f"(probe or manual recovery needed) ({why})", attempts=self.attempts, code=code)

    def _error_for(self, c: Consequence | None, info: ErrorInfo, head: str) -> E.ModelMeshError:
        if c is None:
            c = consequence_for(info)
        model = self._model
        last = f"{model.provider}/{model.model}" if model else "?"
        status = f" {info.status}" if info.status else ""
        detail = f" (last: {last}: {info.kind.value}{status}" + (f": {info.message})" if info.message else ")")
        code = info.code
        if info.kind is ErrorKind.QUOTA_EXHAUSTED and info.status == 429:
            code = "insufficient_quota"  # what the SDK's users test for, whatever the vendor calls it
        return E.for_status(c.error, info.status)(
            head + detail, status=info.status, provider=model.provider if model else None,
            model=model.model if model else None, retry_after=info.retry_after, attempts=self.attempts, code=code,
            type=info.type, param=info.param,
        )

    def _finish_failed(self, err: E.ModelMeshError, now: float) -> Phase:
        if self._assembly.parts and not isinstance(err, E.StreamInterruptedError):
            # no model could continue the stream: the caller gets what was delivered, and the
            # failure that broke it (not, say, a fallback's refusal of the continuation)
            reason = self._interruption or err.message
            err = E.StreamInterruptedError(
                f"{reason}; it could not be continued: {err.message}",
                partial_text=self.partial_text, reason=reason, provider=err.provider, model=err.model,
                status=err.status, attempts=self.attempts)
        if err.request_id is None:  # every error of a request names it
            err.request_id = self.request_id
        # queued deliveries still go out first: nothing delivered is lost
        self.events.append(RequestFailed(at=now, request_id=self.request_id, pool=self.pool.name,
                                         error=type(err).__name__, attempts=len(self.attempts)))
        self._final = Failed(error=err)
        return Phase.DONE

    # -- the attempt in flight -----------------------------------------------------------------------
    @property
    def _m(self) -> ModelInfo:
        assert self._model is not None, "no attempt in flight"
        return self._model

    @property
    def _t(self) -> Target:
        assert self._target is not None, "no attempt in flight"
        return self._target


def _with_extras(request: WireRequest | ConnectorCall, options: RoutingOptions) -> WireRequest | ConnectorCall:
    """`request` with the caller's extra headers (over the codec's) and query parameters."""
    if isinstance(request, ConnectorCall):  # the connector sends them itself, if it sends anything
        return replace(request, headers=dict(options.extra_headers), query=dict(options.extra_query))
    url = request.url
    if options.extra_query:
        url += ("&" if "?" in url else "?") + urlencode(options.extra_query)
    mine = {name.lower() for name in options.extra_headers}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in mine}
    return replace(request, url=url, headers={**headers, **options.extra_headers})


_NO_STREAM = StreamAssembly(False)  # never fed: the assembly of every non-streaming call

# failures that say something about the key sent, not the model: what each does to the key
_KEY_INPUTS = {ErrorKind.RATE_LIMITED: KeyInput.THROTTLED, ErrorKind.QUOTA_EXHAUSTED: KeyInput.THROTTLED,
               ErrorKind.AUTH: KeyInput.REFUSED}

# what the standbys of a pool with nothing available were for -> the SDK's class saying so (and its code)
_STANDBY_CAUSE: dict[str, tuple[type[E.APIStatusError], str]] = {
    DeactivationReason.AUTH_FAILURE.value: (E.AuthenticationError, "invalid_api_key"),
    DeactivationReason.QUOTA_EXHAUSTED.value: (E.RateLimitError, "insufficient_quota"),
    DeactivationReason.QUOTA_LOW.value: (E.RateLimitError, "insufficient_quota"),
    DeactivationReason.RATE_LIMITED.value: (E.RateLimitError, "rate_limit_exceeded"),
    DeactivationReason.REQUEST_LIMIT.value: (E.RateLimitError, "rate_limit_exceeded"),
    DeactivationReason.TOKEN_LIMIT.value: (E.RateLimitError, "rate_limit_exceeded"),
    DeactivationReason.QUOTA_WINDOW.value: (E.RateLimitError, "rate_limit_exceeded"),
    DeactivationReason.MODEL_NOT_FOUND.value: (E.NotFoundError, "model_not_found"),
}


class _Pick:
    __slots__ = ("ref", "score", "fallback")

    def __init__(self, ref: str, score: float, fallback: tuple[str, ...]) -> None:
        self.ref, self.score, self.fallback = ref, score, fallback



def _redirect(provider: str, ev: ResponseReceived) -> ErrorInfo:
    """A 3xx to an API call: never followed (the credentials would go with it)."""
    location = next((v for k, v in ev.headers.items() if k.lower() == "location"), "")
    host = urlsplit(location).netloc or location[:80] or "nowhere"
    return ErrorInfo(kind=ErrorKind.MISCONFIGURED, status=ev.status,
                     message=f"provider '{provider}' redirected to {host}; API calls never follow redirects "
                             "(check its base_url)")
