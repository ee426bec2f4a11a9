"""Observability events: what the mesh did, as frozen values.

The core appends these to `MeshCore.events` as it decides; a shell drains the list after
it releases the lock and hands each event to the observability connectors. Events are
facts about the past ("ModelDeactivated"), never requests to act. They carry no secrets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "MeshEvent",
    "RequestRouted",
    "AttemptFailed",
    "RetryScheduled",
    "RequestCompleted",
    "RequestFailed",
    "ModelDeactivated",
    "ModelRecovered",
    "ProviderDeactivated",
    "ProviderRecovered",
    "PoolExhausted",
    "ModelDiscovered",
    "ModelDeprecated",
    "KeyRotated",
    "KeyRetired",
    "KeysReloaded",
    "QuotaReported",
    "PricesUpdated",
    "EVENT_TYPES",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshEvent:
    at: float

    @property
    def type(self) -> str:
        return _NAMES[type(self)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.type
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRouted(MeshEvent):
    request_id: str
    pool: str
    provider: str
    model: str
    attempt: int
    score: float = 0.0
    fallback_chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFailed(MeshEvent):
    request_id: str
    pool: str
    provider: str
    model: str
    attempt: int
    kind: str
    status: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(MeshEvent):
    request_id: str
    pool: str
    delay: float
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCompleted(MeshEvent):
    request_id: str
    pool: str
    provider: str
    model: str
    attempts: int
    latency: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    stream: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed(MeshEvent):
    request_id: str
    pool: str
    error: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDeactivated(MeshEvent):
    pool: str
    model: str  # "provider/model-id"
    reason: str
    detail: str = ""
    until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRecovered(MeshEvent):
    pool: str
    model: str
    how: str  # "cooldown", "probe", "quota_reset", "manual", "trial"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderDeactivated(MeshEvent):
    provider: str
    reason: str
    detail: str = ""
    until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRecovered(MeshEvent):
    provider: str
    how: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolExhausted(MeshEvent):
    pool: str
    recovery_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDiscovered(MeshEvent):
    """A model the provider lists that the mesh did not have (discovery.sync): `registered`
    when it was added, to `pools`; otherwise only noted (on_new_model: notify)."""

    provider: str
    model: str  # "provider/model-id"
    registered: bool
    pools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDeprecated(MeshEvent):
    """A model of the mesh its provider no longer lists; `action`: deactivate or notify."""

    provider: str
    model: str
    action: str


# a provider's keys (auth.key_rotation, secrets re-read after cache_ttl): a key is named by its
# position in the provider's list and the first 8 hex digits of its SHA-256, never by its value
@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated(MeshEvent):
    provider: str
    from_key: int
    to_key: int
    fingerprint: str  # of the key now in use
    reason: str = ""  # the error kind that moved it: rate_limited, quota_exhausted, auth


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRetired(MeshEvent):
    provider: str
    key: int
    fingerprint: str
    remaining: int  # active keys left; 0: the provider is deactivated by the failure
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeysReloaded(MeshEvent):
    provider: str
    keys: int
    active: int
    current: int
    fingerprint: str  # of the key now in use


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaReported(MeshEvent):
    """A provider's quota was asked (quota.query_*): amounts in `unit`; None: not told.
    `answered` False: the query failed or made no sense, and nothing changed."""

    provider: str
    remaining: float | None = None
    limit: float | None = None
    fraction: float | None = None  # of the limit left
    unit: str = ""
    low: bool = False  # below quota.min_remaining (with query_remaining, the provider is rotated away from)
    answered: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PricesUpdated(MeshEvent):
    """A provider's model listing gave prices (pricing.query) for `models` of the mesh."""

    provider: str
    models: tuple[str, ...]


_NAMES: dict[type, str] = {
    RequestRouted: "request_routed",
    AttemptFailed: "attempt_failed",
    RetryScheduled: "retry",
    RequestCompleted: "request_completed",
    RequestFailed: "request_failed",
    ModelDeactivated: "model_deactivated",
    ModelRecovered: "model_recovered",
    ProviderDeactivated: "provider_deactivated",
    ProviderRecovered: "provider_recovered",
    PoolExhausted: "pool_exhausted",
    ModelDiscovered: "model_discovered",
    ModelDeprecated: "model_deprecated",
    KeyRotated: "key_rotated",
    KeyRetired: "key_retired",
    KeysReloaded: "keys_reloaded",
    QuotaReported: "quota_reported",
    PricesUpdated: "prices_updated",
}
EVENT_TYPES = frozenset(_NAMES.values())
