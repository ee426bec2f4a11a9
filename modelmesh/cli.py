"""`modelmesh ...`: the command line.

    modelmesh demo                  route requests through fake upstreams on loopback (no keys)
    modelmesh check CONFIG          validate a configuration and list every problem
    modelmesh explain CONFIG MODEL  where a request for MODEL would go now, and its fallbacks
    modelmesh status CONFIG         every provider and pool member as the mesh sees them now
                                    (with shared storage: as every process sharing it does)
    modelmesh status CONFIG --watch a table that refreshes: state, reason, recovery, rates, p50/p99
    modelmesh status --url URL [--watch]
                                    the same from a running proxy's /dashboard/data
    modelmesh serve CONFIG          the OpenAI-compatible proxy on Granian (docs/proxy.md)
    modelmesh keys create|list|revoke --config CONFIG
                                    the proxy's virtual keys, kept hashed in the shared storage
    modelmesh secrets set|get|list|delete [NAME] --config CONFIG | --store KIND [--path P]
                                    a file, encrypted-file or keyring store's secrets (values
                                    from stdin or a prompt; `get --show` alone prints one)
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, Sequence

__all__ = ["main"]


def _client(path: str, **kw: Any):
    from .client import MeshClient

    return MeshClient(path, **kw)


def _looking_client(path: str) -> Any:
    """A client for a look at the mesh: with quota queries configured, it has their first
    answers (each bounded by its provider's timeout), so `status` can show what is left."""
    answers: list[Any] = []
    arrived = threading.Condition()

    def on_event(ev: Any) -> None:
        if ev.type == "quota_reported":
            with arrived:
                answers.append(ev)
                arrived.notify_all()

    client = _client(path, on_event=on_event)
    asked = [pid for pid, kind in client.core.queries.every if kind == "quota"]
    if asked:
        client.run_discovery()  # the start round, unless the background thread is already at it
        limit = max(client.config.providers[pid].timeout for pid in asked) + 1.0
        with arrived:
            arrived.wait_for(lambda: len(answers) >= len(asked), timeout=limit)
    return client


def cmd_check(args: argparse.Namespace) -> int:
    from ._build import build

    built = build(args.config)  # exactly what the clients build: same environment, same refusals
    for sink in built.sinks:
        sink.close()
    cfg = built.config
    pools = ", ".join(cfg.pools) or "(none: requests name capabilities or models)"
    print(f"{args.config}: OK — {len(cfg.providers)} provider(s): {', '.join(cfg.providers)}; pools: {pools}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    with _client(args.config) as client:
        d = client.route(args.model, session_id=args.session)
        print(f"{args.model} -> pool '{d.pool_id}': {d.provider_id}/{d.model_id} (score {d.score:.3f})")
        for i, ref in enumerate(d.fallback_chain, 1):
            print(f"  fallback {i}: {ref}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.url is None and args.config is None:
        raise SystemExit("modelmesh status: give a CONFIG file, or --url of a running proxy")
    if args.url is not None and args.config is not None:
        raise SystemExit("modelmesh status: give a CONFIG file or --url, not both")
    if args.watch or args.url is not None:
        return _watch(args)
    with _looking_client(args.config) as client:
        client.sync()  # with shared storage, what every process knows; without, nothing to do
        snap = client.status()
        if args.json:
            print(json.dumps(snap, indent=2, default=str))
            return 0
        if "storage" in snap:
            st = snap["storage"]
            print(f"shared through {st['connector']} ({st['sync_policy']}): "
                  f"{'read now' if st['reachable'] else 'UNREACHABLE, showing this process only'}"
                  f"{'' if st['locking'] else '; locking off'}")
            _print_processes(st["processes"], now=time.time())  # the client's clock when made here
        from ._live import quota_text

        for pid, p in snap["providers"].items():
            quota = f"; {quota_text(p['quota'])}" if p.get("quota") else ""
            print(f"provider {pid}: {'up' if p['up'] else 'DOWN (' + str(p['reason']) + ')'}{quota}")
        for name, rows in snap["pools"].items():
            pool = client.config.pools.get(name)
            print(f"pool {name}:" + (f"  {pool.description}" if pool is not None and pool.description else ""))
            for row in rows:
                print(f"  {row['model']:<40} {row['status']:<8} {row['breaker']}{_rate_text(row.get('rate_limits'))}")
    return 0


def _rate_text(limits: Any) -> str:
    """What the provider's rate-limit headers said last, as a few words ('' when nothing)."""
    if not limits:
        return ""
    parts = [f"{limits[f'remaining_{k}']}/{limits[f'limit_{k}'] or '?'} {k}"
             for k in ("requests", "tokens") if limits.get(f"remaining_{k}") is not None]
    return f"  ({', '.join(parts)} left)" if parts else ""


def _watch(args: argparse.Namespace) -> int:
    """The live table, refreshed every `--interval` seconds (`--count` times, or until ^C)."""
    from ._live import LiveView, table

    if args.interval <= 0:
        raise SystemExit(f"modelmesh status: --interval must be positive, got {args.interval}")
    client: Any = None
    view: Any = None
    if args.url is None:
        client = _looking_client(args.config)
        view = LiveView(client)
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() and args.watch else ""
    shown = 0
    try:
        while True:
            if view is not None:
                client.sync()  # standbys other processes found, through shared storage
                snap = view.snapshot()
            else:
                snap = _fetch(args.url, args.key_env)
            if args.json:
                print(json.dumps(snap, default=str), flush=True)
            else:
                source = args.url or args.config
                print(f"{clear}modelmesh status {source} at {time.strftime('%H:%M:%S')}\n\n{table(snap)}", flush=True)
            shown += 1
            if not args.watch or (args.count is not None and shown >= args.count):
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        if client is not None:
            client.close()


def _fetch(url: str, key_env: str) -> Any:
    """A proxy's /dashboard/data, with the master key from the environment variable `key_env`."""
    import os
    import urllib.error
    import urllib.request

    from ._core._errors import ModelMeshError

    where = url.rstrip("/") + "/dashboard/data"
    headers = {"Accept": "application/json"}
    key = os.environ.get(key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(where, headers=headers), timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        hint = f" (set {key_env} to the proxy's master key)" if exc.code in (401, 403) else ""
        raise ModelMeshError(f"{where} answered {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelMeshError(f"cannot read {where}: {reason}") from None


def _print_processes(processes: list[dict[str, Any]], *, now: float) -> None:
    """One line per live process sharing the store: which one, its last sync, what it holds."""
    print(f"processes sharing it ({len(processes)} live):")
    for p in processes:
        synced = "never synced" if p["last_sync"] is None else f"last sync {_ago(now - p['last_sync'])}"
        pushed = "nothing written" if p["last_push"] is None else \
            f"{p['written']} fact(s) written, last {_ago(now - p['last_push'])}"
        standby = ", ".join(p["standby"]) or "none"
        mark = "  (this command)" if p["this"] else ""
        print(f"  {p['host']} pid {p['pid']}: {synced}; {p['facts']} fact(s), standby: {standby}; {pushed}{mark}")


def _ago(seconds: float) -> str:
    return f"{max(0.0, seconds):.1f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=sys.stdout, color=sys.stdout.isatty() and not args.no_color)


def cmd_serve(args: argparse.Namespace) -> int:
    from .proxy._serve import run_server

    return run_server(args.config, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                      no_auth=args.no_auth)


def _key_store(path: str) -> Any:
    """The virtual keys of the storage `path` configures; refused for `memory` storage."""
    from ._build import _storage
    from ._core._errors import ConfigurationError
    from .config import load_config
    from .proxy._keys import KeyStore

    cfg = load_config(path)
    if cfg.storage.connector == "memory":
        raise ConfigurationError([
            "storage: virtual keys are kept in the shared storage, and this configuration has none (memory "
            "storage is each process's own, so no proxy worker would see a key made here): configure storage: "
            "with the sqlite, file or redis connector"], source=path)
    problems: list[str] = []
    storage, serializer = _storage(cfg, problems)
    if problems:
        raise ConfigurationError(problems, source=path)
    return KeyStore(storage, serializer)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def _show_key(key: Any) -> str:
    pools = "all pools" if key.pools is None else "pools " + ",".join(key.pools)
    budget = "no budget" if key.budget is None else f"budget {key.budget:g} USD/{key.period}"
    rpm = "no rate limit" if key.rpm is None else f"{key.rpm:g} rpm"
    state = f"REVOKED {_when(key.revoked)}" if key.revoked is not None else "live"
    return f"{key.id}  {key.name}  {pools}; {budget}; {rpm}; created {_when(key.created)}; {state}"


def cmd_keys(args: argparse.Namespace) -> int:
    from ._core._errors import ConfigurationError

    store = _key_store(args.config)
    try:
        if args.action == "create":
            pools = None if args.pools in (None, "all") else [p.strip() for p in args.pools.split(",") if p.strip()]
            if pools is not None:
                from .config import load_config

                known = set(load_config(args.config).pools)
                unknown = [p for p in pools if p not in known]
                if unknown:
                    raise ConfigurationError([f"--pools: no pool named {', '.join(map(repr, unknown))} in the "
                                              f"configuration (pools: {', '.join(sorted(known)) or 'none'})"])
            try:
                token, key = store.create(args.name, pools=pools, budget=args.budget, period=args.period, rpm=args.rpm)
            except ValueError as exc:
                raise ConfigurationError([str(exc)]) from None
            print(f"created {_show_key(key)}")
            print(f"key (shown this once; only its hash is stored): {token}")
        elif args.action == "list":
            keys = store.list()
            if args.json:
                print(json.dumps([{k: v for k, v in key.to_dict().items() if k != "digest"} | {"id": key.id}
                                  for key in keys], indent=2))
            else:
                print("\n".join(_show_key(k) for k in keys) if keys else "no keys")
        else:
            try:
                key = store.revoke(args.key)
            except LookupError as exc:
                raise ConfigurationError([str(exc.args[0])]) from None
            print(f"revoked {_show_key(key)}")
    finally:
        store.storage.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelmesh", description="Capability-driven LLM routing with automatic failover.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="route requests through local fake upstreams (no API keys needed)")
    p.add_argument("--no-color", action="store_true")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("check", help="validate a configuration file")
    p.add_argument("config")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("explain", help="show where a request would be routed now")
    p.add_argument("config")
    p.add_argument("model", help="pool, capability or model id")
    p.add_argument("--session", default=None)
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("status", help="show providers and pool members")
    p.add_argument("config", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="refresh the table until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--count", type=int, default=None, help="stop after this many refreshes")
    p.add_argument("--url", default=None, help="a running proxy (http://host:port) to read the live view from")
    p.add_argument("--key-env", default="MODELMESH_PROXY_KEY",
                   help="environment variable holding the proxy's master key (default MODELMESH_PROXY_KEY)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("serve", help="run the OpenAI-compatible proxy (needs the proxy extra: Granian)")
    p.add_argument("config")
    p.add_argument("--host", default=None, help="address to listen on (default: proxy.host, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: proxy.port, else 8080)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: proxy.workers, else 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per worker, requests served at once each (default: proxy.threads, else 16)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve without a master key: loopback addresses only, clients on this machine only")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("keys", help="the proxy's virtual keys (kept hashed in the shared storage)")
    keys = p.add_subparsers(dest="action", required=True)
    k = keys.add_parser("create", help="make a key and show it once")
    k.add_argument("--config", required=True)
    k.add_argument("--name", required=True)
    k.add_argument("--pools", default=None, help="comma-separated pools it may use (default: all)")
    k.add_argument("--budget", type=float, default=None, help="USD per --period (default: none)")
    k.add_argument("--period", choices=("day", "month"), default="day")
    k.add_argument("--rpm", type=float, default=None, help="requests per minute (default: proxy.rate_limit.per_key)")
    k = keys.add_parser("list", help="every key: id, name, pools, limits, created and revoked times")
    k.add_argument("--config", required=True)
    k.add_argument("--json", action="store_true")
    k = keys.add_parser("revoke", help="revoke a key by name or id")
    k.add_argument("--config", required=True)
    k.add_argument("key", help="the key's name or id (not the key itself)")
    p.set_defaults(func=cmd_keys)
    from ._secrets_cli import add_parser as add_secrets

    add_secrets(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._core._errors import ModelMeshError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelMeshError as exc:
        print(f"modelmesh: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug must not dump a traceback full of config values
        # its message may quote a credential of a shape we cannot recognise: the type only
        print(f"modelmesh: unexpected {type(exc).__name__} (a bug in modelmesh; please report it, "
              "and call modelmesh.build() on the same configuration from Python for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
