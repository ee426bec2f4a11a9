"""Health state of models and providers: plain dataclasses the core mutates and persists.

Theory of operation. A `ModelState` is one model in one pool. It keeps what the
policies read: counters (lifetime and per quota period), the current failure streak
(with the statuses that made it, so `RetryLimit(error_codes=...)` can count only
some), a `RollingWindow` of latencies and outcomes, the last rate-limit headers, and a
`CircuitBreaker` that is the single truth about standby: a model is on standby while its
breaker is OPEN, and `status` is derived from it rather than stored beside it.

`record_success` / `record_failure` are bookkeeping only; they do not drive the
breaker, because only the caller knows whether an outcome is a verdict on the model
(a 400 is the caller's fault, a cancelled request is no verdict at all). The caller
feeds the breaker itself (`breaker.record_failure`, `breaker.release`, ...).

Period counters (`period_requests`, `period_tokens`, `period_cost`) start afresh at each
boundary of `quota_window` ("daily", "monthly", ...) once a period is bound with
`roll_period`; with no window they simply count from the start.

A `ProviderState` is the seed's per-provider aggregate: availability, auth, an EWMA
availability score fed by probes, and usage totals.

Both serialise to plain JSON-ready dicts through dataclasses-json, imported on first use
because importing it costs more than the rest of the core put together.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Collection, Mapping, Protocol, TypeVar, cast

from ._breaker import BreakerState, CircuitBreaker
from ._cron import next_quota_reset
from ._types import DeactivationReason
from ._window import RollingWindow

if TYPE_CHECKING:
    from dataclasses_json import DataClassJsonMixin

__all__ = ["ModelStatus", "ModelState", "ProviderState", "MIN_AVAILABILITY", "PROBE_ALPHA"]

_INF = math.inf

MIN_AVAILABILITY = 0.5  # a provider's availability score below this makes it unavailable
PROBE_ALPHA = 0.3       # EWMA weight of the newest probe in the availability score
_NO_STATUS = "none"     # failure-streak key for failures without an HTTP status (timeouts, resets)


class ModelStatus(enum.Enum):
    ACTIVE = "active"
    STANDBY = "standby"


class _Persisted(Protocol):
    """A part stored through its own to_dict / from_dict (the breaker, the window)."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any: ...


_Record = TypeVar("_Record", "ModelState", "ProviderState")


def _codec(cls: type[_Persisted]) -> dict[str, Any]:
    # dataclasses-json field options, spelled without importing it
    return {"dataclasses_json": {"encoder": cls.to_dict, "decoder": cls.from_dict}}


def _mixin() -> type[DataClassJsonMixin]:
    from dataclasses_json import DataClassJsonMixin

    return DataClassJsonMixin


def _encode(obj: Any) -> dict[str, Any]:
    return _mixin().to_dict(obj, encode_json=True)


def _decode(cls: type[_Record], data: Mapping[str, Any]) -> _Record:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
    # dataclasses-json coerces quietly ("yes" -> True, 2.5 -> 2): check the raw values first
    for name, kind in cls._KINDS.items():
        if name in data and not _KIND_CHECKS[kind](data[name]):
            raise ValueError(f"{cls.__name__}.{name} must be {_KIND_TEXT[kind]}, got {data[name]!r}")
    try:
        # the function under the mixin's from_dict classmethod, called on a dataclass that does not inherit the mixin
        from_dict = cast(Callable[[type[_Record], dict[str, Any]], _Record], vars(_mixin())["from_dict"].__func__)
        return from_dict(cls, dict(data))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{cls.__name__}.from_dict: {exc}") from None


def _is_number(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _is_count(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 0


_KIND_CHECKS: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "count": _is_count,
    "count?": lambda v: v is None or _is_count(v),
    "status?": lambda v: v is None or (not isinstance(v, bool) and isinstance(v, int)),
    "amount": lambda v: _is_number(v) and v >= 0,
    "score": lambda v: _is_number(v) and 0.0 <= v <= 1.0,
    "time?": lambda v: v is None or _is_number(v),
    "str": lambda v: isinstance(v, str),
    "str?": lambda v: v is None or isinstance(v, str),
    "streak": lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and _is_count(n) for k, n in v.items()),
}
_KIND_TEXT = {
    "bool": "true or false",
    "count": "a non-negative integer",
    "count?": "a non-negative integer or null",
    "status?": "an HTTP status integer or null",
    "amount": "a finite non-negative number",
    "score": "a number in [0, 1]",
    "time?": "a finite timestamp or null",
    "str": "a string",
    "str?": "a string or null",
    "streak": "a mapping of status to count",
}


def _amount(name: str, value: object) -> float:
    if type(value) is float and 0.0 <= value < _INF:  # the common case, decided in one test
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return value


@dataclass(slots=True)
class ModelState:
    """One model's health and usage in one pool."""

    model: str                                   # "provider/model-id"
    pool: str = ""
    reason: DeactivationReason | None = None     # why it is (or was last) on standby
    standby_streak: int = 0                      # standbys in a row, each soon after the one before
    last_standby: float | None = None            # when the latest standby began
    trial_since: float | None = None             # when the current half-open trial was sent
    recovered_at: float | None = None            # when its latest standby ended (shared with other processes)
    consecutive_failures: int = 0
    failure_streak: dict[str, int] = field(default_factory=dict)  # status (or "none") -> count
    total_requests: int = 0
    total_failures: int = 0
    tokens_used: int = 0
    cost: float = 0.0
    quota_window: str | None = None              # period of the counters below; None = never reset
    period_start: float | None = None
    period_end: float | None = None
    period_requests: int = 0
    period_tokens: int = 0
    period_cost: float = 0.0
    last_used: float | None = None               # when a request was last sent to it
    last_error: str | None = None                # ErrorKind value of the last failure
    last_status: int | None = None
    last_probe: float | None = None
    remaining_requests: int | None = None        # from the provider's rate-limit headers
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    rate_reset_at: float | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker, metadata=_codec(CircuitBreaker))
    window: RollingWindow = field(default_factory=RollingWindow, metadata=_codec(RollingWindow))

    _KINDS: ClassVar[dict[str, str]] = {
        "model": "str", "pool": "str", "standby_streak": "count", "last_standby": "time?",
        "trial_since": "time?",
        "consecutive_failures": "count", "failure_streak": "streak", "total_requests": "count",
        "total_failures": "count", "tokens_used": "count", "cost": "amount", "quota_window": "str?",
        "period_start": "time?", "period_end": "time?", "period_requests": "count", "period_tokens": "count",
        "period_cost": "amount", "last_used": "time?", "last_error": "str?", "last_status": "status?",
        "last_probe": "time?", "remaining_requests": "count?", "remaining_tokens": "count?",
        "limit_requests": "count?", "limit_tokens": "count?", "rate_reset_at": "time?",
    }

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"ModelState.model must be a 'provider/model-id' string, got {self.model!r}")

    @property
    def status(self) -> ModelStatus:
        return ModelStatus.STANDBY if self.breaker.state is BreakerState.OPEN else ModelStatus.ACTIVE

    @property
    def deactivated_at(self) -> float | None:
        """When the current standby began (the breaker's record); None while active."""
        return self.breaker.opened_at if self.breaker.state is BreakerState.OPEN else None

    @property
    def recover_at(self) -> float | None:
        """When the current standby ends by time; None while active or when not by time."""
        until = self.breaker.open_until
        return None if until is None or math.isinf(until) else until

    # -- outcomes (bookkeeping only; the health owner drives the breaker) ----------------------
    def record_success(self, now: float, latency: float, tokens: int = 0, cost: float = 0.0) -> None:
        latency = _amount("latency", latency)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a non-negative integer, got {tokens!r}")
        cost = _amount("cost", cost)
        self.roll_period(now)
        self.total_requests += 1
        self.period_requests += 1
        self.tokens_used += tokens
        self.period_tokens += tokens
        self.cost += cost
        self.period_cost += cost
        self.consecutive_failures = 0
        self.failure_streak = {}
        self.window.record(now, latency, True)

    def record_failure(self, now: float, kind: str, status: int | None = None,
                       latency: float | None = None) -> None:
        """Count a failure. Without a latency it enters the window at the window's mean, so it
        moves the success rate and not the latency figures."""
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise ValueError(f"status must be an HTTP status integer or None, got {status!r}")
        value = self.window.average(now) if latency is None else _amount("latency", latency)
        self.roll_period(now)
        self.total_requests += 1
        self.period_requests += 1
        self.total_failures += 1
        self.consecutive_failures += 1
        key = _NO_STATUS if status is None else str(status)
        self.failure_streak[key] = self.failure_streak.get(key, 0) + 1
        self.last_error = kind.value if isinstance(kind, enum.Enum) else str(kind)
        self.last_status = status
        self.window.record(now, value, False)

    def record_probe(self, now: float) -> None:
        self.last_probe = now

    def streak_count(self, error_codes: Collection[int] = ()) -> int:
        """Failures in the current streak; with `error_codes`, only those statuses plus
        failures that had no status at all."""
        if not error_codes:
            return self.consecutive_failures
        wanted = {str(code) for code in error_codes} | {_NO_STATUS}
        return sum(n for key, n in self.failure_streak.items() if key in wanted)

    # -- quota periods -------------------------------------------------------------------
    def roll_period(self, now: float, period: str | None = None) -> None:
        """Bind the counters to `period` (if given) and start a new period once the current ends."""
        if period is not None and period != self.quota_window:
            next_quota_reset(now, period)  # refuse an unknown period before changing anything
            self.quota_window = period
            self.period_end = None
        if self.quota_window is None:
            return
        if self.period_end is not None and now < self.period_end:
            return
        if self.period_end is not None:
            self.period_requests = 0
            self.period_tokens = 0
            self.period_cost = 0.0
        self.period_start = now
        self.period_end = next_quota_reset(now, self.quota_window)

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = _encode(self)
        data["status"] = self.status.value  # derived; for readers of the stored state
        data["deactivated_at"], data["recover_at"] = self.deactivated_at, self.recover_at
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelState:
        derived = ("status", "deactivated_at", "recover_at")
        return _decode(cls, {k: v for k, v in data.items() if k not in derived} if isinstance(data, Mapping) else data)


@dataclass(slots=True)
class ProviderState:
    """Per-provider aggregate health (seed 001), plus why, since and until when it is down and
    its spend in the current budget periods. A record: the health owner decides what changes."""

    available: bool = True
    auth_valid: bool = True
    last_probe: float | None = None
    availability_score: float = 1.0
    active_model_count: int = 0
    total_quota_used: int = 0
    total_cost: float = 0.0
    reason: str | None = None
    deactivated_at: float | None = None
    until: float | None = None                   # while down: when it ends by time (None = not by time)
    recovered_at: float | None = None            # when its latest standby ended (shared with other processes)
    last_probe_latency: float | None = None
    failed_checks: int = 0                       # health checks failed in a row (discovery.health)
    spend_day: float = 0.0
    spend_month: float = 0.0
    day_end: float | None = None                 # when the current budget day and month end
    month_end: float | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "available": "bool", "auth_valid": "bool", "last_probe": "time?", "availability_score": "score",
        "active_model_count": "count", "total_quota_used": "count", "total_cost": "amount", "reason": "str?",
        "deactivated_at": "time?", "until": "time?", "last_probe_latency": "time?", "spend_day": "amount",
        "spend_month": "amount", "day_end": "time?", "month_end": "time?", "recovered_at": "time?",
        "failed_checks": "count",
    }

    def is_healthy(self) -> bool:
        return self.available and self.auth_valid and self.availability_score >= MIN_AVAILABILITY

    def record_probe(self, success: bool, latency: float | None = None, now: float | None = None) -> None:
        """Fold a probe into the availability score (EWMA, alpha 0.3). Whether the provider
        is up is the health owner's decision, taken with the score this leaves."""
        if latency is not None:
            self.last_probe_latency = _amount("latency", latency)
        if now is not None:
            self.last_probe = now
        sample = 1.0 if success else 0.0
        self.availability_score = PROBE_ALPHA * sample + (1.0 - PROBE_ALPHA) * self.availability_score

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderState:
        return _decode(cls, data)
