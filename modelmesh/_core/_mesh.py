"""The mesh: every provider, model and pool, and the router in front of them.

`MeshCore` is built from a validated `MeshConfig`, the resolved credentials, an injected
`random.Random` and the current time. It answers three questions, all pure:

- `resolve(name)`: which pool serves a request for `name`? A configured pool name; a
  capability (alias, leaf or inner node: the implicit pool of every model under it, or the
  configured pool that targets exactly that capability); a `provider/model-id` reference
  (that model alone); or a bare model id (every provider that serves it).
- `route(capability, options, now)`: the RoutingDecision a request would get now.
- `start(op, body, ...)`: a `Call`, the per-request state machine a shell drives.

What outlives a request (model and provider health, budgets, probes) belongs to its one
owner, `self.health`. Every door here that touches shared state holds `self.lock` (the
shell's, injected) for as long as the decision takes; calls take it themselves around
their health updates only. Doors that change state return the events they caused.
"""
from __future__ import annotations

import difflib
import itertools
from contextlib import nullcontext
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, Callable, Mapping, Sequence

from . import _errors as E
from ._body import check_body
from ._call import Call
from ._capabilities import infer_capabilities, is_capability, is_under, resolve_capability, short_name
from ._config_schema import CONNECTOR_CAPABILITIES, MeshConfig, PoolConfig
from ._discovery import Listing, Registry
from ._events import MeshEvent, ModelDeprecated, ModelDiscovered, PricesUpdated, QuotaReported
from ._health import Delisted, Health, ModelByHand, Probe, Probed, ProviderByHand, QuotaSeen
from ._policies import PolicySet
from ._pool import ModelInfo, Pool, ProviderRuntime
from ._protocol import RoutingDecision, RoutingOptions
from ._quota import Price, Queries, Query, parse_prices, parse_quota, quota_request
from ._sharing import Fact
from ._types import DeactivationReason, Rng
from .codecs import codec_for_connector, get_codec, infrastructure_of

__all__ = ["MeshCore", "RoutingOptions", "RoutingDecision", "Probe", "Listing", "Query"]


_OP_WORDS = {"chat": "chat completion", "embeddings": "embeddings", "speech": "text-to-speech",
             "transcriptions": "speech-to-text (transcription)", "translations": "speech translation",
             "images": "text-to-image", "image_edits": "image editing"}

_NO_OPTIONS = RoutingOptions()  # frozen: shared by every request that gives none

# the most model names a provider with an open catalogue takes without their being listed: each
# one is a model and a pool in memory, and a caller (a proxy's client) must not grow them for ever
MAX_UNLISTED = 256


class MeshCore:
    def __init__(
        self,
        config: MeshConfig,
        *,
        rng: Rng,
        api_keys: Mapping[str, str | None] | None = None,
        codecs: Mapping[str, Any] | None = None,
        user_strategies: Mapping[str, Callable[..., Any]] | None = None,
        strategies: Mapping[str, Any] | None = None,
        policies: Mapping[str, PolicySet] | None = None,
        lock: Any = None,
    ) -> None:
        """`policies` plugs user policies into pools by pool name, "*" for every pool.
        `lock` is a context manager guarding shared health (a threading.Lock from a shell
        whose threads share this core); by default nothing is locked."""
        self.config = config
        self.rng = rng
        self._ids = itertools.count(1)
        self.request_prefix = "mm-"  # a shell may name its process here, so ids stay apart across workers
        self._user_strategies = dict(user_strategies or {})
        api_keys = dict(api_keys or {})
        codecs = dict(codecs or {})
        self.providers: dict[str, ProviderRuntime] = {}
        self.models: dict[str, ModelInfo] = {}
        for pid, pcfg in config.providers.items():
            codec = codecs.get(pid) or get_codec(codec_for_connector(pcfg.connector))
            key = api_keys.get(pid, pcfg.auth.api_key)
            # with key_rotation the provider holds every configured key; without it the parser
            # refuses a second one, so the ring holds the one key sent
            ring = pcfg.auth.api_keys if pcfg.auth.key_rotation and pcfg.auth.api_keys else key
            self.providers[pid] = ProviderRuntime(pcfg, codec, ring)
            for mcfg in pcfg.models:
                info = ModelInfo.from_config(pid, mcfg, prefill=codec.prefill)
                self.models[info.ref] = info
        self.secret_values = tuple(sorted({k for p in self.providers.values() for k in p.secrets}
                                          | set(config.secret_values())))
        self._policies = dict(policies or {})
        self.lock = lock if lock is not None else nullcontext()
        # whether anyone reads the events of a request: a shell with no listener says False,
        # and calls then skip the per-request events and the figures only they carry
        self.listening = True
        self.health = Health(self.providers, config.discovery)
        self.pools: dict[str, Pool] = {}
        for name, pool_cfg in config.pools.items():
            members = self._members(pool_cfg)
            self.pools[name] = Pool(name, pool_cfg, members, user_strategies=self._user_strategies,
                                    strategy=(strategies or {}).get(name), policies=self._plugged(name))
            self.health.add_pool(self.pools[name])
        self.health.start_checks = self._start_checks()
        self.registry = Registry(config)
        self.queries = Queries(config, {pid: infrastructure_of(r.config.connector, r.codec)
                                        for pid, r in self.providers.items()})
        self._implicit: dict[str, Pool] = {}
        # models taken out (or put back) by hand in every pool: pools made later by a request's
        # `model` name (a capability, a bare id) start with them so
        self._by_hand: dict[str, tuple[bool, float | None]] = {}

    def __repr__(self) -> str:
        return f"MeshCore(providers={list(self.providers)!r}, pools={list(self.pools)!r})"

    def _start_checks(self) -> frozenset[str]:
        """Providers checked once when the client starts: those of pools whose recovery says
        `probe_on_start` (every provider when `routing:` says it, implicit pools inherit it)."""
        if self.config.defaults.rotation.recovery.probe_on_start:
            return frozenset(self.providers)
        return frozenset(m.provider for p in self.pools.values() if p.config.rotation.recovery.probe_on_start
                         for m in p.members)

    @property
    def starts_background(self) -> bool:
        """Whether the shell should start its background work (probes, discovery) as the client
        starts rather than at the first request: something is due at start."""
        return ((bool(self.health.start_checks) and self.health.probing) or bool(self.registry.at_start)
                or bool(self.queries.every))

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
    def resolve(self, name: str, op: str = "chat", *, now: float) -> Pool:
        if not isinstance(name, str) or not name:
            raise E.InvalidArgumentError(f"a request must name a pool, capability or model; got {name!r}", param="model")
        if name in self.pools:
            return self.pools[name]
        if name in self._implicit:
            return self._implicit[name]
        pool = self._implicit_pool(name, op)
        self._implicit[name] = pool
        if pool.name not in self.health.pools:
            self.health.add_pool(pool)
            for ref, (up, until) in self._by_hand.items():
                if ref in pool.by_ref and not up:
                    self.health.record(ModelByHand(pool=pool.name, ref=ref, up=False, until=until), now, [])
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
                raise E.NotFoundError(f"no configured model offers capability '{path}' (asked for '{name}')", param="model")
            return self._make_pool(name, path, members)
        if name in self.models:
            return self._make_pool(name, None, [self.models[name]])
        same_id = [m for m in self.models.values() if m.model == name]
        if same_id:
            return self._make_pool(name, None, same_id)
        unlisted = self._unlisted(name)
        if unlisted:
            return self._make_pool(name, None, unlisted)
        known = list(self.pools) + list(self.models) + sorted({m.model for m in self.models.values()})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise E.NotFoundError(f"'{name}' is not a pool, a capability or a configured model{hint}", param="model")

    def _unlisted(self, name: str) -> list[ModelInfo]:
        """`name` as a model of each provider with an open catalogue (`provider/model-id` names
        one of them), added to the mesh's models; none when no such provider may take it."""
        provider, _, rest = name.partition("/")
        chosen = [provider] if rest and provider in self.providers else list(self.providers)
        out = []
        for pid in chosen:
            runtime = self.providers[pid]
            if not (runtime.config.open_catalogue and runtime.config.enabled):
                continue
            model_id = rest if pid == provider and rest else name
            if sum(1 for m in self.models.values() if m.provider == pid) >= MAX_UNLISTED + len(runtime.config.models):
                raise E.NotFoundError(f"'{name}' is not a configured model, and provider '{pid}' already took "
                                      f"{MAX_UNLISTED} unlisted model names; list the models it serves", param="model")
            info = ModelInfo(ref=f"{pid}/{model_id}", provider=pid, model=model_id,
                             capabilities=infer_capabilities(model_id), prefill=runtime.codec.prefill)
            self.models[info.ref] = info
            out.append(info)
        return out

    def _make_pool(self, name: str, capability: str | None, members: list[ModelInfo]) -> Pool:
        d = self.config.defaults
        cfg = PoolConfig(name=name, capability=capability, models=tuple(m.ref for m in members),
                         strategy=d.strategy, rotation=d.rotation, retry=d.retry, on_exhausted=d.on_exhausted,
                         max_wait=d.max_wait, stream_resume=d.stream_resume,
                         content_filter_failover=d.content_filter_failover)
        return Pool(name, cfg, members, user_strategies=self._user_strategies, implicit=True,
                    policies=self._plugged(name))

    def _plugged(self, pool: str) -> PolicySet:
        return self._policies.get("*", PolicySet()) + self._policies.get(pool, PolicySet())

    def all_pools(self) -> list[Pool]:
        return list(self.health.pools.values())

    # -- routing --------------------------------------------------------------------------------
    def start(self, op: str, body: Mapping[str, Any], *, model: str, stream: bool = False,
              options: RoutingOptions | None = None, now: float) -> Call:
        check_body(body)  # the caller's mistake ends here, before any model is asked (or blamed)
        with self.lock:
            pool = self.resolve(model, op, now=now)
        unfit = pool.unfit(op)
        if unfit and len(unfit) == len(pool.members):
            offered = sorted({short_name(c) for m in pool.members for c in m.capabilities})
            raise E.BadRequestError(f"'{model}' cannot take a {_OP_WORDS.get(op, op)} request: its models offer "
                                    f"{', '.join(offered)}; nothing was sent", param="model")
        return Call(health=self.health, pool=pool, providers=self.providers, rng=self.rng, lock=self.lock,
                    secrets=self.secret_values, op=op, body=body, stream=stream, options=options or _NO_OPTIONS,
                    now=now, request_id=f"{self.request_prefix}{next(self._ids)}", listening=self.listening,
                    excluded=unfit)

    def route(self, capability: str, options: RoutingOptions | None = None, *, now: float) -> RoutingDecision:
        """The decision a request would get now. A question: nothing moves, nothing is emitted."""
        options = options or RoutingOptions()
        with self.lock:
            pool = self.resolve(capability, now=now)
            self.health.settle(now)
            cands, earliest = self.health.available(pool, now, None)
            ctx = pool.context(now, self.rng, options)
            ranked = pool.strategy.preview(cands, ctx) if cands else []
            if not ranked:
                when = f"; the first recovers in {earliest - now:.1f}s" if earliest is not None else ""
                raise E.NoModelAvailableError(f"pool '{pool.name}': no model is available{when}", recovery_at=earliest,
                                              retry_after=None if earliest is None else earliest - now)
            best = ranked[0]
            score = pool.strategy.score(self.health.full(pool, best, now), ctx)
        return RoutingDecision(model_id=best.model, provider_id=best.provider, pool_id=pool.name, score=score,
                               fallback_chain=tuple(c.ref for c in ranked[1:]))

    # -- manual control and status -----------------------------------------------------------------
    def _pools_with(self, ref: str, pool: str | None) -> list[Pool]:
        if ref not in self.models:
            raise E.NotFoundError(f"unknown model '{ref}'")
        pools = [p for p in self.all_pools() if ref in p.by_ref and (pool is None or p.name == pool)]
        if pool is not None and not pools:
            raise E.NotFoundError(f"model '{ref}' is not in pool '{pool}'")
        return pools

    def deactivate_model(self, ref: str, *, now: float, pool: str | None = None, until: float | None = None) -> list[MeshEvent]:
        return self._set_model(ref, pool, up=False, until=until, now=now)

    def reactivate_model(self, ref: str, *, now: float, pool: str | None = None) -> list[MeshEvent]:
        return self._set_model(ref, pool, up=True, until=None, now=now)

    def _set_model(self, ref: str, pool: str | None, *, up: bool, until: float | None, now: float) -> list[MeshEvent]:
        events: list[MeshEvent] = []
        with self.lock:
            for p in self._pools_with(ref, pool):
                self.health.record(ModelByHand(pool=p.name, ref=ref, up=up, until=until), now, events)
            if pool is None:
                self._by_hand[ref] = (up, until)
        return events

    def reactivate_provider(self, provider: str, *, now: float) -> list[MeshEvent]:
        if provider not in self.providers:
            raise E.NotFoundError(f"unknown provider '{provider}'")
        events: list[MeshEvent] = []
        with self.lock:
            self.providers[provider].keys.restore(now)  # a person vouches for the provider, keys and all
            self.health.record(ProviderByHand(provider=provider), now, events)
        return events

    # -- credentials ----------------------------------------------------------------------------
    def set_api_keys(self, provider: str, keys: Sequence[str], *, now: float) -> list[MeshEvent]:
        """The provider's keys as its secret store holds them now (the shell re-reads them every
        `secrets.cache_ttl`). Known keys keep their state, new ones start active; a provider
        that was down because every key was refused comes back when a new key arrives."""
        if provider not in self.providers:
            raise E.NotFoundError(f"unknown provider '{provider}'")
        runtime = self.providers[provider]
        events: list[MeshEvent] = []
        with self.lock:
            events += runtime.keys.replace(keys, now)
            if not events:
                return events
            self.secret_values = tuple(sorted(set(self.secret_values) | set(runtime.keys.values())))
            refused = self.health.provider_states[provider].reason == DeactivationReason.AUTH_FAILURE.value
            if refused and runtime.keys.active and not self.health.provider_up(provider, now):
                self.health.record(ProviderByHand(provider=provider), now, events)
        return events

    def snapshot(self, now: float) -> dict[str, Any]:
        """Every provider and pool member as the mesh sees them now (a pure read)."""
        with self.lock:
            self.health.settle(now)
            return self.health.view(now)

    # -- probes -------------------------------------------------------------------------------------
    def started(self, now: float) -> None:
        """The client using this core starts now: health checks and syncs are scheduled from
        here (without it, from the first `due_probes`)."""
        with self.lock:
            self.health.schedule_checks(now)
            self.registry.schedule(now)
            self.queries.schedule(now)

    # -- quota and pricing queries (see _quota) ------------------------------------------------------
    def due_queries(self, now: float) -> list[Query]:
        """The quota and price questions due now, each scheduled again at once."""
        with self.lock:
            due = self.queries.due(now)
        out = []
        for pid, kind in due:
            runtime = self.providers[pid]
            connector = runtime.config.connector
            target = runtime.bare_target()
            request = (quota_request(connector, runtime.codec, target) if kind == "quota"
                       else runtime.codec.build_request(target, "models", {}, stream=False))
            if request is not None:
                out.append(Query(key=f"{kind}:{pid}", provider=pid, kind=kind, connector=connector, target=target,
                                 request=request, timeout=runtime.config.timeout))
        return out

    def queried(self, query: Query, status: int | None, headers: Mapping[str, str], body: bytes, *,
                now: float) -> list[MeshEvent]:
        """A query's answer (`status` None: it could not be sent or read; nothing changes)."""
        events: list[MeshEvent] = []
        runtime = self.providers[query.provider]
        if query.kind == "pricing":
            if status is not None and 200 <= status < 300:
                repriced = self._reprice(query.provider, parse_prices(body))
                events.append(PricesUpdated(at=now, provider=query.provider, models=repriced))
            return events
        report = None if status is None else parse_quota(query.connector, runtime.codec, status, headers, body, now)
        if report is None:
            events.append(QuotaReported(at=now, provider=query.provider, answered=False))
            return events
        cfg = runtime.config
        # low only matters to a provider asked to rotate before its quota ends (query_remaining)
        low = cfg.quota_query_remaining and report.low(cfg.quota_min_remaining)
        events.append(QuotaReported(at=now, provider=query.provider, remaining=report.remaining, limit=report.limit,
                                    fraction=report.fraction, unit=report.unit, low=low))
        with self.lock:
            after = self.queries.next_at(query.provider, "quota") or now + cfg.quota_query_interval
            until = after + cfg.quota_query_interval + cfg.timeout  # lapses if the next answers never come
            self.health.record(QuotaSeen(provider=query.provider, low=low, until=until, report=report), now, events)
        return events

    def usage(self, now: float, days: int = 7) -> list[dict[str, Any]]:
        """What each provider served on each of the last `days` UTC days (today included), as
        this process counted it: requests, prompt and completion tokens, cost in USD."""
        today = int(now // 86400)
        out = []
        with self.lock:
            for pid, ledger in self.health.daily.items():
                for day in sorted(d for d in ledger if today - days < d <= today):
                    requests, prompt, completion, cost = ledger[day]
                    out.append({"provider": pid, "date": _iso_day(day), "requests": int(requests),
                                "prompt_tokens": int(prompt), "completion_tokens": int(completion),
                                "cost": round(cost, 10)})
        return out

    def _reprice(self, pid: str, prices: Mapping[str, Price]) -> tuple[str, ...]:
        """The provider's listed prices for its models in the mesh, from the next request on;
        the refs repriced."""
        done = []
        with self.lock:
            for ref, info in list(self.models.items()):
                price = prices.get(info.model) if info.provider == pid else None
                if price is None:
                    continue
                new = replace(info, input_per_1m=price.input_per_1m, output_per_1m=price.output_per_1m,
                              per_request=price.per_request,
                              context_window=info.context_window or price.context_window)
                self.models[ref] = new
                done.append(ref)
                for pool in self.all_pools():
                    if ref in pool.by_ref:
                        pool.replace_member(new)
        return tuple(done)

    # -- registry sync (see _discovery) ---------------------------------------------------------------
    def due_listings(self, now: float) -> list[Listing]:
        """Model listings the registry sync wants now, each marked as sent."""
        with self.lock:
            pids = self.registry.due(now)
        out = []
        for pid in pids:
            runtime = self.providers[pid]
            target = runtime.bare_target()
            out.append(Listing(key=f"sync:{pid}", provider=pid, connector=runtime.config.connector, target=target,
                               request=runtime.codec.build_request(target, "models", {}, stream=False),
                               timeout=self.config.discovery.health_timeout))
        return out

    def listing_ids(self, listing: Listing, status: int, headers: Mapping[str, str], body: bytes) -> list[str] | None:
        """The model ids of a listing's answer, or None when it failed or makes no sense."""
        if not 200 <= status < 300:
            return None
        try:
            data = self.providers[listing.provider].codec.parse_response(listing.target, "models", status, headers, body)
        except Exception:  # noqa: BLE001 - a codec's complaint about a bad listing: no listing
            return None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        return [item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]

    def listed(self, listing: Listing, ids: list[str] | None, *, now: float,
               known: Mapping[str, Any] | None = None) -> list[MeshEvent]:
        """A listing's ids (None: it failed, nothing changes) into the mesh, per discovery.sync.
        `known` holds what the shell knows of new ids (prices, context windows: objects with
        input_per_1m, output_per_1m, per_request, context_window), by id."""
        events: list[MeshEvent] = []
        if ids is None:
            return events
        pid = listing.provider
        with self.lock:
            mine = {m.model: ref for ref, m in self.models.items() if m.provider == pid}
            changes = self.registry.changes(pid, ids, mine)
            for model_id in changes.register:
                info = self._discovered(pid, model_id, (known or {}).get(model_id))
                pools = self._join(info, now)
                events.append(ModelDiscovered(at=now, provider=pid, model=info.ref, registered=True, pools=pools))
            events += [ModelDiscovered(at=now, provider=pid, model=f"{pid}/{i}", registered=False)
                       for i in changes.notify]
            action = self.config.discovery.on_deprecated_model
            for ref in changes.gone:
                events.append(ModelDeprecated(at=now, provider=pid, model=ref, action=action))
                if action == "deactivate":
                    for pool in self.all_pools():
                        if ref in pool.by_ref:
                            self.health.record(Delisted(pool=pool.name, ref=ref, gone=True), now, events)
            for ref in changes.back:
                for pool in self.all_pools():
                    if ref in pool.by_ref:
                        self.health.record(Delisted(pool=pool.name, ref=ref, gone=False), now, events)
        return events

    def _discovered(self, pid: str, model_id: str, known: Any) -> ModelInfo:
        runtime = self.providers[pid]
        caps = CONNECTOR_CAPABILITIES.get(runtime.config.connector) or infer_capabilities(model_id)
        info = ModelInfo(ref=f"{pid}/{model_id}", provider=pid, model=model_id, capabilities=caps,
                         prefill=runtime.codec.prefill,
                         context_window=getattr(known, "context_window", None),
                         input_per_1m=float(getattr(known, "input_per_1m", 0.0)),
                         output_per_1m=float(getattr(known, "output_per_1m", 0.0)),
                         per_request=float(getattr(known, "per_request", 0.0)))
        self.models[info.ref] = info
        return info

    def _join(self, info: ModelInfo, now: float) -> tuple[str, ...]:
        """`info` into every pool whose capability covers it (configured and implicit ones)."""
        joined = []
        for pool in self.all_pools():
            cap = pool.config.capability
            if not cap or not any(is_under(c, cap) for c in info.capabilities):
                continue
            if pool.config.providers and info.provider not in pool.config.providers:
                continue
            self.health.add_member(pool, info)
            joined.append(pool.name)
        return tuple(joined)

    def due_probes(self, now: float) -> list[Probe]:
        """Health checks recovery wants now; each is marked as sent, so no other thread sends it too."""
        with self.lock:
            return self.health.due_probes(now, self.models)

    def probe_result(self, probe: Probe, *, ok: bool, now: float, latency: float | None = None) -> list[MeshEvent]:
        events: list[MeshEvent] = []
        with self.lock:
            keys = self.providers[probe.provider].keys
            if ok and len(keys) and not keys.active:  # every key was refused, yet the key in use answered
                keys.restore(now)
            self.health.record(Probed(probe=probe, ok=ok, latency=latency), now, events)
        return events

    def facts(self, now: float) -> dict[str, Fact]:
        """This process's standbys and recoveries, for other processes (see `_sharing`)."""
        with self.lock:
            self.health.settle(now)
            return self.health.facts(now)

    @property
    def health_version(self) -> int:
        """Grows with every standby and recovery (a cheap "did anything change?" for sharing)."""
        return self.health.version

    def budgeted(self) -> list[str]:
        return self.health.budgeted()

    def spend_periods(self, provider: str, now: float) -> tuple[float, float]:
        """(end of the budget day, end of the month) of `provider`, for counters shared by processes."""
        with self.lock:
            return self.health.spend_periods(provider, now)

    def absorb_spend(self, provider: str, day_end: float, day_total: float, month_end: float,
                     month_total: float) -> None:
        """All processes' spend on `provider` in those periods (from shared storage)."""
        with self.lock:
            self.health.absorb_spend(provider, day_end, day_total, month_end, month_total)

    def limited(self) -> list[tuple[str, str]]:
        return self.health.limited()

    def rate_counted(self) -> list[tuple[str, str]]:
        return self.health.rate_counted()

    def last_minute(self, pairs: list[tuple[str, str]], now: float) -> dict[tuple[str, str], int]:
        """This process's requests to each (pool, model) of `pairs` in the last minute."""
        with self.lock:
            return self.health.last_minute(pairs, now)

    def absorb_last_minute(self, others: Mapping[tuple[str, str], int]) -> None:
        """The other processes' requests per (pool, model) in the last minute (from shared
        storage), which selection adds to ours; replaces what was absorbed before."""
        with self.lock:
            self.health.others_last_minute = dict(others)

    def usage_period(self, pool: str, ref: str, now: float) -> float | None:
        with self.lock:
            return self.health.usage_period(pool, ref, now)

    def absorb_usage(self, pool: str, ref: str, period_end: float | None, requests: float, tokens: float,
                     cost: float, now: float) -> list[MeshEvent]:
        """All processes' use of a model with per-model limits this period; returns the events."""
        events: list[MeshEvent] = []
        with self.lock:
            self.health.absorb_usage(pool, ref, period_end, requests, tokens, cost, now, events)
        return events

    def absorb(self, facts: Mapping[str, Fact], now: float) -> list[MeshEvent]:
        """Honour other processes' account of standbys and recoveries; returns the events."""
        events: list[MeshEvent] = []
        with self.lock:
            self.health.absorb(facts, now, events)
        return events


def _iso_day(day: int) -> str:
    """Days since 1970-01-01 (UTC) as YYYY-MM-DD (the civil calendar, computed)."""
    return (_EPOCH + timedelta(days=day)).isoformat()


_EPOCH = date(1970, 1, 1)
