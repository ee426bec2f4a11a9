"""The typed configuration objects of ModelMesh Lite.

Theory of operation: `_config.parse_config` turns plain data into these frozen,
slotted, keyword-only value objects. The class defaults ARE the documented defaults:
the parser reads each key with the field's default as its fallback, so the objects
and the parser cannot drift apart. Mappings are `FrozenMap` (immutable, hashable when
its values are, picklable), lists are tuples. Fields that may hold credentials are
left out of reprs (`repr=False`), and `MeshConfig`'s repr also scrubs every secret
value it knows.

The reading machinery (value converters, `Ctx`, `Section`) lives in `_config_read`;
its names stay importable from here for older imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterator, Mapping, overload

from ._capabilities import infer_capabilities
from ._config_read import (  # noqa: F401 - the reader's names, importable from here as before
    UNRESOLVED,
    Ctx,
    ItemErrors,
    Section,
    as_bool,
    as_choice,
    as_cron,
    as_duration,
    as_int,
    as_list,
    as_mapping_of,
    as_number,
    as_positive_duration,
    as_schedule,
    as_secret,
    as_status_codes,
    as_str,
    as_url,
    join,
    show,
    suggest,
)
from ._errors import redact

__all__ = [
    "FrozenMap", "freeze",
    "STRATEGIES", "KNOWN_CONNECTORS", "CONNECTOR_CAPABILITIES",
    "SecretsConfig", "AuthConfig", "Pricing", "ModelConfig", "BudgetConfig",
    "RateLimitsConfig", "ProviderConfig", "DeactivationConfig", "RecoveryConfig",
    "RateLimitSelectionConfig", "SelectionConfig", "RotationPolicyConfig", "RotationConfig", "RetryConfig",
    "PoolConfig", "PoolDefaults", "StorageConfig", "ObservabilitySink",
    "ObservabilityConfig", "DiscoveryConfig", "ProxyConfig", "ProxyRateLimit", "MeshConfig",
    "Ctx", "Section", "UNRESOLVED", "ItemErrors",
]

STRATEGIES = ("stick-until-failure", "priority", "round-robin", "cost-first", "latency-first",
              "session-sticky", "rate-limit-aware", "load-balanced")

# Connector names the provider section accepts besides "package.module:ClassName".
# A set so that a connector catalogue can register more names at import time.
KNOWN_CONNECTORS: set[str] = {
    "openai", "anthropic", "gemini", "azure-openai", "openai-compatible", "groq", "mistral",
    "deepseek", "together", "openrouter", "xai", "perplexity", "fireworks", "cerebras",
    "ollama", "lmstudio", "vllm", "localai", "elevenlabs", "deepgram", "cohere",
}
# What the models of a single-purpose vendor do when their entry declares nothing (its ids say
# nothing a guess could read: Deepgram's `nova-3`).
CONNECTOR_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "elevenlabs": ("generation.audio-generation.text-to-speech",),
    "deepgram": ("understanding.audio-understanding.speech-to-text",),
}


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping: unlike MappingProxyType it pickles and hashes."""

    __slots__ = ("_data",)
    _data: dict[str, Any]  # set once, through object.__setattr__ (the class refuses setattr)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __getstate__(self) -> dict[str, Any]:
        return self._data

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", state)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@overload
def freeze(value: Mapping[Any, Any]) -> FrozenMap: ...
@overload
def freeze(value: Any) -> Any: ...
def freeze(value: Any) -> Any:
    """Deep-convert plain data: dicts to FrozenMap, lists to tuples, lost secrets to None."""
    if value is UNRESOLVED:
        return None
    if isinstance(value, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


_EMPTY = FrozenMap()


_DEFAULT_CODES = (429, 500, 502, 503, 504)
_value = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_value)
class SecretsConfig:
    store: str = "env"                  # env | file | dotenv | memory | encrypted-file | keyring | "module:Class"
    path: str | None = None             # file/dotenv: a .env, JSON or TOML file; encrypted-file: its file
    values: Mapping[str, str] = field(default=_EMPTY, repr=False)  # memory store
    cache_enabled: bool = True
    cache_ttl: float = 300.0
    reload_on_rotation: bool = True     # a rotated or retired key makes the next request re-read the store
    fail_on_missing: bool = True
    passphrase_env: str = "MODELMESH_SECRETS_PASSPHRASE"  # encrypted-file: the variable holding the passphrase
    service: str = "modelmesh"          # keyring: the service name secrets are kept under


@dataclass(**_value)
class AuthConfig:
    method: str = "api_key"             # api_key | oauth | service_account | none
    api_key: str | None = field(default=None, repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # all keys, for key_rotation
    key_refs: tuple[str, ...] = ()      # per key of api_keys: the secret it was read from ("" for a literal)
    key_rotation: bool = False
    api_key_env: str | None = None      # environment variable the shell reads the key from


@dataclass(**_value)
class Pricing:
    """USD per million input/output tokens and per request."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_request: float = 0.0


@dataclass(**_value)
class ModelConfig:
    id: str
    capabilities: tuple[str, ...] = ()
    context_window: int | None = None
    max_output_tokens: int | None = None
    pricing: Pricing | None = None
    deployment: str | None = None
    weight: float | None = None
    aliases: tuple[str, ...] = ()
    prefill: bool | None = None               # continues a trailing assistant message; None = the connector's default
    from_job: str | None = None               # a fine-tuning job: the model serves once that job has succeeded

    def __post_init__(self) -> None:
        if not self.capabilities:
            object.__setattr__(self, "capabilities", infer_capabilities(self.id))


@dataclass(**_value)
class BudgetConfig:
    daily_limit: float | None = None
    monthly_limit: float | None = None


@dataclass(**_value)
class RateLimitsConfig:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(**_value)
class ProviderConfig:
    id: str
    connector: str
    enabled: bool = True
    base_url: str | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    models: tuple[ModelConfig, ...] = ()
    timeout: float = 30.0
    connect_timeout: float = 10.0
    stream_first_chunk_timeout: float = 60.0
    max_response_size: int = 32 * 1024 * 1024  # bytes, decompressed, of one answer or one whole stream
    stream_idle_timeout: float = 30.0  # a stream's gaps between chunks, once the first has come
    stream_total_timeout: float = 300.0
    max_retries: int = 0
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    quota_reset_schedule: str | None = None   # daily | monthly | rolling | daily_utc
    quota_query_current: bool = False         # ask the provider's quota endpoint (status shows the usage)
    quota_query_remaining: bool = False       # ... and rotate away before what is left runs out
    quota_query_interval: float = 300.0       # seconds between quota queries
    quota_min_remaining: float = 0.05         # below this share of the limit left: on standby (quota_low)
    pricing_query: bool = False               # take prices from the provider's model listing
    pricing_query_interval: float = 3600.0    # seconds between price queries
    retryable_codes: tuple[int, ...] = _DEFAULT_CODES
    non_retryable_codes: tuple[int, ...] = (400, 401, 403)
    headers: Mapping[str, str] = field(default=_EMPTY, repr=False)
    api_version: str | None = None
    deployment: str | None = None
    auto_discover: bool = False
    refresh_interval: float | None = None
    open_catalogue: bool = False  # requests may name models it does not list: sent under that name
    infrastructure: Mapping[str, bool] = _EMPTY
    options: Mapping[str, Any] = field(default=_EMPTY, repr=False)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)

    def model(self, model_id: str) -> ModelConfig | None:
        """The model with this id or alias, if configured."""
        for model in self.models:
            if model.id == model_id or model_id in model.aliases:
                return model
        return None


@dataclass(**_value)
class DeactivationConfig:
    retry_limit: int = 3
    error_rate_threshold: float | None = None
    error_rate_min_requests: int = 10
    error_codes: tuple[int, ...] = _DEFAULT_CODES
    request_limit: int | None = None
    token_limit: int | None = None
    budget_limit: float | None = None
    quota_window: str | None = None           # daily | monthly
    maintenance_window: str | None = None     # 5-field cron expression
    maintenance_duration: float = 3600.0
    policies: tuple[str, ...] = ()            # "package.module:function", asked after the above


@dataclass(**_value)
class RecoveryConfig:
    cooldown: float = 60.0                    # the longest cooldown; the first is initial_cooldown
    initial_cooldown: float = 5.0             # doubles for a model that fails again soon after coming back
    retry_after_cap: float = 300.0            # longest standby an upstream's Retry-After or reset may set
    probe_on_start: bool = False
    probe_interval: float | None = 10.0       # standby models are probed back this often; null: never
    on_quota_reset: bool = False
    quota_reset_schedule: str | None = None   # daily_utc | daily | monthly
    half_open_max: int = 1
    success_threshold: int = 1
    manual: bool = False
    policies: tuple[str, ...] = ()            # "package.module:function", asked before the above


@dataclass(**_value)
class RateLimitSelectionConfig:
    threshold: float = 0.9
    min_delta: float = 0.0
    max_rpm: int | None = None


@dataclass(**_value)
class SelectionConfig:
    model_priority: tuple[str, ...] = ()
    provider_priority: tuple[str, ...] = ()
    fallback_strategy: str = "stick-until-failure"
    balance_mode: str = "relative"            # relative | absolute
    weights: Mapping[str, float] = _EMPTY
    rate_limit: RateLimitSelectionConfig = field(default_factory=RateLimitSelectionConfig)


@dataclass(**_value)
class RotationPolicyConfig:
    """`rotation.policy`: a rotation policy class (modelmesh.cdk) the builder makes with `config`."""

    connector: str                            # threshold | "package.module:Class"
    config: Mapping[str, Any] = field(default=_EMPTY, repr=False)


@dataclass(**_value)
class RotationConfig:
    deactivation: DeactivationConfig = field(default_factory=DeactivationConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    policy: RotationPolicyConfig | None = None  # asked beside the settings above; not inherited
    provider_deactivation: tuple[str, ...] = ("on_auth_failure", "on_api_outage")
    provider_recovery: str = "on_probe_success"  # on_probe_success | on_manual


@dataclass(**_value)
class RetryConfig:
    max_attempts: int | None = None           # None = every member once, plus same-model retries
    backoff: str = "exponential"              # exponential | fixed
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True
    scope: str = "any"                        # any | same-model | same-provider
    same_model_retries: int = 1               # transient faults: once more on the same model
    same_model_wait: float = 5.0              # longest Retry-After worth waiting for on the same model
    deadline: float | None = 120.0
    respect_retry_after: bool = True
    max_retry_after: float = 60.0


@dataclass(**_value)
class PoolDefaults:
    """The top-level `routing:` section: what every pool inherits."""

    strategy: str = "stick-until-failure"
    rotation: RotationConfig = field(default_factory=RotationConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    on_exhausted: str = "fail"
    max_wait: float = 30.0
    stream_resume: bool = True
    content_filter_failover: bool = False


@dataclass(**_value)
class PoolConfig:
    name: str
    capability: str | None = None
    models: tuple[str, ...] = ()              # "provider/model-id"
    providers: tuple[str, ...] = ()
    strategy: str = "stick-until-failure"
    rotation: RotationConfig = field(default_factory=RotationConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    on_exhausted: str = "fail"                # fail | wait
    max_wait: float = 30.0
    stream_resume: bool = True                # a stream broken after content continues, verified, or fails honestly
    content_filter_failover: bool = False     # a refusal is the prompt's: by default, no other model is tried
    description: str | None = None


@dataclass(**_value)
class StorageConfig:
    connector: str = "memory"                 # memory | file | sqlite | redis | "module:Class"
    config: Mapping[str, Any] = field(default=_EMPTY, repr=False)  # redis URLs hold passwords
    sync_policy: str = "in-memory"           # "periodic" when a connector other than memory is named
    sync_interval: float = 1.0
    format: str = "json"
    compression: bool = False
    encryption: bool = False
    encryption_secret: str = "storage_encryption_key"  # the secret store's name for the key
    encryption_key: str | None = field(default=None, repr=False, compare=False)  # its value, read at parse
    locking_enabled: bool = True
    locking_timeout: float = 30.0
    locking_retry_interval: float = 0.05


@dataclass(**_value)
class ObservabilitySink:
    connector: str                            # console | file | null | callback | webhook
    config: Mapping[str, Any] = field(default=_EMPTY, repr=False)  # webhook tokens


@dataclass(**_value)
class ObservabilityConfig:
    connectors: tuple[ObservabilitySink, ...] = ()
    events_filter: tuple[str, ...] = ()       # empty = every event
    include_metadata: bool = True
    logging_level: str = "metadata"           # metadata | summary | full
    redact_secrets: bool = True
    max_payload_size: int | None = None
    min_severity: str = "info"
    flush_interval: float = 60.0
    retention: float = 7 * 86400.0
    scopes: tuple[str, ...] = ("model", "provider", "pool")


@dataclass(**_value)
class DiscoveryConfig:
    sync_enabled: bool = False                # registry sync is not run in this version
    sync_interval: float = 3600.0
    auto_register: bool = True
    sync_providers: tuple[str, ...] = ()
    on_new_model: str = "register"            # register | notify | ignore
    on_deprecated_model: str = "notify"       # notify | deactivate | ignore
    # True: every provider's health endpoint is checked each interval; False: no probe at all
    # (provider standbys end by cooldown); None (not said): only providers that are down are probed
    health_enabled: bool | None = None
    health_interval: float = 60.0
    health_timeout: float = 10.0
    health_failure_threshold: int = 3
    health_providers: tuple[str, ...] = ()
    health_connector: str | None = None       # "package.module:Class" (a modelmesh.cdk.BaseDiscovery); None: built in
    health_config: Mapping[str, Any] = field(default=_EMPTY, repr=False)  # its keyword arguments


@dataclass(**_value)
class ProxyRateLimit:
    """A token bucket of the proxy: `rpm` requests a minute, `burst` at once (None: `rpm`)."""

    rpm: float
    burst: float | None = None


@dataclass(**_value)
class ProxyConfig:
    """`modelmesh serve`: where it listens, who may call it, what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1                          # processes; > 1 shares health through storage
    threads: int = 16                         # blocking threads per worker (requests served at once)
    shutdown_timeout: float = 30.0            # how long in-flight requests may finish after SIGTERM
    master_key: str | None = field(default=None, repr=False, compare=False)  # auth.master_key, resolved
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # further keys clients may present
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    model_aliases: Mapping[str, str] = _EMPTY
    rate_limit_per_key: ProxyRateLimit | None = None  # rate_limit.per_key: every key's bucket
    rate_limit_per_ip: ProxyRateLimit | None = None   # rate_limit.per_ip: every client address's bucket
    metrics_public: bool = False              # metrics.public: /metrics without the master key


@dataclass(**_value)
class MeshConfig:
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    providers: Mapping[str, ProviderConfig] = _EMPTY
    pools: Mapping[str, PoolConfig] = _EMPTY
    storage: StorageConfig = field(default_factory=StorageConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    defaults: PoolDefaults = field(default_factory=PoolDefaults)
    # "path: secret-name" for references left unresolved because fail_on_missing is off
    missing_secrets: tuple[str, ...] = ()
    resolved_secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def secret_values(self) -> tuple[str, ...]:
        """Every credential this configuration holds, for redaction of logs and errors."""
        found: list[str] = list(self.resolved_secrets)
        for provider in self.providers.values():
            found += [k for k in (provider.auth.api_key, *provider.auth.api_keys) if k]
            # a header value may be a literal credential; short ones ("true", "v1") are not,
            # and redacting them would garble every message
            found += [v for v in provider.headers.values() if isinstance(v, str) and len(v) >= 8]
        found += list(self.proxy.api_keys) + list(self.secrets.values.values())
        found += [self.proxy.master_key] if self.proxy.master_key else []
        found += [self.storage.encryption_key] if self.storage.encryption_key else []
        return tuple(dict.fromkeys(v for v in found if isinstance(v, str) and v))

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return redact(f"MeshConfig({parts})", self.secret_values())
