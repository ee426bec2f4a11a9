"""The mesh: every provider, model and pool, and the router in front of them.

`MeshCore` is built from a validated `MeshConfig`, the resolved credentials, an injected
`random.Random` and the current time. It answers three questions, all pure:

- `resolve(name)`: which pool serves a request for `name`? A configured pool name; a
  capability (alias, leaf or inner node: the implicit pool of every model under it, or the
  configured pool that targets exactly that capability); a `provider/model-id` reference
  (that model alone); or a bare model id (every provider that serves it).
- `route(capability, options, now)`: the RoutingDecision a request would get now.
- `start(op, body, ...)`: a `Call`, the per-request state machine a shell drives.

It also owns what outlives a request: model and provider health, budgets, the events
list that shells drain for observability, and the probes that recovery asks for.
Nothing here is locked: the shells serialise access (decide under their lock, do I/O
outside it).
"""
from __future__ import annotations

import difflib
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import _errors as E
from ._call import Call
from ._capabilities import is_capability, is_under, resolve_capability
from ._config_schema import MeshConfig, PoolConfig
from ._policies import PolicySet
from ._pool import ModelInfo, Pool, ProviderRuntime
from ._types import Rng, WireRequest
from .codecs import get_codec
from .codecs._base import Target

__all__ = ["MeshCore", "RoutingOptions", "RoutingDecision", "Probe"]

@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingOptions:
    """Optional hints that influence routing (seed 004)."""

    delivery_mode: str | None = None
    preferred_provider: str | None = None
    session_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # seconds for the whole request; caps the pool's retry deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingDecision:
    """The model a request would go to now, and what follows it if it fails (seed 004)."""

    model_id: str
    provider_id: str
    pool_id: str
    score: float
    fallback_chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """A health check recovery asks for; the shell sends `request` and feeds the result."""

    key: str
    provider: str
    pool: str | None
    ref: str | None
    target: Target
    request: WireRequest
    timeout: float


class MeshCore:
    def __init__(
        self,
        config: MeshConfig,
        *,
        rng: Rng,
        api_keys: Mapping[str, str | None] | None = None,
        codecs: Mapping[str, Any] | None = None,
        user_strategies: Mapping[str, Callable] | None = None,
        strategies: Mapping[str, Any] | None = None,
        policies: Mapping[str, PolicySet] | None = None,
        lock: Any = None,
    ) -> None:
        """`policies` plugs user policies into pools by pool name, "*" for every pool.
        `lock` is a context manager guarding shared health (a threading.Lock from a shell
        whose threads share this core); by default nothing is locked."""
        self.config = config
        self.rng = rng
        self.events: list = []
        self._ids = 0
        self._user_strategies = dict(user_strategies or {})
        api_keys = dict(api_keys or {})
        codecs = dict(codecs or {})
        self.providers: dict[str, ProviderRuntime] = {}
        self.models: dict[str, ModelInfo] = {}
        for pid, pcfg in config.providers.items():
            codec = codecs.get(pid) or get_codec(_codec_name(pcfg.connector))
            key = api_keys.get(pid, pcfg.auth.api_key)
            self.providers[pid] = ProviderRuntime(pcfg, codec, key)
            for mcfg in pcfg.models:
                info = ModelInfo.from_config(pid, mcfg)
                self.models[info.ref] = info
        self.secret_values = tuple(sorted({k for k in (p.secret for p in self.providers.values()) if k} | set(config.secret_values())))
        self._policies = dict(policies or {})
        self.lock = lock if lock is not None else nullcontext()
        self.pools: dict[str, Pool] = {}
        for name, pcfg in config.pools.items():
            members = self._members(pcfg)
            self.pools[name] = Pool(name, pcfg, members, user_strategies=self._user_strategies,
                                    strategy=(strategies or {}).get(name), policies=self._plugged(name))
        self._implicit: dict[str, Pool] = {}
        self._probed: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"MeshCore(providers={list(self.providers)!r}, pools={list(self.pools)!r})"

    # -- membership ------------------------------------------------------------------------
    def _members(self, pcfg: PoolConfig) -> list[ModelInfo]:
        chosen: dict[str, ModelInfo] = {}
        for ref in pcfg.models:
            if ref in self.models:
                chosen[ref] = self.models[ref]
        if pcfg.capability:
            for ref, info in self.models.items():
                if ref not in chosen and any(is_under(c, pcfg.capability) for c in info.capabilities):
                    chosen[ref] = info
        members = list(chosen.values())
        if pcfg.providers:
            members = [m for m in members if m.provider in pcfg.providers]
        return [m for m in members if self.providers[m.provider].config.enabled]

    # -- resolving a request's `model` ----------------------------------------------------------
    def resolve(self, name: str, op: str = "chat") -> Pool:
        if not isinstance(name, str) or not name:
            raise E.RoutingError(f"a request must name a pool, capability or model; got {name!r}")
        if name in self.pools:
            return self.pools[name]
        if name in self._implicit:
            return self._implicit[name]
        pool = self._implicit_pool(name, op)
        self._implicit[name] = pool
        return pool

    def _implicit_pool(self, name: str, op: str) -> Pool:
        if is_capability(name):
            path = resolve_capability(name)
            for pool in self.pools.values():
                if pool.config.capability == path:
                    return pool
            members = [m for m in self.models.values() if any(is_under(c, path) for c in m.capabilities)
                       and self.providers[m.provider].config.enabled]
            if not members:
                raise E.RoutingError(f"no configured model offers capability '{path}' (asked for '{name}')")
            return self._make_pool(name, path, members)
        if name in self.models:
            return self._make_pool(name, None, [self.models[name]])
        same_id = [m for m in self.models.values() if m.model == name]
        if same_id:
            return self._make_pool(name, None, same_id)
        known = list(self.pools) + list(self.models) + sorted({m.model for m in self.models.values()})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise E.RoutingError(f"'{name}' is not a pool, a capability or a configured model{hint}")

    def _make_pool(self, name: str, capability: str | None, members: list[ModelInfo]) -> Pool:
        d = self.config.defaults
        cfg = PoolConfig(name=name, capability=capability, models=tuple(m.ref for m in members),
                         strategy=d.strategy, rotation=d.rotation, retry=d.retry, on_exhausted=d.on_exhausted,
                         max_wait=d.max_wait, stream_resume=d.stream_resume)
        return Pool(name, cfg, members, user_strategies=self._user_strategies, implicit=True,
                    policies=self._plugged(name))

    def _plugged(self, pool: str) -> PolicySet:
        return self._policies.get("*", PolicySet()) + self._policies.get(pool, PolicySet())

    def all_pools(self) -> list[Pool]:
        return list(self.pools.values()) + [p for p in self._implicit.values() if p.implicit and p.name not in self.pools]

    # -- routing --------------------------------------------------------------------------------
    def next_request_id(self) -> str:
        self._ids += 1
        return f"mm-{self._ids}"

    def start(self, op: str, body: Mapping[str, Any], *, model: str, stream: bool = False,
              options: RoutingOptions | None = None, now: float) -> Call:
        pool = self.resolve(model, op)
        return Call(self, pool, op, body, stream=stream, options=options or RoutingOptions(), now=now,
                    request_id=self.next_request_id())

    def route(self, capability: str, options: RoutingOptions | None = None, *, now: float) -> RoutingDecision:
        options = options or RoutingOptions()
        pool = self.resolve(capability)
        cands, earliest = pool.candidates(now, self.providers, self.events)
        ctx = pool.context(now, self.rng, options)
        ranked = pool.strategy.preview(cands, ctx) if cands else []  # a question, not a request: no state moves
        if not ranked:
            when = f"; the first recovers in {earliest - now:.1f}s" if earliest is not None else ""
            raise E.NoModelAvailableError(f"pool '{pool.name}': no model is available{when}",
                                          recovery_at=earliest, retry_after=None if earliest is None else earliest - now)
        best = ranked[0]
        return RoutingDecision(model_id=best.model, provider_id=best.provider, pool_id=pool.name,
                               score=pool.strategy.score(pool.full(best, now, self.providers), ctx), fallback_chain=tuple(c.ref for c in ranked[1:]))

    def drain_events(self) -> list:
        events, self.events = self.events, []
        return events

    # -- manual control and status -----------------------------------------------------------------
    def _pools_with(self, ref: str, pool: str | None) -> list[Pool]:
        if ref not in self.models:
            raise E.RoutingError(f"unknown model '{ref}'")
        pools = [p for p in self.all_pools() if ref in p.by_ref and (pool is None or p.name == pool)]
        if pool is not None and not pools:
            raise E.RoutingError(f"model '{ref}' is not in pool '{pool}'")
        return pools

    def deactivate_model(self, ref: str, *, now: float, pool: str | None = None, until: float | None = None) -> None:
        from ._policies import Deactivation, DeactivationReason

        for p in self._pools_with(ref, pool):
            p.deactivate(ref, Deactivation(reason=DeactivationReason.MANUAL, detail="by hand", until=until or float("inf")), now, self.events)

    def reactivate_model(self, ref: str, *, now: float, pool: str | None = None) -> None:
        for p in self._pools_with(ref, pool):
            p.reactivate(ref, now, "manual", self.events)

    def reactivate_provider(self, provider: str, *, now: float) -> None:
        if provider not in self.providers:
            raise E.RoutingError(f"unknown provider '{provider}'")
        self.providers[provider].reactivate(now, "manual", self.events)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "providers": {
                pid: {"up": p.is_up(now), "reason": p.reason, "until": p.standby_until,
                      "spend_day": round(p.spend_day, 6), "spend_month": round(p.spend_month, 6),
                      "enabled": p.config.enabled}
                for pid, p in self.providers.items()
            },
            "pools": {pool.name: pool.snapshot(now, self.providers, self.events) for pool in self.all_pools()},
        }

    # -- probes -------------------------------------------------------------------------------------
    def due_probes(self, now: float) -> list[Probe]:
        """Health checks recovery wants now: providers down until a probe, standby models of pools
        with a probe interval (and, once, of pools that probe on start)."""
        probes: list[Probe] = []
        interval = self.config.discovery.health_interval
        for pid, provider in self.providers.items():
            if provider.is_up(now) or provider.standby_until is not None or not provider.config.enabled:
                continue
            key = f"provider:{pid}"
            if now - self._probed.get(key, float("-inf")) >= interval:
                self._probed[key] = now
                target = provider.target(next(iter(m for m in self.models.values() if m.provider == pid), ModelInfo(
                    ref=f"{pid}/-", provider=pid, model="-", capabilities=())))
                probes.append(Probe(key=key, provider=pid, pool=None, ref=None, target=target,
                                    request=provider.codec.build_request(target, "models", {}, stream=False),
                                    timeout=self.config.discovery.health_timeout))
        for pool in self.all_pools():
            rec = pool.config.rotation.recovery
            for ref, state in pool.states.items():
                if state.breaker.state.value == "closed":
                    continue
                first = rec.probe_on_start and f"start:{pool.name}:{ref}" not in self._probed
                if not (rec.probe_interval or first):
                    continue
                key = f"model:{pool.name}:{ref}"
                # the interval counts from the deactivation: a model that just failed is not hit again at once
                last = max(self._probed.get(key, float("-inf")), state.deactivated_at or float("-inf"))
                if not first and now - last < rec.probe_interval:
                    continue
                self._probed[key] = now
                self._probed[f"start:{pool.name}:{ref}"] = now
                model = pool.by_ref[ref]
                provider = self.providers[model.provider]
                target = provider.target(model)
                body = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
                op = "embeddings" if "embeddings" in " ".join(model.capabilities) else "chat"
                if op == "embeddings":
                    body = {"input": "ping"}
                probes.append(Probe(key=key, provider=model.provider, pool=pool.name, ref=ref, target=target,
                                    request=provider.codec.build_request(target, op, body, stream=False),
                                    timeout=provider.config.timeout))
        return probes

    def probe_result(self, probe: Probe, *, ok: bool, now: float, latency: float | None = None) -> None:
        provider = self.providers[probe.provider]
        if probe.ref is not None:  # a model probe says nothing about the provider's availability
            pool = next((p for p in self.all_pools() if p.name == probe.pool), None)
            if pool is not None:
                pool.states[probe.ref].record_probe(now)
                if ok:
                    pool.reactivate(probe.ref, now, "probe", self.events)
            return
        if ok and not self._provider_recovers_by_probe(probe.provider):
            provider.state.last_probe = now  # on_manual: a good probe is noted, recovery stays manual
            return
        if ok:
            provider.reactivate(now, "probe", self.events)
        provider.state.record_probe(ok, latency, now)

    def _provider_recovers_by_probe(self, provider: str) -> bool:
        rules = {p.config.rotation.provider_recovery for p in self.all_pools()
                 if any(m.provider == provider for m in p.members)}
        return not rules or "on_probe_success" in rules


def _codec_name(connector: str) -> str:
    if connector in ("anthropic", "gemini", "azure-openai"):
        return connector
    return "openai"  # the OpenAI-compatible family and custom "module:Class" connectors speaking it
