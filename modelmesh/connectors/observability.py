"""Observability connectors from configuration: which sink each `observability.connectors[i]` names.

Built here: `console`, `file` (JSON Lines), `null`, `webhook` (batched POSTs, the `webhook`
extra), `callback` (`config.callable`: a function or "package.module:function"),
`prometheus` (the `prometheus` extra; `config.port` also serves /metrics), `opentelemetry`
(the `otel` extra; the global tracer and meter providers) and "package.module:Class" for a
class of the user's (a `modelmesh.cdk.BaseObservability` subclass, or any class with
`emit(event)` and `close()`). The classes live in `modelmesh.observability`; this module
turns configuration into instances. A `recorder` is not a sink: `modelmesh._build` makes it.

Every sink that cannot be made is one problem, with its path, in one ConfigurationError
(and nothing stays open).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._core._errors import ConfigurationError
from ..observability._base import (
    BaseObservability,
    CallbackObservability,
    ConsoleObservability,
    FileObservability,
    NullObservability,
    load_object,
)

__all__ = ["ConsoleObservability", "FileObservability", "NullObservability", "CallbackObservability",
           "build_sinks"]

_EXTRAS = {"webhook": ("tenacity", "webhook"), "prometheus": ("prometheus_client", "prometheus"),
           "opentelemetry": ("opentelemetry", "otel")}


def _make(connector: str, config: Mapping[str, Any], settings: Any, secrets: Sequence[str]) -> Any:
    if connector == "console":
        return ConsoleObservability(config, settings=settings, secrets=secrets)
    if connector == "file":
        return FileObservability(config, settings=settings, secrets=secrets)
    if connector == "null":
        return NullObservability(config, settings=settings)
    if connector == "callback":
        return CallbackObservability(config, settings=settings, secrets=secrets)
    if connector == "webhook":
        from ..observability._webhook import WebhookObservability

        return WebhookObservability(config, settings=settings, secrets=secrets)
    if connector == "prometheus":
        from ..observability._prometheus import PrometheusObservability

        return PrometheusObservability(config, settings=settings)
    if connector == "opentelemetry":
        from ..observability._otel import OpenTelemetryObservability

        return OpenTelemetryObservability(config, settings=settings)
    cls = load_object(connector, "connector")
    if not isinstance(cls, type):
        raise ValueError(f"connector: '{connector}' is not a class")
    if issubclass(cls, BaseObservability):
        return cls(config, settings=settings, secrets=secrets)
    if not (callable(getattr(cls, "emit", None)) and callable(getattr(cls, "close", None))):
        raise ValueError(f"connector: '{connector}' is neither a modelmesh.cdk.BaseObservability subclass nor a "
                         "class with emit(event) and close()")
    make: Any = cls  # a plain connector class: its constructor takes its config
    return make(dict(config))


def build_sinks(config: Any, secrets: Sequence[str] = ()) -> list[Any]:
    """Sinks for an ObservabilityConfig, each given the common settings (filter, metadata,
    logging, tracing, statistics) and the secret values it must never write."""
    sinks: list[Any] = []
    problems: list[str] = []
    for i, sink in enumerate(config.connectors):
        if sink.connector == "recorder":  # wraps the core: see modelmesh._build
            continue
        where = f"observability.connectors[{i}]"
        try:
            sinks.append(_make(sink.connector, sink.config, config, secrets))
        except OSError as exc:
            problems.append(f"{where}.config.path: cannot open ({exc.strerror or exc})")
        except ImportError as exc:
            module, extra = _EXTRAS.get(sink.connector, (getattr(exc, "name", None) or "?", None))
            hint = f"pip install 'modelmesh-lite[{extra}]'" if extra else "install the module it needs"
            problems.append(f"{where}.connector: the '{sink.connector}' connector needs {module} ({hint})")
        except (ValueError, TypeError) as exc:
            text = str(exc)
            problems.append(f"{where}.{text}" if text.startswith(("config.", "connector:")) else f"{where}: {text}")
    if problems:
        for opened in sinks:
            opened.close()
        raise ConfigurationError(problems)
    return sinks
