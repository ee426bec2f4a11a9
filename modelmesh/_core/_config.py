"""Configuration: plain data in, validated `MeshConfig` out, every problem at once.

Theory of operation: `parse_config` never stops at the first mistake. A `Ctx`
collects problems as `"path: message"` lines while the section readers below walk the
data; each `Section` knows its allowed keys (an unknown one is a problem with a
did-you-mean), and `get(key, default, convert)` type-checks one value with a converter
from `_config_schema`, falling back to the default when the value is absent or wrong
so that the walk goes on. At the end any problem raises one `ConfigurationError`.

Defaults come from the dataclasses themselves, or, for pools, from the top-level
`routing:` section: each reader takes a `base` object and reads every key with the
base's value as its fallback.

Secret references (`${secrets:NAME}`) are substituted in one pass before the walk, so
readers see plain values; a reference that cannot be resolved is reported at its path
and replaced by a marker the readers skip (one problem, not two). Resolved values are
remembered and scrubbed from the error text.

This module reads no files and no environment: `modelmesh.config.load_config` does
that and hands in plain data and a `resolve_secret` callable.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Callable, Collection, Mapping, cast

from ._capabilities import is_capability, is_leaf, is_under, leaves_under, resolve_capability
from ._config_read import (
    UNRESOLVED, Ctx, Section, as_bool, as_choice, as_cron, as_duration, as_header_secret, as_headers,
    as_int, as_list, as_mapping_of, as_number, as_positive_duration, as_schedule, as_secret,
    as_status_codes, as_str, as_url, join, show, suggest,
)
from ._config_schema import (
    CONNECTOR_CAPABILITIES, KNOWN_CONNECTORS, STRATEGIES, AuthConfig, BudgetConfig, DeactivationConfig, DiscoveryConfig,
    FrozenMap, MeshConfig, ModelConfig, ObservabilityConfig, ObservabilitySink, PoolConfig,
    PoolDefaults, Pricing, ProviderConfig, ProxyConfig, ProxyRateLimit, RateLimitSelectionConfig, RateLimitsConfig,
    RecoveryConfig, RetryConfig, RotationConfig, RotationPolicyConfig, SecretsConfig, SelectionConfig, StorageConfig,
    freeze,
)
from ._errors import ConfigurationError, redact
from ._types import parse_model_ref

__all__ = ["parse_config", "parse_config_partial", "empty_pools", "parse_secrets_config", "KNOWN_CONNECTORS"]

TOP_KEYS = ("secrets", "providers", "pools", "routing", "storage", "observability",
            "discovery", "proxy")
SECRET_STORES = ("env", "file", "dotenv", "memory", "encrypted-file", "keyring")
_SECRET_KEYS = ("store", "connector", "path", "values", "resolution", "cache_enabled",
                "cache_ttl", "reload_on_rotation", "fail_on_missing", "passphrase_env", "service")
_RESOLUTION_KEYS = ("cache_enabled", "cache_ttl", "reload_on_rotation", "fail_on_missing")
_PROVIDER_KEYS = ("connector", "enabled", "config")
_CONFIG_KEYS = ("base_url", "auth", "models", "timeout", "connect_timeout",
                "stream_first_chunk_timeout", "stream_idle_timeout", "stream_total_timeout", "max_response_size",
                "max_retries", "budget",
                "quota", "error", "catalogue", "pricing", "infrastructure", "headers",
                "api_version", "deployment", "rate_limits", "options", "execution")
_MODEL_KEYS = tuple(f.name for f in fields(ModelConfig))
_POOL_KEYS = tuple(f.name for f in fields(PoolConfig) if f.name != "name")
_ROUTING_KEYS = tuple(f.name for f in fields(PoolDefaults))
_NEEDS_BASE_URL = frozenset({"openai-compatible", "azure-openai"})
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def parse_config(data: Mapping[str, Any], *,
                 resolve_secret: Callable[[str], str | None] | None = None,
                 source: str | None = None) -> MeshConfig:
    """Validate plain configuration data; raise ConfigurationError listing every problem."""
    config, problems = parse_config_partial(data, resolve_secret=resolve_secret)
    if problems or config is None:
        raise ConfigurationError(problems, source=source)
    return config


def parse_config_partial(data: Any, *,
                         resolve_secret: Callable[[str], str | None] | None = None,
                         strategy_names: Collection[str] = (),
                         ) -> tuple[MeshConfig | None, tuple[str, ...]]:
    """(best-effort config, problems): every bad value stands at its default, so that the
    build step can go on checking what it alone can check and report everything at once.
    The config is None only when the data is not a mapping at all, or is too big to walk.
    `strategy_names` are user strategies a pool may name besides the built-ins."""
    ctx = Ctx(resolve_secret, strategy_names)
    if not isinstance(data, Mapping):
        ctx.problem("", f"expected a mapping of sections, got {show(data)}")
        return None, tuple(ctx.problems)
    oversized = _oversized(data)
    if oversized is not None:
        ctx.problem(*oversized)
        return None, tuple(ctx.problems)
    secrets = _secrets(ctx.section(data.get("secrets"), "secrets", _SECRET_KEYS))
    ctx.fail_on_missing = secrets.fail_on_missing
    plain = {k: (v if k == "secrets" else ctx.substitute(v, str(k))) for k, v in data.items()}
    top = ctx.section(plain, "", TOP_KEYS)
    providers = _providers(ctx, top)
    defaults = _routing(top.sub("routing", _ROUTING_KEYS), PoolDefaults(), providers)
    pools = _pools(ctx, top, defaults, providers)
    config = MeshConfig(
        secrets=secrets,
        providers=FrozenMap(providers),
        pools=FrozenMap(pools),
        storage=_storage(top.sub("storage", ("connector", "config", "persistence", "locking"))),
        observability=_observability(ctx, top.sub("observability", _OBS_KEYS)),
        discovery=_discovery(top.sub("discovery", ("sync", "health")), providers),
        proxy=_proxy(top.sub("proxy", _PROXY_KEYS), providers, pools),
        defaults=defaults,
        missing_secrets=tuple(ctx.missing),
        resolved_secrets=tuple(dict.fromkeys(ctx.secrets)),
    )
    known = config.secret_values()  # literal keys and header values too, not only references
    return config, tuple(redact(p, known) for p in ctx.problems)


MAX_DEPTH = 64
MAX_VALUES = 100_000


def _oversized(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(path, problem) when the data is nested too deep or holds too many values.

    The readers recurse and copy; a value that contains itself, or a few lists each
    repeating the one before (a "billion laughs" built in Python or by YAML aliases),
    would exhaust the stack or the memory. A walk without recursion stops at the limit.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    count = 0
    while stack:
        value, path, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return path, f"more than {MAX_VALUES} values in the configuration (repeated aliases?)"
        if depth > MAX_DEPTH:
            return path, f"nested deeper than {MAX_DEPTH} levels (does a value contain itself?)"
        if isinstance(value, Mapping):
            stack += [(v, join(path, k), depth + 1) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            stack += [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    return None


def empty_pools(config: MeshConfig) -> list[str]:
    """A problem for each configured pool that no configured model can serve. The core's
    membership rule, before `enabled`: switching a provider off must not break the config."""
    problems = []
    for name, pool in config.pools.items():
        if not (pool.capability or pool.models):
            continue  # the parser has reported it
        refs = {ref.partition("/")[0] for ref in pool.models}
        if not any(_may_serve(pid, p, pool.capability, refs) for pid, p in config.providers.items()
                   if not pool.providers or pid in pool.providers):
            what = f"capability {pool.capability!r}" if pool.capability else "its models"
            only = f" among providers {', '.join(pool.providers)}" if pool.providers else ""
            problems.append(f"pools.{name}: no configured model matches {what}{only}: "
                            "the pool would have no members")
    return problems


def _may_serve(pid: str, provider: ProviderConfig, capability: str | None, refs: set[str]) -> bool:
    if pid in refs or provider.auto_discover:
        return True
    if not capability:
        return False
    return any(is_under(c, capability) for m in provider.models for c in m.capabilities)


def parse_secrets_config(data: Any, *, source: str | None = None) -> SecretsConfig:
    """Just the `secrets:` section: the I/O side needs it to build the resolver first."""
    ctx = Ctx(None)
    config = _secrets(ctx.section(data, "secrets", _SECRET_KEYS))
    if ctx.problems:
        raise ConfigurationError(ctx.problems, source=source)
    return config


# -- secrets ---------------------------------------------------------------------------

def _secrets(s: Section) -> SecretsConfig:
    base = SecretsConfig()
    res = s.sub("resolution", _RESOLUTION_KEYS)
    kind = as_choice(SECRET_STORES, custom=True)
    store = _store_name(s, kind, base.store)
    path = s.get("path", None, as_str)
    if store in ("file", "dotenv", "encrypted-file") and path is None and "path" not in s.data:
        s.ctx.problem(s.at("path"), f"required for the {store!r} secret store")
    values = s.get("values", base.values, lambda v: FrozenMap(as_mapping_of(as_secret)(v)))
    if values and store != "memory":
        s.ctx.problem(s.at("values"), f"only the 'memory' store reads values (store is {store!r})")
    return SecretsConfig(
        store=store, path=path, values=values,
        cache_enabled=s.either("cache_enabled", res, base.cache_enabled, as_bool),
        cache_ttl=s.either("cache_ttl", res, base.cache_ttl, as_duration),
        reload_on_rotation=s.either("reload_on_rotation", res, base.reload_on_rotation, as_bool),
        fail_on_missing=s.either("fail_on_missing", res, base.fail_on_missing, as_bool),
        passphrase_env=s.get("passphrase_env", base.passphrase_env, as_env_name),
        service=s.get("service", base.service, as_str),
    )


def _store_name(s: Section, kind: Callable[[Any], str], default: str) -> str:
    """`store:` is the documented key; `connector:` (the seeds' word) is read too."""
    if s.has("store") and s.has("connector"):
        s.ctx.problem(s.at("connector"), "also given as 'store'; keep one")
    key = "connector" if s.has("connector") and not s.has("store") else "store"
    return cast(str, s.get(key, default, kind))  # Section.get is untyped; `kind` and `default` are str


# -- providers -------------------------------------------------------------------------

def _providers(ctx: Ctx, top: Section) -> dict[str, ProviderConfig]:
    raw = top.data.get("providers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        ctx.problem("providers", f"expected a mapping of provider id to provider, got {show(raw)}")
        return {}
    out: dict[str, ProviderConfig] = {}
    for pid, value in raw.items():
        path = join("providers", pid)
        if not isinstance(pid, str) or not _PROVIDER_ID.match(pid):
            ctx.problem(path, "a provider id is letters, digits, '.', '_' and '-' "
                              "(no '/': it separates provider from model)")
            continue
        out[pid] = _provider(ctx, pid, value, path)
    return out


def _provider(ctx: Ctx, pid: str, value: Any, path: str) -> ProviderConfig:
    hints = {k: "provider settings go under 'config:'" for k in _CONFIG_KEYS}
    p = ctx.section(value, path, _PROVIDER_KEYS, hints)
    connector = p.require("connector", as_choice(sorted(KNOWN_CONNECTORS), custom=True))
    c = p.sub("config", _CONFIG_KEYS)
    ex = c.sub("execution", ("base_url", "timeout", "connect_timeout", "max_retries"))
    base_url = c.either("base_url", ex, None, as_url)
    if connector in _NEEDS_BASE_URL and base_url is None and not c.has("base_url") \
            and not ex.has("base_url"):
        ctx.problem(c.at("base_url"), f"required for the {connector!r} connector")
    error = c.sub("error", ("retryable_codes", "non_retryable_codes"))
    base = ProviderConfig(id=pid, connector=connector or "openai-compatible")
    retryable = error.get("retryable_codes", base.retryable_codes, as_status_codes)
    fatal = error.get("non_retryable_codes", base.non_retryable_codes, as_status_codes)
    if set(retryable) & set(fatal):
        ctx.problem(error.path, f"codes {sorted(set(retryable) & set(fatal))} are both "
                                "retryable and non-retryable")
    quota = c.sub("quota", ("reset_schedule", "query_current", "query_remaining", "query_interval", "min_remaining"))
    pricing = c.sub("pricing", ("query", "query_interval"))
    catalogue = c.sub("catalogue", ("auto_discover", "refresh_interval", "open"))
    auto = catalogue.get("auto_discover", False, as_bool)
    budget = c.sub("budget", _names(BudgetConfig))
    limits = c.sub("rate_limits", _names(RateLimitsConfig))
    return ProviderConfig(  # built even when the connector is bad, so pools can refer to it
        id=pid, connector=connector or "", enabled=p.get("enabled", True, as_bool),
        base_url=base_url, auth=_auth(c.sub("auth", _AUTH_KEYS)),
        models=_models(ctx, c, auto, CONNECTOR_CAPABILITIES.get(connector or "", ())),
        timeout=c.either("timeout", ex, base.timeout, as_positive_duration),
        connect_timeout=c.either("connect_timeout", ex, base.connect_timeout,
                                 as_positive_duration),
        stream_first_chunk_timeout=c.get("stream_first_chunk_timeout",
                                         base.stream_first_chunk_timeout, as_positive_duration),
        stream_idle_timeout=c.get("stream_idle_timeout", base.stream_idle_timeout, as_positive_duration),
        max_response_size=c.get("max_response_size", base.max_response_size, as_int(1024, 2**40)),
        stream_total_timeout=c.get("stream_total_timeout", base.stream_total_timeout,
                                   as_positive_duration),
        max_retries=c.either("max_retries", ex, base.max_retries, as_int(0, 100)),
        budget=BudgetConfig(daily_limit=budget.get("daily_limit", None, as_number(above=0)),
                            monthly_limit=budget.get("monthly_limit", None, as_number(above=0))),
        quota_reset_schedule=quota.get("reset_schedule", None, as_schedule(
            ("daily", "monthly", "rolling", "daily_utc"))),
        quota_query_current=quota.get("query_current", False, as_bool),
        quota_query_remaining=quota.get("query_remaining", False, as_bool),
        quota_query_interval=quota.get("query_interval", base.quota_query_interval, as_positive_duration),
        quota_min_remaining=quota.get("min_remaining", base.quota_min_remaining, as_number(0.0, 1.0)),
        pricing_query=pricing.get("query", False, as_bool),
        pricing_query_interval=pricing.get("query_interval", base.pricing_query_interval, as_positive_duration),
        retryable_codes=retryable, non_retryable_codes=fatal,
        headers=c.get("headers", base.headers, lambda v: FrozenMap(as_headers(v))),
        api_version=c.get("api_version", None, as_str),
        deployment=c.get("deployment", None, as_str),
        auto_discover=auto,
        refresh_interval=catalogue.get("refresh_interval", None, as_positive_duration),
        open_catalogue=catalogue.get("open", False, as_bool),
        infrastructure=_infrastructure(c.sub("infrastructure", ("batch", "files",
                                                                "fine_tuning"))),
        options=c.get("options", base.options, _free_form),
        rate_limits=RateLimitsConfig(rpm=limits.get("rpm", None, as_int(1)),
                                     tpm=limits.get("tpm", None, as_int(1))),
    )


_AUTH_KEYS = _names(AuthConfig)
_AUTH_METHODS = ("api_key", "oauth", "service_account", "none")


def _auth(s: Section) -> AuthConfig:
    keys: tuple[str, ...] = ()
    refs: list[str] = []
    for name in ("api_key", "api_keys"):
        got = s.get(name, (), as_list(as_header_secret)) if name in s.data else ()
        keys += got
        raw = s.data.get(name)
        paths = [s.at(name)] if isinstance(raw, str) else \
            [f"{s.at(name)}[{i}]" for i, e in enumerate(raw) if e is not UNRESOLVED] if isinstance(raw, (list, tuple)) else []
        refs += [s.ctx.refs.get(p, "") for p in paths] if len(paths) == len(got) else [""] * len(got)
    pairs: dict[str, str] = {}
    for key, ref in zip(keys, refs, strict=True):
        pairs.setdefault(key, ref)  # one entry per distinct key, its first reference kept
    rotation = s.get("key_rotation", False, as_bool)
    if len(pairs) > 1 and not rotation:
        s.ctx.problem(s.at("api_keys"), f"{len(pairs)} keys given but auth.key_rotation is off, so only the first "
                                        "would ever be sent; set key_rotation: true or give one key")
    return AuthConfig(
        method=s.get("method", "api_key", as_choice(_AUTH_METHODS)),
        api_key=keys[0] if keys else None,
        api_keys=tuple(pairs),
        key_refs=tuple(pairs.values()),
        key_rotation=rotation,
        api_key_env=s.get("api_key_env", None, as_env_name),
    )


def as_env_name(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
        raise ValueError(f"expected an environment variable name like \"OPENAI_API_KEY\", "
                         f"got {show(value)}")
    return value


def _infrastructure(s: Section) -> FrozenMap:
    return FrozenMap({k: s.get(k, False, as_bool) for k in s.data if isinstance(k, str)
                      and k in ("batch", "files", "fine_tuning")})


def _free_form(value: Any) -> FrozenMap:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {show(value)}")
    return freeze(value)


def _models(ctx: Ctx, c: Section, auto_discover: bool, default_caps: tuple[str, ...] = ()) -> tuple[ModelConfig, ...]:
    raw = c.data.get("models")
    if raw is None or raw is UNRESOLVED:
        return ()
    if not isinstance(raw, (list, tuple)):
        ctx.problem(c.at("models"), f"expected a list of models, got {show(raw)}")
        return ()
    out: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        path = f"{c.at('models')}[{index}]"
        model = _model(ctx, {"id": entry} if isinstance(entry, str) else entry, path, default_caps)
        if model is None:
            continue
        for name in (model.id, *model.aliases):
            if name in seen:
                ctx.problem(f"{path}.id", f"duplicate model id {name!r} "
                                          f"(also models[{seen[name]}])")
            seen.setdefault(name, index)
        out.append(model)
    return tuple(out)


def _model(ctx: Ctx, entry: Any, path: str, default_caps: tuple[str, ...] = ()) -> ModelConfig | None:
    m = ctx.section(entry, path, _MODEL_KEYS)
    model_id = m.require("id", as_str)
    price = m.sub("pricing", _names(Pricing)) if m.has("pricing") else None
    fields_ = dict(
        capabilities=m.get("capabilities", (), as_list(as_model_capability)) or default_caps,
        context_window=m.get("context_window", None, as_int(1)),
        max_output_tokens=m.get("max_output_tokens", None, as_int(1)),
        pricing=None if price is None else Pricing(**{
            k: price.get(k, 0.0, as_number(0)) for k in _names(Pricing)}),
        deployment=m.get("deployment", None, as_str),
        weight=m.get("weight", None, as_number(0)),
        aliases=m.get("aliases", (), as_list(as_str)),
        prefill=m.get("prefill", None, as_bool),
        from_job=m.get("from_job", None, as_job_id),
    )
    if model_id is None:
        return None
    return ModelConfig(id=model_id.strip(), **fields_)


_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}(~[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def as_job_id(value: Any) -> str:
    """A fine-tuning job's id, as its provider gave it (`ftjob-abc`) or as the mesh did (`ftjob-abc~openai`)."""
    if not isinstance(value, str) or not _JOB_ID.match(value.strip()):
        raise ValueError(f"expected a fine-tuning job id such as 'ftjob-abc123', got {show(value)}")
    return value.strip()


def as_model_capability(value: Any) -> str:
    """A leaf: models declare what they do, never a whole category."""
    if not isinstance(value, str):
        raise ValueError(f"expected a capability name, got {show(value)}")
    path = resolve_capability(value)
    if not is_leaf(path):
        example = leaves_under(path)[0]
        raise ValueError(f"{value!r} is a category, not a capability; name a leaf such as "
                         f"{example!r}")
    return path


def as_pool_capability(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a capability name, got {show(value)}")
    return resolve_capability(value)


# -- pools and routing -----------------------------------------------------------------

_POOL_HINTS = {"capabilities": "a pool has one 'capability'", "model": "did you mean 'models'?"}


def _routing(s: Section, base: PoolDefaults, providers: Mapping[str, ProviderConfig]
             ) -> PoolDefaults:
    return PoolDefaults(
        strategy=s.get("strategy", base.strategy, as_choice((*STRATEGIES, *s.ctx.strategy_names), custom=True)),
        rotation=_rotation(s.sub("rotation", _names(RotationConfig)), base.rotation, providers),
        retry=_retry(s.sub("retry", _names(RetryConfig)), base.retry),
        on_exhausted=s.get("on_exhausted", base.on_exhausted, as_choice(("fail", "wait"))),
        max_wait=s.get("max_wait", base.max_wait, as_duration),
        stream_resume=s.get("stream_resume", base.stream_resume, as_bool),
        content_filter_failover=s.get("content_filter_failover", base.content_filter_failover, as_bool),
    )


def _pools(ctx: Ctx, top: Section, defaults: PoolDefaults,
           providers: Mapping[str, ProviderConfig]) -> dict[str, PoolConfig]:
    raw = top.data.get("pools")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        ctx.problem("pools", f"expected a mapping of pool name to pool, got {show(raw)}")
        return {}
    out: dict[str, PoolConfig] = {}
    for name, value in raw.items():
        path = join("pools", name)
        if not isinstance(name, str) or not name.strip():
            ctx.problem(path, "a pool name must be a non-empty string")
            continue
        s = ctx.section(value, path, _POOL_KEYS, _POOL_HINTS)
        capability = s.get("capability", None, as_pool_capability)
        models = _pool_models(s, providers)
        filter_ = s.get("providers", (), as_list(_provider_id(providers)))
        inherited = _routing(s, defaults, providers)
        if "capability" not in s.data and not s.data.get("models"):
            ctx.problem(path, "a pool needs a 'capability' or 'models' (or both)")
        out[name] = PoolConfig(
            name=name, capability=capability, models=models,
            providers=filter_,
            strategy=inherited.strategy, rotation=inherited.rotation, retry=inherited.retry,
            on_exhausted=inherited.on_exhausted, max_wait=inherited.max_wait,
            stream_resume=inherited.stream_resume,
            content_filter_failover=inherited.content_filter_failover,
            description=s.get("description", None, as_str),
        )
    return out


def _provider_id(providers: Mapping[str, ProviderConfig]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in providers:
            raise ValueError(f"unknown provider {show(value)}{suggest(value, providers)}")
        return value
    return convert


def _pool_models(s: Section, providers: Mapping[str, ProviderConfig]) -> tuple[str, ...]:
    refs = s.get("models", (), as_list(as_str))
    out: list[str] = []
    for index, text in enumerate(refs):
        path = f"{s.at('models')}[{index}]"
        try:
            ref = parse_model_ref(text.strip())
        except ValueError as exc:
            s.ctx.problem(path, str(exc))
            continue
        provider = providers.get(ref.provider)
        if provider is None:
            s.ctx.problem(path, f"unknown provider {ref.provider!r}"
                                f"{suggest(ref.provider, providers)}")
            continue
        model = provider.model(ref.model)
        if model is None and not provider.auto_discover:
            ids = [m.id for m in provider.models]
            s.ctx.problem(path, f"provider {ref.provider!r} has no model {ref.model!r}"
                                f"{suggest(ref.model, ids)}")
            continue
        out.append(f"{ref.provider}/{model.id if model else ref.model}")
    return tuple(dict.fromkeys(out))


def _rotation(s: Section, base: RotationConfig, providers: Mapping[str, ProviderConfig]
              ) -> RotationConfig:
    return RotationConfig(
        deactivation=_deactivation(s.sub("deactivation", _names(DeactivationConfig)),
                                   base.deactivation),
        recovery=_recovery(s.sub("recovery", _names(RecoveryConfig)), base.recovery),
        selection=_selection(s.sub("selection", _names(SelectionConfig)), base.selection,
                             providers),
        provider_deactivation=s.get("provider_deactivation", base.provider_deactivation,
                                    as_list(as_choice(("on_auth_failure", "on_api_outage")))),
        provider_recovery=s.get("provider_recovery", base.provider_recovery,
                                as_choice(("on_probe_success", "on_manual"))),
        policy=_rotation_policy(s),
    )


ROTATION_POLICIES = ("threshold",)


def _rotation_policy(s: Section) -> RotationPolicyConfig | None:
    """`rotation.policy`: `{connector, config}`, or the connector alone. Like `policies`, a
    pool's own (the `routing:` one reaches every pool through the builder, not by copy)."""
    raw = s.data.get("policy")
    if raw is None:
        return None
    if isinstance(raw, str):
        connector = s.get("policy", None, as_choice(ROTATION_POLICIES, custom=True))
        return None if connector is None else RotationPolicyConfig(connector=connector)
    p = s.sub("policy", ("connector", "config"))
    if "connector" not in p.data:
        s.ctx.problem(p.at("connector"), 'required: "threshold" or a "package.module:Class" path')
        return None
    connector = p.get("connector", None, as_choice(ROTATION_POLICIES, custom=True))
    config = p.get("config", FrozenMap(), _free_form)
    return None if connector is None else RotationPolicyConfig(connector=connector, config=config)


def _deactivation(s: Section, b: DeactivationConfig) -> DeactivationConfig:
    return DeactivationConfig(
        retry_limit=s.get("retry_limit", b.retry_limit, as_int(1)),
        error_rate_threshold=s.get("error_rate_threshold", b.error_rate_threshold,
                                   as_number(0, 1), nullable=True),
        error_rate_min_requests=s.get("error_rate_min_requests", b.error_rate_min_requests,
                                      as_int(1)),
        error_codes=s.get("error_codes", b.error_codes, as_status_codes),
        request_limit=s.get("request_limit", b.request_limit, as_int(1), nullable=True),
        token_limit=s.get("token_limit", b.token_limit, as_int(1), nullable=True),
        budget_limit=s.get("budget_limit", b.budget_limit, as_number(above=0), nullable=True),
        quota_window=s.get("quota_window", b.quota_window, as_choice(("daily", "monthly")),
                           nullable=True),
        maintenance_window=s.get("maintenance_window", b.maintenance_window, as_cron,
                                 nullable=True),
        maintenance_duration=s.get("maintenance_duration", b.maintenance_duration,
                                   as_positive_duration),
        policies=_import_paths(s, "policies"),
    )


def _recovery(s: Section, b: RecoveryConfig) -> RecoveryConfig:
    cooldown = s.get("cooldown", b.cooldown, as_duration)
    initial = s.get("initial_cooldown", min(b.initial_cooldown, cooldown), as_duration)
    if initial > cooldown:
        s.ctx.problem(s.at("initial_cooldown"), f"must be at most cooldown ({cooldown:g}s)")
    return RecoveryConfig(
        cooldown=cooldown, initial_cooldown=initial,
        retry_after_cap=s.get("retry_after_cap", b.retry_after_cap, as_positive_duration),
        probe_on_start=s.get("probe_on_start", b.probe_on_start, as_bool),
        probe_interval=s.get("probe_interval", b.probe_interval, as_positive_duration,
                             nullable=True),
        on_quota_reset=s.get("on_quota_reset", b.on_quota_reset, as_bool),
        quota_reset_schedule=s.get("quota_reset_schedule", b.quota_reset_schedule,
                                   as_schedule(("daily_utc", "daily", "monthly")),
                                   nullable=True),
        half_open_max=s.get("half_open_max", b.half_open_max, as_int(1)),
        success_threshold=s.get("success_threshold", b.success_threshold, as_int(1)),
        manual=s.get("manual", b.manual, as_bool),
        policies=_import_paths(s, "policies"),
    )


def as_import_path(value: Any) -> str:
    """A "package.module:function" path; the builder imports it (this module imports nothing)."""
    if not isinstance(value, str) or not _IMPORT_PATH.match(value.strip()):
        raise ValueError(f'expected a "package.module:function" path, got {show(value)}')
    return value.strip()


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _import_paths(s: Section, key: str) -> tuple[str, ...]:
    """The good items of a list of import paths: a bad item is reported and left out, and
    the rest still reach the builder, whose import problems join the same error."""
    raw = s.data.get(key)
    if isinstance(raw, (list, tuple)):
        good = [v for v in raw if isinstance(v, str) and _IMPORT_PATH.match(v.strip())]
        s.get(key, (), as_list(as_import_path))  # reports each bad item at its index
        return tuple(v.strip() for v in good)
    return cast("tuple[str, ...]", s.get(key, (), as_list(as_import_path)))  # Section.get is untyped


def _selection(s: Section, b: SelectionConfig, providers: Mapping[str, ProviderConfig]
               ) -> SelectionConfig:
    rl, rb = s.sub("rate_limit", _names(RateLimitSelectionConfig)), b.rate_limit
    return SelectionConfig(
        model_priority=s.get("model_priority", b.model_priority, as_list(as_str)),
        provider_priority=s.get("provider_priority", b.provider_priority,
                                as_list(_provider_id(providers))),
        fallback_strategy=s.get("fallback_strategy", b.fallback_strategy,
                                as_choice((*STRATEGIES, *s.ctx.strategy_names))),
        balance_mode=s.get("balance_mode", b.balance_mode, as_choice(("relative", "absolute"))),
        weights=s.get("weights", b.weights,
                      lambda v: FrozenMap(as_mapping_of(as_number(0))(v))),
        rate_limit=RateLimitSelectionConfig(
            threshold=rl.get("threshold", rb.threshold, as_number(0, 1)),
            min_delta=rl.get("min_delta", rb.min_delta, as_duration),
            max_rpm=rl.get("max_rpm", rb.max_rpm, as_int(1), nullable=True),
        ),
    )


def _retry(s: Section, b: RetryConfig) -> RetryConfig:
    base_delay = s.get("base_delay", b.base_delay, as_duration)
    max_delay = s.get("max_delay", b.max_delay, as_duration)
    if max_delay < base_delay:
        s.ctx.problem(s.at("max_delay"), f"must be at least base_delay ({base_delay:g}s)")
    return RetryConfig(
        max_attempts=s.get("max_attempts", b.max_attempts, as_int(1), nullable=True),
        backoff=s.get("backoff", b.backoff, as_choice(("exponential", "fixed"))),
        base_delay=base_delay, max_delay=max_delay,
        jitter=s.get("jitter", b.jitter, as_bool),
        scope=s.get("scope", b.scope, as_choice(("any", "same-model", "same-provider"))),
        same_model_retries=s.get("same_model_retries", b.same_model_retries, as_int(0)),
        same_model_wait=s.get("same_model_wait", b.same_model_wait, as_duration),
        deadline=s.get("deadline", b.deadline, as_positive_duration, nullable=True),
        respect_retry_after=s.get("respect_retry_after", b.respect_retry_after, as_bool),
        max_retry_after=s.get("max_retry_after", b.max_retry_after, as_duration),
    )


# -- storage, observability, discovery, proxy -------------------------------------------

_STORAGE_CONNECTORS = ("memory", "file", "sqlite", "redis")
_SINKS = ("console", "file", "null", "callback", "webhook", "recorder", "prometheus", "opentelemetry")
_OBS_KEYS = ("connector", "config", "connectors", "events", "logging", "tracing", "statistics")
_SEVERITIES = ("debug", "info", "warning", "error", "critical")


def _storage(s: Section) -> StorageConfig:
    b = StorageConfig()
    connector = s.get("connector", b.connector, as_choice(_STORAGE_CONNECTORS, custom=True))
    config = s.get("config", b.config, _free_form)
    if connector in ("file", "sqlite") and not isinstance(config.get("path"), str):
        s.ctx.problem(s.at("config.path"), f"required for the {connector!r} storage connector")
    url = config.get("url")
    if connector == "redis" and url is not None and not (
            isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://"))):
        s.ctx.problem(s.at("config.url"), "expected a URL like \"redis://localhost:6379/0\"")
    per = s.sub("persistence", ("sync_policy", "sync_interval", "format", "compression",
                                "encryption", "encryption_secret"))
    lock = s.sub("locking", ("enabled", "timeout", "retry_interval"))
    encryption = per.get("encryption", b.encryption, as_bool)
    secret_name = per.get("encryption_secret", b.encryption_secret, as_str)
    return StorageConfig(
        connector=connector, config=config,
        sync_policy=per.get("sync_policy", b.sync_policy if connector == "memory" else "periodic", as_choice(
            ("in-memory", "sync-on-boundary", "periodic", "immediate"))),
        sync_interval=per.get("sync_interval", b.sync_interval, as_positive_duration),
        format=per.get("format", b.format, as_choice(("json", "yaml", "msgpack"))),
        compression=per.get("compression", b.compression, as_bool),
        encryption=encryption, encryption_secret=secret_name,
        encryption_key=(_encryption_key(s.ctx, per.at("encryption"), secret_name)
                        if encryption and connector != "memory" else None),  # memory: refused by the builder
        locking_enabled=lock.get("enabled", b.locking_enabled, as_bool),
        locking_timeout=lock.get("timeout", b.locking_timeout, as_duration),
        locking_retry_interval=lock.get("retry_interval", b.locking_retry_interval,
                                        as_positive_duration),
    )


def _encryption_key(ctx: Ctx, path: str, name: str) -> str | None:
    """The key `storage.persistence.encryption` encrypts with: the secret `name` of the
    configured secret store. Needed even when `secrets.fail_on_missing` is off: without it
    nothing could be stored. Its value joins the secrets redacted everywhere."""
    return ctx.secret(name, path, what=f"the secret {name!r} (named by storage.persistence.encryption_secret)",
                        required=True, hint=f" in the secret store: put a key of at least 32 random characters "
                                            f"there (with the env store: the variable {_env_spelling(name)})")


def _env_spelling(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def _sink(ctx: Ctx, value: Any, path: str) -> ObservabilitySink | None:
    s = ctx.section({"connector": value} if isinstance(value, str) else value, path,
                    ("connector", "config"))
    connector = s.require("connector", as_choice(_SINKS, custom=True))
    config = s.get("config", FrozenMap(), _free_form)
    needed = {"file": "path", "webhook": "url", "recorder": "path"}.get(connector or "")
    if needed and not isinstance(config.get(needed), str):
        ctx.problem(s.at(f"config.{needed}"), f"required for the {connector!r} connector")
    elif connector == "recorder":
        for key in sorted(set(config) - {"path", "redact_payloads"}):
            ctx.problem(s.at(f"config.{key}"), "unknown key for the 'recorder' connector (it takes path, redact_payloads)")
        if not isinstance(config.get("redact_payloads", True), bool):
            ctx.problem(s.at("config.redact_payloads"), f"expected true or false, got {show(config['redact_payloads'])}")
    elif connector == "webhook":
        try:
            as_url(config["url"])
        except ValueError as exc:
            ctx.problem(s.at("config.url"), str(exc))
    elif connector == "callback" and not (isinstance(config.get("callable"), str) or callable(config.get("callable"))):
        ctx.problem(s.at("config.callable"), "required for the 'callback' connector: a function, or "
                                             "\"package.module:function\"")
    return None if connector is None else ObservabilitySink(connector=connector, config=config)


def _observability(ctx: Ctx, s: Section) -> ObservabilityConfig:
    b = ObservabilityConfig()
    sinks: list[ObservabilitySink | None] = []
    if s.has("connector"):
        if s.has("connectors"):
            ctx.problem(s.at("connectors"), "given together with 'connector'; keep one")
        sinks.append(_sink(ctx, {k: s.data[k] for k in ("connector", "config") if k in s.data},
                           s.path))
    elif s.has("connectors"):
        raw = s.data["connectors"]
        if isinstance(raw, (list, tuple)):
            sinks += [_sink(ctx, v, f"{s.at('connectors')}[{i}]") for i, v in enumerate(raw)]
        else:
            ctx.problem(s.at("connectors"), f"expected a list, got {show(raw)}")
    elif "config" in s.data:
        ctx.problem(s.at("config"), "given without a 'connector'")
    events = s.sub("events", ("filter", "include_metadata"))
    logging = s.sub("logging", ("level", "redact_secrets", "max_payload_size"))
    stats = s.sub("statistics", ("flush_interval", "retention", "scopes"))
    return ObservabilityConfig(
        connectors=tuple(x for x in sinks if x is not None),
        events_filter=events.get("filter", b.events_filter, as_list(as_str)),
        include_metadata=events.get("include_metadata", b.include_metadata, as_bool),
        logging_level=logging.get("level", b.logging_level, as_choice(
            ("metadata", "summary", "full"))),
        redact_secrets=logging.get("redact_secrets", b.redact_secrets, as_bool),
        max_payload_size=logging.get("max_payload_size", None, as_int(1)),
        min_severity=s.sub("tracing", ("min_severity",)).get(
            "min_severity", b.min_severity, as_choice(_SEVERITIES)),
        flush_interval=stats.get("flush_interval", b.flush_interval, as_positive_duration),
        retention=stats.get("retention", b.retention, as_positive_duration),
        scopes=stats.get("scopes", b.scopes, as_list(as_choice(("model", "provider", "pool")))),
    )


def _discovery(s: Section, providers: Mapping[str, ProviderConfig]) -> DiscoveryConfig:
    b = DiscoveryConfig()
    sync = s.sub("sync", ("enabled", "interval", "auto_register", "providers", "on_new_model",
                          "on_deprecated_model"))
    health = s.sub("health", ("enabled", "interval", "timeout", "failure_threshold",
                              "providers", "connector", "config"))
    known = as_list(_provider_id(providers))
    return DiscoveryConfig(
        sync_enabled=sync.get("enabled", b.sync_enabled, as_bool),
        sync_interval=sync.get("interval", b.sync_interval, as_positive_duration),
        auto_register=sync.get("auto_register", b.auto_register, as_bool),
        sync_providers=sync.get("providers", b.sync_providers, known),
        on_new_model=sync.get("on_new_model", b.on_new_model, as_choice(
            ("register", "notify", "ignore"))),
        on_deprecated_model=sync.get("on_deprecated_model", b.on_deprecated_model, as_choice(
            ("notify", "deactivate", "ignore"))),
        health_enabled=health.get("enabled", b.health_enabled, as_bool),
        health_interval=health.get("interval", b.health_interval, as_positive_duration),
        health_timeout=health.get("timeout", b.health_timeout, as_positive_duration),
        health_failure_threshold=health.get("failure_threshold", b.health_failure_threshold,
                                            as_int(1)),
        health_providers=health.get("providers", b.health_providers, known),
        health_connector=health.get("connector", b.health_connector, as_choice(HEALTH_CONNECTORS, custom=True),
                                    nullable=True),
        health_config=health.get("config", b.health_config, _free_form),
    )


HEALTH_CONNECTORS = ("http",)  # HttpHealthDiscovery by name


_PROXY_KEYS = tuple(n for n in _names(ProxyConfig) if n not in ("master_key", "rate_limit_per_key",
                    "rate_limit_per_ip", "metrics_public")) + ("auth", "rate_limit", "metrics")


def _bucket(s: Section) -> ProxyRateLimit | None:
    if not s.data:
        return None
    rpm = s.require("rpm", as_number(above=0))
    burst = s.get("burst", None, as_number(low=1))
    return None if rpm is None else ProxyRateLimit(rpm=rpm, burst=burst)


def _proxy(s: Section, providers: Mapping[str, ProviderConfig],
           pools: Mapping[str, PoolConfig]) -> ProxyConfig:
    b = ProxyConfig()

    def as_target(value: Any) -> str:
        # an alias points at a pool, a capability or one "provider/model"
        text = as_str(value).strip()
        if text in pools or is_capability(text):
            return text
        provider, slash, _ = text.partition("/")
        if slash and provider in providers:
            return text
        raise ValueError(f"{show(value)} is not a pool, a capability or a configured "
                         f"'provider/model'{suggest(text, [*pools, *providers])}")

    auth = s.sub("auth", ("master_key",))
    limits = s.sub("rate_limit", ("per_key", "per_ip"))
    return ProxyConfig(
        host=s.get("host", b.host, as_str),
        port=s.get("port", b.port, as_int(1, 65535)),
        workers=s.get("workers", b.workers, as_int(1, 256)),
        threads=s.get("threads", b.threads, as_int(1, 4096)),
        shutdown_timeout=s.get("shutdown_timeout", b.shutdown_timeout, as_duration),
        master_key=auth.get("master_key", None, as_header_secret),  # sent by clients as a header
        api_keys=s.get("api_keys", b.api_keys, as_list(as_header_secret)),  # sent by clients as a header
        cors_origins=s.get("cors_origins", b.cors_origins, as_list(as_str)),
        max_body_bytes=s.get("max_body_bytes", b.max_body_bytes, as_int(1)),
        model_aliases=s.get("model_aliases", b.model_aliases,
                            lambda v: FrozenMap(as_mapping_of(as_target)(v))),
        rate_limit_per_key=_bucket(limits.sub("per_key", ("rpm", "burst"))),
        rate_limit_per_ip=_bucket(limits.sub("per_ip", ("rpm", "burst"))),
        metrics_public=s.sub("metrics", ("public",)).get("public", b.metrics_public, as_bool),
    )
