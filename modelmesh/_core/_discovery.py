"""Registry sync: which providers' model listings are fetched when, and what a listing changes.

Theory of operation. A provider is synced when `discovery.sync.enabled` names it (or names
nobody: every enabled provider), every `catalogue.refresh_interval` or else `sync.interval`,
the first time one interval after the client starts; a provider with
`catalogue.auto_discover` is also synced as the client starts. `due(now)` hands the shell a
`Listing` per provider due (marked as sent, so no other thread sends it too); the shell
sends it through the codec's `models` op and feeds the parsed ids back to `MeshCore.listed`,
which asks `changes` what they mean:

- an id the mesh lacks is new: `on_new_model: register` (with `auto_register`) adds it as a
  model, capabilities inferred from its name, to every pool whose capability covers it;
  `notify` reports it once; `ignore` says nothing. At most `MAX_DISCOVERED` models per
  provider are added, and only the first `MAX_LISTED` ids of a listing are read: a listing
  cannot grow the mesh without bound.
- a model of the mesh the listing lacks is deprecated: `on_deprecated_model: deactivate`
  puts it on standby (reason `deprecated`, not by time) in every pool; `notify` reports it
  once; `ignore` says nothing. One that is listed again comes back.

Nothing here reads a clock or does I/O: the shell sends, the core decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._types import ConnectorCall, WireRequest

if TYPE_CHECKING:
    from ._config_schema import MeshConfig
    from .codecs._base import Target

__all__ = ["Listing", "Registry", "MAX_DISCOVERED", "MAX_LISTED"]

MAX_DISCOVERED = 256  # models a provider's listings may add, beyond those configured
MAX_LISTED = 4096     # ids of one listing that are read


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """A provider's model listing the sync wants: the shell sends `request` and feeds the ids."""

    key: str
    provider: str
    connector: str
    target: Target
    request: WireRequest | ConnectorCall  # ConnectorCall: a connector that lists its models itself
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """What one listing means: ids to add, ids only to report, refs gone, refs back."""

    register: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    back: tuple[str, ...] = ()


class Registry:
    """The sync's schedule and memory (what was reported, what is deprecated)."""

    def __init__(self, config: MeshConfig) -> None:
        d = config.discovery
        self.policy = d
        self.every: dict[str, float | None] = {}  # provider -> its interval (None: once, at start)
        self.at_start: set[str] = set()
        for pid, p in config.providers.items():
            if not p.enabled:
                continue
            synced = d.sync_enabled and (not d.sync_providers or pid in d.sync_providers)
            if synced or p.auto_discover:
                self.every[pid] = p.refresh_interval or (d.sync_interval if synced else None)
            if p.auto_discover:
                self.at_start.add(pid)
        self._next: dict[str, float] | None = None
        self.noted: dict[str, set[str]] = {pid: set() for pid in self.every}  # ids reported, not added
        self.added: dict[str, int] = {pid: 0 for pid in self.every}
        self.deprecated: set[str] = set()  # refs reported gone (and, under deactivate, on standby)

    def schedule(self, now: float) -> None:
        if self._next is None:
            self._next = {}
            for pid, every in self.every.items():
                if pid in self.at_start:
                    self._next[pid] = now
                elif every is not None:
                    self._next[pid] = now + every

    def due(self, now: float) -> list[str]:
        """Providers whose listing is due now, each scheduled again (or dropped: once only)."""
        self.schedule(now)
        assert self._next is not None
        out = []
        for pid, at in list(self._next.items()):
            if now < at:
                continue
            out.append(pid)
            every = self.every[pid]
            if every is None:
                del self._next[pid]
            else:
                self._next[pid] = now + every
        return out

    def changes(self, pid: str, ids: list[str], mine: dict[str, str]) -> Changes:
        """`ids` (the listing) against `mine` (id -> ref of the provider's models in the mesh)."""
        listed = list(dict.fromkeys(i for i in ids[:MAX_LISTED] if isinstance(i, str) and i.strip()))
        present = set(listed)
        new = [i for i in listed if i not in mine]
        register: list[str] = []
        notify: list[str] = []
        on_new = self.policy.on_new_model
        if on_new == "register" and self.policy.auto_register:
            room = max(0, MAX_DISCOVERED - self.added[pid])
            register, rest = new[:room], new[room:]
            self.added[pid] += len(register)
            notify = [i for i in rest if i not in self.noted[pid]]
        elif on_new != "ignore":
            notify = [i for i in new if i not in self.noted[pid]]
        if len(self.noted[pid]) < MAX_LISTED:
            self.noted[pid].update(notify[:MAX_LISTED - len(self.noted[pid])])
        gone: list[str] = []
        back: list[str] = []
        if self.policy.on_deprecated_model != "ignore":
            for model_id, ref in mine.items():
                if model_id not in present and ref not in self.deprecated:
                    self.deprecated.add(ref)
                    gone.append(ref)
                elif model_id in present and ref in self.deprecated:
                    self.deprecated.discard(ref)
                    back.append(ref)
        return Changes(register=tuple(register), notify=tuple(notify), gone=tuple(gone), back=tuple(back))
