"""Providers, models and capability pools as the router sees them.

A `ProviderRuntime` is one configured provider: its codec, its credentials (never
printed), its provider-level state (auth failure and outage put every one of its models
on standby in every pool) and its spend against daily and monthly budgets.

A `Pool` is a set of models that can serve one kind of request, with its own rotation
policies. Each member has a `ModelState` in each pool; a model is *available* in a pool
when its provider is up and within budget, its breaker lets a request through, it is not
in a maintenance window and its rate-limit headers do not say it is spent. Availability
is evaluated lazily at `now`, so cooldowns end by themselves without timers: the first
request after a deadline sees the model half-open and may try it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ._breaker import BreakerState
from ._cron import next_quota_reset
from ._events import ModelDeactivated, ModelRecovered, ProviderDeactivated, ProviderRecovered
from ._policies import (
    AnyOf, BudgetLimit, Deactivation, DeactivationReason, ErrorRate, RequestLimit, RetryLimit, TokenLimit, PolicySet, build_policies,
)
from ._selection import Candidate, Priority, SelectionContext, RoundRobin, SessionSticky, StickUntilFailure, build_strategy
from ._state import ModelState, ProviderState
from .codecs._base import Target

if TYPE_CHECKING:
    from ._config_schema import ModelConfig, PoolConfig, ProviderConfig
    from .codecs._base import Codec

__all__ = ["ModelInfo", "ProviderRuntime", "Pool"]

_DAY = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """A model as configured: `ref` is "provider/model-id"."""

    ref: str
    provider: str
    model: str
    capabilities: tuple[str, ...]
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_request: float = 0.0
    deployment: str | None = None

    @classmethod
    def from_config(cls, provider: str, cfg: ModelConfig) -> ModelInfo:
        p = cfg.pricing
        return cls(
            ref=f"{provider}/{cfg.id}",
            provider=provider,
            model=cfg.id,
            capabilities=tuple(cfg.capabilities),
            context_window=cfg.context_window,
            max_output_tokens=cfg.max_output_tokens,
            input_per_1m=p.input_per_1m if p else 0.0,
            output_per_1m=p.output_per_1m if p else 0.0,
            per_request=p.per_request if p else 0.0,
            deployment=cfg.deployment,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6 + self.per_request

    @property
    def cost_per_1k(self) -> float:
        return (self.input_per_1m + self.output_per_1m) / 2000.0


class ProviderRuntime:
    """One provider: codec, credentials, provider-level standby and budget spend."""

    def __init__(self, config: ProviderConfig, codec: Codec, api_key: str | None) -> None:
        self.id = config.id
        self.config = config
        self.codec = codec
        self._api_key = api_key
        self.state = ProviderState()
        self.standby_until: float | None = None  # None while down = until probe or by hand
        self.reason: str | None = None
        self.spend_day = 0.0
        self.spend_month = 0.0
        self._day_end: float | None = None
        self._month_end: float | None = None
        self._targets: dict[str, Target] = {}

    def __repr__(self) -> str:
        return f"ProviderRuntime(id={self.id!r}, connector={self.config.connector!r})"

    def target(self, model: ModelInfo) -> Target:
        # a Target depends only on configuration, so each model's is built once
        cached = self._targets.get(model.ref)
        if cached is None:
            cached = self._targets[model.ref] = self._build_target(model)
        return cached

    def _build_target(self, model: ModelInfo) -> Target:
        cfg = self.config
        return Target(
            provider=self.id,
            model=model.model,
            base_url=(cfg.base_url or "").rstrip("/"),
            api_key=self._api_key,
            headers=dict(cfg.headers),
            api_version=cfg.api_version,
            deployment=model.deployment or cfg.deployment,
            options=dict(cfg.options),
        )

    @property
    def secret(self) -> str | None:
        return self._api_key

    # -- provider-level standby ------------------------------------------------
    def is_up(self, now: float) -> bool:
        if self.state.available and self.state.auth_valid:
            return True
        return self.standby_until is not None and now >= self.standby_until

    def deactivate(self, now: float, reason: str, until: float | None, events: list) -> None:
        already_down = not (self.state.available and self.state.auth_valid)
        if reason == DeactivationReason.AUTH_FAILURE.value:
            self.state.auth_valid = False
        self.state.available = False
        if until is None or not already_down:
            self.standby_until = until
        elif self.standby_until is not None:
            self.standby_until = max(self.standby_until, until)  # never shorten a deadline
        # else: already down until a probe or a hand: a deadline would shorten that
        self.reason = reason
        events.append(ProviderDeactivated(at=now, provider=self.id, reason=reason, until=self.standby_until))

    def reactivate(self, now: float, how: str, events: list) -> None:
        if self.state.available and self.state.auth_valid:
            return
        self.state.available = True
        self.state.auth_valid = True
        self.standby_until = None
        self.reason = None
        events.append(ProviderRecovered(at=now, provider=self.id, how=how))

    # -- budgets ---------------------------------------------------------------
    def _roll_periods(self, now: float) -> None:
        if self._day_end is None or now >= self._day_end:
            self.spend_day = 0.0
            self._day_end = next_quota_reset(now, "daily")
        if self._month_end is None or now >= self._month_end:
            self.spend_month = 0.0
            self._month_end = next_quota_reset(now, "monthly")

    def add_spend(self, now: float, cost: float) -> None:
        self._roll_periods(now)
        self.spend_day += cost
        self.spend_month += cost
        self.state.total_cost += cost

    def budget_block(self, now: float) -> tuple[str, float] | None:
        """(which limit, when it resets) if a budget is spent, else None."""
        budget = self.config.budget
        if budget.daily_limit is None and budget.monthly_limit is None:
            return None
        self._roll_periods(now)
        if budget.monthly_limit is not None and self.spend_month >= budget.monthly_limit:
            return ("monthly budget", self._month_end or now)
        if budget.daily_limit is not None and self.spend_day >= budget.daily_limit:
            return ("daily budget", self._day_end or now)
        return None


class Pool:
    """A capability pool: members, their per-pool state, and the pool's policies."""

    def __init__(
        self,
        name: str,
        config: PoolConfig,
        members: list[ModelInfo],
        *,
        user_strategies: Mapping[str, Any] | None = None,
        strategy: Any = None,
        implicit: bool = False,
        policies: PolicySet | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.members = tuple(members)
        self.by_ref = {m.ref: m for m in self.members}
        self.implicit = implicit
        rotation = config.rotation
        self.strategy = strategy or build_strategy(config.strategy, rotation.selection, user_strategies=user_strategies)
        self.deactivation, self.recovery = build_policies(rotation.deactivation, rotation.recovery, policies)
        # policies whose verdict can change with time alone (maintenance windows, quota periods,
        # user functions) are asked again at selection; the rest only change after an outcome
        timed = [p for p in getattr(self.deactivation, "policies", (self.deactivation,))
                 if not isinstance(p, (RetryLimit, ErrorRate, RequestLimit, TokenLimit, BudgetLimit))]
        self._timed = AnyOf(*timed) if timed else None
        self.states: dict[str, ModelState] = {m.ref: self._new_state(m) for m in self.members}
        self.order_only = _ranks_on_order_alone(self.strategy)
        self.previous: str | None = None
        self._announced_down: set[str] = set()

    def __repr__(self) -> str:
        return f"Pool(name={self.name!r}, models={[m.ref for m in self.members]!r})"

    def _new_state(self, model: ModelInfo) -> ModelState:
        rec = self.config.rotation.recovery
        state = ModelState(model=model.ref, pool=self.name)
        state.breaker.configure(
            # deactivation policies decide when a closed breaker trips (they know error_codes);
            # the breaker's own failure counting only matters while half-open
            failure_threshold=10**9,
            reset_timeout=rec.cooldown,
            half_open_max=rec.half_open_max,
            success_threshold=rec.success_threshold,
        )
        return state

    # -- availability ------------------------------------------------------------
    def model_block(self, ref: str, now: float, providers: Mapping[str, ProviderRuntime], events: list) -> float | None:
        """None when `ref` can take a request now; otherwise when it may (inf = not by time)."""
        model = self.by_ref[ref]
        provider = providers[model.provider]
        if not provider.config.enabled:
            return float("inf")
        if not provider.is_up(now):
            return provider.standby_until if provider.standby_until is not None else float("inf")
        if provider.standby_until is not None and not (provider.state.available and provider.state.auth_valid):
            # the provider's standby deadline passed: it gets a trial again
            provider.reactivate(now, "cooldown", events)
        budget = provider.budget_block(now)
        if budget is not None:
            return budget[1]
        state = self.states[ref]
        self._check_time_policies(state, now, events)
        if not state.breaker.allow(now):
            until = state.breaker.open_until
            # half-open with its trial slots taken: busy, not waiting on a time
            return until if until is not None else float("inf")
        if ref in self._announced_down:
            self._announced_down.discard(ref)
            events.append(ModelRecovered(at=now, pool=self.name, model=ref, how="cooldown"))
        if state.rate_reset_at is not None and state.rate_reset_at > now:
            if state.remaining_requests == 0 or state.remaining_tokens == 0:
                return state.rate_reset_at
        return None

    def _check_time_policies(self, state: ModelState, now: float, events: list) -> None:
        # maintenance windows and quota periods change with time alone, so they are
        # checked when a model is considered, not only after an outcome
        if self._timed is not None and state.breaker.state is BreakerState.CLOSED:
            decision = self._timed.should_deactivate(state, now)
            if decision is not None:
                self.deactivate(state.model, decision, now, events)

    def candidates(
        self, now: float, providers: Mapping[str, ProviderRuntime], events: list, *, restrict: frozenset[str] | None = None
    ) -> tuple[list[Candidate], float | None]:
        """Available members as selection snapshots, and the earliest time a blocked one frees up."""
        out: list[Candidate] = []
        earliest: float | None = None
        for index, model in enumerate(self.members):
            if restrict is not None and model.ref not in restrict:
                continue
            block = self.model_block(model.ref, now, providers, events)
            if block is not None:
                if block != float("inf") and (earliest is None or block < earliest):
                    earliest = block
                continue
            if self.order_only:  # the strategy reads no health figures: skip computing them
                out.append(Candidate(ref=model.ref, provider=model.provider, model=model.model, index=index,
                                     context_window=model.context_window))
            else:
                out.append(self.candidate(model, index, now, providers))
        return out, earliest

    def full(self, cand: Candidate, now: float, providers: Mapping[str, ProviderRuntime]) -> Candidate:
        """The candidate with its health figures, for the score a decision reports."""
        if not self.order_only:
            return cand
        return self.candidate(self.by_ref[cand.ref], cand.index, now, providers)

    def candidate(self, model: ModelInfo, index: int, now: float, providers: Mapping[str, ProviderRuntime]) -> Candidate:
        state = self.states[model.ref]
        window = state.window
        rl = providers[model.provider].config.rate_limits
        stale = state.rate_reset_at is not None and state.rate_reset_at <= now
        count, average, success_rate, score, last_minute = window.summary(now, 60.0)
        return Candidate(
            ref=model.ref,
            provider=model.provider,
            model=model.model,
            index=index,
            cost_per_1k=model.cost_per_1k,
            latency=average if count else None,
            success_rate=success_rate,
            score=score,
            requests_last_minute=last_minute,
            last_used=state.last_used,
            remaining_requests=None if stale else state.remaining_requests,
            limit_requests=state.limit_requests,
            remaining_tokens=None if stale else state.remaining_tokens,
            limit_tokens=state.limit_tokens,
            rate_reset_at=state.rate_reset_at,
            known_rpm=rl.rpm,
            context_window=model.context_window,
            in_flight=0,
        )

    def context(self, now: float, rng: Any, options: Any) -> SelectionContext:
        """What the strategy is told about a request for this pool (options: RoutingOptions)."""
        return SelectionContext(now=now, rng=rng, session_id=options.session_id,
                                preferred_provider=options.preferred_provider, previous=self.previous,
                                metadata=options.metadata)

    # -- state changes -------------------------------------------------------------
    def deactivate(self, ref: str, decision: Deactivation, now: float, events: list) -> None:
        state = self.states[ref]
        until = decision.until
        if until is None:
            until = self.recovery.recover_at(state, decision, now)
        state.breaker.trip(now, until=float("inf") if until is None else until, reason=decision.reason.value)
        state.reason = decision.reason
        state.deactivated_at = now
        state.recover_at = state.breaker.open_until if state.breaker.open_until != float("inf") else None
        self._announced_down.add(ref)
        events.append(
            ModelDeactivated(
                at=now, pool=self.name, model=ref, reason=decision.reason.value, detail=decision.detail, until=state.recover_at
            )
        )

    def reactivate_after_trial(self, ref: str, now: float, events: list) -> None:
        """A success: closes a half-open breaker once it has its success_threshold."""
        state = self.states[ref]
        was_closed = state.breaker.state is BreakerState.CLOSED
        state.breaker.record_success(now)
        if not was_closed and state.breaker.state is BreakerState.CLOSED:
            state.reason = None
            state.recover_at = None

    def reactivate(self, ref: str, now: float, how: str, events: list) -> None:
        state = self.states[ref]
        if state.breaker.state is BreakerState.CLOSED and ref not in self._announced_down:
            return
        state.breaker.reset(now)
        state.reason = None
        state.recover_at = None
        state.consecutive_failures = 0  # or the retry limit would trip again on the next look
        state.failure_streak = {}
        self._announced_down.discard(ref)
        events.append(ModelRecovered(at=now, pool=self.name, model=ref, how=how))

    def quota_reset_at(self, provider: ProviderRuntime, now: float) -> float | None:
        schedule = provider.config.quota_reset_schedule or self.config.rotation.recovery.quota_reset_schedule
        if schedule in (None, "rolling"):
            return None
        return next_quota_reset(now, schedule)

    def snapshot(self, now: float, providers: Mapping[str, ProviderRuntime], events: list) -> list[dict[str, Any]]:
        rows = []
        for model in self.members:
            state = self.states[model.ref]
            provider = providers[model.provider]
            block = None if not provider.config.enabled else self.model_block(model.ref, now, providers, events)
            rows.append(
                {
                    "model": model.ref,
                    "status": "active" if block is None else "standby",
                    "breaker": state.breaker.state.value,
                    "reason": (state.reason.value if state.reason else provider.reason) if block is not None else None,
                    "until": None if block in (None, float("inf")) else block,
                    "requests": state.total_requests,
                    "failures": state.total_failures,
                    "success_rate": round(state.window.success_rate(now), 4),
                    "avg_latency": round(state.window.average(now), 6),
                    "tokens": state.tokens_used,
                    "cost": round(state.cost, 6),
                }
            )
        return rows


def _ranks_on_order_alone(strategy: Any) -> bool:
    """True for built-in strategies that rank by configured order, names and their own
    state only, never by a candidate's health, cost or rate-limit figures."""
    if isinstance(strategy, Priority):
        return _ranks_on_order_alone(strategy.fallback)
    return type(strategy) in (StickUntilFailure, RoundRobin, SessionSticky)
