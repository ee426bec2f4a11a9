"""Standbys shared between processes: the facts, and how two accounts of one are merged.

Theory of operation: several processes (gunicorn workers, hosts) each keep their own
`Health`. What one learns about a model or a provider being down, or back, the others should
honour, without sharing everything (windows and counters stay local). So health is reduced to
one `Fact` per model (`model:{pool}:{ref}`) and per provider (`provider:{id}`): down or up,
since when, until when, why. A shell stores facts (storage is I/O: never here) and hands the
others' back to `Health.absorb`.

Two accounts of the same key meet in `merged`, used both where a shell writes a fact over
the stored one and where a process takes in the stored one. It is commutative (which of two
accounts is "mine" does not matter), and the stored record is the one account every process
converges to:
- both down: one standby, dated by its latest start (the latest news of it), until the
  latest deadline (no deadline, "until a probe or a person", outlasts any): a
  re-deactivation anywhere only ever extends a standby, never shortens it;
- one down, one up: the later account wins: a recovery after the standby's latest start
  ends it, a standby after the recovery starts a new one; at the same instant, the standby;
- both up: the later.
A down fact whose deadline has passed says nothing any more (`live`): the model's own
cooldown has ended, and its trial decides.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Fact", "merged", "live", "model_key", "provider_key"]


def model_key(pool: str, ref: str) -> str:
    return f"model:{pool}:{ref}"


def provider_key(provider: str) -> str:
    return f"provider:{provider}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One model's or provider's standing, as other processes should honour it."""

    down: bool
    at: float                      # when it became so: the standby's start, or the recovery
    until: float | None = None     # while down: when it ends by time; None = not by time
    reason: str | None = None      # while down: why

    def __post_init__(self) -> None:
        if not isinstance(self.down, bool):
            raise ValueError(f"Fact.down must be a bool, got {self.down!r}")
        if not _finite(self.at):
            raise ValueError(f"Fact.at must be a finite timestamp, got {self.at!r}")
        if self.until is not None and not _finite(self.until):
            raise ValueError(f"Fact.until must be a finite timestamp or None, got {self.until!r}")
        if self.reason is not None and not isinstance(self.reason, str):
            raise ValueError(f"Fact.reason must be a string or None, got {self.reason!r}")
        if not self.down and (self.until is not None or self.reason is not None):
            raise ValueError("Fact.until and Fact.reason belong to a standby (down=True), not to a recovery")

    def to_dict(self) -> dict[str, Any]:
        return {"down": self.down, "at": self.at, "until": self.until, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fact:
        """A fact from stored data; ValueError (naming the field) for anything else."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a stored fact must be an object, got {type(data).__name__}")
        unknown = set(data) - {"down", "at", "until", "reason"}
        if unknown:
            raise ValueError(f"a stored fact has unknown fields {sorted(unknown)}")
        return cls(down=data.get("down"), at=data.get("at"), until=data.get("until"),  # type: ignore[arg-type]
                   reason=data.get("reason"))


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def live(fact: Fact | None, now: float) -> bool:
    """A standby still in force at `now` (a down fact whose deadline has not passed)."""
    return fact is not None and fact.down and (fact.until is None or now < fact.until)


def merged(a: Fact | None, b: Fact | None) -> Fact | None:
    """One account of a key from two (commutative)."""
    if a is None or b is None:
        return a if b is None else b
    if a.down and b.down:
        if a.until is None or b.until is None:
            until, reason = None, (a.reason if a.until is None else b.reason)
            if a.until is None and b.until is None:
                reason = min(_text(a.reason), _text(b.reason)) or None  # either; the same on every side
        elif a.until == b.until:
            until, reason = a.until, min(_text(a.reason), _text(b.reason)) or None
        else:
            later = a if a.until > b.until else b
            until, reason = later.until, later.reason
        return Fact(down=True, at=max(a.at, b.at), until=until, reason=reason)
    if a.at != b.at:
        return a if a.at > b.at else b
    if a.down != b.down:  # the same instant: the standby stands (the safer account)
        return a if a.down else b
    return a


def _text(value: str | None) -> str:
    return value or ""
