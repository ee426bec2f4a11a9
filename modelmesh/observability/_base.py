"""The observability connector contract and the sinks that need nothing installed.

Theory of operation. A sink receives *records*: plain JSON-able dicts, each with a `type`.
Four doors feed them, one per interface of the seed:

    emit(event)    a mesh event (`modelmesh._core._events`): `type` is the event's name
    log(record)    one finished request (`type: request_log`), already rendered at the
                   configured `logging.level`, secrets removed and payloads cut to
                   `logging.max_payload_size` by the Observer before any sink sees it
    flush(rows)    statistics aggregated since the last flush (`type: statistics`)
    trace(entry)   a severity-tagged entry (`type: trace`) at or above `tracing.min_severity`

`BaseObservability` implements all four on top of one method, `_write(record)`: it applies
`events.filter` (to every record type) and `events.include_metadata`, redacts the
configuration's secret values once more (a vendor message may echo a key) and writes.
A subclass overrides `_write` alone (a log aggregator, a queue) or any one door.
`_write`'s default hands the record, as JSON, to the `modelmesh.observability` logger, so
the base class works as it stands.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from .._core._config_schema import ObservabilityConfig
from .._core._errors import redact

__all__ = [
    "BaseObservability", "ConsoleObservability", "FileObservability", "NullObservability",
    "CallbackObservability", "SEVERITIES", "severity_rank", "wanted_types",
]

_log = logging.getLogger("modelmesh.observability")

SEVERITIES = ("debug", "info", "warning", "error", "critical")

# the seed's coarse groups, accepted in events.filter besides exact record types
_GROUPS = {
    "routing": {"request_routed", "request_completed", "request_failed"},
    "rotation": {"request_routed", "retry", "attempt_failed", "key_rotated"},
    "deactivation": {"model_deactivated", "provider_deactivated", "pool_exhausted", "key_retired"},
    "recovery": {"model_recovered", "provider_recovered", "keys_reloaded"},
    "discovery": {"model_discovered", "model_deprecated"},
    "health": {"model_deactivated", "model_recovered", "provider_deactivated", "provider_recovered"},
    "errors": {"attempt_failed", "request_failed"},
    "logging": {"request_log"},
    "statistics": {"statistics"},
    "tracing": {"trace"},
}
# what `include_metadata: false` leaves out of an event: which model and provider, and why
_METADATA = ("provider", "model", "fallback_chain", "score")


def severity_rank(name: str) -> int:
    return SEVERITIES.index(name)


def wanted_types(filter_: Sequence[str]) -> frozenset[str] | None:
    """The record types `events.filter` lets through; None for all."""
    if not filter_:
        return None
    out: set[str] = set()
    for name in filter_:
        out |= _GROUPS.get(name, {name})
    return frozenset(out)


class BaseObservability:
    """Every door with a working default; override `_write(record)` to send records elsewhere.

    `config` is the sink's own `config:` mapping; `settings` the `observability:` section
    (filter, metadata, logging, tracing, statistics); `secrets` the values never to write."""

    name = "base"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.config = dict(config or {})
        self.settings = settings if settings is not None else ObservabilityConfig()
        self._secrets = tuple(secrets)
        self._wanted = wanted_types(self.settings.events_filter)
        self._min_rank = severity_rank(self.settings.min_severity)

    def __repr__(self) -> str:  # never the config: a webhook's headers hold tokens
        return f"{type(self).__name__}()"

    # -- the four doors ---------------------------------------------------------------------
    def wants(self, record_type: str) -> bool:
        return self._wanted is None or record_type in self._wanted

    def emit(self, event: Any) -> None:
        """A mesh event (or an already plain record with a `type`)."""
        kind = event.type if not isinstance(event, Mapping) else str(event.get("type"))
        if not self.wants(kind):
            return
        record = dict(event) if isinstance(event, Mapping) else event.to_dict()
        if not self.settings.include_metadata:
            for key in _METADATA:
                record.pop(key, None)
        self._put(record)

    def log(self, record: Mapping[str, Any]) -> None:
        """One finished request, rendered at the configured level (see Observer)."""
        if self.wants("request_log"):
            self._put(dict(record))

    def flush(self, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """Statistics rows since the last flush; called with none, it only pushes out what
        a buffering sink holds."""
        if self.wants("statistics"):
            for row in rows:
                self._put(dict(row))

    def trace(self, entry: Mapping[str, Any]) -> None:
        """A trace entry: `severity`, `message` and fields; those below min_severity are dropped."""
        severity = str(entry.get("severity", "info"))
        if severity in SEVERITIES and severity_rank(severity) < self._min_rank:
            return
        if self.wants("trace"):
            self._put(dict(entry, type="trace"))

    def status(self) -> dict[str, Any]:
        return {"connector": self.name}

    def close(self) -> None:
        return None

    # -- where records go -------------------------------------------------------------------
    def _put(self, record: dict[str, Any]) -> None:
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        _log.info("%s", self._dumps(record))

    def _dumps(self, record: Mapping[str, Any]) -> str:
        return redact(json.dumps(record, default=str, separators=(",", ":")), self._secrets)


class NullObservability(BaseObservability):
    """Discards everything, cheaply: the doors return at once."""

    name = "null"

    def emit(self, event: Any) -> None:
        return None

    def log(self, record: Mapping[str, Any]) -> None:
        return None

    def flush(self, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        return None

    def trace(self, entry: Mapping[str, Any]) -> None:
        return None

    def _write(self, record: dict[str, Any]) -> None:
        return None


_COLOURS = {"debug": "2", "info": "36", "warning": "33", "error": "31", "critical": "1;31"}
_EVENT_COLOURS = {"request_completed": "32", "attempt_failed": "33", "request_failed": "31",
                  "model_deactivated": "33", "provider_deactivated": "31", "pool_exhausted": "1;31",
                  "model_recovered": "32", "provider_recovered": "32"}


class ConsoleObservability(BaseObservability):
    """One line per record on stderr (or `stream`), coloured when it is a terminal
    (`config.color: true/false` forces it; NO_COLOR in the environment turns it off)."""

    name = "console"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
        super().__init__(config, settings=settings, secrets=secrets)
        self._stream = stream
        self._lock = threading.Lock()
        self._colour = self.config.get("color")

    def trace(self, entry: Mapping[str, Any]) -> None:
        source = entry.get("source")
        if isinstance(source, str) and self.wants(source):
            return  # the event itself is on the console already, in its severity's colour
        super().trace(entry)

    def _coloured(self, out: TextIO) -> bool:
        if isinstance(self._colour, bool):
            return self._colour
        return not os.environ.get("NO_COLOR") and bool(getattr(out, "isatty", lambda: False)())

    def _write(self, record: dict[str, Any]) -> None:
        out = self._stream or sys.stderr
        data = dict(record)
        kind = str(data.pop("type", "record"))
        at = data.pop("at", None)
        label = kind
        if kind == "trace":
            label = f"{str(data.pop('severity', 'info')).upper()} {data.pop('message', '')}"
        detail = " ".join(f"{k}={_short(v)}" for k, v in data.items() if v not in (None, "", (), []))
        if self._coloured(out):
            code = _COLOURS.get(str(record.get("severity"))) if kind == "trace" else _EVENT_COLOURS.get(kind)
            label = f"\x1b[{code or '0'}m{label}\x1b[0m"
        when = f"{at:.3f} " if isinstance(at, (int, float)) else ""
        line = redact(f"[modelmesh] {when}{label} {detail}".rstrip(), self._secrets)
        with self._lock:
            print(line, file=out)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


class FileObservability(BaseObservability):
    """JSON Lines, one record per line, appended to `config.path`; safe to share between threads."""

    name = "file"

    def __init__(self, config: Mapping[str, Any] | str | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Iterable[str] = ()) -> None:
        if isinstance(config, str):  # FileObservability("events.jsonl")
            config = {"path": config}
        super().__init__(config, settings=settings, secrets=secrets)
        path = self.config.get("path")
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError("config.path: required for the 'file' connector (a file to append JSON lines to)")
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the client's life

    def _write(self, record: dict[str, Any]) -> None:
        line = self._dumps(record)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class CallbackObservability(BaseObservability):
    """Calls a function with every record (a dict): `config.callable` is the function
    itself or a "package.module:function" path. The function runs in the thread that
    produced the record: keep it quick, or hand the record to a queue."""

    name = "callback"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Iterable[str] = ()) -> None:
        super().__init__(config, settings=settings, secrets=secrets)
        target = self.config.get("callable")
        if isinstance(target, str):
            target = load_object(target, "config.callable")
        if not callable(target):
            raise ValueError("config.callable: expected a function or a \"package.module:function\" path, "
                             f"got {type(target).__name__}")
        self.function: Callable[[dict[str, Any]], Any] = target

    def _write(self, record: dict[str, Any]) -> None:
        self.function(json.loads(self._dumps(record)))  # the redacted copy, plain JSON types


def load_object(spec: str, where: str) -> Any:
    """What a "package.module:name" path names; ValueError saying why not."""
    import importlib

    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{where}: expected \"package.module:name\", got {spec!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{where}: cannot load {spec!r} ({type(exc).__name__}: {exc})") from None
