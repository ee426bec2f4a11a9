"""`modelmesh.build`: configuration in, a ready core out, every problem at once.

Theory of operation: `build` is the one door from configuration to a running mesh. The
clients, `modelmesh check` and embedders who drive the sans-IO core themselves all go
through it, so they accept and refuse exactly the same configurations.

It works in two stages that share one list of problems. Loading and parsing
(`load_config_partial`) never stop at the first mistake and hand back a best-effort
config with each bad value at its default. The build stage then checks what only it
can check, because it reads the world: API keys and preset base URLs from the
environment, `package.module:Name` imports (custom connectors, strategies, rotation
policies), observability sinks that open files, and settings this version does not act
on. Only when the list is empty is the `MeshCore` made; otherwise one
`ConfigurationError` lists every problem, each starting with its config path.

This module lives outside `_core` because it imports modules and reads the environment.
"""
from __future__ import annotations

import importlib
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._core._config import empty_pools
from ._core._config_read import header_value_problem
from ._core._config_schema import (
    MeshConfig,
    ModelConfig,
    Pricing,
    ProviderConfig,
    RotationPolicyConfig,
    StorageConfig,
)
from ._core._errors import ConfigurationError, redact
from ._core._mesh import MeshCore
from ._core._policies import PolicySet, as_deactivation_policy, as_recovery_policy
from ._core._types import Rng
from .config import load_config_partial
from .connectors.presets import PRESETS

__all__ = ["build", "Built"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """A ready core and what a shell needs around it. The shell owns `sinks` (close them)."""

    config: MeshConfig
    core: MeshCore
    sinks: tuple[Any, ...] = ()
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    secret_store: Any = None  # the store `${secrets:NAME}` references were read from (None: a resolver was given)
    storage: Any = None  # the shared storage (a BaseStorage) when one is configured; the shell owns it
    recorder: Any = None  # the Recorder writing every input of `core` (which it wraps); the shell closes it
    serializer: Any = None  # how records are written to it (a Serializer: format, compression, encryption)
    discovery: Any = None  # the BaseDiscovery of discovery.health.connector (None: the built-in checks)


def build(
    config: Any,
    *,
    environ: Mapping[str, str] | None = None,
    strategies: Mapping[str, Callable] | None = None,
    policies: Mapping[str, PolicySet] | None = None,
    rng: Rng | None = None,
    seed: int | None = None,
    lock: Any = None,
    replaying: bool = False,
) -> Built:
    """Build a `MeshCore` from `config` (a path to YAML/JSON, a dict or a MeshConfig).

    `environ` (default `os.environ`) supplies API keys and preset base URLs. `strategies`
    maps a pool's `strategy: "package.module:function"` to the function itself (given
    ones are not imported). `policies` plugs rotation policies into pools by pool name,
    "*" for every pool; they are asked after those the configuration names. `rng` (or
    `seed`) feeds the core's randomness; `lock` guards the core's shared health when
    threads share it. `replaying` builds the core alone, for a replay: no sinks, no storage,
    no recorder. Raises one ConfigurationError listing every problem."""
    loaded = load_config_partial(config, strategy_names=tuple(strategies or ()))
    problems = list(loaded.problems)
    if loaded.config is None:
        raise ConfigurationError(problems, source=loaded.source)
    cfg, keys, found = _resolve_environment(loaded.config, os.environ if environ is None else environ,
                                            keyless=replaying)
    cfg = _catalogued(cfg)
    codecs = _custom_connectors(cfg, found)
    user_strategies = _user_strategies(cfg, strategies, found)
    plugged = _plugged_policies(cfg, policies, found)
    discovery = _discovery(cfg, found)
    found += _refusals(cfg, codecs)
    found += empty_pools(cfg)
    secrets = tuple(sorted({k for k in keys.values() if k} | set(cfg.secret_values())))
    sinks = [] if replaying else _sinks(cfg, secrets, found)
    recorder = None if replaying else _recorder(cfg, secrets, found, opened=not problems and not found)
    storage, serializer = _storage(cfg, found) if not problems and not found and not replaying else (None, None)
    problems += _new(found, problems)
    if problems:
        for opened in (*sinks, recorder, storage):
            if opened is not None:
                opened.close()
        raise ConfigurationError([redact(p, secrets) for p in problems], source=loaded.source)
    if recorder is not None:  # the recording names its seed: drawn here unless given
        if seed is None:
            seed = int(rng.random() * 2**53) if rng is not None else random.SystemRandom().getrandbits(63)
        rng = None
    core: Any = MeshCore(cfg, rng=rng if rng is not None else random.Random(seed), api_keys=keys, codecs=codecs,
                         user_strategies=user_strategies, policies=plugged, lock=lock)
    if recorder is not None:
        core = recorder.wrap(core, seed=seed)
    return Built(config=cfg, core=core, sinks=tuple(sinks), secret_values=core.secret_values, storage=storage,
                 serializer=serializer, recorder=recorder, secret_store=loaded.store, discovery=discovery)


def _storage(config: MeshConfig, problems: list[str]) -> tuple[Any, Any]:
    """The configured shared storage, opened, and the Serializer of its records; (None, None)
    for `memory` (nothing is shared)."""
    s = config.storage
    if s.connector == "memory":
        return None, None
    from .connectors.storage import Cipher, Serializer, make_storage

    cipher = None
    if s.encryption:
        if s.encryption_key is None:  # its absence is reported by the parser
            return None, None
        try:
            cipher = Cipher(s.encryption_key, secret_name=s.encryption_secret)
        except (ValueError, ImportError) as exc:  # neither message holds the key
            problems.append(f"storage.persistence.encryption: {exc}")
            return None, None
    try:
        serializer = Serializer(s.format, s.compression, cipher)
    except ImportError as exc:
        problems.append(f"storage.persistence.format: {exc}")
        return None, None
    if ":" in s.connector:
        storage = _custom_storage(s, problems)
        if storage is None:
            return None, None
    else:
        options = dict(s.config)
        options.setdefault("retry_interval", s.locking_retry_interval)
        try:
            storage = make_storage(s.connector, options)
        except (ValueError, TypeError) as exc:
            problems.append(f"storage.config: {exc}")
            return None, None
    if cipher is not None:
        problem = _key_check(storage, serializer, s.encryption_secret)
        if problem:
            problems.append(f"storage.persistence.encryption: {problem}")
    return storage, serializer


def _custom_storage(s: StorageConfig, problems: list[str]) -> Any:
    """A "package.module:Class" storage connector (a BaseStorage subclass, such as a
    modelmesh.cdk.KeyValueStorage), made with `storage.config` as keyword arguments; its
    `retry_interval` is `storage.locking.retry_interval` unless that config gives one."""
    from .connectors.storage import BaseStorage

    storage = _made(s.connector, None, BaseStorage, "a storage class (subclass modelmesh.cdk.KeyValueStorage or "
                    "modelmesh.cdk.BaseStorage)", s.config, "storage.connector", "storage.config", problems)
    if storage is None:
        return None
    if "retry_interval" not in s.config:  # as for the built-in connectors, its own setting wins
        storage.retry_interval = s.locking_retry_interval
    return storage


KEY_CHECK = "encryption-check"  # an encrypted record that says which key the store's records are under


def _key_check(storage: Any, serializer: Any, secret_name: str) -> str | None:
    """Whether the store's records are encrypted with our key: the first process writes a
    record, later ones read it. A wrong key is thus a configuration problem at start,
    not a warning per record later. An unreachable store is not checked here: the shell
    reports the outage, and a record it cannot decrypt is skipped with a warning."""
    from .connectors.storage import StorageUnavailable

    try:
        raw = storage.load(KEY_CHECK)
        if raw is None:
            storage.save(KEY_CHECK, serializer.dumps({"modelmesh": "storage key check"}, KEY_CHECK))
            return None
    except StorageUnavailable:
        return None
    try:
        serializer.loads(raw, KEY_CHECK)
    except ValueError:
        return (f"the key in the secret {secret_name!r} is not the one this store's records are encrypted with "
                f"(its record {KEY_CHECK!r} does not decrypt): give every process the same key, or empty the store")
    return None


def _new(found: list[str], known: list[str]) -> list[str]:
    """Build problems about a path parsing has not already reported (one problem, not two:
    a secret that did not resolve is not also a missing key)."""
    seen = {p.partition(": ")[0] for p in known}
    return [p for p in dict.fromkeys(found) if p.partition(": ")[0] not in seen]


# -- the environment ----------------------------------------------------------------------

# what a replayed core sends as a key the environment lacks: a replay sends nothing
REPLAY_KEY = "modelmesh-replay-sends-nothing"


def _resolve_environment(config: MeshConfig, environ: Mapping[str, str], *, keyless: bool = False
                         ) -> tuple[MeshConfig, dict[str, str | None], list[str]]:
    """Fill what the environment provides: preset base URLs and API keys from key variables.
    `keyless` (a replay) stands REPLAY_KEY in for a key the environment does not hold."""
    providers = {}
    problems: list[str] = []
    keys: dict[str, str | None] = {}
    for pid, p in config.providers.items():
        preset = PRESETS.get(p.connector)
        key = p.auth.api_key
        if key is None and p.auth.api_key_env:
            key = environ.get(p.auth.api_key_env) or (REPLAY_KEY if keyless else None)
        if key is None and preset is not None and preset.key_env and p.auth.method != "none":
            key = preset.key_in(environ) or (REPLAY_KEY if keyless else None)
            if key is None:
                problems.append(f"providers.{pid}.config.auth.api_key: no key for connector '{p.connector}': "
                                f"set {preset.key_names}, give auth.api_key, or set auth.method: none")
        if key is not None and p.auth.api_key is None:
            problem = header_value_problem(key)  # the parser checked a configured key already
            if problem:
                problems.append(f"providers.{pid}.config.auth.api_key: the key from the environment "
                                f"cannot be sent: it {problem}")
                key = None
        base = p.base_url
        if base is None and preset is not None:
            base = preset.base_url_in(environ)
        if not base and p.connector:  # an empty connector was bad and is reported already
            problems.append(f"providers.{pid}.config.base_url: connector '{p.connector}' needs a base_url")
        providers[pid] = replace(p, base_url=base)
        keys[pid] = key
    return replace(config, providers=providers), keys, problems


def _catalogued(config: MeshConfig) -> MeshConfig:
    """Prices and context windows the configuration leaves out, from the catalogue shipped in
    the package (`_catalogue`, read on the first model that needs it): the core gets numbers,
    never a file. What the configuration gives wins, field by field."""
    providers = {}
    for pid, p in config.providers.items():
        models = tuple(_catalogued_model(p.connector, m) for m in p.models)
        providers[pid] = p if models == p.models else replace(p, models=models)
    return replace(config, providers=providers)


def _catalogued_model(connector: str, model: ModelConfig) -> ModelConfig:
    if model.pricing is not None and model.context_window is not None:
        return model
    from ._catalogue import lookup

    entry = lookup(connector, model.id)
    if entry is None:
        return model
    pricing = model.pricing or Pricing(input_per_1m=entry.input_per_1m, output_per_1m=entry.output_per_1m,
                                       per_request=entry.per_request)
    return replace(model, pricing=pricing, context_window=model.context_window or entry.context_window)


# -- imports named by the configuration -----------------------------------------------------

def _load(spec: str) -> Any:
    """The object a "package.module:name" path names; ImportError/AttributeError if none."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _made(spec: str, cls: Any, base: type, what: str, config: Mapping[str, Any], path: str, config_path: str,
          problems: list[str]) -> Any:
    """A plugged-in connector: `cls` when given (a built-in), else the class `spec` ("package.module:Class")
    names, which must subclass `base`; made with `config` as keyword arguments. None, with the
    problem named at `path` (the class) or `config_path` (its settings), when it cannot be."""
    if cls is None:
        try:
            cls = _load(spec)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{path}: cannot load '{spec}' ({_why(exc)})")
            return None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        problems.append(f"{path}: '{spec}' is not {what}")
        return None
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        problems.append(f"{config_path}: cannot create '{spec}': {exc}")
        return None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _user_strategies(config: MeshConfig, given: Mapping[str, Callable] | None,
                     problems: list[str]) -> dict[str, Callable]:
    """Strategies named "package.module:function" in pools are imported here, outside the core;
    those given by name may not take a built-in's."""
    from ._core._selection import is_builtin_strategy

    out = dict(given or {})
    for name in [n for n in out if not isinstance(n, str) or not n or is_builtin_strategy(n)]:
        problems.append(f"strategies: {name!r} cannot name a user strategy (empty, not a string, or a "
                        "built-in strategy's name); give it another name")
        del out[name]
    for name, pool in config.pools.items():
        spec = pool.strategy
        if ":" not in spec or spec in out:
            continue
        try:
            out[spec] = _load(spec)
        except (ImportError, AttributeError) as exc:
            problems.append(f"pools.{name}.strategy: cannot load '{spec}' ({_why(exc)})")
            continue
        if not callable(out[spec]):
            problems.append(f"pools.{name}.strategy: '{spec}' is not a function")
    return out


def _custom_connectors(config: MeshConfig, problems: list[str]) -> dict[str, Any]:
    """Providers whose connector is "package.module:Class": import and instantiate the class."""
    from ._core.codecs._base import Codec

    out: dict[str, Any] = {}
    for pid, p in config.providers.items():
        if ":" not in p.connector:
            continue
        where = f"providers.{pid}.connector"
        try:
            cls = _load(p.connector)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{where}: cannot load '{p.connector}' ({_why(exc)})")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            problems.append(f"{where}: '{p.connector}' is not a modelmesh.cdk provider class")
            continue
        try:
            out[pid] = cls()
        except TypeError as exc:
            problems.append(f"{where}: cannot create '{p.connector}': {exc}")
    return out


# -- rotation policies -----------------------------------------------------------------------

def _plugged_policies(config: MeshConfig, given: Mapping[str, PolicySet] | None,
                      problems: list[str]) -> dict[str, PolicySet]:
    """Policies the configuration names, by pool ("*" for the `routing:` defaults, which
    every pool gets), followed by those given from Python."""
    out: dict[str, PolicySet] = {}
    sources = [("*", "routing.rotation", config.defaults.rotation)]
    sources += [(name, f"pools.{name}.rotation", pool.rotation) for name, pool in config.pools.items()]
    for key, path, rotation in sources:
        loaded = PolicySet(
            deactivation=_load_policies(rotation.deactivation.policies, f"{path}.deactivation.policies",
                                        as_deactivation_policy, problems),
            recovery=_load_policies(rotation.recovery.policies, f"{path}.recovery.policies",
                                    as_recovery_policy, problems))
        made = _rotation_policy(rotation.policy, f"{path}.policy", problems)
        if made is not None:
            loaded = loaded + PolicySet(deactivation=(made,), recovery=(made,))
        if loaded.deactivation or loaded.recovery:
            out[key] = loaded
    if given is None:
        return out
    if not isinstance(given, Mapping):
        problems.append(f"build(policies=...): expected a mapping of pool name to PolicySet, got "
                        f"{type(given).__name__}")
        return out
    for key, policy_set in given.items():
        where = f"build(policies=...)[{key!r}]"
        if not isinstance(policy_set, PolicySet):
            problems.append(f"{where}: expected a PolicySet, got {type(policy_set).__name__}")
            continue
        for kind, check in (("deactivation", as_deactivation_policy), ("recovery", as_recovery_policy)):
            for i, policy in enumerate(getattr(policy_set, kind)):
                try:
                    check(policy)
                except TypeError as exc:
                    problems.append(f"{where}.{kind}[{i}]: {exc}")
        out[key] = out.get(key, PolicySet()) + policy_set
    return out


def _rotation_policy(spec: RotationPolicyConfig | None, path: str, problems: list[str]) -> Any:
    """`rotation.policy`: the class it names (a modelmesh.cdk.BaseRotationPolicy), made with `config`."""
    if spec is None:
        return None
    from .cdk._rotation import BaseRotationPolicy, ThresholdRotationPolicy

    builtin = ThresholdRotationPolicy if spec.connector == "threshold" else None
    return _made(spec.connector, builtin, BaseRotationPolicy, "a rotation policy class (subclass "
                 "modelmesh.cdk.BaseRotationPolicy or ThresholdRotationPolicy)", spec.config,
                 f"{path}.connector", f"{path}.config", problems)


def _load_policies(specs: tuple[str, ...], path: str, check: Callable[[Any], Any],
                   problems: list[str]) -> tuple[Any, ...]:
    out = []
    for i, spec in enumerate(specs):
        try:
            policy = _load(spec)
            if isinstance(policy, type):  # a policy class (a modelmesh.cdk.BaseRotationPolicy): one of it
                policy = policy()
            check(policy)
        except (ImportError, AttributeError, TypeError) as exc:
            problems.append(f"{path}[{i}]: cannot load '{spec}' ({_why(exc)})")
            continue
        out.append(policy)
    return tuple(out)


# -- health checks -------------------------------------------------------------------------

def _discovery(config: MeshConfig, problems: list[str]) -> Any:
    """`discovery.health.connector`: "http" (HttpHealthDiscovery) or a "package.module:Class"
    BaseDiscovery subclass, made with `discovery.health.config`; None when not named."""
    d = config.discovery
    if d.health_connector is None:
        if d.health_config:
            problems.append("discovery.health.config: settings without a discovery.health.connector; name one "
                            "(http or \"package.module:Class\")")
        return None
    from .connectors.discovery import BaseDiscovery, HttpHealthDiscovery

    builtin = HttpHealthDiscovery if d.health_connector == "http" else None
    return _made(d.health_connector, builtin, BaseDiscovery, "a health check class (subclass "
                 "modelmesh.cdk.BaseDiscovery or HttpHealthDiscovery)", d.health_config,
                 "discovery.health.connector", "discovery.health.config", problems)


# -- what this version does not do -----------------------------------------------------------

NOT_ACTED_ON = "not acted on in this version; remove it or leave it at its default"

# Settings that are parsed and validated but that nothing acts on yet: a value other than the
# default is refused. (The memory storage's, and a provider's.)
_MEMORY_UNACTED = {"config": "config", "sync_policy": "persistence.sync_policy",
                   "sync_interval": "persistence.sync_interval", "format": "persistence.format",
                   "compression": "persistence.compression", "encryption": "persistence.encryption",
                   "encryption_secret": "persistence.encryption_secret", "locking_enabled": "locking.enabled",
                   "locking_timeout": "locking.timeout",
                   "locking_retry_interval": "locking.retry_interval"}
_UNACTED_PROVIDER = {"rate_limits.tpm": ("rate_limits", "tpm")}
# settings that ask a provider's API for something: (the setting, the interface it needs)
_QUERIES = (("quota.query_current", "quota_query_current", "quota"),
            ("quota.query_remaining", "quota_query_remaining", "quota"),
            ("pricing.query", "pricing_query", "pricing"))


def _refusals(config: MeshConfig, codecs: Mapping[str, Any]) -> list[str]:
    """Settings this version would silently ignore: refused, so nobody believes they work."""
    sync = config.discovery
    problems = [f"providers.{pid}.config.catalogue.refresh_interval: nothing syncs this provider's models; set "
                "catalogue.auto_discover or discovery.sync.enabled" for pid, p in config.providers.items()
                if p.refresh_interval is not None and not p.auto_discover
                and not (sync.sync_enabled and (not sync.sync_providers or pid in sync.sync_providers))]
    problems += _probe_refusals(config)
    storage = config.storage
    if storage.connector == "memory":  # this process's own: nothing is stored, so nothing to say how
        plain = StorageConfig()
        problems += [f"storage.{key}: {NOT_ACTED_ON} (the memory storage shares nothing; name file, sqlite or redis)"
                     for attr, key in _MEMORY_UNACTED.items() if getattr(storage, attr) != getattr(plain, attr)]
    elif storage.sync_policy == "in-memory":
        problems.append("storage.persistence.sync_policy: 'in-memory' keeps nothing in the "
                        f"'{storage.connector}' storage; choose sync-on-boundary, periodic or immediate")
    for pid, p in config.providers.items():
        where = f"providers.{pid}.config"
        default = ProviderConfig(id=pid, connector=p.connector)
        for key, (part, attr) in _UNACTED_PROVIDER.items():
            mine, base = (p, default) if part is None else (getattr(p, part), getattr(default, part))
            if getattr(mine, attr) != getattr(base, attr):
                problems.append(f"{where}.{key}: {NOT_ACTED_ON}")
        asked = [(f"infrastructure.{k}", k) for k, on in p.infrastructure.items() if on]
        asked += [(key, interface) for key, attr, interface in _QUERIES if getattr(p, attr)]
        offered = _offered(p.connector, codecs.get(pid)) if asked else frozenset()
        problems += [_not_offered(f"{where}.{key}", p.connector, interface, offered)
                     for key, interface in asked if interface not in offered]
        if p.auth.method in ("oauth", "service_account"):
            problems.append(f"{where}.auth.method: '{p.auth.method}' is not built in this version (no token is "
                            "obtained or refreshed); use method api_key with the bearer token as auth.api_key, "
                            "kept fresh by a secret store with cache_ttl, or a modelmesh.cdk.BaseProvider")
        problems += [f"{where}.models[{i}].weight: {NOT_ACTED_ON} (load-balanced pools take "
                     "rotation.selection.weights)" for i, m in enumerate(p.models) if m.weight is not None]
        problems += [problem for i, m in enumerate(p.models)
                     if m.from_job is not None and (problem := _from_job_refusal(f"{where}.models[{i}].from_job",
                                                                                 pid, p, m.from_job))]
    return problems


def _from_job_refusal(where: str, pid: str, provider: Any, job: str) -> str | None:
    """A model `from_job` is followed through its provider's fine-tuning API: the provider must
    offer it, and a job id the mesh tagged must be this provider's."""
    owner = job.rpartition("~")[2] if "~" in job else pid
    if owner != pid:
        return f"{where}: {job!r} is a job of provider '{owner}', not of '{pid}' whose model this is"
    if not provider.infrastructure.get("fine_tuning"):
        return (f"{where}: the mesh follows the job through the provider's fine-tuning API, so provider '{pid}' "
                "needs infrastructure.fine_tuning: true")
    return None


def _probe_refusals(config: MeshConfig) -> list[str]:
    """`discovery.health.enabled: false` sends no probe at all: settings that ask for one contradict it."""
    if config.discovery.health_enabled is not False:
        return []
    if config.defaults.rotation.recovery.probe_on_start:  # every pool inherits it: said once
        return ["routing.rotation.recovery.probe_on_start: discovery.health.enabled is false, so no probe is "
                "sent; remove one of them"]
    rotations = [(f"pools.{name}.rotation", pool.rotation) for name, pool in config.pools.items()]
    return [f"{where}.recovery.probe_on_start: discovery.health.enabled is false, so no probe is sent; "
            "remove one of them" for where, rotation in rotations if rotation.recovery.probe_on_start]


def _offered(connector: str, codec: Any) -> frozenset[str]:
    from ._core.codecs import infrastructure_of

    return infrastructure_of(connector, codec)


def _not_offered(where: str, connector: str, interface: str, offered: frozenset[str]) -> str:
    """A setting asking `connector` for an infrastructure interface it does not offer."""
    has = ", ".join(sorted(offered)) or "none"
    return (f"{where}: the '{connector}' connector does not offer {interface.replace('_', '-')} "
            f"(it offers: {has}); remove it")


# -- observability --------------------------------------------------------------------------

def _recorder(config: MeshConfig, secrets: tuple[str, ...], problems: list[str], *, opened: bool) -> Any:
    """The `recorder` sink, opened (one per configuration: a second one is a problem). Only
    `opened` when nothing else is wrong: a refused configuration creates no file."""
    found = [(i, s) for i, s in enumerate(config.observability.connectors) if s.connector == "recorder"]
    if not found:
        return None
    for i, _ in found[1:]:
        problems.append(f"observability.connectors[{i}]: a second 'recorder'; one recording holds every input")
    from .transports._record import Recorder

    i, sink = found[0]
    path, redacted = sink.config.get("path"), sink.config.get("redact_payloads", True)
    if not opened or len(found) > 1 or not isinstance(path, str) or not isinstance(redacted, bool):
        return None  # (a bad path or flag is reported by the parser)
    try:
        return Recorder(path, redact_payloads=redacted, secrets=secrets)
    except OSError as exc:
        problems.append(f"observability.connectors[{i}].config.path: cannot open ({exc.strerror or exc})")
        return None


def _sinks(config: MeshConfig, secrets: tuple[str, ...], problems: list[str]) -> list[Any]:
    from .connectors.observability import build_sinks

    try:
        return build_sinks(config.observability, secrets)
    except ConfigurationError as exc:
        problems.extend(exc.problems)
        return []
