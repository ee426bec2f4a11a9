"""The typed configuration objects of ModelMesh Lite.

Theory of operation: `_config.parse_config` turns plain data into these frozen,
slotted, keyword-only value objects. The class defaults ARE the documented defaults:
the parser reads each key with the field's default as its fallback, so the objects
and the parser cannot drift apart. Mappings are `FrozenMap` (immutable, hashable when
its values are, picklable), lists are tuples. Fields that may hold credentials are
left out of reprs (`repr=False`), and `MeshConfig`'s repr also scrubs every secret
value it knows.

Below the objects are the schema's type rules and the reading machinery. Each value
converter (`as_int`, `as_duration`, `as_choice`, ...) returns the typed value or
raises ValueError with the exact message a user reads in a ConfigurationError.
`Ctx` gathers problems and substitutes `${secrets:NAME}` references; `Section` reads
one mapping, knowing its path and its allowed keys.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator, Mapping

from ._capabilities import infer_capabilities
from ._cron import CronSchedule
from ._durations import parse_duration
from ._errors import redact

__all__ = [
    "FrozenMap", "freeze",
    "STRATEGIES", "KNOWN_CONNECTORS",
    "SecretsConfig", "AuthConfig", "Pricing", "ModelConfig", "BudgetConfig",
    "RateLimitsConfig", "ProviderConfig", "DeactivationConfig", "RecoveryConfig",
    "RateLimitSelectionConfig", "SelectionConfig", "RotationConfig", "RetryConfig",
    "PoolConfig", "PoolDefaults", "StorageConfig", "ObservabilitySink",
    "ObservabilityConfig", "DiscoveryConfig", "ProxyConfig", "MeshConfig",
    "Ctx", "Section", "UNRESOLVED", "ItemErrors",
]

STRATEGIES = ("stick-until-failure", "priority", "round-robin", "cost-first", "latency-first",
              "session-sticky", "rate-limit-aware", "load-balanced")

# Connector names the provider section accepts besides "package.module:ClassName".
# A set so that a connector catalogue can register more names at import time.
KNOWN_CONNECTORS: set[str] = {
    "openai", "anthropic", "gemini", "azure-openai", "openai-compatible", "groq", "mistral",
    "deepseek", "together", "openrouter", "xai", "perplexity", "fireworks", "cerebras",
    "ollama", "lmstudio", "vllm", "localai",
}


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping: unlike MappingProxyType it pickles and hashes."""

    __slots__ = ("_data",)

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


def freeze(value: Any) -> Any:
    """Deep-convert plain data: dicts to FrozenMap, lists to tuples, lost secrets to None."""
    if value is UNRESOLVED:
        return None
    if isinstance(value, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


_CUSTOM_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_URL = re.compile(r"^https?://[^/\s:]+(:\d+)?(/\S*)?$", re.IGNORECASE)
_EMPTY = FrozenMap()


class _Unresolved:
    """Stands where a secret reference could not be resolved (and was already reported)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unresolved secret>"


UNRESOLVED = _Unresolved()
_DEFAULT_CODES = (429, 500, 502, 503, 504)
_value = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_value)
class SecretsConfig:
    store: str = "env"                  # env | file | dotenv | memory | "module:Class"
    path: str | None = None             # file/dotenv store: .env or JSON file
    values: Mapping[str, str] = field(default=_EMPTY, repr=False)  # memory store
    cache_enabled: bool = True
    cache_ttl: float = 300.0
    reload_on_rotation: bool = False          # not acted on in this version: the builder refuses true
    fail_on_missing: bool = True


@dataclass(**_value)
class AuthConfig:
    method: str = "api_key"             # api_key | oauth | service_account | none
    api_key: str | None = field(default=None, repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # all keys, for key_rotation
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
    stream_total_timeout: float = 300.0
    max_retries: int = 0
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    quota_reset_schedule: str | None = None   # daily | monthly | rolling | daily_utc
    quota_query_current: bool = False
    quota_query_remaining: bool = False
    pricing_query: bool = False
    retryable_codes: tuple[int, ...] = _DEFAULT_CODES
    non_retryable_codes: tuple[int, ...] = (400, 401, 403)
    headers: Mapping[str, str] = field(default=_EMPTY, repr=False)
    api_version: str | None = None
    deployment: str | None = None
    auto_discover: bool = False
    refresh_interval: float | None = None
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
    cooldown: float = 60.0
    probe_on_start: bool = False
    probe_interval: float | None = None
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
class RotationConfig:
    deactivation: DeactivationConfig = field(default_factory=DeactivationConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    provider_deactivation: tuple[str, ...] = ("on_auth_failure", "on_api_outage")
    provider_recovery: str = "on_probe_success"  # on_probe_success | on_manual


@dataclass(**_value)
class RetryConfig:
    max_attempts: int = 4
    backoff: str = "exponential"              # exponential | fixed
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True
    scope: str = "any"                        # any | same-model | same-provider
    same_model_retries: int = 0
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
    stream_resume: bool = False


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
    stream_resume: bool = False
    description: str | None = None


@dataclass(**_value)
class StorageConfig:
    connector: str = "memory"                 # memory | file | sqlite | redis | "module:Class"
    config: Mapping[str, Any] = field(default=_EMPTY, repr=False)  # redis URLs hold passwords
    sync_policy: str = "in-memory"
    sync_interval: float = 300.0
    format: str = "json"
    compression: bool = False
    encryption: bool = False
    locking_enabled: bool = True
    locking_timeout: float = 30.0
    locking_retry_interval: float = 1.0


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
    health_enabled: bool = True
    health_interval: float = 60.0
    health_timeout: float = 10.0
    health_failure_threshold: int = 3
    health_providers: tuple[str, ...] = ()


@dataclass(**_value)
class ProxyConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    model_aliases: Mapping[str, str] = _EMPTY


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
        found += list(self.proxy.api_keys) + list(self.secrets.values.values())
        return tuple(dict.fromkeys(v for v in found if isinstance(v, str) and v))

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return redact(f"MeshConfig({parts})", self.secret_values())


# -- value converters: each raises ValueError with the message the user will read ------

def show(value: Any) -> str:
    """A value as the user wrote it in YAML: strings in double quotes, null, true."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def suggest(word: Any, options: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join(path: str, key: Any) -> str:
    """The path of a mapping key; list items are written `path[i]` by their callers."""
    return f"{path}.{key}" if path else str(key)


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {show(value)}")
    return value


def as_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {show(value)}")
    return value


def as_secret(value: Any) -> str:
    """A credential: like as_str, but a wrong value is never echoed back."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got a value of type {type(value).__name__}")
    return value


def as_int(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {show(value)}")
        _check_range(value, low, high)
        return value
    return convert


def as_number(low: float | None = None, high: float | None = None,
              above: float | None = None) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError(f"expected a number, got {show(value)}")
        if above is not None and value <= above:
            raise ValueError(f"expected a number greater than {above:g}, got {show(value)}")
        _check_range(value, low, high)
        return float(value)
    return convert


def _check_range(value: float, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"expected a value from {low:g} to {high:g}, got {show(value)}")
    if low is not None and value < low:
        raise ValueError(f"expected a value of at least {low:g}, got {show(value)}")
    if high is not None and value > high:
        raise ValueError(f"expected a value of at most {high:g}, got {show(value)}")


def as_duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'expected a duration like "60s", got {show(value)}') from None


def as_positive_duration(value: Any) -> float:
    seconds = as_duration(value)
    if seconds <= 0:
        raise ValueError(f'expected a duration longer than zero like "60s", got {show(value)}')
    return seconds


def _canonical(value: str, options: Iterable[str]) -> str | None:
    norm = value.strip().lower().replace("_", "-")
    for option in options:
        if option == value or option.lower().replace("_", "-") == norm:
            return option
    return None


def as_choice(options: Iterable[str], custom: bool = False) -> Callable[[Any], str]:
    """One of `options`; with `custom`, also a "package.module:Name" import path."""
    options = tuple(options)

    def convert(value: Any) -> str:
        if isinstance(value, str):
            found = _canonical(value, options)
            if found is not None:
                return found
            if custom and _CUSTOM_PATH.match(value.strip()):
                return value.strip()
        listed = ", ".join(repr(o) for o in options)
        extra = ' or a "package.module:Name" path' if custom else ""
        raise ValueError(f"expected one of {listed}{extra}, got {show(value)}"
                         f"{suggest(value, options)}")
    return convert


class ItemErrors(ValueError):
    """Problems with single items of a list or mapping, reported at each item's path."""

    def __init__(self, items: list[tuple[int | str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in items))
        self.items = items


def as_list(item: Callable[[Any], Any], allow_single: bool = True) -> Callable[[Any], tuple]:
    """A list of items (or one bare item); every bad item is reported at its own index."""
    def convert(value: Any) -> tuple:
        if isinstance(value, (str, int, float)) and allow_single:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {show(value)}")
        out, bad = [], []
        for index, entry in enumerate(value):
            if entry is UNRESOLVED:
                continue
            try:
                out.append(item(entry))
            except (ValueError, TypeError) as exc:
                bad.append((index, str(exc)))
        if bad:
            raise ItemErrors(bad)
        return tuple(out)
    return convert


def as_status_codes(value: Any) -> tuple[int, ...]:
    return as_list(as_int(100, 599))(value)


def as_url(value: Any) -> str:
    if not isinstance(value, str) or not _URL.match(value.strip()):
        raise ValueError(f"expected an http(s) URL like \"https://api.example.com/v1\", "
                         f"got {show(value)}")
    return value.strip()


def as_cron(value: Any) -> str:
    """A 5-field cron expression, checked by the same parser the core schedules with."""
    CronSchedule.parse(value)  # its ValueError names the field and column at fault
    return value


def as_schedule(options: Iterable[str]) -> Callable[[Any], str]:
    """A named reset schedule (`daily`, `monthly`, ...) or a 5-field cron expression."""
    named = as_choice(options)

    def convert(value: Any) -> str:
        if isinstance(value, str) and len(value.split()) == 5:
            return as_cron(value)
        try:
            return named(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (or a 5-field cron expression)") from None
    return convert


def as_mapping_of(item: Callable[[Any], Any]) -> Callable[[Any], dict]:
    def convert(value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {show(value)}")
        out, bad = {}, []
        for key, entry in value.items():
            if entry is UNRESOLVED:
                continue
            try:
                out[as_str(key)] = item(entry)
            except (ValueError, TypeError) as exc:
                bad.append((str(key), str(exc)))
        if bad:
            raise ItemErrors(bad)
        return out
    return convert




# -- the reading machinery -----------------------------------------------------------

_SECRET_REF = re.compile(r"\$\{secrets:([^}]*)\}")


class Ctx:
    """Problems, resolved secrets and missing secrets gathered during one parse."""

    def __init__(self, resolve_secret: Callable[[str], str | None] | None) -> None:
        self.resolve_secret = resolve_secret
        self.fail_on_missing = True
        self.problems: list[str] = []
        self.secrets: list[str] = []
        self.missing: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '(top level)'}: {message}")

    def section(self, value: Any, path: str, keys: Iterable[str],
                hints: Mapping[str, str] | None = None) -> Section:
        """A reader over `value`; reports a non-mapping and every unknown key."""
        if value is None or value is UNRESOLVED:
            value = {}
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping, got {show(value)}")
            value = {}
        return Section(self, value, path, tuple(keys), hints or {})

    def scrub(self, text: str) -> str:
        for value in sorted(set(self.secrets), key=len, reverse=True):
            text = text.replace(value, "***")
        return redact(text)

    def substitute(self, value: Any, path: str) -> Any:
        """`value` with every `${secrets:NAME}` replaced; problems reported at their path."""
        if isinstance(value, str):
            return self._substitute_string(value, path) if "${secrets:" in value else value
        if isinstance(value, Mapping):
            return {k: self.substitute(v, join(path, k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.substitute(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _substitute_string(self, text: str, path: str) -> Any:
        refs = list(_SECRET_REF.finditer(text))
        if not refs:
            self.problem(path, "malformed secret reference (expected ${secrets:NAME})")
            return UNRESOLVED
        whole = len(refs) == 1 and refs[0].group(0) == text
        out, lost = text, False
        for ref in refs:
            resolved = self._resolve(ref.group(1).strip(), path)
            lost = lost or resolved is None
            out = out.replace(ref.group(0), resolved or "", 1)
        # a lost whole-string secret leaves the key unset; a lost embedded one an empty gap
        return UNRESOLVED if lost and (whole or self.fail_on_missing) else out

    def _resolve(self, name: str, path: str) -> str | None:
        if not name:
            self.problem(path, "secret reference with an empty name")
            return None
        if self.resolve_secret is None:
            self.problem(path, f"secret {name!r} referenced but no secret resolver was given")
            return None
        try:
            value = self.resolve_secret(name)
        except Exception as exc:  # noqa: BLE001 - a store's message may hold anything
            self.problem(path, f"secret {name!r} could not be read ({type(exc).__name__})")
            return None
        if value is None or value == "":
            if self.fail_on_missing:
                self.problem(path, f"secret {name!r} not found")
            else:
                self.missing.append(f"{path}: {name}")
            return None
        if not isinstance(value, str):
            self.problem(path, f"secret {name!r} is not a string")
            return None
        self.secrets.append(value)
        return value


class Section:
    """Typed access to one mapping of the configuration, which knows its path."""

    __slots__ = ("ctx", "data", "path")

    def __init__(self, ctx: Ctx, data: Mapping[Any, Any], path: str,
                 keys: tuple[str, ...], hints: Mapping[str, str]) -> None:
        self.ctx, self.data, self.path = ctx, data, path
        for key in data:
            if key in keys:
                continue
            if not isinstance(key, str):
                ctx.problem(path, f"keys must be strings, got {show(key)}")
            elif key in hints:
                ctx.problem(join(path, key), f"unknown key ({hints[key]})")
            else:
                ctx.problem(join(path, key), f"unknown key{suggest(key, keys)}")

    def at(self, key: str) -> str:
        return join(self.path, key)

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, UNRESOLVED)

    def get(self, key: str, default: Any, convert: Callable[[Any], Any],
            nullable: bool | None = None) -> Any:
        """The converted value of `key`, or `default` (after reporting) when it is bad."""
        if key not in self.data or self.data[key] is UNRESOLVED:
            return default
        value = self.data[key]
        if value is None:
            if nullable if nullable is not None else default is None:
                return None
            self.ctx.problem(self.at(key), "must not be null")
            return default
        try:
            return convert(value)
        except ItemErrors as exc:
            for where, message in exc.items:
                at = self.at(key)
                self.ctx.problem(f"{at}[{where}]" if isinstance(where, int) else join(at, where),
                                 message)
        except (ValueError, TypeError) as exc:
            self.ctx.problem(self.at(key), str(exc))
        return default

    def require(self, key: str, convert: Callable[[Any], Any]) -> Any:
        if key not in self.data:
            self.ctx.problem(self.at(key), "required")
        return self.get(key, None, convert)

    def sub(self, key: str, keys: Iterable[str],
            hints: Mapping[str, str] | None = None) -> Section:
        return self.ctx.section(self.data.get(key), self.at(key), keys, hints)

    def either(self, key: str, group: Section, default: Any,
               convert: Callable[[Any], Any]) -> Any:
        """`key` read here or in an alternative group (`execution:`); both is a problem."""
        if group.has(key):
            if self.has(key):
                self.ctx.problem(self.at(key), f"also given in {group.path}; keep one")
            return group.get(key, default, convert)
        return self.get(key, default, convert)
