"""The circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED, with forced trips.

Theory of operation. Rule 1: every transition of the breaker lives in `_TRANSITIONS`,
one table `{(state, input): (end_state, side_effect)}`; a pair the table lacks is an
illegal input and raises `BreakerError`. The public methods only translate what
happened into an input and feed it through `process`.

Guards are made into inputs before the table is consulted, so the table stays total
about *what* happens: a failure in CLOSED that reaches `failure_threshold` is fed as
`FAILURE_THRESHOLD`, a success in HALF_OPEN that reaches `success_threshold` as
`SUCCESS_THRESHOLD`. The one guard left outside the table is the half-open probe
budget: `on_request` in HALF_OPEN with every probe slot taken raises.

Time never passes by itself: `allow(now)` notices that an OPEN breaker's deadline has
passed and feeds `TIMER_EXPIRED`, moving it to HALF_OPEN, where up to `half_open_max`
trial requests may be in flight. A failure there re-opens it with a fresh deadline;
enough successes close it.

Deadlines only grow while the breaker is open: a trip, or a re-trip with an earlier
`until`, keeps the later of the two (`float("inf")` = not by time; only `reset`,
a probe or a person closes it). Late verdicts on requests that started before the
breaker opened (a success, a failure, a release arriving in OPEN) change nothing.
"""
from __future__ import annotations

import enum
import math
from typing import Any, Callable, Mapping

__all__ = ["BreakerState", "BreakerInput", "BreakerError", "CircuitBreaker", "TRANSITIONS"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    # members are singletons compared by identity: hashing by identity too is the same
    # contract, in C rather than Enum's Python-level __hash__ (every transition looks one up)
    __hash__ = object.__hash__


class BreakerInput(enum.Enum):
    REQUEST = "request"                      # a request was let through
    RELEASE = "release"                      # a request ended with no verdict on the model
    SUCCESS = "success"
    SUCCESS_THRESHOLD = "success_threshold"  # the success that completes the half-open quorum
    FAILURE = "failure"
    FAILURE_THRESHOLD = "failure_threshold"  # the failure that reaches failure_threshold
    TIMER_EXPIRED = "timer_expired"          # the open deadline has passed
    LAST_RESORT = "last_resort"              # nothing else can answer: a trial before the deadline
    TRIP = "trip"                            # forced open until a given time
    RESET = "reset"                          # closed by hand, probe or recovery

    __hash__ = object.__hash__  # see BreakerState


class BreakerError(RuntimeError):
    """An input the breaker's current state does not accept."""


_INF = float("inf")


class CircuitBreaker:
    """Circuit breaker for one model (or provider); fed explicit `now` values."""

    __slots__ = (
        "failure_threshold", "reset_timeout", "half_open_max", "success_threshold",
        "_state", "_failures", "_successes", "_in_flight", "_open_until", "_opened_at",
        "_reason", "_trips",
    )
    # the parameters, set (and checked) by `configure`
    failure_threshold: int
    reset_timeout: float
    half_open_max: int
    success_threshold: int

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        half_open_max: int = 1,
        success_threshold: int = 1,
    ) -> None:
        self.configure(failure_threshold=failure_threshold, reset_timeout=reset_timeout,
                       half_open_max=half_open_max, success_threshold=success_threshold)
        self._state = BreakerState.CLOSED
        self._failures = 0      # consecutive failures while CLOSED
        self._successes = 0     # successes while HALF_OPEN
        self._in_flight = 0     # trial requests in flight while HALF_OPEN
        self._open_until: float | None = None
        self._opened_at: float | None = None
        self._reason = ""
        self._trips = 0

    def configure(
        self,
        *,
        failure_threshold: int | None = None,
        reset_timeout: float | None = None,
        half_open_max: int | None = None,
        success_threshold: int | None = None,
    ) -> None:
        """Change the parameters; None leaves one as it is. The state is kept."""
        # checked and set one by one, in this order: a refused value leaves the ones before it set
        if failure_threshold is not None:
            self.failure_threshold = _positive("failure_threshold", failure_threshold)
        if half_open_max is not None:
            self.half_open_max = _positive("half_open_max", half_open_max)
        if success_threshold is not None:
            self.success_threshold = _positive("success_threshold", success_threshold)
        if reset_timeout is not None:
            if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, (int, float)) \
                    or not math.isfinite(reset_timeout) or reset_timeout < 0:
                raise ValueError(f"breaker reset_timeout must be zero or more seconds, got {reset_timeout!r}")
            self.reset_timeout = float(reset_timeout)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CircuitBreaker):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.value}, failures={self._failures}, open_until={self._open_until})"

    # -- read-only view ---------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def open_until(self) -> float | None:
        """When an OPEN breaker may go half-open (inf = not by time); None unless OPEN."""
        return self._open_until

    @property
    def opened_at(self) -> float | None:
        """When the breaker last opened; None while closed."""
        return self._opened_at

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the one door into the table ---------------------------------------------------
    def process(self, event: BreakerInput, now: float, *, until: float | None = None, reason: str = "") -> BreakerState:
        """Feed one input; returns the new state. Raises BreakerError for an illegal input."""
        if not isinstance(event, BreakerInput):
            raise TypeError(f"expected a BreakerInput, got {event!r}")
        now = _time("now", now)
        try:
            end_state, effect = TRANSITIONS[(self._state, event)]
        except KeyError:
            raise BreakerError(
                f"circuit breaker: input {event.name} is not allowed in state {self._state.name}"
            ) from None
        effect(self, now, until, reason)
        self._state = end_state
        return end_state

    # -- public operations ---------------------------------------------------------------
    def allow(self, now: float) -> bool:
        """May a request go to this model now? Moves OPEN to HALF_OPEN once the deadline passed."""
        if self._state is BreakerState.OPEN:
            deadline = self._open_until if self._open_until is not None else _INF
            if _time("now", now) < deadline:
                return False
            self.process(BreakerInput.TIMER_EXPIRED, now)
        if self._state is BreakerState.HALF_OPEN:
            return self._in_flight < self.half_open_max
        return True

    def on_request(self, now: float) -> None:
        """A request is being sent: in HALF_OPEN it takes one of the probe slots."""
        if self._state is BreakerState.CLOSED:  # TRANSITIONS: (CLOSED, REQUEST) -> CLOSED, _nothing
            return
        self.allow(now)  # let an expired deadline open the half-open door first
        if self._state is BreakerState.HALF_OPEN and self._in_flight >= self.half_open_max:
            raise BreakerError(
                f"circuit breaker: all {self.half_open_max} half-open trial slot(s) are taken; check allow() first"
            )
        self.process(BreakerInput.REQUEST, now)

    def release(self, now: float) -> None:
        """A request ended with no verdict on the model (cancelled, caller's error)."""
        self.process(BreakerInput.RELEASE, now)

    def record_success(self, now: float) -> None:
        if self._state is BreakerState.CLOSED and not self._failures:  # (CLOSED, SUCCESS) clears a count of 0
            return
        event = BreakerInput.SUCCESS
        if self._state is BreakerState.HALF_OPEN and self._successes + 1 >= self.success_threshold:
            event = BreakerInput.SUCCESS_THRESHOLD
        self.process(event, now)

    def record_failure(self, now: float) -> None:
        event = BreakerInput.FAILURE
        if self._state is BreakerState.CLOSED and self._failures + 1 >= self.failure_threshold:
            event = BreakerInput.FAILURE_THRESHOLD
        self.process(event, now)

    def trip(self, now: float, until: float | None = None, reason: str = "") -> None:
        """Force OPEN until `until` (default now + reset_timeout); never shortens a deadline."""
        if until is not None:
            until = _time("until", until, allow_inf=True)
        self.process(BreakerInput.TRIP, now, until=until, reason=reason)

    def reset(self, now: float) -> None:
        """Close by hand (manual, probe success, quota reset)."""
        self.process(BreakerInput.RESET, now)

    def stats(self) -> dict[str, Any]:
        return {
            "state": self._state.value,
            "failures": self._failures,
            "successes": self._successes,
            "in_flight": self._in_flight,
            "open_until": self._open_until,
            "opened_at": self._opened_at,
            "reason": self._reason,
            "trips": self._trips,
            "failure_threshold": self.failure_threshold,
            "reset_timeout": self.reset_timeout,
            "half_open_max": self.half_open_max,
            "success_threshold": self.success_threshold,
        }

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = self.stats()
        # JSON has no infinity: an open breaker without a deadline is stored as "open_until": null
        if data["open_until"] == _INF:
            data["open_until"] = None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitBreaker:
        if not isinstance(data, Mapping):
            raise TypeError(f"CircuitBreaker.from_dict expects a mapping, got {type(data).__name__}")
        breaker = cls(
            failure_threshold=data.get("failure_threshold", 5),
            reset_timeout=data.get("reset_timeout", 60.0),
            half_open_max=data.get("half_open_max", 1),
            success_threshold=data.get("success_threshold", 1),
        )
        try:
            state = BreakerState(data.get("state", "closed"))
        except ValueError:
            raise ValueError(f"unknown circuit breaker state {data.get('state')!r}") from None
        breaker._state = state
        breaker._failures = _count("failures", data.get("failures", 0))
        breaker._successes = _count("successes", data.get("successes", 0))
        breaker._in_flight = _count("in_flight", data.get("in_flight", 0))
        breaker._trips = _count("trips", data.get("trips", 0))
        breaker._reason = str(data.get("reason") or "")
        opened_at = data.get("opened_at")
        breaker._opened_at = None if opened_at is None else _time("opened_at", opened_at)
        open_until = data.get("open_until")
        if state is BreakerState.OPEN:
            breaker._open_until = _INF if open_until is None else _time("open_until", open_until, allow_inf=True)
        return breaker

    # -- side effects (named in the table); all take (now, until, reason) ------------------
    def _nothing(self, now: float, until: float | None, reason: str) -> None:
        """Late verdicts and no-verdict releases: nothing to count."""

    def _count_failure(self, now: float, until: float | None, reason: str) -> None:
        self._failures += 1

    def _clear_failures(self, now: float, until: float | None, reason: str) -> None:
        self._failures = 0

    def _open_on_failures(self, now: float, until: float | None, reason: str) -> None:
        self._open(now, now + self.reset_timeout, reason or f"{self._failures + 1} consecutive failures")

    def _reopen(self, now: float, until: float | None, reason: str) -> None:
        self._open(now, now + self.reset_timeout, reason or "trial request failed")

    def _trip(self, now: float, until: float | None, reason: str) -> None:
        self._open(now, now + self.reset_timeout if until is None else until, reason or "tripped")

    def _open(self, now: float, until: float, reason: str) -> None:
        if self._state is BreakerState.OPEN:
            # a re-trip may only push the deadline out; the reason follows the deadline that holds
            if self._open_until is not None and self._open_until >= until:
                return
        else:
            self._opened_at = now
            self._trips += 1
        self._open_until = until
        self._reason = reason
        self._failures = 0
        self._successes = 0
        self._in_flight = 0

    def _half_open(self, now: float, until: float | None, reason: str) -> None:
        self._open_until = None
        self._successes = 0
        self._in_flight = 0

    def _take_slot(self, now: float, until: float | None, reason: str) -> None:
        self._in_flight += 1

    def _give_slot(self, now: float, until: float | None, reason: str) -> None:
        self._in_flight = max(0, self._in_flight - 1)

    def _count_success(self, now: float, until: float | None, reason: str) -> None:
        self._successes += 1
        self._give_slot(now, until, reason)

    def _close(self, now: float, until: float | None, reason: str) -> None:
        self._failures = 0
        self._successes = 0
        self._in_flight = 0
        self._open_until = None
        self._opened_at = None
        self._reason = ""


_S, _I = BreakerState, BreakerInput
_B = CircuitBreaker
TRANSITIONS: dict[tuple[BreakerState, BreakerInput], tuple[BreakerState, Callable[[CircuitBreaker, float, float | None, str], None]]] = {
    (_S.CLOSED, _I.REQUEST): (_S.CLOSED, _B._nothing),
    (_S.CLOSED, _I.RELEASE): (_S.CLOSED, _B._nothing),
    (_S.CLOSED, _I.SUCCESS): (_S.CLOSED, _B._clear_failures),
    (_S.CLOSED, _I.FAILURE): (_S.CLOSED, _B._count_failure),
    (_S.CLOSED, _I.FAILURE_THRESHOLD): (_S.OPEN, _B._open_on_failures),
    (_S.CLOSED, _I.TRIP): (_S.OPEN, _B._trip),
    (_S.CLOSED, _I.RESET): (_S.CLOSED, _B._close),
    # OPEN: requests are refused; verdicts of requests sent before it opened are too late to count
    (_S.OPEN, _I.RELEASE): (_S.OPEN, _B._nothing),
    (_S.OPEN, _I.SUCCESS): (_S.OPEN, _B._nothing),
    (_S.OPEN, _I.FAILURE): (_S.OPEN, _B._nothing),
    (_S.OPEN, _I.TIMER_EXPIRED): (_S.HALF_OPEN, _B._half_open),
    (_S.OPEN, _I.LAST_RESORT): (_S.HALF_OPEN, _B._half_open),
    (_S.OPEN, _I.TRIP): (_S.OPEN, _B._trip),
    (_S.OPEN, _I.RESET): (_S.CLOSED, _B._close),
    (_S.HALF_OPEN, _I.REQUEST): (_S.HALF_OPEN, _B._take_slot),
    (_S.HALF_OPEN, _I.RELEASE): (_S.HALF_OPEN, _B._give_slot),
    (_S.HALF_OPEN, _I.SUCCESS): (_S.HALF_OPEN, _B._count_success),
    (_S.HALF_OPEN, _I.SUCCESS_THRESHOLD): (_S.CLOSED, _B._close),
    (_S.HALF_OPEN, _I.FAILURE): (_S.OPEN, _B._reopen),
    (_S.HALF_OPEN, _I.TRIP): (_S.OPEN, _B._trip),
    (_S.HALF_OPEN, _I.RESET): (_S.CLOSED, _B._close),
}
del _S, _I, _B


def _time(name: str, value: object, *, allow_inf: bool = False) -> float:
    if type(value) is float and -_INF < value < _INF:  # the common case, decided in one test (NaN fails it)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or (math.isinf(value) and not (allow_inf and value > 0)):
        raise ValueError(f"circuit breaker: {name} must be a finite timestamp, got {value!r}")
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"circuit breaker: {name} must be a non-negative integer, got {value!r}")
    return value


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"breaker {name} must be a positive integer, got {value!r}")
    return value
