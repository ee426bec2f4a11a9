"""Rotation policies: when a model goes to standby, and when it may come back.

Theory of operation. A *deactivation policy* looks at a model's `ModelState` at `now`
and answers `should_deactivate(state, now) -> Deactivation | None`: a decision carrying
its reason, a human detail and, when the policy knows it, the time the standby ends.
A *recovery policy* answers `recover_at(state, decision, now) -> float | None`: when a
model deactivated for `decision` may get a trial request again. `None` means "no time
from me" (a chain asks the next policy; at the end it means "not by time"), and
`float("inf")` means "never by time", which ends a chain: only a probe or a person
brings the model back. A recovery policy may also ask for probes (`probe_due`).

Policies are small objects with one method, composed with `|` (`RetryLimit(3) |
ErrorRate(0.5)`; `OnQuotaReset() | Cooldown(60)`), and a plain function is accepted
wherever a policy is: `fn(state, now)` for deactivation, `fn(state, decision, now)` for
recovery. `AnyOf` returns the first decision of its members, `FirstOf` the first
recovery time.

The caller (the pool) applies a decision by tripping the model's breaker until
`decision.until`, or else until `recovery.recover_at(...)`; the breaker keeps the
later of two deadlines, so re-deactivating extends a standby and never shortens it.

Limits (`RequestLimit`, `TokenLimit`, `BudgetLimit`) read the state's period counters.
Alone they are lifetime caps: the standby lasts until a probe or a person lifts it.
Inside `QuotaWindow("daily" | "monthly")` the counters start afresh at each period
boundary and the standby lasts until the next one.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, Protocol, Union

from ._breaker import BreakerState
from ._cron import CronSchedule, next_quota_reset
from ._types import QUOTA_REASONS, DeactivationReason

if TYPE_CHECKING:
    from ._state import ModelState

__all__ = [
    "DeactivationReason",
    "Deactivation",
    "DeactivationPolicy",
    "RecoveryPolicy",
    "RetryLimit",
    "ErrorRate",
    "RequestLimit",
    "TokenLimit",
    "BudgetLimit",
    "QuotaWindow",
    "Maintenance",
    "AnyOf",
    "Cooldown",
    "OnQuotaReset",
    "Manual",
    "Probe",
    "FirstOf",
    "as_deactivation_policy",
    "as_recovery_policy",
    "build_policies",
    "PolicySet",
    "QUOTA_REASONS",
]

_INF = float("inf")


@dataclass(frozen=True, slots=True, kw_only=True)
class Deactivation:
    """A decision to put a model on standby. `until`: None = recovery decides, inf = not by time."""

    reason: DeactivationReason
    detail: str = ""
    until: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reason, DeactivationReason):
            raise TypeError(f"Deactivation.reason must be a DeactivationReason, got {self.reason!r}")
        if self.until is not None and (isinstance(self.until, bool) or not isinstance(self.until, (int, float))
                                       or math.isnan(self.until)):
            raise ValueError(f"Deactivation.until must be a timestamp or None, got {self.until!r}")


class DeactivationPolicy(Protocol):
    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None: ...


class RecoveryPolicy(Protocol):
    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None: ...


DeactivationLike = Union[DeactivationPolicy, Callable[["ModelState", float], "Deactivation | None"]]
RecoveryLike = Union[RecoveryPolicy, Callable[["ModelState", Deactivation, float], "float | None"]]


# -- deactivation -------------------------------------------------------------------------------
class _Deactivator(abc.ABC):
    """Base of the built-in deactivation policies: `a | b` composes them."""

    __slots__ = ()

    @abc.abstractmethod
    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        """The DeactivationPolicy method; every built-in policy defines its own."""

    def __or__(self, other: DeactivationLike) -> AnyOf:
        return AnyOf(self, other)

    def __ror__(self, other: DeactivationLike) -> AnyOf:
        return AnyOf(other, self)


class _FunctionDeactivation(_Deactivator):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[ModelState, float], Deactivation | None]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return f"deactivation({getattr(self.fn, '__name__', self.fn)!r})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        decision = self.fn(state, now)
        if decision is not None and not isinstance(decision, Deactivation):
            raise TypeError(f"deactivation policy {self.fn!r} returned {decision!r}, expected a Deactivation or None")
        return decision


def as_deactivation_policy(policy: DeactivationLike) -> DeactivationPolicy:
    """A policy object as is; a plain function `fn(state, now)` wrapped into one."""
    if hasattr(policy, "should_deactivate"):
        return policy
    if callable(policy):
        return _FunctionDeactivation(policy)
    raise TypeError(f"expected a deactivation policy or a function (state, now), got {policy!r}")


class AnyOf(_Deactivator):
    """The first decision of its members, in order; none when no member decides."""

    __slots__ = ("policies",)
    policies: tuple[DeactivationPolicy, ...]

    def __init__(self, *policies: DeactivationLike) -> None:
        flat: list[DeactivationPolicy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, AnyOf) else [as_deactivation_policy(policy)])
        self.policies = tuple(flat)

    def __repr__(self) -> str:
        return f"AnyOf{self.policies!r}"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        for policy in self.policies:
            decision = policy.should_deactivate(state, now)
            if decision is not None:
                return decision
        return None


class RetryLimit(_Deactivator):
    """`n` consecutive failures. With `error_codes`, only failures with one of those statuses,
    or with no status at all (timeouts, connection errors), count."""

    __slots__ = ("n", "error_codes")

    def __init__(self, n: int, error_codes: Collection[int] = ()) -> None:
        self.n = _positive_int("retry_limit", n)
        codes = tuple(error_codes)
        if any(isinstance(c, bool) or not isinstance(c, int) for c in codes):
            raise ValueError(f"error_codes must be HTTP status integers, got {codes!r}")
        self.error_codes = frozenset(codes)

    def __repr__(self) -> str:
        return f"RetryLimit({self.n}, error_codes={sorted(self.error_codes)})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        if not state.consecutive_failures:  # no streak at all (after every success): nothing to count
            return None
        streak = state.streak_count(self.error_codes)
        if streak >= self.n:
            return Deactivation(reason=DeactivationReason.RETRY_LIMIT,
                                detail=f"{streak} consecutive failures (limit {self.n})")
        return None


class ErrorRate(_Deactivator):
    """Error rate over the rolling window at or above `threshold`, once `min_requests` are in it."""

    __slots__ = ("threshold", "min_requests")

    def __init__(self, threshold: float, min_requests: int = 10) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise ValueError(f"error_rate_threshold must be in (0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.min_requests = _positive_int("error_rate_min_requests", min_requests)

    def __repr__(self) -> str:
        return f"ErrorRate({self.threshold}, min_requests={self.min_requests})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        count = state.window.count(now)
        if count < self.min_requests:
            return None
        rate = state.window.error_rate(now)
        if rate >= self.threshold:
            return Deactivation(reason=DeactivationReason.ERROR_RATE,
                                detail=f"error rate {rate:.0%} over {count} requests (threshold {self.threshold:.0%})")
        return None


class _Limit(_Deactivator):
    __slots__ = ("limit",)
    limit: float  # set by each subclass's __init__
    _reason: DeactivationReason
    _what: str
    _counter: str  # the ModelState field it reads

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limit})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        used = getattr(state, self._counter)
        if used >= self.limit:
            # alone, a limit is a lifetime cap: not lifted by time (QuotaWindow sets a period end)
            return Deactivation(reason=self._reason, detail=f"{self._what} {used:g} reached the limit of {self.limit:g}",
                                until=_INF)
        return None


class RequestLimit(_Limit):
    """At most `n` requests (a free-tier cap)."""

    __slots__ = ()
    _reason = DeactivationReason.REQUEST_LIMIT
    _what = "requests"
    _counter = "period_requests"

    def __init__(self, n: int) -> None:
        self.limit = _positive_int("request_limit", n)


class TokenLimit(_Limit):
    """At most `n` tokens."""

    __slots__ = ()
    _reason = DeactivationReason.TOKEN_LIMIT
    _what = "tokens"
    _counter = "period_tokens"

    def __init__(self, n: int) -> None:
        self.limit = _positive_int("token_limit", n)


class BudgetLimit(_Limit):
    """At most `usd` dollars of spend."""

    __slots__ = ()
    _reason = DeactivationReason.BUDGET_LIMIT
    _what = "spend (USD)"
    _counter = "period_cost"

    def __init__(self, usd: float) -> None:
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd) or usd <= 0:
            raise ValueError(f"budget_limit must be a positive number of USD, got {usd!r}")
        self.limit = float(usd)


class QuotaWindow(_Deactivator):
    """Limits counted per period ("daily", "daily_utc", "monthly" or a cron expression):
    counters start afresh at each boundary and a spent limit lasts until the next one."""

    __slots__ = ("period", "limits")

    def __init__(self, period: str, *limits: DeactivationLike) -> None:
        next_quota_reset(0.0, period)  # an unknown period fails here, not at the first request
        self.period = period
        self.limits = AnyOf(*limits)

    def __repr__(self) -> str:
        return f"QuotaWindow({self.period!r}, {', '.join(map(repr, self.limits.policies))})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        state.roll_period(now, self.period)
        decision = self.limits.should_deactivate(state, now)
        if decision is None:
            return None
        return Deactivation(reason=DeactivationReason.QUOTA_WINDOW,
                            detail=f"{decision.detail} in the {self.period} quota period", until=state.period_end)


class Maintenance(_Deactivator):
    """Standby during the `duration` seconds after each match of a cron schedule."""

    __slots__ = ("schedule", "duration")

    def __init__(self, cron: str | CronSchedule, duration: float = 3600.0) -> None:
        self.schedule = cron if isinstance(cron, CronSchedule) else CronSchedule.parse(cron)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"maintenance_duration must be positive seconds, got {duration!r}")
        self.duration = float(duration)

    def __repr__(self) -> str:
        return f"Maintenance({self.schedule.expression!r}, duration={self.duration})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        end = self.schedule.window_end(now, self.duration)
        if end is None:
            return None
        return Deactivation(reason=DeactivationReason.MAINTENANCE,
                            detail=f"maintenance window {self.schedule.expression!r}", until=end)


# -- recovery -----------------------------------------------------------------------------------
class _Recoverer(abc.ABC):
    """Base of the built-in recovery policies: `a | b` composes them."""

    __slots__ = ()

    @abc.abstractmethod
    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        """The RecoveryPolicy method; every built-in policy defines its own."""

    def probe_due(self, state: ModelState, now: float) -> bool:
        return False

    def __or__(self, other: RecoveryLike) -> FirstOf:
        return FirstOf(self, other)

    def __ror__(self, other: RecoveryLike) -> FirstOf:
        return FirstOf(other, self)


class _FunctionRecovery(_Recoverer):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[ModelState, Deactivation, float], float | None]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return f"recovery({getattr(self.fn, '__name__', self.fn)!r})"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        when = self.fn(state, decision, now)
        if when is not None and (isinstance(when, bool) or not isinstance(when, (int, float)) or math.isnan(when)):
            raise TypeError(f"recovery policy {self.fn!r} returned {when!r}, expected a timestamp or None")
        return when


def as_recovery_policy(policy: RecoveryLike) -> RecoveryPolicy:
    """A policy object as is; a plain function `fn(state, decision, now)` wrapped into one."""
    if hasattr(policy, "recover_at"):
        return policy
    if callable(policy):
        return _FunctionRecovery(policy)
    raise TypeError(f"expected a recovery policy or a function (state, decision, now), got {policy!r}")


class FirstOf(_Recoverer):
    """The first recovery time its members give; a probe is due if any member wants one."""

    __slots__ = ("policies",)
    policies: tuple[RecoveryPolicy, ...]

    def __init__(self, *policies: RecoveryLike) -> None:
        flat: list[RecoveryPolicy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, FirstOf) else [as_recovery_policy(policy)])
        self.policies = tuple(flat)

    def __repr__(self) -> str:
        return f"FirstOf{self.policies!r}"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        for policy in self.policies:
            when = policy.recover_at(state, decision, now)
            if when is not None:
                return when
        return None

    def probe_due(self, state: ModelState, now: float) -> bool:
        return any(getattr(p, "probe_due", _never)(state, now) for p in self.policies)


def _never(state: ModelState, now: float) -> bool:
    return False


class Cooldown(_Recoverer):
    """Back after a cooldown (as a half-open trial): `initial` seconds for a first standby,
    doubling for each standby that follows soon after the previous one
    (`state.standby_streak`), up to `seconds`. Without `initial`, always `seconds`."""

    __slots__ = ("seconds", "initial")

    def __init__(self, seconds: float, initial: float | None = None) -> None:
        self.seconds = _seconds("cooldown", seconds)
        self.initial = self.seconds if initial is None else min(_seconds("initial_cooldown", initial), self.seconds)

    def __repr__(self) -> str:
        return f"Cooldown({self.seconds}, initial={self.initial})"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        if self.initial >= self.seconds:
            return now + self.seconds
        return now + min(self.seconds, self.initial * 2.0 ** min(state.standby_streak, 64))


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be zero or more seconds, got {value!r}")
    return float(value)


class OnQuotaReset(_Recoverer):
    """Quota-type standbys end at the next quota reset; other reasons are not its business."""

    __slots__ = ("schedule",)

    def __init__(self, schedule: str = "daily_utc") -> None:
        next_quota_reset(0.0, schedule)  # refuse an unknown schedule now
        self.schedule = schedule

    def __repr__(self) -> str:
        return f"OnQuotaReset({self.schedule!r})"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        if decision.reason not in QUOTA_REASONS:
            return None
        return next_quota_reset(now, self.schedule)


class Manual(_Recoverer):
    """Never by time: only a probe or a person brings the model back. Ends a chain."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Manual()"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        return _INF


class Probe(_Recoverer):
    """Asks for a health probe of a standby model every `interval` seconds (and, with
    `on_start`, once at startup); a passing probe recovers it. Gives no recovery time."""

    __slots__ = ("interval", "on_start")

    def __init__(self, interval: float | None = None, on_start: bool = False) -> None:
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float))
                                     or not math.isfinite(interval) or interval <= 0):
            raise ValueError(f"probe_interval must be positive seconds, got {interval!r}")
        self.interval = None if interval is None else float(interval)
        self.on_start = bool(on_start)

    def __repr__(self) -> str:
        return f"Probe({self.interval}, on_start={self.on_start})"

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        return None

    def probe_due(self, state: ModelState, now: float) -> bool:
        if state.breaker.state is not BreakerState.OPEN:
            return False
        if self.on_start and state.last_probe is None:
            return True
        if self.interval is None:
            return False
        since = max((t for t in (state.last_probe, state.deactivated_at) if t is not None), default=None)
        return since is None or now >= since + self.interval


# -- from configuration -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySet:
    """Policies a user plugs into a pool beside the configured ones: objects or plain functions.
    Deactivation policies are asked after the configured ones; recovery policies before them,
    so a user's recovery time wins over the configured cooldown."""

    deactivation: tuple[DeactivationLike, ...] = ()
    recovery: tuple[RecoveryLike, ...] = ()

    def __add__(self, other: PolicySet) -> PolicySet:
        return PolicySet(deactivation=self.deactivation + other.deactivation, recovery=self.recovery + other.recovery)


def build_policies(deactivation_cfg: Any, recovery_cfg: Any, plugged: PolicySet | None = None) -> tuple[AnyOf, FirstOf]:
    """(deactivation, recovery) policies from config objects, read by attribute name (a
    missing attribute or a None object takes the default), with `plugged` user policies
    composed in. A refused value raises ValueError naming the setting, e.g.
    "deactivation.retry_limit: ..."."""
    d = _Settings(deactivation_cfg, "deactivation")
    r = _Settings(recovery_cfg, "recovery")
    parts: list[DeactivationLike] = []
    if d.get("maintenance_window") is not None:
        parts.append(d.make("maintenance_window", Maintenance, d.get("maintenance_window"),
                            d.get("maintenance_duration", 3600.0)))
    limits = [d.make(attr, cls, d.get(attr))
              for attr, cls in (("request_limit", RequestLimit), ("token_limit", TokenLimit),
                                ("budget_limit", BudgetLimit))
              if d.get(attr) is not None]
    # without its own quota window, a pool that recovers on quota reset counts limits per reset period
    period, source = d.get("quota_window"), d
    if period is None and r.get("on_quota_reset", False):
        period, source = r.get("quota_reset_schedule"), r
    if limits and period is not None:
        name = "quota_window" if source is d else "quota_reset_schedule"
        parts.append(source.make(name, QuotaWindow, period, *limits))
    else:
        parts.extend(limits)
    if d.get("retry_limit", 3):
        parts.append(d.make("retry_limit", RetryLimit, d.get("retry_limit", 3), d.get("error_codes", ())))
    if d.get("error_rate_threshold") is not None:
        parts.append(d.make("error_rate_threshold", ErrorRate, d.get("error_rate_threshold"),
                            d.get("error_rate_min_requests", 10)))
    plugged = plugged or PolicySet()
    return AnyOf(*parts, *plugged.deactivation), FirstOf(*plugged.recovery, *_recovery_parts(r, d))


def _recovery_parts(r: _Settings, d: _Settings) -> list[RecoveryLike]:
    parts: list[RecoveryLike] = []
    if r.get("manual", False):
        parts.append(Manual())
    else:
        if r.get("on_quota_reset", False):
            schedule = r.get("quota_reset_schedule") or d.get("quota_window") or "daily_utc"
            parts.append(r.make("quota_reset_schedule", OnQuotaReset, schedule))
        if r.get("cooldown", 60.0) is not None:
            parts.append(r.make("cooldown", Cooldown, r.get("cooldown", 60.0), r.get("initial_cooldown")))
    interval, on_start = r.get("probe_interval"), r.get("probe_on_start", False)
    if interval is not None or on_start:
        parts.append(r.make("probe_interval", Probe, interval, on_start))
    return parts


class _Settings:
    """A duck-typed config section; `make` names the setting when a value is refused."""

    __slots__ = ("obj", "section")

    def __init__(self, obj: Any, section: str) -> None:
        self.obj, self.section = obj, section

    def get(self, name: str, default: Any = None) -> Any:
        return default if self.obj is None else getattr(self.obj, name, default)

    def make(self, name: str, factory: Callable[..., Any], *args: Any) -> Any:
        try:
            return factory(*args)
        except ValueError as exc:
            raise ValueError(f"{self.section}.{name}: {exc}") from None


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
