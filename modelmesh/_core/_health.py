"""Health: the one owner of everything about models and providers that outlives a request.

Theory of operation. Rule 1: whether a model or a provider is up, why, since and until
when, its failure streak, rolling window, spend and rate-limit figures live here and only
here: one `ProviderState` per provider and one `ModelState` per (pool, model). The circuit
breaker, the rolling window and the rotation policies are parts this owner uses; nobody
else stores a standby. There are three doors:

- `available(pool, now, events)`: the members that can take a request now, and when the
  first blocked one frees up. It is the only place where time alone changes state: a
  cooldown that ended (the model goes half-open for a trial), a provider standby that
  ended, a maintenance window or quota period that began. Each emits its event once,
  into the `events` list of whoever asked.
- `record(outcome, now, events)`: every outcome (an attempt sent, served, failed or
  released; a probe; a change by hand). What a failure means is read from one table,
  `CONSEQUENCES` in `_consequences.py`, adjusted per provider by its retry code lists.
- `view(now)`: a pure read for `status()`, `route()`, `explain` and persistence. It
  computes what `available` would find (a cooldown over reads as half-open) and changes
  nothing, emits nothing.

Nothing here locks: the core's caller holds its lock around these doors, and they take
microseconds whatever the size of a response (parsing happens in the call, outside).
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._breaker import BreakerInput, BreakerState
from ._capabilities import serves
from ._consequences import Consequence, Scope, Standby, consequence_for
from ._cron import next_quota_reset
from ._events import MeshEvent, ModelDeactivated, ModelRecovered, ProviderDeactivated, ProviderRecovered
from ._policies import Deactivation
from ._selection import Candidate
from ._sharing import Fact, live, merged, model_key, provider_key
from ._state import MIN_AVAILABILITY, ModelState, ProviderState
from ._types import ConnectorCall, DeactivationReason, ErrorInfo, ErrorKind, RateLimitInfo, WireRequest

if TYPE_CHECKING:
    from ._config_schema import BudgetConfig, DiscoveryConfig
    from ._pool import ModelInfo, Pool, ProviderRuntime
    from .codecs._base import Target

__all__ = [
    "Health", "Probe", "Sent", "Served", "Faulted", "Released", "Probed", "ModelByHand", "ProviderByHand", "Delisted",
]

_INF = math.inf
_AVAILABILITY_LOW = "availability score below threshold"
_HEALTH_FAILED = "health check failed"
_QUOTA_LOW = DeactivationReason.QUOTA_LOW.value
# standbys that a last-resort trial may cut short: the model erred or was busy, it is not barred
_REASONS = {r.value: r for r in DeactivationReason}  # a shared fact's reason, as recorded here
_SOFT = frozenset({DeactivationReason.RETRY_LIMIT, DeactivationReason.ERROR_RATE, DeactivationReason.RATE_LIMITED})


# -- outcomes: what `record` is told ------------------------------------------------------------
@dataclass(slots=True, kw_only=True)  # one per request: not frozen, which costs per field
class Sent:
    """An attempt goes to `ref` (takes a half-open trial slot when the model is on trial)."""

    pool: str
    ref: str


@dataclass(slots=True, kw_only=True)  # one per request: not frozen, which costs per field
class Served:
    pool: str
    ref: str
    latency: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    limits: RateLimitInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Faulted:
    pool: str
    ref: str
    info: ErrorInfo
    limits: RateLimitInfo | None = None
    retries_spent: bool = False  # the request's same-model retries of this model were all used, and failed


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """The attempt ended with no verdict on the model (cancelled, or never sent)."""

    pool: str
    ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """A health check recovery asks for; the shell sends `request` and records `Probed`."""

    key: str
    provider: str
    pool: str | None
    ref: str | None
    target: Target
    request: WireRequest | ConnectorCall  # ConnectorCall: a connector that checks itself
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Probed:
    probe: Probe
    ok: bool
    latency: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelByHand:
    """A person puts `ref` on standby (`up=False`, until `until` or not by time) or back."""

    pool: str
    ref: str
    up: bool
    until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderByHand:
    provider: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaSeen:
    """A provider's quota endpoint answered (`_quota.py`): `low` puts it on standby (reason
    quota_low) until `until`; not low brings it back from such a standby."""

    provider: str
    low: bool
    until: float
    report: Any = None  # the QuotaReport, kept for status


@dataclass(frozen=True, slots=True, kw_only=True)
class Delisted:
    """Registry sync: `ref` is gone from its provider's listing (`gone`), or listed again."""

    pool: str
    ref: str
    gone: bool


_CLOSED = BreakerState.CLOSED
Blocked = tuple[float, "str | None"]  # (until when, inf = not by time; why)


class Health:
    def __init__(self, providers: Mapping[str, ProviderRuntime], discovery: DiscoveryConfig) -> None:
        self.providers = providers
        self.provider_states: dict[str, ProviderState] = {pid: ProviderState() for pid in providers}
        self.model_states: dict[tuple[str, str], ModelState] = {}
        self.pools: dict[str, Pool] = {}
        # per pool, per member: (its record, its provider's record, whether that provider is
        # enabled with no budget): what the common case of `available` reads, found once
        self._seats: dict[str, list[tuple[ModelState, ProviderState, bool]]] = {}
        self.version = 0  # counts standbys and recoveries: a shell shares facts again only when it moved
        # other processes' requests per (pool, model) in the last minute, from shared storage:
        # added to ours where selection reads requests per minute (see `rate_counted`)
        self.others_last_minute: dict[tuple[str, str], int] = {}
        self._discovery = discovery
        # providers checked once when the client starts (a pool's recovery.probe_on_start)
        self.start_checks: frozenset[str] = frozenset()
        # when each provider's next health check is due while it is up; None until the first look
        self._next_check: dict[str, float] | None = None
        # outcome type -> its handler; each handler takes its own outcome type
        # releases handed over without the lock (a stream finalised by the garbage collector
        # may run while its own thread holds the lock): applied at the next door, under it
        self._deferred: deque[Released] = deque()
        self._record: dict[type, Callable[[Any, float, list[MeshEvent]], Consequence | None]] = {
            Sent: self._sent, Served: self._served, Faulted: self._faulted, Released: self._released,
            Probed: self._probed, ModelByHand: self._model_by_hand, ProviderByHand: self._provider_by_hand,
            Delisted: self._delisted, QuotaSeen: self._quota_seen,
        }
        self.quota: dict[str, Any] = {}  # provider -> its latest QuotaReport (quota queries)
        # provider -> UTC day (days since the epoch) -> [requests, prompt tokens, completion tokens, cost]
        self.daily: dict[str, dict[int, list[float]]] = {pid: {} for pid in providers}

    def add_pool(self, pool: Pool) -> None:
        self.pools[pool.name] = pool
        for model in pool.members:
            self._new_state(pool, model)
        self._seats[pool.name] = [
            (self.model_states[(pool.name, m.ref)], self.provider_states[m.provider], _plain(self.providers[m.provider]))
            for m in pool.members]

    def _new_state(self, pool: Pool, model: ModelInfo) -> None:
        rec = pool.config.rotation.recovery
        state = ModelState(model=model.ref, pool=pool.name)
        # deactivation policies decide when a closed breaker trips (they know error_codes);
        # the breaker's own failure counting only matters while half-open
        state.breaker.configure(failure_threshold=10**9, reset_timeout=rec.cooldown,
                                half_open_max=rec.half_open_max, success_threshold=rec.success_threshold)
        self.model_states.setdefault((pool.name, model.ref), state)

    def add_member(self, pool: Pool, model: ModelInfo) -> None:
        """A model found at run time joins `pool` (registry sync), with a fresh record."""
        if model.ref in pool.by_ref:
            return
        pool.add_member(model)
        self._new_state(pool, model)
        self._seats[pool.name] = [*self._seats[pool.name], (
            self.model_states[(pool.name, model.ref)], self.provider_states[model.provider],
            _plain(self.providers[model.provider]))]

    def defer(self, outcome: Released) -> None:
        """Hand over a release without taking the lock (deque.append is atomic)."""
        self._deferred.append(outcome)

    def settle(self, now: float) -> None:
        """Apply the releases handed over without the lock (they happened; this only records
        them). Every door that reads or changes health does this first, under the lock."""
        self._drain(now)

    def _drain(self, now: float) -> None:
        while self._deferred:
            self._released(self._deferred.popleft(), now, [])

    def state(self, pool: str, ref: str) -> ModelState:
        return self.model_states[(pool, ref)]

    # -- door 1: available ----------------------------------------------------------------------
    def available(self, pool: Pool, now: float, events: list[MeshEvent] | None, *,
                  restrict: frozenset[str] | None = None) -> tuple[list[Candidate], float | None]:
        """Members that can take a request now, as selection snapshots, and the earliest time
        a blocked one frees up. `events=None` asks without moving anything (for `view`)."""
        if events is not None:
            self._drain(now)
        out: list[Candidate] = []
        earliest: float | None = None
        plain = pool.order_only
        untimed = pool.timed is None
        for index, (state, ps, simple) in enumerate(self._seats[pool.name]):
            model = pool.members[index]
            if restrict is not None and model.ref not in restrict:
                continue
            if simple and untimed and ps.available and state.breaker.state is _CLOSED \
                    and state.remaining_requests != 0 and state.remaining_tokens != 0:
                # the common case, decided without `_block`: nothing can bar this member now
                out.append(pool.plain[index] if plain else self._candidate(pool, model, index, now, full=True))
                continue
            block = self._block(pool, model, now, events)
            if block is not None:
                if block[0] != _INF and (earliest is None or block[0] < earliest):
                    earliest = block[0]
                continue
            out.append(self._candidate(pool, model, index, now, full=not pool.order_only))
        return out, earliest

    def first_free(self, pool: Pool, plan: tuple[int, ...], now: float, events: list[MeshEvent], *,
                   skip: set[str], also: set[str], restrict: frozenset[str] | None,
                   need: int | None) -> str | None:
        """The first member in `plan` (indices in preference order) that can take a request
        now and is not in `skip` or `also`, outside `restrict`, or too short for `need`
        tokens; None when none can. What `available` and a ranking would choose, without
        looking at the members after it."""
        self._drain(now)
        seats = self._seats[pool.name]
        members = pool.members
        untimed = pool.timed is None
        for index in plan:
            model = members[index]
            ref = model.ref
            if ref in skip or ref in also or (restrict is not None and ref not in restrict):
                continue
            if need is not None and model.context_window is not None and model.context_window < need:
                continue
            state, ps, simple = seats[index]
            if simple and untimed and ps.available and state.breaker.state is _CLOSED \
                    and state.remaining_requests != 0 and state.remaining_tokens != 0:
                return ref
            if self._block(pool, model, now, events) is None:
                return ref
        return None

    def free(self, pool: Pool, ref: str, now: float, events: list[MeshEvent]) -> bool:
        return self._block(pool, pool.by_ref[ref], now, events) is None

    def provider_up(self, provider: str, now: float) -> bool:
        ps = self.provider_states[provider]
        return ps.available or (ps.until is not None and now >= ps.until)

    def last_resort(self, pool: Pool, now: float, events: list[MeshEvent], *,
                    skip: frozenset[str] = frozenset()) -> str | None:
        """When no member can take a request: the one on standby for a soft reason (errors, a
        rate limit) that recovers soonest, opened for a trial before its time; None when every
        member is out for a hard reason (bad key, spent quota or budget, by hand, missing)."""
        soonest: tuple[float, str] | None = None
        for model in pool.members:
            if model.ref in skip:
                continue
            block = self._block(pool, model, now, None)
            state = self.model_states[(pool.name, model.ref)]
            if block is None or state.breaker.state is not BreakerState.OPEN or state.reason not in _SOFT:
                continue
            if soonest is None or block[0] < soonest[0]:
                soonest = (block[0], model.ref)
        if soonest is None:
            return None
        ref = soonest[1]
        self.model_states[(pool.name, ref)].breaker.process(BreakerInput.LAST_RESORT, now)
        events.append(ModelRecovered(at=now, pool=pool.name, model=ref, how="last_resort"))
        return ref

    def rows(self, pool: Pool, now: float) -> list[dict[str, Any]]:
        """`pool`'s members as `view` shows them (a pure read)."""
        rows: list[dict[str, Any]] = []
        for model in pool.members:
            state = self.model_states[(pool.name, model.ref)]
            block = self._block(pool, model, now, None)
            breaker = state.breaker.state
            if breaker is BreakerState.OPEN and now >= (state.breaker.open_until or _INF):
                breaker = BreakerState.HALF_OPEN
            rows.append({
                "model": model.ref,
                "status": "active" if block is None else "standby",
                "breaker": breaker.value,
                "reason": None if block is None else block[1],
                "until": None if block is None or block[0] == _INF else block[0],
                "requests": state.total_requests,
                "failures": state.total_failures,
                "success_rate": round(state.window.success_rate(now), 4),
                "avg_latency": round(state.window.average(now), 6),
                "tokens": state.tokens_used,
                "cost": round(state.cost, 6),
            })
            if state.remaining_requests is not None or state.remaining_tokens is not None:
                # what the provider's rate-limit headers said last, while their reset has not passed
                stale = state.rate_reset_at is not None and state.rate_reset_at <= now
                rows[-1]["rate_limits"] = None if stale else {
                    "remaining_requests": state.remaining_requests, "limit_requests": state.limit_requests,
                    "remaining_tokens": state.remaining_tokens, "limit_tokens": state.limit_tokens,
                    "reset_at": state.rate_reset_at}
        return rows

    def budget_spent(self, provider: str, now: float) -> bool:
        return _budget_block(self.providers[provider].config.budget, self.provider_states[provider], now) is not None

    def full(self, pool: Pool, cand: Candidate, now: float) -> Candidate:
        """The candidate with its health figures, for the score a decision reports."""
        if not pool.order_only:
            return cand
        return self._candidate(pool, pool.by_ref[cand.ref], cand.index, now, full=True)

    def _block(self, pool: Pool, model: ModelInfo, now: float, events: list[MeshEvent] | None) -> Blocked | None:
        provider = self.providers[model.provider]
        if not provider.config.enabled:
            return (_INF, "disabled")
        ps = self.provider_states[model.provider]
        if not ps.available:
            if ps.until is None or now < ps.until:
                return (_INF if ps.until is None else ps.until, ps.reason)
            if events is not None:  # the provider's standby is over: its models get a trial again
                self._provider_up(model.provider, now, "cooldown", events)
        budget = _budget_block(provider.config.budget, ps, now)
        if budget is not None:
            return (budget[1], budget[0])
        state = self.model_states[(pool.name, model.ref)]
        breaker = state.breaker
        if pool.timed is not None and breaker.state is BreakerState.CLOSED:
            # maintenance windows and quota periods change with time alone
            decision = pool.timed.should_deactivate(state if events is not None else replace(state), now)
            if decision is not None:
                if events is None:
                    until = decision.until if decision.until is not None else pool.recovery.recover_at(state, decision, now)
                    return (_INF if until is None else until, decision.reason.value)
                self._deactivate(pool, model.ref, decision, now, events)
        if breaker.state is BreakerState.OPEN:
            until = breaker.open_until if breaker.open_until is not None else _INF
            if now < until:
                return (until, state.reason.value if state.reason else None)
            if events is not None:
                breaker.allow(now)  # goes half-open: one trial
                events.append(ModelRecovered(at=now, pool=pool.name, model=model.ref, how="cooldown"))
        elif breaker.state is BreakerState.HALF_OPEN and breaker.in_flight >= breaker.half_open_max:
            # busy with a trial; a trial nobody finished (a stream left half-read) lapses after the
            # longest an attempt may take, so it cannot hold the model's only slot for ever
            cfg = provider.config
            lapse = (state.trial_since or now) + max(cfg.timeout, cfg.stream_total_timeout) + cfg.connect_timeout
            if now < lapse:
                return (lapse, "trial in flight")
            if events is not None:
                breaker.release(now)
        if state.rate_reset_at is not None and state.rate_reset_at > now \
                and (state.remaining_requests == 0 or state.remaining_tokens == 0):
            return (state.rate_reset_at, "rate limit spent")
        return None

    def _candidate(self, pool: Pool, model: ModelInfo, index: int, now: float, *, full: bool) -> Candidate:
        if not full:  # the strategy reads no health figures: skip computing them
            return pool.plain[index]
        state = self.model_states[(pool.name, model.ref)]
        rl = self.providers[model.provider].config.rate_limits
        stale = state.rate_reset_at is not None and state.rate_reset_at <= now
        count, average, success_rate, score, last_minute = state.window.summary(now, 60.0)
        return Candidate(
            ref=model.ref, provider=model.provider, model=model.model, index=index,
            cost_per_1k=model.cost_per_1k, latency=average if count else None, success_rate=success_rate,
            score=score, requests_last_minute=last_minute + self.others_last_minute.get((pool.name, model.ref), 0),
            last_used=state.last_used,
            remaining_requests=None if stale else state.remaining_requests, limit_requests=state.limit_requests,
            remaining_tokens=None if stale else state.remaining_tokens, limit_tokens=state.limit_tokens,
            rate_reset_at=state.rate_reset_at, known_rpm=rl.rpm, context_window=model.context_window, in_flight=0,
        )

    # -- door 2: record ---------------------------------------------------------------------------
    def record(self, outcome: Any, now: float, events: list[MeshEvent]) -> Consequence | None:
        """Apply one outcome. For `Faulted`, returns the consequence the request acts on."""
        self._drain(now)
        try:
            handler = self._record[type(outcome)]
        except KeyError:
            raise TypeError(f"health cannot record {outcome!r}") from None
        return handler(outcome, now, events)

    def _sent(self, o: Sent, now: float, events: list[MeshEvent]) -> None:
        state = self.model_states[(o.pool, o.ref)]
        state.breaker.on_request(now)
        state.last_used = now
        if state.breaker.state is BreakerState.HALF_OPEN:
            state.trial_since = now

    def _released(self, o: Released, now: float, events: list[MeshEvent]) -> None:
        self.model_states[(o.pool, o.ref)].breaker.release(now)

    def _served(self, o: Served, now: float, events: list[MeshEvent]) -> None:
        pool = self.pools[o.pool]
        state = self.model_states[(o.pool, o.ref)]
        _absorb(state, o.limits, now, pool.config.rotation.recovery.retry_after_cap)
        tokens = o.prompt_tokens + o.completion_tokens
        state.record_success(now, o.latency, tokens=tokens, cost=o.cost)
        was_closed = state.breaker.state is BreakerState.CLOSED
        state.breaker.record_success(now)
        if not was_closed and state.breaker.state is BreakerState.CLOSED:
            state.reason = None
            state.recovered_at = now
            self.version += 1
        pid = pool.by_ref[o.ref].provider
        ps = self.provider_states[pid]
        _add_spend(ps, now, o.cost)
        ps.total_quota_used += tokens
        _count_day(self.daily[pid], now, o)
        decision = pool.deactivation.should_deactivate(state, now)
        if decision is not None:  # a limit reached by this very request: rotate away before the next
            self._deactivate(pool, o.ref, decision, now, events)

    def _faulted(self, o: Faulted, now: float, events: list[MeshEvent]) -> Consequence:
        pool = self.pools[o.pool]
        state = self.model_states[(o.pool, o.ref)]
        info = o.info
        pid = pool.by_ref[o.ref].provider
        pcfg = self.providers[pid].config
        c = consequence_for(info, pcfg.retryable_codes, pcfg.non_retryable_codes,
                            content_filter_failover=pool.config.content_filter_failover)
        _absorb(state, o.limits, now, pool.config.rotation.recovery.retry_after_cap)
        if not c.penalise:
            state.breaker.release(now)
            return c
        # a malformed 2xx is the provider's fault, whatever its status said: count it like a timeout
        state.record_failure(now, info.kind.value, None if info.kind is ErrorKind.MALFORMED else info.status)
        standby = c.standby
        if c.scope is Scope.PROVIDER:
            if c.provider_rule is None or c.provider_rule in pool.config.rotation.provider_deactivation:
                state.breaker.release(now)
                cooldown = now + pool.config.rotation.recovery.cooldown
                # with discovery.health.enabled false no probe is ever sent: the cooldown ends it
                by_probe = None if self.probing else cooldown
                until = {Standby.UNTIL_PROBE: by_probe, Standby.COOLDOWN: cooldown,
                         Standby.QUOTA_RESET: self._quota_reset_at(pool, pid, now) or cooldown}[standby]
                assert c.reason is not None
                self._provider_down(pid, now, c.reason.value, until, events)
                return c
            # the pool does not take the provider down for this: the model alone goes on standby
            standby = Standby.RECOVERY if standby is Standby.UNTIL_PROBE else Standby.POLICY
        if standby is Standby.RECOVERY or (standby is Standby.RETRY_AFTER and info.retry_after is not None):
            assert c.reason is not None
            cap = pool.config.rotation.recovery.retry_after_cap  # a Retry-After of a year benches nobody for a year
            until = None if standby is Standby.RECOVERY else now + min(info.retry_after or 0.0, cap)
            state.breaker.release(now)
            self._deactivate(pool, o.ref, Deactivation(reason=c.reason, detail=info.message, until=until), now, events)
            return c
        was_trial = state.breaker.state is BreakerState.HALF_OPEN
        state.breaker.release(now)  # a failed trial is a new standby below, its cooldown grown by the streak
        decision = pool.deactivation.should_deactivate(state, now)
        if decision is None and was_trial:
            decision = Deactivation(reason=state.reason or DeactivationReason.RETRY_LIMIT, detail="trial request failed")
        elif decision is None and o.retries_spent:  # sick, not unlucky: nobody tries it again right away
            decision = Deactivation(reason=DeactivationReason.RETRY_LIMIT, detail="failed again on its same-model retry")
        if decision is not None:
            self._deactivate(pool, o.ref, decision, now, events)
        return c

    def _probed(self, o: Probed, now: float, events: list[MeshEvent]) -> None:
        probe = o.probe
        if probe.key.startswith("health:"):
            self._checked(probe.provider, o, now, events)
            return
        if probe.ref is not None:  # a model probe says nothing about the provider's availability
            assert probe.pool is not None
            self.model_states[(probe.pool, probe.ref)].record_probe(now)
            if o.ok:
                self._model_up(self.pools[probe.pool], probe.ref, now, "probe", events)
            return
        ps = self.provider_states[probe.provider]
        ps.record_probe(o.ok, o.latency, now)
        if not o.ok:
            if ps.available and ps.availability_score < MIN_AVAILABILITY:
                self._provider_down(probe.provider, now, _AVAILABILITY_LOW, None, events)
            return
        if self._recovers_by_probe(probe.provider):  # else (on_manual): a good probe is noted, no more
            self._provider_up(probe.provider, now, "probe", events)

    def _checked(self, pid: str, o: Probed, now: float, events: list[MeshEvent]) -> None:
        """A health check of a provider that was up when it was sent: `failure_threshold`
        failures in a row put it down until a probe passes (recovery then probes it)."""
        ps = self.provider_states[pid]
        ps.record_probe(o.ok, o.latency, now)
        if o.ok:
            ps.failed_checks = 0
            return
        ps.failed_checks += 1
        if ps.available and ps.failed_checks >= self._discovery.health_failure_threshold:
            self._provider_down(pid, now, _HEALTH_FAILED, None, events)

    def _delisted(self, o: Delisted, now: float, events: list[MeshEvent]) -> None:
        pool = self.pools[o.pool]
        state = self.model_states[(o.pool, o.ref)]
        if o.gone:
            self._deactivate(pool, o.ref, Deactivation(reason=DeactivationReason.DEPRECATED, until=_INF,
                                                       detail="no longer in its provider's model listing"), now, events)
        elif state.reason is DeactivationReason.DEPRECATED:
            self._model_up(pool, o.ref, now, "listed", events)

    def _model_by_hand(self, o: ModelByHand, now: float, events: list[MeshEvent]) -> None:
        pool = self.pools[o.pool]
        if o.up:
            self._model_up(pool, o.ref, now, "manual", events)
        else:
            until = _INF if o.until is None else o.until
            self._deactivate(pool, o.ref, Deactivation(reason=DeactivationReason.MANUAL, detail="by hand", until=until),
                             now, events)

    def _provider_by_hand(self, o: ProviderByHand, now: float, events: list[MeshEvent]) -> None:
        self._provider_up(o.provider, now, "manual", events)

    def _quota_seen(self, o: QuotaSeen, now: float, events: list[MeshEvent]) -> None:
        pid = o.provider
        self.quota[pid] = o.report
        ps = self.provider_states[pid]
        ours = not ps.available and ps.reason == _QUOTA_LOW  # a standby of another kind is not the quota's to end
        if o.low and (ps.available or ours):
            self._provider_down(pid, now, _QUOTA_LOW, o.until, events)
        elif not o.low and ours:
            self._provider_up(pid, now, "quota", events)

    # -- transitions ---------------------------------------------------------------------------
    def _deactivate(self, pool: Pool, ref: str, decision: Deactivation, now: float, events: list[MeshEvent]) -> None:
        self.version += 1
        state = self.model_states[(pool.name, ref)]
        if state.breaker.state is not BreakerState.OPEN:  # a new standby, not an extension
            soon = state.last_standby is not None and now - state.last_standby < 2 * pool.config.rotation.recovery.cooldown
            state.standby_streak = state.standby_streak + 1 if soon else 0
            state.last_standby = now
        until = decision.until
        if until is None:
            until = pool.recovery.recover_at(state, decision, now)
        state.breaker.trip(now, until=_INF if until is None else until, reason=decision.reason.value)
        state.reason = decision.reason
        events.append(ModelDeactivated(at=now, pool=pool.name, model=ref, reason=decision.reason.value,
                                       detail=decision.detail, until=state.recover_at))

    def _model_up(self, pool: Pool, ref: str, now: float, how: str, events: list[MeshEvent]) -> None:
        state = self.model_states[(pool.name, ref)]
        if state.breaker.state is BreakerState.CLOSED:
            return
        self.version += 1
        state.breaker.reset(now)
        state.reason = None
        state.recovered_at = now
        state.consecutive_failures = 0  # or the retry limit would trip again on the next look
        state.failure_streak = {}
        events.append(ModelRecovered(at=now, pool=pool.name, model=ref, how=how))

    def _provider_down(self, pid: str, now: float, reason: str, until: float | None, events: list[MeshEvent]) -> None:
        self.version += 1
        ps = self.provider_states[pid]
        already_down = not ps.available
        if reason == DeactivationReason.AUTH_FAILURE.value:
            ps.auth_valid = False
        if not already_down:
            ps.deactivated_at = now
            ps.until = until
        elif until is None:
            ps.until = None
        elif ps.until is not None:
            ps.until = max(ps.until, until)  # never shorten a deadline
        # else: already down until a probe or a hand: a deadline would shorten that
        ps.available = False
        ps.reason = reason
        events.append(ProviderDeactivated(at=now, provider=pid, reason=reason, until=ps.until))

    def _provider_up(self, pid: str, now: float, how: str, events: list[MeshEvent]) -> None:
        ps = self.provider_states[pid]
        if ps.available:
            return
        self.version += 1
        ps.available = ps.auth_valid = True
        ps.failed_checks = 0
        ps.reason = ps.deactivated_at = ps.until = None
        ps.recovered_at = now
        ps.availability_score = max(ps.availability_score, MIN_AVAILABILITY)  # healthy, as it just proved
        events.append(ProviderRecovered(at=now, provider=pid, how=how))

    def _recovers_by_probe(self, provider: str) -> bool:
        rules = {p.config.rotation.provider_recovery for p in self.pools.values()
                 if any(m.provider == provider for m in p.members)}
        return not rules or "on_probe_success" in rules

    def _quota_reset_at(self, pool: Pool, pid: str, now: float) -> float | None:
        schedule = self.providers[pid].config.quota_reset_schedule or pool.config.rotation.recovery.quota_reset_schedule
        if schedule in (None, "rolling"):
            return None
        return next_quota_reset(now, schedule)

    # -- probes --------------------------------------------------------------------------------
    @property
    def probing(self) -> bool:
        """Whether probes are sent at all (`discovery.health.enabled: false` sends none)."""
        return self._discovery.health_enabled is not False

    def monitored(self, pid: str) -> bool:
        """Whether `pid`'s health endpoint is checked while it is up (`discovery.health`)."""
        d = self._discovery
        return d.health_enabled is True and (not d.health_providers or pid in d.health_providers)

    def _provider_probe(self, kind: str, pid: str, models: Mapping[str, ModelInfo]) -> Probe:
        provider = self.providers[pid]
        model = next((m for m in models.values() if m.provider == pid), None)
        target = provider.target(model) if model is not None else provider.bare_target()
        return Probe(key=f"{kind}:{pid}", provider=pid, pool=None, ref=None, target=target,
                     request=provider.codec.build_request(target, "models", {}, stream=False),
                     timeout=self._discovery.health_timeout)

    def schedule_checks(self, now: float) -> None:
        """The client starts at `now`: start checks are due now, monitoring one interval on."""
        if self._next_check is not None:
            return
        interval = self._discovery.health_interval
        self._next_check = {p: now if p in self.start_checks else now + interval
                            for p in self.providers if p in self.start_checks or self.monitored(p)}

    def _due_check(self, pid: str, now: float) -> bool:
        """Whether an up provider's health check is due now; if so, the next is scheduled."""
        if self._next_check is None:  # nobody said when the client started: now
            self.schedule_checks(now)
        assert self._next_check is not None
        due = self._next_check.get(pid)
        if due is None or now < due:
            return False
        if self.monitored(pid):
            self._next_check[pid] = now + self._discovery.health_interval
        else:
            del self._next_check[pid]  # a start check alone: once
        return True

    def due_probes(self, now: float, models: Mapping[str, ModelInfo]) -> list[Probe]:
        """Probes due now, each marked as sent: health checks of up providers (discovery.health,
        probe_on_start), providers down until a probe, and standby models whose pool's recovery
        policy asks for a probe. None at all with `discovery.health.enabled: false`."""
        self._drain(now)
        if not self.probing:
            return []
        probes: list[Probe] = []
        interval = self._discovery.health_interval
        for pid, provider in self.providers.items():
            ps = self.provider_states[pid]
            if not provider.config.enabled:
                continue
            if ps.available:
                if self._due_check(pid, now):
                    probes.append(self._provider_probe("health", pid, models))
                continue
            if ps.until is not None:
                continue
            if ps.last_probe is not None and now - ps.last_probe < interval:
                continue
            ps.last_probe = now
            probes.append(self._provider_probe("provider", pid, models))
        for (pool_name, ref), state in self.model_states.items():
            pool = self.pools[pool_name]
            if not getattr(pool.recovery, "probe_due", _never)(state, now):
                continue
            state.record_probe(now)
            model = pool.by_ref[ref]
            provider = self.providers[model.provider]
            target = provider.target(model)
            op, body = _probe_request(model.capabilities)
            probes.append(Probe(key=f"model:{pool_name}:{ref}", provider=model.provider, pool=pool_name, ref=ref,
                                target=target, request=provider.codec.build_request(target, op, body, stream=False),
                                timeout=provider.config.timeout))
        return probes

    # -- door 3: view --------------------------------------------------------------------------
    # -- shared with other processes (see _sharing) ----------------------------------------------
    def facts(self, now: float) -> dict[str, Fact]:
        """This process's account of every standby in force and every recovery: what other
        processes should honour. A pure read."""
        out: dict[str, Fact] = {}
        for pid, ps in self.provider_states.items():
            if not ps.available and ps.deactivated_at is not None:
                out[provider_key(pid)] = Fact(down=True, at=ps.deactivated_at, until=ps.until, reason=ps.reason)
            elif ps.available and ps.recovered_at is not None:
                out[provider_key(pid)] = Fact(down=False, at=ps.recovered_at)
        for (pool, ref), state in self.model_states.items():
            since = state.deactivated_at
            if since is not None:
                reason = state.reason.value if state.reason else None
                out[model_key(pool, ref)] = Fact(down=True, at=since, until=state.recover_at, reason=reason)
            elif state.recovered_at is not None:
                out[model_key(pool, ref)] = Fact(down=False, at=state.recovered_at)
        return out

    def absorb(self, facts: Mapping[str, Fact], now: float, events: list[MeshEvent]) -> None:
        """Take in other processes' account (the stored one): a standby in force there is
        honoured here, extending one of ours but never shortening it; a recovery there after
        our standby began ends ours. Keys of pools or providers we do not have are ignored."""
        self._drain(now)
        mine = self.facts(now)
        for key, theirs in facts.items():
            ours = mine.get(key)
            agreed = merged(ours, theirs)
            if agreed is None or agreed == ours:
                continue
            kind, _, rest = key.partition(":")
            if kind == "provider" and rest in self.provider_states:
                self._absorb_provider(rest, agreed, now, events)
            elif kind == "model":
                pool_name, _, ref = rest.partition(":")
                pool = self.pools.get(pool_name)
                if pool is not None and ref in pool.by_ref:
                    self._absorb_model(pool, ref, agreed, now, events)

    def budgeted(self) -> list[str]:
        """Providers with a daily or monthly budget: their spend is what other processes share."""
        return [pid for pid, p in self.providers.items() if _has_budget(p)]

    def spend_periods(self, pid: str, now: float) -> tuple[float, float]:
        """(end of the budget day, end of the budget month) of `pid` now, rolled if they ended."""
        ps = self.provider_states[pid]
        _add_spend(ps, now, 0.0)
        assert ps.day_end is not None and ps.month_end is not None  # set by _add_spend
        return ps.day_end, ps.month_end

    def absorb_spend(self, pid: str, day_end: float, day_total: float, month_end: float, month_total: float) -> None:
        """Every process's spend on `pid` in the periods ending at `day_end` and `month_end`
        (counted in storage): ours can only grow to it."""
        ps = self.provider_states[pid]
        if ps.day_end == day_end and day_total > ps.spend_day:
            ps.spend_day = day_total
        if ps.month_end == month_end and month_total > ps.spend_month:
            ps.spend_month = month_total

    def rate_counted(self) -> list[tuple[str, str]]:
        """(pool, model) pairs whose requests per minute meet a limit in selection (the pool's
        `rate_limit.max_rpm`, the provider's `rate_limits.rpm`): the counts other processes share."""
        out = []
        for pool in self.pools.values():
            if pool.config.rotation.selection.rate_limit.max_rpm is not None:
                out += [(pool.name, m.ref) for m in pool.members]
            else:
                out += [(pool.name, m.ref) for m in pool.members if self.providers[m.provider].config.rate_limits.rpm]
        return out

    def last_minute(self, pairs: list[tuple[str, str]], now: float) -> dict[tuple[str, str], int]:
        """This process's own requests to each of `pairs` in the last minute."""
        return {pair: self.model_states[pair].window.summary(now, 60.0)[4] for pair in pairs}

    def limited(self) -> list[tuple[str, str]]:
        """(pool, model) pairs whose pool limits requests, tokens or spend per model: the
        counters other processes share."""
        out = []
        for pool in self.pools.values():
            d = pool.config.rotation.deactivation
            if d.request_limit is not None or d.token_limit is not None or d.budget_limit is not None:
                out += [(pool.name, m.ref) for m in pool.members]
        return out

    def usage_period(self, pool: str, ref: str, now: float) -> float | None:
        """When the model's limit counters start afresh (rolled if they should have); None: never."""
        state = self.model_states[(pool, ref)]
        state.roll_period(now)
        return state.period_end

    def absorb_usage(self, pool: str, ref: str, period_end: float | None, requests: float, tokens: float,
                     cost: float, now: float, events: list[MeshEvent]) -> None:
        """Every process's use of `ref` in `pool` this period (from shared storage): ours can
        only grow to it, and a limit it reaches puts the model on standby here too."""
        state = self.model_states[(pool, ref)]
        if state.period_end != period_end:
            return  # another period than ours: the counters will meet in the next one
        state.period_requests = max(state.period_requests, int(requests))
        state.period_tokens = max(state.period_tokens, int(tokens))
        state.period_cost = max(state.period_cost, cost)
        p = self.pools[pool]
        if state.breaker.state is BreakerState.CLOSED:
            decision = p.deactivation.should_deactivate(state, now)
            if decision is not None:
                self._deactivate(p, ref, decision, now, events)

    def _absorb_provider(self, pid: str, fact: Fact, now: float, events: list[MeshEvent]) -> None:
        ps = self.provider_states[pid]
        if live(fact, now):
            self._provider_down(pid, now, fact.reason or "shared", fact.until, events)
            ps.deactivated_at = fact.at if ps.deactivated_at is None else min(ps.deactivated_at, fact.at)
        elif not fact.down and not ps.available:
            self._provider_up(pid, now, "shared", events)

    def _absorb_model(self, pool: Pool, ref: str, fact: Fact, now: float, events: list[MeshEvent]) -> None:
        state = self.model_states[(pool.name, ref)]
        if live(fact, now):
            reason = _REASONS.get(fact.reason or "", DeactivationReason.PROVIDER_OUTAGE)
            # the breaker never shortens a standby: one of ours that runs longer stays as it is
            self._deactivate(pool, ref, Deactivation(reason=reason, until=_INF if fact.until is None else fact.until,
                                                     detail="reported by another process"), now, events)
        elif not fact.down and state.breaker.state is not BreakerState.CLOSED:
            self._model_up(pool, ref, now, "shared", events)

    def view(self, now: float) -> dict[str, Any]:
        """Every provider and pool member as `available` would find them now; changes nothing
        (call `settle` first, under the lock, for releases not yet recorded)."""
        providers = {}
        for pid, provider in self.providers.items():
            ps = self.provider_states[pid]
            up = self.provider_up(pid, now)
            providers[pid] = {"up": up, "reason": None if up else ps.reason, "until": None if up else ps.until,
                              "spend_day": round(ps.spend_day, 6), "spend_month": round(ps.spend_month, 6),
                              "enabled": provider.config.enabled}
            if pid in self.quota:
                providers[pid]["quota"] = self.quota[pid].to_dict()
        pools = {pool.name: self.rows(pool, now) for pool in self.pools.values()}
        return {"providers": providers, "pools": pools}


def _never(state: ModelState, now: float) -> bool:
    return False


def _absorb(state: ModelState, limits: RateLimitInfo | None, now: float, cap: float) -> None:
    """What the provider's rate-limit headers said, into the model's record (a reset further
    away than `cap` is taken as `cap`)."""
    if limits is None or limits.is_empty():
        return
    if limits.limit_requests is not None:
        state.limit_requests = limits.limit_requests
    if limits.limit_tokens is not None:
        state.limit_tokens = limits.limit_tokens
    state.remaining_requests = limits.remaining_requests
    state.remaining_tokens = limits.remaining_tokens
    resets = [r for r in (limits.reset_requests, limits.reset_tokens) if r is not None]
    state.rate_reset_at = now + min(max(resets), cap) if resets else None


USAGE_DAYS = 62  # days of per-provider usage kept (usage reports)


def _count_day(ledger: dict[int, list[float]], now: float, o: Served) -> None:
    day = int(now // 86400)
    row = ledger.get(day)
    if row is None:
        row = ledger[day] = [0, 0, 0, 0.0]
        if len(ledger) > USAGE_DAYS:
            del ledger[min(ledger)]
    row[0] += 1
    row[1] += o.prompt_tokens
    row[2] += o.completion_tokens
    row[3] += o.cost


def _add_spend(ps: ProviderState, now: float, cost: float) -> None:
    if ps.day_end is None or now >= ps.day_end:
        ps.spend_day, ps.day_end = 0.0, next_quota_reset(now, "daily")
    if ps.month_end is None or now >= ps.month_end:
        ps.spend_month, ps.month_end = 0.0, next_quota_reset(now, "monthly")
    ps.spend_day += cost
    ps.spend_month += cost
    ps.total_cost += cost


def _has_budget(provider: ProviderRuntime) -> bool:
    budget = provider.config.budget
    return budget.daily_limit is not None or budget.monthly_limit is not None


def _plain(provider: ProviderRuntime) -> bool:
    """Enabled and without a budget: only its record's state can bar its models."""
    return provider.config.enabled and not _has_budget(provider)


def _budget_block(budget: BudgetConfig, ps: ProviderState, now: float) -> tuple[str, float] | None:
    """(which limit, when it resets) if a budget is spent now, else None. Pure: a period
    that ended counts as empty without being rolled."""
    if budget.monthly_limit is not None and ps.month_end is not None and now < ps.month_end \
            and ps.spend_month >= budget.monthly_limit:
        return ("monthly budget", ps.month_end)
    if budget.daily_limit is not None and ps.day_end is not None and now < ps.day_end \
            and ps.spend_day >= budget.daily_limit:
        return ("daily budget", ps.day_end)
    return None


def _probe_request(capabilities: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The cheapest request that shows a model answers: a one-token chat, an embedding of a
    word, or, for a model that does neither (speech, images: each call is billed by what it
    makes), its provider's model list."""
    if any("embeddings" in c for c in capabilities):
        return "embeddings", {"input": "ping"}
    if serves(capabilities, "chat"):
        return "chat", {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    return "models", {}
