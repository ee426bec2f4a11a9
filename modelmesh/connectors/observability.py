"""Observability connectors: where mesh events go.

Each sink receives every event (frozen dataclasses from `modelmesh._core._events`) that
passes the configured `events.filter`. Built here: `console` (one line per event on
stderr, or a given stream), `file` (JSON Lines appended to `config.path`) and `null`.
Events carry no secrets; the file sink still passes each line through `redact` with the
configuration's secret values, so a vendor message that echoed a key cannot leak.
"""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from .._core._errors import ConfigurationError, redact

__all__ = ["ConsoleObservability", "FileObservability", "NullObservability", "build_sinks"]

# the seed's coarse event groups, accepted in events.filter besides exact event types
_GROUPS = {
    "routing": {"request_routed", "request_completed", "request_failed"},
    "rotation": {"request_routed", "retry", "attempt_failed"},
    "deactivation": {"model_deactivated", "provider_deactivated", "pool_exhausted"},
    "recovery": {"model_recovered", "provider_recovered"},
    "health": {"model_deactivated", "model_recovered", "provider_deactivated", "provider_recovered"},
    "errors": {"attempt_failed", "request_failed"},
}


def _wanted(filter_: Sequence[str]) -> frozenset[str] | None:
    if not filter_:
        return None
    out: set[str] = set()
    for name in filter_:
        out |= _GROUPS.get(name, {name})
    return frozenset(out)


class NullObservability:
    def emit(self, event: Any) -> None:
        return None

    def close(self) -> None:
        return None


class ConsoleObservability:
    def __init__(self, stream: TextIO | None = None, secrets: Iterable[str] = ()) -> None:
        self._stream = stream
        self._secrets = tuple(secrets)

    def emit(self, event: Any) -> None:
        data = event.to_dict()
        kind = data.pop("type")
        at = data.pop("at")
        detail = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", ()))
        print(redact(f"[modelmesh] {at:.3f} {kind} {detail}", self._secrets), file=self._stream or sys.stderr)

    def close(self) -> None:
        return None


class FileObservability:
    """JSON Lines, one event per line, appended; safe to share between threads."""

    def __init__(self, path: str, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the client's life

    def emit(self, event: Any) -> None:
        line = redact(json.dumps(event.to_dict(), default=str), self._secrets)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class _Filtered:
    def __init__(self, sink: Any, wanted: frozenset[str] | None) -> None:
        self.sink, self.wanted = sink, wanted

    def emit(self, event: Any) -> None:
        if self.wanted is None or event.type in self.wanted:
            self.sink.emit(event)

    def close(self) -> None:
        self.sink.close()


def build_sinks(config: Any, secrets: Sequence[str] = ()) -> list[Any]:
    """Sinks for an ObservabilityConfig. Every sink we do not have and every file that
    cannot be opened is reported in one ConfigurationError (and nothing stays open)."""
    wanted = _wanted(config.events_filter)
    sinks: list[Any] = []
    problems: list[str] = []
    for i, sink in enumerate(config.connectors):
        where = f"observability.connectors[{i}]"
        if sink.connector == "console":
            sinks.append(_Filtered(ConsoleObservability(secrets=secrets), wanted))
        elif sink.connector == "file":
            try:
                sinks.append(_Filtered(FileObservability(sink.config["path"], secrets=secrets), wanted))
            except OSError as exc:
                problems.append(f"{where}.config.path: cannot open ({exc.strerror or exc})")
        elif sink.connector not in ("null", "recorder"):  # the recorder wraps the core: see modelmesh._build
            problems.append(f"{where}.connector: the '{sink.connector}' observability connector is not "
                            "available in this version (use console, file or null, or MeshClient(on_event=...))")
    if problems:
        for opened in sinks:
            opened.close()
        raise ConfigurationError(problems)
    return sinks
