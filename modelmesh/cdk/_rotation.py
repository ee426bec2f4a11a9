"""Rotation policy base classes (seed 003): `BaseRotationPolicy` and `ThresholdRotationPolicy`.

Theory of operation. A rotation policy here is one object that plugs into a pool through the
same door as every other user policy (`PolicySet`, `rotation.*.policies`): it is both a
deactivation policy (`should_deactivate(state, now)`) and a recovery policy
(`recover_at(state, decision, now)`, `probe_due(state, now)`). The pool asks the settings of
its `rotation.deactivation` section first and this policy after them; for recovery it asks
this policy first, so a recovery time given here wins over the configured cooldown.

Every method has a default that leaves the decision to the pool's configured behaviour
(None: "no opinion"), so a subclass overrides one method and inherits the rest:

- `get_reason(state, now)`: a `DeactivationReason` when the model should go to standby;
  `should_deactivate` turns it into a `Deactivation`. Override either.
- `get_recovery_schedule(state, decision, now)`: when a standby model may get a trial
  request again (a timestamp); `recover_at` asks it.
- `should_recover(state, now)`: True asks for a health probe of a standby model now; a
  passing probe brings it back (`probe_due` asks it).

Selection stays with the pool's `strategy` (a built-in name or a "package.module:function").
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

from .._core._breaker import BreakerState
from .._core._durations import parse_duration
from .._core._policies import (
    AnyOf,
    BudgetLimit,
    Cooldown,
    Deactivation,
    DeactivationLike,
    ErrorRate,
    RequestLimit,
    RetryLimit,
    TokenLimit,
)
from .._core._types import DeactivationReason

if TYPE_CHECKING:
    from .._core._state import ModelState

__all__ = ["BaseRotationPolicy", "ThresholdRotationPolicy"]

_T = TypeVar("_T")


class BaseRotationPolicy:
    """A deactivation and recovery policy in one; every default defers to the pool's settings."""

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        """Whether the model should go to standby now: a Deactivation, or None."""
        reason = self.get_reason(state, now)
        if reason is None:
            return None
        return Deactivation(reason=reason, detail=f"{type(self).__name__}: {reason.value}")

    def get_reason(self, state: ModelState, now: float) -> DeactivationReason | None:
        """Why the model should go to standby now; None (the default) leaves it to the pool."""
        return None

    def recover_at(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        """When a model deactivated for `decision` may get a trial request (None: the pool's time)."""
        return self.get_recovery_schedule(state, decision, now)

    def get_recovery_schedule(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        """A recovery time for `decision`; None (the default) leaves it to the pool's recovery settings."""
        return None

    def probe_due(self, state: ModelState, now: float) -> bool:
        """Whether a standby model should be probed now: asks `should_recover` while it is on standby."""
        return state.breaker.state is BreakerState.OPEN and bool(self.should_recover(state, now))

    def should_recover(self, state: ModelState, now: float) -> bool:
        """True asks for a probe of this standby model now (a passing probe brings it back)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ThresholdRotationPolicy(BaseRotationPolicy):
    """Deactivation and recovery by numbers alone (seed 002's rotation parameters):

    - `failure_threshold`: consecutive failures before standby (counting only `error_codes`
      statuses, and failures without a status, when those are given);
    - `error_rate_threshold` (0-1] over the model's rolling window, once `error_rate_min_requests`
      requests are in it;
    - `request_limit`, `token_limit`, `budget_limit` (USD): lifetime caps;
    - `cooldown`: seconds (or a duration like "30s") on standby before a trial request.
    """

    def __init__(
        self,
        *,
        failure_threshold: int | None = 3,
        error_rate_threshold: float | None = None,
        error_rate_min_requests: int = 10,
        error_codes: Collection[int] = (),
        request_limit: int | None = None,
        token_limit: int | None = None,
        budget_limit: float | None = None,
        cooldown: float | str = 60.0,
    ) -> None:
        parts: list[DeactivationLike] = []
        if failure_threshold is not None:
            parts.append(_named("failure_threshold", RetryLimit, failure_threshold, error_codes))
        if error_rate_threshold is not None:
            parts.append(_named("error_rate_threshold", ErrorRate, error_rate_threshold, error_rate_min_requests))
        for name, cls, value in (("request_limit", RequestLimit, request_limit),
                                 ("token_limit", TokenLimit, token_limit), ("budget_limit", BudgetLimit, budget_limit)):
            if value is not None:
                parts.append(_named(name, cls, value))
        if not parts:
            raise ValueError("give at least one threshold (failure_threshold, error_rate_threshold, request_limit, "
                             "token_limit or budget_limit)")
        self.deactivation = AnyOf(*parts)
        self.cooldown = _named("cooldown", Cooldown, _named("cooldown", parse_duration, cooldown))
        self.failure_threshold = failure_threshold
        self.error_rate_threshold = error_rate_threshold

    def __repr__(self) -> str:
        return f"ThresholdRotationPolicy({self.deactivation!r}, {self.cooldown!r})"

    def should_deactivate(self, state: ModelState, now: float) -> Deactivation | None:
        return self.deactivation.should_deactivate(state, now)

    def get_reason(self, state: ModelState, now: float) -> DeactivationReason | None:
        decision = self.should_deactivate(state, now)
        return None if decision is None else decision.reason

    def get_recovery_schedule(self, state: ModelState, decision: Deactivation, now: float) -> float | None:
        if decision.until is not None and math.isinf(decision.until):
            return None  # a lifetime cap is not lifted by time: leave it to probes or a person
        return self.cooldown.recover_at(state, decision, now)


def _named(name: str, factory: Callable[..., _T], *args: Any) -> _T:
    """Build a built-in policy; a refused value names this class's parameter."""
    try:
        return factory(*args)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
