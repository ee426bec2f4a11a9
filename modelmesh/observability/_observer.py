"""The Observer: what a client does with its sinks, for the four interfaces.

Theory of operation. A client makes one Observer over the sinks built from configuration
and listens with `on_event` (every mesh event, after the core's lock is released) and
`on_finished` (called by the drive loop with a finished call and its Succeeded or Failed,
just before the call's last events). From these it feeds each sink:

- `emit`: the event itself;
- `trace`: the event as a severity-tagged entry (routine steps are `debug`, a failed attempt
  or a standby `warning`, a failed request or a provider down `error`, a pool with nothing
  left `critical`), which each sink keeps from `tracing.min_severity` up;
- `log`: one record per finished request, rendered here at `logging.level`: `metadata`
  (who served it, attempts, latency, tokens, cost, the error), `summary` (+ the last
  message sent and the answer's text, cut to 256 bytes), `full` (+ the request body and
  the answer as JSON, cut to `logging.max_payload_size` bytes). Secrets are removed before
  anything is cut: the configuration's secret values always, and with `redact_secrets`
  (the default) also fields named like credentials and text shaped like an API key;
- `flush`: the statistics (`Statistics`) of the window just closed, every
  `statistics.flush_interval` (a daemon thread started by the first event), at
  `client.flush_statistics()` and at close.

A sink's bug never fails a request: it is logged (once per sink and door) and skipped.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core._config_schema import ObservabilityConfig
from .._core._errors import redact
from ._stats import Statistics

__all__ = ["Observer", "render_request_log", "SEVERITY_OF"]

_log = logging.getLogger("modelmesh.observability")

SEVERITY_OF = {
    "request_routed": "debug", "request_completed": "debug", "retry": "info", "attempt_failed": "warning",
    "model_deactivated": "warning", "model_recovered": "info", "provider_deactivated": "error",
    "provider_recovered": "info", "request_failed": "error", "pool_exhausted": "critical",
}
_SUMMARY_BYTES = 256
_CREDENTIAL_WORDS = ("key", "token", "secret", "password", "authorization", "credential")


class Observer:
    def __init__(self, sinks: Sequence[Any], settings: ObservabilityConfig, *, secrets: Sequence[str] = (),
                 clock: Callable[[], float], statistics: bool = True, mesh_config: Any = None) -> None:
        self.sinks = list(sinks)
        for sink in self.sinks:  # sinks that name providers by their connector (OpenTelemetry)
            bind = getattr(sink, "bind_config", None)
            if mesh_config is not None and callable(bind):
                bind(mesh_config)
        self.settings = settings
        self.secrets = tuple(secrets)
        self.clock = clock
        self.statistics = Statistics(scopes=settings.scopes, retention=settings.retention, start=clock()) \
            if statistics else None
        # sinks that read the finished call itself (OpenTelemetry: the answer's model and finish reasons)
        self.finish_listeners: list[Callable[[Any, Any], None]] = [
            s.finished for s in self.sinks if callable(getattr(s, "finished", None))]
        self._failed: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- inputs -------------------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        if self._flusher is None and self.statistics is not None and self.sinks:
            self._start_flusher()
        if self.statistics is not None:
            self.statistics.observe(event)
        kind = event.type
        entry = None
        for sink in self.sinks:
            self._call(sink, "emit", event)
            if entry is None:
                entry = _trace_entry(event, kind)
            self._call(sink, "trace", entry)

    def on_finished(self, call: Any, outcome: Any) -> None:
        for listener in self.finish_listeners:
            try:
                listener(call, outcome)
            except Exception:
                _log.exception("modelmesh: observability listener %r failed on a finished request", listener)
        if not any(callable(getattr(s, "log", None)) for s in self.sinks):
            return
        try:
            record = render_request_log(call, outcome, self.settings, self.secrets, at=self.clock())
        except Exception:  # our bug must not fail the request either
            _log.exception("modelmesh: rendering the request log of %s failed", call.request_id)
            return
        for sink in self.sinks:
            self._call(sink, "log", record)

    def flush_statistics(self) -> list[dict[str, Any]]:
        """Close the statistics window now and hand its rows to every sink; returns them."""
        if self.statistics is None:
            return []
        rows = self.statistics.flush(self.clock())
        for sink in self.sinks:
            self._call(sink, "flush", rows)
        return rows

    def _call(self, sink: Any, door: str, arg: Any) -> None:
        method = getattr(sink, door, None)
        if method is None:  # a plain connector with emit/close only
            return
        try:
            method(arg)
        except Exception:  # an observer's bug must not fail the request it observes
            if (id(sink), door) not in self._failed:
                self._failed.add((id(sink), door))
                _log.exception("modelmesh: observability sink %r failed in %s (reported once)", sink, door)

    # -- the flush schedule -------------------------------------------------------------------
    def _start_flusher(self) -> None:
        with self._start_lock:
            if self._flusher is not None or self._stop.is_set():
                return
            self._flusher = threading.Thread(target=self._flush_loop, name="modelmesh-statistics", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.settings.flush_interval):
            try:
                self.flush_statistics()
            except Exception:
                _log.exception("modelmesh: flushing statistics failed")

    # -- state and closing ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        sinks = []
        for sink in self.sinks:
            state = getattr(sink, "status", None)
            sinks.append(state() if callable(state) else {"connector": type(sink).__name__})
        return {"sinks": sinks, "overflow": sum(int(s.get("overflow", 0)) for s in sinks),
                "dropped": sum(int(s.get("dropped", 0)) for s in sinks),
                "logging_level": self.settings.logging_level, "min_severity": self.settings.min_severity,
                "flush_interval": self.settings.flush_interval}

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(5.0)
        if self.statistics is not None and self.sinks:
            self.flush_statistics()
        for sink in self.sinks:
            self._call(sink, "flush", [])  # buffering sinks push out what they hold
            try:
                sink.close()
            except Exception:
                _log.exception("modelmesh: closing observability sink %r failed", sink)


def _trace_entry(event: Any, kind: str) -> dict[str, Any]:
    data = event.to_dict()
    data.pop("type", None)
    at = data.pop("at", None)
    detail = ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", ()) and k != "request_id")
    return {"type": "trace", "at": at, "severity": SEVERITY_OF.get(kind, "info"), "source": kind,
            "message": f"{kind}: {detail}" if detail else kind, "request_id": data.get("request_id")}


# -- the request log --------------------------------------------------------------------------

def render_request_log(call: Any, outcome: Any, settings: ObservabilityConfig, secrets: Sequence[str], *,
                       at: float) -> dict[str, Any]:
    """A finished request as a log record at `settings.logging_level`, secrets removed."""
    failed = not hasattr(outcome, "response")
    attempts = tuple(getattr(call, "attempts", ()))
    record: dict[str, Any] = {
        "type": "request_log", "at": at, "level": settings.logging_level, "request_id": call.request_id,
        "op": call.op, "pool": getattr(call.pool, "name", None), "stream": bool(call.stream),
        "outcome": "failure" if failed else "success", "attempts": len(attempts),
        "failed_attempts": [{"provider": a.provider, "model": a.model, "kind": a.outcome, "status": a.status}
                            for a in attempts if a.outcome != "ok"],
    }
    if failed:
        err = outcome.error
        record.update(error_type=type(err).__name__, error=_clean(str(err), settings, secrets))
    else:
        record.update(provider=outcome.provider, model=outcome.model, latency=outcome.latency,
                      prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
                      cost=outcome.cost)
    if settings.logging_level == "metadata":
        return record
    answer: Any = None if failed else outcome.response
    if answer is None and not failed and call.stream:
        answer = {"streamed_text": str(getattr(call, "partial_text", "") or "")}
    if settings.logging_level == "summary":
        record["request_summary"] = _cut(_clean(_last_message(call.body), settings, secrets), _SUMMARY_BYTES)[0]
        if answer is not None:
            record["response_summary"] = _cut(_clean(_answer_text(answer), settings, secrets), _SUMMARY_BYTES)[0]
        return record
    limit = settings.max_payload_size
    text, cut = _cut(_clean(_dumps(_masked(call.body, settings)), settings, secrets), limit)
    record["request"], record["request_truncated"] = text, cut
    if answer is not None:
        text, cut = _cut(_clean(_dumps(_masked(answer, settings)), settings, secrets), limit)
        record["response"], record["response_truncated"] = text, cut
    return record


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _clean(text: str, settings: ObservabilityConfig, secrets: Sequence[str]) -> str:
    if settings.redact_secrets:
        return redact(text, secrets)
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")  # the configuration's secrets go whatever the setting
    return text


def _masked(value: Any, settings: ObservabilityConfig) -> Any:
    """With redact_secrets, the values of fields named like credentials, at any depth."""
    if not settings.redact_secrets:
        return value
    if isinstance(value, Mapping):
        return {k: ("***" if isinstance(k, str) and any(w in k.lower() for w in _CREDENTIAL_WORDS)
                    and isinstance(v, str) and not k.lower().endswith("tokens") else _masked(v, settings))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, settings) for v in value]
    return value


def _cut(text: str, limit: int | None) -> tuple[str, bool]:
    """`text` in at most `limit` UTF-8 bytes (never a broken character)."""
    raw = text.encode("utf-8")
    if limit is None or len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


def _last_message(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        content = messages[-1].get("content") if isinstance(messages[-1], Mapping) else messages[-1]
        return content if isinstance(content, str) else _dumps(content)
    value = body.get("input", body.get("prompt", ""))
    return value if isinstance(value, str) else _dumps(value)


def _answer_text(answer: Any) -> str:
    if isinstance(answer, Mapping):
        if "streamed_text" in answer:
            return str(answer["streamed_text"])
        choices = answer.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message") or {}
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                return content
    return _dumps(answer)
