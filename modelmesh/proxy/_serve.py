"""`create_app` (configuration in, a ready WSGI app out) and `modelmesh serve` on Granian.

Theory of operation: `modelmesh serve CONFIG` runs in two kinds of process. The parent
checks everything first (the configuration with every problem at once, the master key,
`--no-auth` on loopback only), prints the startup banner and hands the listening socket
to Granian, which forks the workers. Each worker builds its own MeshClient through
`worker_app` (Granian calls it as a factory), with what the parent decided passed in one
environment variable, and closes it when the worker exits, so what it learnt about health
reaches the shared storage. Granian stops accepting on SIGTERM or SIGINT, lets in-flight
requests (streams included) finish for up to `proxy.shutdown_timeout`, then stops.

Several workers share health, rate limits and budget spend through `storage:`; when none
is configured and `--workers` is above 1, a SQLite file in a fresh temporary directory
is used for this run (the banner says so), and removed when the server stops.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from typing import Any, TextIO

from .._core._errors import ConfigurationError
from ._app import AccessLog, ProxyApp, is_loopback
from ._keys import KeyRing, KeyStore
from ._limits import Bucket, Limiter
from ._metrics import Metrics

__all__ = ["create_app", "json_lines", "run_server", "worker_app"]

METRICS_FLUSH = 5.0  # seconds between a worker's additions of its counts to the store
_HANDOFF = "MODELMESH_SERVE"  # parent -> workers: what `modelmesh serve` decided, as JSON


def json_lines(fd: int = 1) -> AccessLog:
    """An access log writing each record as one JSON line to file descriptor `fd` (stdout)
    with one write, so the lines of several workers never interleave."""

    def write(record: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode())

    return write


_DEFAULT_LOG: Any = object()


def create_app(config: Any, *, no_auth: bool = False, access_log: AccessLog | None = _DEFAULT_LOG,
               **client_kw: Any) -> ProxyApp:
    """The proxy's WSGI app for `config` (a path, a dict or a MeshConfig), over one new
    MeshClient (`client_kw` go to it). Clients must present `proxy.auth.master_key` (or
    one of `proxy.api_keys`); without a master key, `no_auth=True` must say so, and only
    clients on this machine are then served. `access_log` gets one dict per request
    (default: JSON lines on stdout; None for none). For gunicorn:
    `gunicorn -k gthread --threads 16 'modelmesh.proxy:create_app("modelmesh.yaml")'`."""
    from ..client import MeshClient

    mesh = MeshClient(config, **client_kw)
    try:
        proxy = mesh.config.proxy
        if proxy.master_key is None and not no_auth:
            raise ConfigurationError([
                "proxy.auth.master_key: the proxy needs a master key that clients present as "
                "'Authorization: Bearer <key>' (give it as a secret reference, e.g. ${secrets:proxy_master_key}); "
                "to run without one on this machine only, pass --no-auth (create_app(..., no_auth=True))"])
        if proxy.master_key is not None and no_auth:
            raise ConfigurationError(["--no-auth: proxy.auth.master_key is configured; remove one of the two"])
        keys = (proxy.master_key, *proxy.api_keys) if proxy.master_key else ()
        storage, serializer = _store(mesh)
        keyring = None
        if getattr(mesh.transport, "shared", None) is not None:  # virtual keys live in shared storage only
            keyring = KeyRing(KeyStore(storage, serializer), refresh=mesh.config.storage.sync_interval)
        return ProxyApp(mesh, keys=keys, open_on_loopback=no_auth, max_body_bytes=proxy.max_body_bytes,
                        cors_origins=proxy.cors_origins, aliases=proxy.model_aliases,
                        access_log=json_lines() if access_log is _DEFAULT_LOG else access_log,
                        keyring=keyring, limiter=Limiter(storage), per_key=_bucket(proxy.rate_limit_per_key),
                        per_ip=_bucket(proxy.rate_limit_per_ip), metrics=Metrics(storage, flush_every=METRICS_FLUSH),
                        metrics_public=proxy.metrics_public)
    except BaseException:
        mesh.close()
        raise


def _store(mesh: Any) -> tuple[Any, Any]:
    """The store keys, limits and metrics are kept in: the shared one, or (memory storage,
    one process) a store of this app's own."""
    shared = getattr(mesh.transport, "shared", None)
    if shared is not None:
        return shared.storage, shared.serializer
    from ..connectors.storage import MemoryStorage, Serializer

    return MemoryStorage(), Serializer()


def _bucket(limit: Any) -> Bucket | None:
    return None if limit is None else Bucket(limit.rpm, limit.burst)


# -- in each worker ------------------------------------------------------------------------------
def worker_app() -> ProxyApp:
    """Granian's factory in each worker: the app as the parent decided it."""
    import multiprocessing.util

    plan = json.loads(os.environ[_HANDOFF])
    config: Any = plan["config"]
    if plan.get("storage_path"):  # the run's SQLite file, while the configuration names no storage
        config = _with_sqlite(config, plan["storage_path"])
    app = create_app(config, no_auth=plan["no_auth"])
    # run when the worker process exits (multiprocessing runs these, atexit would be skipped
    # in a forked worker): the last health sync, the store and sinks closed
    multiprocessing.util.Finalize(app, app.close, exitpriority=10)
    return app


def _with_sqlite(path: str, db: str) -> Any:
    from .._core._config_schema import FrozenMap, StorageConfig
    from ..config import load_config

    cfg = load_config(path)
    if cfg.storage.connector != "memory":  # a reload configured storage: it is used
        return cfg
    storage = StorageConfig(connector="sqlite", config=FrozenMap({"path": db}), sync_policy="periodic")
    return replace(cfg, storage=storage)


# -- the parent ----------------------------------------------------------------------------------
def run_server(config_path: str, *, host: str | None = None, port: int | None = None, workers: int | None = None,
               threads: int | None = None, no_auth: bool = False, out: TextIO | None = None) -> int:
    """`modelmesh serve`: check, print the banner, serve until SIGTERM/SIGINT. Raises
    ConfigurationError for what stops it from starting."""
    from .._build import build

    out = out or sys.stderr
    try:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels
    except ImportError:
        raise ConfigurationError(["modelmesh serve runs on Granian, which is not installed: "
                                  "pip install 'modelmesh-lite[proxy]'"]) from None
    built = build(config_path)  # every problem at once, before a worker is started
    for sink in built.sinks:
        sink.close()
    if built.storage is not None:
        built.storage.close()
    cfg = built.config
    p = cfg.proxy
    host = p.host if host is None else host
    port = p.port if port is None else port
    workers = p.workers if workers is None else workers
    threads = p.threads if threads is None else threads
    problems = []
    if p.master_key is None and not no_auth:
        problems.append("proxy.auth.master_key: modelmesh serve refuses to start without a master key that clients "
                        "present as 'Authorization: Bearer <key>' (give it as a secret reference, e.g. "
                        "${secrets:proxy_master_key}); on a loopback address you may pass --no-auth instead")
    if no_auth and p.master_key is not None:
        problems.append("--no-auth: proxy.auth.master_key is configured; remove one of the two")
    if no_auth and not is_loopback(host):
        problems.append(f"--no-auth: only allowed on a loopback address (127.0.0.1, ::1, localhost), not {host!r}; "
                        "configure proxy.auth.master_key to listen there")
    if workers < 1 or threads < 1:
        problems.append(f"--workers/--threads: expected at least 1, got {workers}/{threads}")
    if problems:
        raise ConfigurationError(problems, source=config_path)
    state_dir = None
    storage_path = None
    if workers > 1 and cfg.storage.connector == "memory":
        state_dir = tempfile.mkdtemp(prefix="modelmesh-serve-")
        storage_path = os.path.join(state_dir, "health.sqlite3")
    os.environ[_HANDOFF] = json.dumps({"config": os.path.abspath(config_path), "no_auth": no_auth,
                                       "storage_path": storage_path})
    _banner(out, cfg, built.core, host=host, port=port, workers=workers, threads=threads, no_auth=no_auth,
            storage_path=storage_path)
    server = Granian("modelmesh.proxy._serve:worker_app", address=host, port=port, interface=Interfaces.WSGI,
                    workers=workers, blocking_threads=threads, factory=True, log_level=LogLevels.warning,
                    workers_kill_timeout=max(1, round(p.shutdown_timeout)))
    # Granian restarts its workers one by one on SIGHUP (each old one stops as on SIGTERM, its
    # requests in flight finishing); the configuration is checked first, here, and a bad one
    # keeps the workers as they are
    server.signal_handler_reload = _reload_handler(server.signal_handler_reload, config_path, cfg, no_auth, out)  # type: ignore[method-assign]
    server.signal_handler_interrupt = _stop_handler(server.signal_handler_interrupt)  # type: ignore[method-assign]
    try:
        server.serve()
    finally:
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def _stop_handler(stop: Any) -> Any:
    """SIGTERM/SIGINT. Granian installs this in the parent before it forks the workers, and a
    worker keeps it until it installs its own, after `worker_app` has built its client. Run in
    the parent, it stops the server; run in a worker that is still starting, it ends that worker
    (nothing has been served there yet), where Granian's handler, a flag on the worker's copy of
    the parent, would lose the signal and leave the parent waiting out `shutdown_timeout`."""
    parent = os.getpid()

    def on_stop(*args: Any) -> None:
        if os.getpid() != parent:
            raise SystemExit(0)  # unwinds the build (create_app closes what it opened)
        stop(*args)

    return on_stop


def _reload_handler(restart: Any, config_path: str, running: Any, no_auth: bool, out: TextIO) -> Any:
    """SIGHUP: check the configuration file again; restart the workers on it if it is good,
    else say why and keep them. Nothing said holds a secret of the old or the new one."""
    from .._build import build
    from .._core._errors import redact

    def on_hup(*args: Any) -> None:
        secrets = running.secret_values()
        try:
            built = build(config_path)
            for sink in built.sinks:
                sink.close()
            if built.storage is not None:
                built.storage.close()
            new = built.config.proxy
            if new.master_key is None and not no_auth:
                raise ConfigurationError(["proxy.auth.master_key: the new configuration has no master key, and "
                                          "modelmesh serve was not started with --no-auth"], source=config_path)
            if no_auth and new.master_key is not None:
                raise ConfigurationError(["proxy.auth.master_key: the new configuration sets one, and modelmesh "
                                          "serve was started with --no-auth; restart it to change"], source=config_path)
        except ConfigurationError as exc:
            _say(out, "modelmesh serve: SIGHUP: the new configuration is refused, the running one stays:\n"
                 + redact(str(exc), secrets))
            return
        except Exception as exc:  # noqa: BLE001 - its message may quote a credential: the type only
            _say(out, f"modelmesh serve: SIGHUP: checking the new configuration failed unexpectedly "
                      f"({type(exc).__name__}); the running one stays")
            return
        fixed = [name for name in ("host", "port", "workers", "threads")
                 if getattr(new, name) != getattr(running.proxy, name)]
        note = f" ({', '.join('proxy.' + n for n in fixed)}: changed, taken at a restart only)" if fixed else ""
        _say(out, f"modelmesh serve: SIGHUP: the new configuration is valid; restarting the workers on it one by "
                  f"one, requests in flight finish on the old{note}")
        restart(*args)

    return on_hup


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _banner(out: TextIO, cfg: Any, core: Any, *, host: str, port: int, workers: int, threads: int, no_auth: bool,
            storage_path: str | None) -> None:
    shown = f"[{host}]" if ":" in host else host
    lines = [f"modelmesh serve: http://{shown}:{port}/v1  ({workers} worker(s) x {threads} thread(s), Granian WSGI; "
             f"pid {os.getpid()}, SIGHUP reloads the configuration)"]
    if no_auth:
        lines.append("  auth: NONE (--no-auth): clients on this machine only")
    else:
        lines.append(f"  auth: Bearer master key (proxy.auth.master_key) + {len(cfg.proxy.api_keys)} further key(s)")
    s = cfg.storage
    if storage_path is not None:
        lines.append(f"  storage: sqlite {storage_path} (default for {workers} workers without storage: shares "
                     "health between them, removed when the server stops; configure storage: to keep it)")
    elif s.connector == "memory":
        lines.append("  storage: memory (health is this process's own)")
    else:
        lines.append(f"  storage: {s.connector} ({s.sync_policy})")
    for name, pool in core.pools.items():
        lines.append(f"  pool {name}: {', '.join(m.ref for m in pool.members)}")
    models = list(core.models)
    lines.append(f"  models: {len(models)} ({', '.join(models[:8])}{', ...' if len(models) > 8 else ''})")
    cors = ", ".join(cfg.proxy.cors_origins) or "off"
    lines.append(f"  limits: body {cfg.proxy.max_body_bytes} bytes; CORS {cors}; "
                 f"shutdown waits up to {cfg.proxy.shutdown_timeout:g}s")
    buckets = [f"{who} {b.rpm:g} rpm" for who, b in (("per key", cfg.proxy.rate_limit_per_key),
                                                        ("per address", cfg.proxy.rate_limit_per_ip)) if b is not None]
    keys = "virtual keys from the storage" if s.connector != "memory" else "no virtual keys (memory storage)"
    lines.append(f"  keys: {keys}; rate limits: {', '.join(buckets) or 'none'}")
    lines.append("  access log: JSON lines on stdout; endpoints: /v1/chat/completions, /v1/embeddings, /v1/audio/"
                 "{speech,transcriptions,translations}, /v1/images/{generations,edits}, "
                 f"/v1/models, /health, /ready, /metrics ({'public' if cfg.proxy.metrics_public else 'master key'})")
    out.write("\n".join(lines) + "\n")
    out.flush()
