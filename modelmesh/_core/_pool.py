"""Providers, models and capability pools as the router sees them.

A `ProviderRuntime` is one configured provider: its codec, its key ring (`_keys.KeyRing`:
the keys, never printed, and which one is in use) and the `Target` of each of its models,
built once per key in use.

A `Pool` is a set of models that can serve one kind of request, with its own selection
strategy and rotation policies. Neither holds health: whether a member is up, and why,
lives in the health owner (`_health.Health`), which reads a pool's policies from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ._capabilities import serves
from ._keys import KeyRing
from ._policies import AnyOf, BudgetLimit, ErrorRate, PolicySet, RequestLimit, RetryLimit, TokenLimit, build_policies
from ._selection import Candidate, Priority, RoundRobin, SelectionContext, SessionSticky, StickUntilFailure, build_strategy
from .codecs._base import Target

if TYPE_CHECKING:
    from ._config_schema import ModelConfig, PoolConfig, ProviderConfig
    from .codecs._base import Codec

__all__ = ["ModelInfo", "ProviderRuntime", "Pool"]


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
    prefill: bool = False  # continues a trailing assistant message (a broken stream resumes from it)

    @classmethod
    def from_config(cls, provider: str, cfg: ModelConfig, *, prefill: bool = False) -> ModelInfo:
        """`prefill`: the connector's default, for a model whose configuration does not say."""
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
            prefill=prefill if cfg.prefill is None else cfg.prefill,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6 + self.per_request

    @property
    def cost_per_1k(self) -> float:
        return (self.input_per_1m + self.output_per_1m) / 2000.0


class ProviderRuntime:
    """One provider: codec and credentials."""

    def __init__(self, config: ProviderConfig, codec: Codec, api_key: str | None | Sequence[str]) -> None:
        self.id = config.id
        self.config = config
        self.codec = codec
        self.keys = KeyRing(config.id, [api_key] if isinstance(api_key, str) else list(api_key or ()))
        self._targets: dict[str, Target] = {}
        self._version = 0  # the key ring's version the cached targets were built with

    def __repr__(self) -> str:
        return f"ProviderRuntime(id={self.id!r}, connector={self.config.connector!r})"

    def target(self, model: ModelInfo) -> Target:
        # a Target depends on configuration and the key in use, so each model's is built once per key
        if self._version != self.keys.version:
            self._targets, self._version = {}, self.keys.version
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
            api_key=self.keys.key,
            headers=dict(cfg.headers),
            api_version=cfg.api_version,
            deployment=model.deployment or cfg.deployment,
            options=dict(cfg.options),
        )

    def bare_target(self) -> Target:
        """A target for provider-wide calls (a probe of a provider that lists no models)."""
        return self._build_target(ModelInfo(ref=f"{self.id}/-", provider=self.id, model="-", capabilities=()))

    @property
    def secret(self) -> str | None:
        return self.keys.key

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.keys.values()


class Pool:
    """A capability pool: members, selection strategy and rotation policies."""

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
        self.timed = AnyOf(*timed) if timed else None
        self.order_only = _ranks_on_order_alone(self.strategy)
        # what an order-only strategy sees of a member never changes: built once, shared (frozen)
        self.plain = tuple(Candidate(ref=m.ref, provider=m.provider, model=m.model, index=i,
                                     context_window=m.context_window) for i, m in enumerate(self.members))
        self.previous: str | None = None  # the member that served this pool's last request
        self._unfit: dict[str, frozenset[str]] = {}
        self._budget: int | None = None

    def add_member(self, model: ModelInfo) -> None:
        """A model found at run time (discovery) joins: appended, so members keep their index."""
        if model.ref in self.by_ref:
            return
        self.members = (*self.members, model)
        self.by_ref = {**self.by_ref, model.ref: model}
        self.plain = (*self.plain, Candidate(ref=model.ref, provider=model.provider, model=model.model,
                                             index=len(self.members) - 1, context_window=model.context_window))
        self._unfit = {}
        self._budget = None

    def replace_member(self, model: ModelInfo) -> None:
        """A member's facts changed (prices from its provider's listing): same place, new facts."""
        old = self.by_ref.get(model.ref)
        if old is None:
            return
        index = self.members.index(old)
        self.members = (*self.members[:index], model, *self.members[index + 1:])
        self.by_ref = {**self.by_ref, model.ref: model}
        if model.context_window != old.context_window:
            self.plain = (*self.plain[:index], Candidate(ref=model.ref, provider=model.provider, model=model.model,
                                                         index=index, context_window=model.context_window),
                          *self.plain[index + 1:])

    def attempt_budget(self, providers: Mapping[str, ProviderRuntime]) -> int:
        """Attempts a request may make: by default every member gets a try plus its same-model
        retries (the request's deadline bounds it all). Fixed by configuration: computed once."""
        if self._budget is None:
            retry = self.config.retry
            retries = max([retry.same_model_retries, *(providers[m.provider].config.max_retries for m in self.members)])
            self._budget = retry.max_attempts or len(self.members) * (1 + retries)
        return self._budget

    def unfit(self, op: str) -> frozenset[str]:
        """The members whose capabilities do not take `op` requests (worked out once per op)."""
        found = self._unfit.get(op)
        if found is None:
            found = self._unfit[op] = frozenset(m.ref for m in self.members if not serves(m.capabilities, op))
        return found

    def __repr__(self) -> str:
        return f"Pool(name={self.name!r}, models={[m.ref for m in self.members]!r})"

    def context(self, now: float, rng: Any, options: Any, *, excluded: frozenset[str] = frozenset(),
                min_context: int | None = None) -> SelectionContext:
        """What the strategy is told about a request for this pool (options: RoutingOptions)."""
        return SelectionContext(now=now, rng=rng, session_id=options.session_id,
                                preferred_provider=options.preferred_provider, previous=self.previous,
                                excluded=excluded, min_context=min_context, metadata=options.metadata)


def _ranks_on_order_alone(strategy: Any) -> bool:
    """True for built-in strategies that rank by configured order, names and their own
    state only, never by a candidate's health, cost or rate-limit figures."""
    if isinstance(strategy, Priority):
        return _ranks_on_order_alone(strategy.fallback)
    return type(strategy) in (StickUntilFailure, RoundRobin, SessionSticky)
