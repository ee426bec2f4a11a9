"""Selection strategies: which ACTIVE model of a pool serves the next request.

Theory of operation
-------------------
The core hands a strategy a snapshot of the pool's active models (`Candidate`, a frozen
view it builds from health, rate-limit and pricing state) and a `SelectionContext` (the
time, an injected `random.Random`, the request's hints and the refs it already tried).
The strategy answers with a full preference order, `rank()`: the first model is the one
to call, the rest is the fallback chain. `select()` is `rank()[0]` (None if nothing is left).

Every built-in strategy (a `BaseStrategy`) works in three steps:

1. eligibility (`eligible_candidates`): drop refs already tried in this request and models
   whose known context window is smaller than needed; sort the rest by configured `index`.
   Every later sort is stable, so `index` breaks every tie.
2. order (`order()`): the strategy's own rule. It never changes the strategy's state (it may
   draw from `ctx.rng`). Then `ctx.preferred_provider`, a caller's hint, moves that
   provider's models to the front, each group keeping the strategy's order.
3. commit (`commit()`): stateful strategies (round-robin's cursor, load-balanced's smooth
   weights, session-sticky's memory) record what was actually put first.

`preview()` runs steps 1-2 only: for `modelmesh explain`, and for `priority`, which orders
its leftovers by another strategy and commits to it only when that strategy's pick serves.

Threading and determinism: a strategy object with state is not thread-safe. The core owns
it and calls it under its lock, once per routed request (one `rank()` *or* one `select()`,
not both). Given the same sequence of calls and the same rng seed, every strategy makes the
same choices, so a recorded session replays exactly.

`score(candidate, ctx)` is the number reported in the RoutingDecision, higher is better:
order-based strategies (stick-until-failure, priority, round-robin, session-sticky) report
the candidate's health score (EWMA from the rolling window); the others report the
quantity they rank on, as documented on each class.

A user strategy is a plain callable `(candidates, ctx) -> Candidate | ref | None` or an
object with `select` and/or `rank` (and optionally `score`); `as_strategy()` wraps it. It
receives the eligible candidates only, and what it returns is checked to be one of them.
"""
from __future__ import annotations

import abc
import bisect
import difflib
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from ._types import Rng

__all__ = [
    "Candidate",
    "SelectionContext",
    "SelectionStrategy",
    "BaseStrategy",
    "UserStrategy",
    "StickUntilFailure",
    "Priority",
    "RoundRobin",
    "CostFirst",
    "LatencyFirst",
    "SessionSticky",
    "RateLimitAware",
    "LoadBalanced",
    "STRATEGIES",
    "DEFAULT_STRATEGY",
    "eligible_candidates",
    "as_strategy",
    "build_strategy",
    "is_builtin_strategy",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A snapshot of one ACTIVE model of a pool, as selection sees it."""

    ref: str                 # "provider/model-id" (the model id may contain dots and slashes)
    provider: str
    model: str
    index: int               # position in the pool's configured order (0 = first)
    cost_per_1k: float = 0.0         # blended USD per 1k tokens; 0 = unknown or free
    latency: float | None = None     # rolling average seconds; None = no data
    success_rate: float = 1.0
    score: float = 0.0               # health score from the rolling window (EWMA)
    requests_last_minute: int = 0
    last_used: float | None = None   # timestamp of the last request sent to it
    remaining_requests: int | None = None   # from rate-limit headers
    limit_requests: int | None = None
    remaining_tokens: int | None = None
    limit_tokens: int | None = None
    rate_reset_at: float | None = None      # timestamp when the provider's window resets
    known_rpm: int | None = None            # configured requests-per-minute limit
    context_window: int | None = None
    in_flight: int = 0

    def __post_init__(self) -> None:
        if not self.provider or not self.model or self.ref != f"{self.provider}/{self.model}":
            raise ValueError(
                f"Candidate.ref must be 'provider/model', got ref={self.ref!r} "
                f"provider={self.provider!r} model={self.model!r}"
            )
        problems = [
            name
            for name, ok in (
                ("index", self.index >= 0),
                ("cost_per_1k", math.isfinite(self.cost_per_1k) and self.cost_per_1k >= 0),
                ("latency", self.latency is None or self.latency >= 0),  # NaN fails too
                ("requests_last_minute", self.requests_last_minute >= 0),
                ("in_flight", self.in_flight >= 0),
            )
            if not ok
        ]
        if problems:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in problems)
            raise ValueError(f"Candidate {self.ref!r}: expected non-negative {values}")

    @classmethod
    def of(cls, ref: str, index: int, **fields: Any) -> Candidate:
        """Build a candidate from its ref, splitting provider and model at the first slash."""
        provider, sep, model = ref.partition("/") if isinstance(ref, str) else ("", "", "")
        if not sep:
            raise ValueError(f"expected a model reference like 'provider/model-id', got {ref!r}")
        return cls(ref=ref, provider=provider, model=model, index=index, **fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionContext:
    """What a strategy knows about the request being routed."""

    now: float
    rng: Rng          # injected, so that choices replay from a seed
    session_id: str | None = None
    preferred_provider: str | None = None
    previous: str | None = None  # ref that served this pool's previous request
    excluded: frozenset[str] = frozenset()   # refs already tried in this request
    min_context: int | None = None           # needed context window in tokens; None = any
    metadata: Mapping[str, Any] = field(default_factory=dict)


class SelectionStrategy(Protocol):
    """What the core calls. Built-ins and `as_strategy()` wrappers all satisfy it."""

    def select(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> Candidate | None: ...

    def rank(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> list[Candidate]: ...

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float: ...


def eligible_candidates(candidates: Iterable[Candidate], ctx: SelectionContext) -> list[Candidate]:
    """The candidates a strategy may choose from, in configured (`index`) order."""
    pool = list(candidates)
    refs = [c.ref for c in pool]
    if len(set(refs)) != len(refs):
        dupes = sorted({r for r in refs if refs.count(r) > 1})
        raise ValueError(f"duplicate candidates: {', '.join(dupes)}")
    need, excluded = ctx.min_context, ctx.excluded
    if need is None and not excluded:
        kept = pool
    else:
        kept = [c for c in pool if c.ref not in excluded
                and (need is None or c.context_window is None or c.context_window >= need)]
    kept.sort(key=_by_index)  # already in order, as the core gives them: one linear pass
    return kept


def _by_index(c: Candidate) -> tuple[int, str]:
    return c.index, c.ref


def _to_front(pool: Sequence[Candidate], wanted: Callable[[Candidate], bool]) -> list[Candidate]:
    """Stable partition: the wanted ones first, each group in its given order."""
    return [c for c in pool if wanted(c)] + [c for c in pool if not wanted(c)]


class BaseStrategy(abc.ABC):
    """Filtering, the preferred-provider hint and the rank/select/commit protocol.

    Subclasses implement `order()` (pure with respect to the strategy's state) and, if they
    keep state, `commit()`.
    """

    name: str = ""

    @abc.abstractmethod
    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        """Order a non-empty, index-sorted, already filtered pool; must be a permutation."""

    def commit(self, chosen: Candidate, pool: Sequence[Candidate], ctx: SelectionContext) -> None:  # noqa: B027 - optional hook
        """Record that `chosen` (a member of `pool`) was put first. Stateless by default."""

    def preview(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> list[Candidate]:
        """The preference order, without touching the strategy's state."""
        pool = eligible_candidates(candidates, ctx)
        if not pool:
            return []
        ordered = self.order(pool, ctx)
        if ctx.preferred_provider is not None:
            ordered = _to_front(ordered, lambda c: c.provider == ctx.preferred_provider)
        return ordered

    def rank(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> list[Candidate]:
        ordered = self.preview(candidates, ctx)
        if not ordered:
            return ordered
        if ctx.preferred_provider is not None and ordered[0].provider == ctx.preferred_provider:
            # a hint is for its own request: when it, not the strategy, chose, the strategy's state
            # (a rotation's cursor) stays where the next unhinted request expects it
            natural = self.preview(candidates, replace(ctx, preferred_provider=None))
            if not natural or natural[0] is not ordered[0]:
                return ordered
        self.commit(ordered[0], ordered, ctx)
        return ordered

    def select(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> Candidate | None:
        ordered = self.rank(candidates, ctx)
        return ordered[0] if ordered else None

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        """Default: the candidate's health score."""
        return candidate.score

    @classmethod
    def from_config(cls, cfg: Any, build: Callable[[str], BaseStrategy]) -> BaseStrategy:
        """Build from a duck-typed `rotation.selection` config; `build` resolves other names."""
        return cls()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class UserStrategy(BaseStrategy):
    """Adapts a user's callable or select/rank/score object to the strategy protocol.

    The user code sees only eligible candidates and gets `ctx` unchanged; the
    preferred-provider hint is theirs to honour. It may return a `Candidate` or a ref
    string; None from `select`/the callable means "none of these", and ranks empty.
    """

    def __init__(self, impl: Any) -> None:
        self._impl = impl
        self.name = str(getattr(impl, "name", None) or getattr(impl, "__name__", type(impl).__name__))

    def preview(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> list[Candidate]:
        pool = eligible_candidates(candidates, ctx)
        return self.order(pool, ctx) if pool else []

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        rank = getattr(self._impl, "rank", None)
        if callable(rank):
            ordered: list[Candidate] = []
            for item in rank(pool, ctx):
                member = self._member(item, pool)
                if member is not None and member not in ordered:
                    ordered.append(member)
            return ordered
        chosen = self._member(self._choose(pool, ctx), pool)
        return [] if chosen is None else _to_front(pool, lambda c: c is chosen)

    def select(self, candidates: Sequence[Candidate], ctx: SelectionContext) -> Candidate | None:
        pool = eligible_candidates(candidates, ctx)
        if not pool:
            return None
        if callable(getattr(self._impl, "select", None)) or not callable(getattr(self._impl, "rank", None)):
            return self._member(self._choose(pool, ctx), pool)
        ordered = self.order(pool, ctx)
        return ordered[0] if ordered else None

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        score = getattr(self._impl, "score", None)
        return float(score(candidate, ctx)) if callable(score) else candidate.score

    def _choose(self, pool: list[Candidate], ctx: SelectionContext) -> Any:
        select = getattr(self._impl, "select", None)
        return select(pool, ctx) if callable(select) else self._impl(pool, ctx)

    def _member(self, item: Any, pool: Sequence[Candidate]) -> Candidate | None:
        if item is None:
            return None
        if isinstance(item, Candidate):
            ref = item.ref
        elif isinstance(item, str):
            ref = item
        else:
            raise TypeError(
                f"selection strategy {self.name!r} returned {type(item).__name__}; "
                "expected a Candidate, a 'provider/model' ref or None"
            )
        for c in pool:
            if c.ref == ref:
                return c
        raise ValueError(
            f"selection strategy {self.name!r} chose {ref!r}, which is not an eligible "
            f"candidate ({', '.join(c.ref for c in pool)})"
        )


class StickUntilFailure(BaseStrategy):
    """Keep the model that served the previous request while it is a candidate; otherwise
    the first in configured order. Score: health."""

    name = "stick-until-failure"

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        return _to_front(pool, lambda c: c.ref == ctx.previous)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"rotation.selection.{what}: expected a list of names, got {value!r}")
    return tuple(value)


class Priority(BaseStrategy):
    """`model_priority` first (entries are refs or bare model ids; an exact ref beats a bare
    id at the same position), then `provider_priority`, then the rest in the fallback
    strategy's order, which also breaks ties inside a tier. Score: health."""

    name = "priority"

    def __init__(
        self,
        model_priority: Sequence[str] = (),
        provider_priority: Sequence[str] = (),
        fallback: Any = None,
    ) -> None:
        self.model_priority = _names(model_priority, "model_priority")
        self.provider_priority = _names(provider_priority, "provider_priority")
        self.fallback = StickUntilFailure() if fallback is None else as_strategy(fallback)
        self._tiers: dict[str, tuple[int, int, int]] = {}
        if isinstance(self.fallback, Priority):
            raise ValueError("rotation.selection.fallback_strategy: priority cannot fall back to priority")

    def _tier(self, c: Candidate) -> tuple[int, int, int]:
        # a pure function of the ref (and the model and provider it names): worked out once
        tier = self._tiers.get(c.ref)
        if tier is None:
            tier = self._tiers[c.ref] = self._work_out_tier(c)
        return tier

    def _work_out_tier(self, c: Candidate) -> tuple[int, int, int]:
        model_pos, exact = len(self.model_priority), 0
        for i, entry in enumerate(self.model_priority):
            if entry in (c.ref, c.model):
                model_pos, exact = i, int(entry != c.ref)
                break
        provider_pos = len(self.provider_priority)
        if c.provider in self.provider_priority:
            provider_pos = self.provider_priority.index(c.provider)
        return model_pos, exact, provider_pos

    def _unlisted(self, c: Candidate) -> bool:
        return self._tier(c) == (len(self.model_priority), 0, len(self.provider_priority))

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        fallback = self.fallback.preview(pool, ctx)
        # a user fallback may leave some out; they still belong in the chain, in index order
        seen = {c.ref for c in fallback}
        fallback += [c for c in pool if c.ref not in seen]
        position = {c.ref: i for i, c in enumerate(fallback)}
        return sorted(pool, key=lambda c: (self._tier(c), position[c.ref]))

    def commit(self, chosen: Candidate, pool: Sequence[Candidate], ctx: SelectionContext) -> None:
        # the fallback's state moves only when its own pick is the one that serves
        if self._unlisted(chosen):
            self.fallback.commit(chosen, [c for c in pool if self._unlisted(c)], ctx)

    @classmethod
    def from_config(cls, cfg: Any, build: Callable[[str], BaseStrategy]) -> BaseStrategy:
        fallback_name = _attr(cfg, "fallback_strategy", DEFAULT_STRATEGY)
        if isinstance(fallback_name, str) and _normalize(fallback_name) == cls.name:
            raise ValueError("rotation.selection.fallback_strategy: priority cannot fall back to priority")
        return cls(
            model_priority=_attr(cfg, "model_priority", ()),
            provider_priority=_attr(cfg, "provider_priority", ()),
            fallback=build(fallback_name) if isinstance(fallback_name, str) else fallback_name,
        )


class RoundRobin(BaseStrategy):
    """Cycle over the candidates in configured order, resuming after the last one put
    first; a model that is away is skipped, not waited for. Score: health."""

    name = "round-robin"

    def __init__(self) -> None:
        self._last: tuple[int, str] | None = None   # (index, ref) of the last pick

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        last = self._last
        start = 0 if last is None else next((i for i, c in enumerate(pool) if (c.index, c.ref) > last), 0)
        return pool[start:] + pool[:start]

    def commit(self, chosen: Candidate, pool: Sequence[Candidate], ctx: SelectionContext) -> None:
        self._last = (chosen.index, chosen.ref)


class CostFirst(BaseStrategy):
    """Cheapest blended price first; 0.0 (free or unknown) counts as cheapest.
    Score: 1 / (1 + cost_per_1k), 1.0 for free."""

    name = "cost-first"

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        return sorted(pool, key=lambda c: c.cost_per_1k)

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        return 1.0 / (1.0 + candidate.cost_per_1k)


def _measured_latency(candidate: Candidate) -> float:
    """Sort key for candidates already known to have a latency."""
    assert candidate.latency is not None
    return candidate.latency


class LatencyFirst(BaseStrategy):
    """Fastest rolling-average latency first; models without data after all measured ones
    (index order when none is measured). So that new models get measured, with probability
    `explore` (one `ctx.rng.random()` draw, only when measured and unmeasured models are
    both present) the first unmeasured model goes first. Score: 1 / (1 + latency), 0.0
    without data."""

    name = "latency-first"

    def __init__(self, explore: float = 0.1) -> None:
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"latency-first: explore must be between 0 and 1, got {explore!r}")
        self.explore = explore

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        known = sorted((c for c in pool if c.latency is not None), key=_measured_latency)
        unknown = [c for c in pool if c.latency is None]
        if known and unknown and ctx.rng.random() < self.explore:
            return unknown[:1] + known + unknown[1:]
        return known + unknown

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        return 0.0 if candidate.latency is None else 1.0 / (1.0 + candidate.latency)


def _affinity(session_id: str, ref: str) -> int:
    # a stable hash (Python's hash() is salted per process), so that every worker agrees
    digest = hashlib.blake2b(f"{session_id}\x00{ref}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class SessionSticky(BaseStrategy):
    """The same session lands on the same model while that model is available.

    Rendezvous (highest-random-weight) hashing of (session, ref): each session has a fixed
    preference over all models, so a model leaving moves only its own sessions, and every
    worker computes the same mapping without sharing state. On top, the strategy remembers
    (bounded LRU of `max_sessions`) where each session last went, so a session that moved
    while its model was away stays where it is when that model returns instead of
    switching back mid-conversation. Without a session id: configured order. The fallback
    chain is the session's hash preference. Score: health.
    """

    name = "session-sticky"

    def __init__(self, max_sessions: int = 10_000) -> None:
        if max_sessions < 1:
            raise ValueError(f"session-sticky: max_sessions must be at least 1, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self._memory: OrderedDict[str, str] = OrderedDict()

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        session = ctx.session_id
        if session is None:
            return list(pool)
        by_hash = sorted(pool, key=lambda c: -_affinity(session, c.ref))
        remembered = self._memory.get(session)
        return _to_front(by_hash, lambda c: c.ref == remembered)

    def commit(self, chosen: Candidate, pool: Sequence[Candidate], ctx: SelectionContext) -> None:
        if ctx.session_id is None:
            return
        self._memory[ctx.session_id] = chosen.ref
        self._memory.move_to_end(ctx.session_id)
        if len(self._memory) > self.max_sessions:
            self._memory.popitem(last=False)


def _spent(remaining: int | None, limit: int | None) -> float:
    if remaining is None or limit is None or limit <= 0:
        return 0.0
    return 1.0 - remaining / limit


class RateLimitAware(BaseStrategy):
    """Stay clear of rate limits.

    usage = max(1 - remaining/limit for requests and for tokens (ignored once
    `rate_reset_at` has passed: the window reset, the counts are stale),
    requests_last_minute / the stricter of `max_rpm` and the model's `known_rpm`).
    Order: models under `threshold` and not used in the last `min_delta` seconds, most
    headroom first; then the ones used too recently, least recently used first; then the
    ones at or over the threshold, soonest `rate_reset_at` first. Score: 1 - usage, at least 0.
    """

    name = "rate-limit-aware"

    def __init__(self, threshold: float = 0.9, min_delta: float = 0.0, max_rpm: int | None = None) -> None:
        if not (0.0 < threshold <= 1.0):
            raise ValueError(f"rotation.selection.rate_limit.threshold: expected 0 < x <= 1, got {threshold!r}")
        if not (min_delta >= 0.0 and math.isfinite(min_delta)):
            raise ValueError(f"rotation.selection.rate_limit.min_delta: expected seconds >= 0, got {min_delta!r}")
        if max_rpm is not None and (isinstance(max_rpm, bool) or not isinstance(max_rpm, int) or max_rpm < 1):
            raise ValueError(f"rotation.selection.rate_limit.max_rpm: expected a positive integer, got {max_rpm!r}")
        self.threshold, self.min_delta, self.max_rpm = threshold, min_delta, max_rpm

    def usage(self, c: Candidate, now: float) -> float:
        """The fraction of its tightest limit this candidate has used (may exceed 1)."""
        fractions = [0.0]
        if c.rate_reset_at is None or now < c.rate_reset_at:
            fractions += [_spent(c.remaining_requests, c.limit_requests), _spent(c.remaining_tokens, c.limit_tokens)]
        rpm_limits = [x for x in (self.max_rpm, c.known_rpm) if x is not None and x > 0]
        if rpm_limits:
            fractions.append(c.requests_last_minute / min(rpm_limits))
        return max(fractions)

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        def key(c: Candidate) -> tuple[int, float, float]:
            used = self.usage(c, ctx.now)
            if used >= self.threshold:
                return 2, math.inf if c.rate_reset_at is None else c.rate_reset_at, used
            if c.last_used is not None and ctx.now - c.last_used < self.min_delta:
                return 1, c.last_used, used
            return 0, used, 0.0

        return sorted(pool, key=key)

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        return max(0.0, 1.0 - self.usage(candidate, ctx.now))

    @classmethod
    def from_config(cls, cfg: Any, build: Callable[[str], BaseStrategy]) -> BaseStrategy:
        limits = _attr(cfg, "rate_limit", None)
        return cls(
            threshold=_attr(limits, "threshold", 0.9),
            min_delta=_attr(limits, "min_delta", 0.0),
            max_rpm=_attr(limits, "max_rpm", None),
        )


class LoadBalanced(BaseStrategy):
    """Spread traffic by `weights` (keyed by ref or bare model id, default 1.0).

    "absolute": weights are target shares, met exactly and smoothly by nginx's smooth
    weighted round-robin (every live model gains its weight, the one put first pays the
    total), deterministic without rng. "relative": a weighted random choice with
    `ctx.rng`, the fallback chain a weighted random order without replacement. A zero
    weight is never chosen unless only zero-weight models remain (then configured order).
    Score: the candidate's weight.
    """

    name = "load-balanced"

    def __init__(self, weights: Mapping[str, float] | None = None, balance_mode: str = "absolute") -> None:
        if balance_mode not in ("absolute", "relative"):
            raise ValueError(
                f"rotation.selection.balance_mode: expected 'absolute' or 'relative', got {balance_mode!r}"
            )
        weights = dict(weights or {})
        bad = {k: w for k, w in weights.items() if not (isinstance(w, (int, float)) and 0 <= w < math.inf)}
        if bad:
            raise ValueError(f"rotation.selection.weights: expected finite numbers >= 0, got {bad!r}")
        self.weights, self.balance_mode = weights, balance_mode
        self._current: dict[str, float] = {}

    def weight(self, c: Candidate) -> float:
        w = self.weights.get(c.ref)
        return float(self.weights.get(c.model, 1.0) if w is None else w)

    def order(self, pool: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        live = [c for c in pool if self.weight(c) > 0]
        idle = [c for c in pool if self.weight(c) <= 0]
        if self.balance_mode == "absolute":
            live.sort(key=lambda c: -(self._current.get(c.ref, 0.0) + self.weight(c)))
        else:
            live = self._weighted_shuffle(live, ctx.rng)
        return live + idle

    def _weighted_shuffle(self, live: list[Candidate], rng: Rng) -> list[Candidate]:
        rest, out = list(live), []
        while len(rest) > 1:
            cumulative, total = [], 0.0
            for c in rest:
                total += self.weight(c)
                cumulative.append(total)
            i = bisect.bisect_right(cumulative, rng.random() * total)
            out.append(rest.pop(min(i, len(rest) - 1)))  # min(): float rounding at the top end
        return out + rest

    def commit(self, chosen: Candidate, pool: Sequence[Candidate], ctx: SelectionContext) -> None:
        if self.balance_mode != "absolute" or self.weight(chosen) <= 0:
            return
        live = [c for c in pool if self.weight(c) > 0]
        for c in live:
            self._current[c.ref] = self._current.get(c.ref, 0.0) + self.weight(c)
        self._current[chosen.ref] -= sum(self.weight(c) for c in live)

    def score(self, candidate: Candidate, ctx: SelectionContext) -> float:
        return self.weight(candidate)

    @classmethod
    def from_config(cls, cfg: Any, build: Callable[[str], BaseStrategy]) -> BaseStrategy:
        return cls(weights=_attr(cfg, "weights", None), balance_mode=_attr(cfg, "balance_mode", "absolute"))


STRATEGIES: Mapping[str, type[BaseStrategy]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            StickUntilFailure,
            Priority,
            RoundRobin,
            CostFirst,
            LatencyFirst,
            SessionSticky,
            RateLimitAware,
            LoadBalanced,
        )
    }
)
DEFAULT_STRATEGY = StickUntilFailure.name


def _attr(obj: Any, name: str, default: Any) -> Any:
    value = getattr(obj, name, None)
    return default if value is None else value


def is_builtin_strategy(name: str) -> bool:
    """Whether `name` names a built-in strategy (case and `_`/`-` insensitive)."""
    return _normalize(name) in STRATEGIES


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def as_strategy(obj: Any) -> BaseStrategy:
    """Accept a strategy object or a plain `(candidates, ctx)` callable wherever one is due."""
    if isinstance(obj, BaseStrategy):
        return obj
    if isinstance(obj, type):
        raise TypeError(f"expected a selection strategy instance, got the class {obj.__name__}")
    if callable(obj) or callable(getattr(obj, "select", None)) or callable(getattr(obj, "rank", None)):
        return UserStrategy(obj)
    raise TypeError(
        "a selection strategy is a callable (candidates, ctx) -> Candidate | None or an object "
        f"with select()/rank(); got {type(obj).__name__}"
    )


def build_strategy(
    name: Any,
    selection_cfg: Any = None,
    *,
    user_strategies: Mapping[str, Any] | None = None,
) -> BaseStrategy:
    """The strategy a pool's `strategy:` names, configured from its `rotation.selection`.

    `name` is a built-in name (case and `_`/`-` insensitive), a key of `user_strategies`
    (exact), or already a strategy/callable. User names may not shadow built-ins.
    """
    if not isinstance(name, str):
        return as_strategy(name)
    users = dict(user_strategies or {})
    clash = sorted(set(users) & set(STRATEGIES))
    if clash:
        raise ValueError(f"user selection strategies may not reuse built-in names: {', '.join(clash)}")
    if name in users:
        return as_strategy(users[name])
    cls = STRATEGIES.get(_normalize(name))
    if cls is None:
        valid = [*STRATEGIES, *sorted(users)]
        close = difflib.get_close_matches(_normalize(name), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown selection strategy {name!r}{hint}; valid names: {', '.join(valid)}")
    return cls.from_config(selection_cfg, lambda other: build_strategy(other, selection_cfg, user_strategies=users))
