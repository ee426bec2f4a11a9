"""A provider's API keys and which one is in use: the key ring behind `auth.key_rotation`.

Theory of operation. A provider holds one or more keys (`auth.api_keys`, each possibly a
`${secrets:NAME}` reference the shell re-reads every `cache_ttl`). Exactly one is *current*:
every attempt sends it. Each key is ACTIVE or RETIRED, and what an outcome does to a key
is one table, `TRANSITIONS[(state, input)] -> (end state, effect)`:

- THROTTLED (a 429 or a spent quota on this key): the key stays active and, if it is the
  current one, the ring MOVEs to the next active key. A request that still has an untried
  key retries the same model on it before the model goes on standby.
- REFUSED (401/403 on this key): the key is RETIRED and the ring moves on. The provider is
  deactivated only when no active key is left.
- RESTORED (the provider came back by probe or by hand): a retired key is active again.

An outcome reported for a key that is no longer current (another thread rotated first)
changes that key's state but does not move the ring twice.

`replace(keys)` takes a fresh list from the store: a value already known keeps its state
(a retired key that is still in the store stays retired), a new value starts active, and
the current key stays current when it is still there. Keys never leave this module in an
event, error or repr: a key is named by its position and a short fingerprint.
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ._events import KeyRetired, KeyRotated, KeysReloaded, MeshEvent

__all__ = ["KeyState", "KeyInput", "KeyEffect", "TRANSITIONS", "KeyRing", "fingerprint"]


class KeyState(enum.Enum):
    ACTIVE = "active"
    RETIRED = "retired"


class KeyInput(enum.Enum):
    THROTTLED = "throttled"
    REFUSED = "refused"
    RESTORED = "restored"


class KeyEffect(enum.Enum):
    NONE = "none"
    MOVE = "move"  # the ring moves to the next active key (when this key is the current one)


_A, _R, _I, _F = KeyState.ACTIVE, KeyState.RETIRED, KeyInput, KeyEffect
# (state, input) -> (end state, effect); a pair not listed is a bug in the caller
TRANSITIONS: dict[tuple[KeyState, KeyInput], tuple[KeyState, KeyEffect]] = {
    (_A, _I.THROTTLED): (_A, _F.MOVE),
    (_A, _I.REFUSED): (_R, _F.MOVE),
    (_A, _I.RESTORED): (_A, _F.NONE),
    (_R, _I.THROTTLED): (_R, _F.NONE),  # a late answer on a key already retired
    (_R, _I.REFUSED): (_R, _F.NONE),
    (_R, _I.RESTORED): (_A, _F.NONE),
}


def fingerprint(key: str) -> str:
    """Eight hex digits of the key's SHA-256: tells keys apart in events without revealing them."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


@dataclass(slots=True)
class _Key:
    value: str
    state: KeyState = KeyState.ACTIVE

    def __repr__(self) -> str:
        return f"_Key({fingerprint(self.value)}, {self.state.value})"


class KeyRing:
    """The keys of one provider; the caller holds the core's lock around every change."""

    __slots__ = ("provider", "_keys", "current", "version")

    def __init__(self, provider: str, keys: Sequence[str]) -> None:
        self.provider = provider
        self._keys = [_Key(k) for k in dict.fromkeys(k for k in keys if k)]
        self.current = 0
        self.version = 0  # grows whenever the key in use changes (targets built with the old one are stale)

    def __repr__(self) -> str:
        return f"KeyRing(provider={self.provider!r}, keys={len(self._keys)}, current={self.current})"

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def key(self) -> str | None:
        """The key to send now (a retired one when none is left: probes still need something to try)."""
        return self._keys[self.current].value if self._keys else None

    def values(self) -> tuple[str, ...]:
        return tuple(k.value for k in self._keys)

    def state(self, index: int) -> KeyState:
        return self._keys[index].state

    @property
    def active(self) -> int:
        return sum(1 for k in self._keys if k.state is KeyState.ACTIVE)

    def feed(self, index: int, what: KeyInput, now: float, reason: str = "") -> list[MeshEvent]:
        """What happened on the key at `index`; returns the events it caused."""
        if not 0 <= index < len(self._keys):
            return []  # a key replaced by a reload while the attempt was in flight
        key = self._keys[index]
        end, effect = TRANSITIONS[(key.state, what)]
        events: list[MeshEvent] = []
        if key.state is not end and end is KeyState.RETIRED:
            events.append(KeyRetired(at=now, provider=self.provider, key=index, fingerprint=fingerprint(key.value),
                                     remaining=self.active - 1, reason=reason))
        key.state = end
        current = self.current
        # the ring moves on a MOVE of the key in use, and whenever the key in use is retired while
        # another is active (a key restored after all were retired): a live key is always sent first
        if (effect is KeyEffect.MOVE and index == current) or self._keys[current].state is KeyState.RETIRED:
            nxt = self._next_active(current)
            if nxt is not None and nxt != current:
                self._move(nxt)
                events.append(KeyRotated(at=now, provider=self.provider, from_key=current, to_key=nxt,
                                         fingerprint=fingerprint(self._keys[nxt].value), reason=reason or what.value))
        return events

    def restore(self, now: float) -> None:
        """Every retired key is active again (the provider answered a probe, or a person said so)."""
        n = len(self._keys)
        for step in range(n):  # the key in use first: it stays the one in use
            self.feed((self.current + step) % n, KeyInput.RESTORED, now)

    def index(self, key: str | None) -> int | None:
        """The position of `key` (the one an attempt sent), None when a reload dropped it."""
        for i, k in enumerate(self._keys):
            if k.value == key:
                return i
        return None

    def replace(self, keys: Sequence[str], now: float) -> list[MeshEvent]:
        """A fresh list of keys from the store (see the module's docstring)."""
        fresh = list(dict.fromkeys(k for k in keys if k))
        if not fresh or tuple(fresh) == self.values():
            return []
        known = {k.value: k.state for k in self._keys}
        in_use = self.key
        self._keys = [_Key(v, known.get(v, KeyState.ACTIVE)) for v in fresh]
        if in_use in fresh and self._keys[fresh.index(in_use)].state is KeyState.ACTIVE:
            index = fresh.index(in_use)
        else:
            index = next((i for i, k in enumerate(self._keys) if k.state is KeyState.ACTIVE), 0)
        self._move(index)
        return [KeysReloaded(at=now, provider=self.provider, keys=len(fresh), active=self.active, current=index,
                             fingerprint=fingerprint(fresh[index]))]

    def _next_active(self, index: int) -> int | None:
        n = len(self._keys)
        for step in range(1, n + 1):
            candidate = (index + step) % n
            if self._keys[candidate].state is KeyState.ACTIVE:
                return candidate
        return None

    def _move(self, index: int) -> None:
        self.current = index
        self.version += 1
