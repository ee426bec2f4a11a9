"""The observability interfaces (emit, log, flush, trace) and the sinks beyond console and file:
webhook (against a loopback receiver that refuses, then accepts), callback, module:Class and
the CDK base classes subclassed with one override."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import modelmesh
from modelmesh import cdk
from modelmesh import errors as E
from modelmesh.observability import WebhookObservability
from modelmesh.testing import Error, FakeClock, FakeUpstream

SECRET = "sk-obs-secret-0123456789"
MSG = [{"role": "user", "content": "hi"}]
RECEIVED: list[dict] = []  # what `collect` (a callback named by path) was given


def collect(record: dict) -> None:
    RECEIVED.append(record)


class OneOverride(cdk.BaseObservability):
    """A custom sink: the base class with `_write` alone overridden."""

    written: list[dict] = []

    def _write(self, record: dict) -> None:
        OneOverride.written.append(record)


def cfg(url, **top):
    data = {"providers": {
        "a": {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": SECRET}, "models": ["m1"]}},
        "b": {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": SECRET}, "models": ["m2"]}}},
        "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}}}
    data.update(top)
    return data


@pytest.fixture
def up():
    with FakeUpstream("openai", models=["m1", "m2"]) as u:
        yield u


# -- a webhook receiver on loopback -------------------------------------------------------------

class Receiver(ThreadingHTTPServer):
    """Answers 503 to the first `refuse` POSTs, then 200; `hold` (when set) keeps each answer
    waiting until released."""

    daemon_threads = True

    def __init__(self, refuse: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.refuse = refuse
        self.batches: list[list[dict]] = []
        self.headers_seen: list[dict] = []
        self.hold: threading.Event | None = None
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    @property
    def records(self) -> list[dict]:
        return [r for batch in self.batches for r in batch]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Hook(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return None

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.hold is not None:
            server.hold.wait(10)
        if server.refuse > 0:
            server.refuse -= 1
            self.send_response(503)
        else:
            server.batches.append(json.loads(body))
            server.headers_seen.append(dict(self.headers))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


class Event:
    def __init__(self, n):
        self.n, self.at = n, float(n)
        self.type = "request_routed"

    def to_dict(self):
        return {"type": self.type, "at": float(self.n), "n": self.n}


def test_webhook_retries_with_exponential_backoff_and_loses_nothing_once_the_receiver_is_back(receiver):
    receiver.refuse = 4  # down for four tries
    waits: list[float] = []
    clock = FakeClock()

    def sleep(seconds):  # the backoff runs on a fake clock: no real waiting
        waits.append(seconds)
        clock.sleep(seconds)

    sink = WebhookObservability({"url": receiver.url, "batch_size": 50, "batch_interval": 0.05,
                                 "retry_initial": 1, "retry_max": 4}, sleep=sleep)
    for n in range(20):
        sink.emit(Event(n))
    sink.close()
    assert [r["n"] for r in receiver.records] == list(range(20))  # each once, in order
    assert waits == [1, 2, 4, 4]  # doubling, capped at retry_max
    state = sink.status()
    assert state["sent"] == 20 and state["retries"] == 4 and state["overflow"] == 0 and state["dropped"] == 0


def test_webhook_from_configuration_delivers_a_clients_events_and_keeps_header_tokens_out_of_reprs(up, receiver):
    receiver.refuse = 2
    token = "hook-token-abcdef0123456789"
    obs = {"connector": "webhook", "config": {"url": receiver.url, "batch_interval": 0.05, "retry_initial": 0.01,
                                              "retry_max": 0.02, "headers": {"Authorization": f"Bearer {token}"}}}
    up.script(Error(429, retry_after=30))
    clock = FakeClock()
    with modelmesh.MeshClient(cfg(up.url, observability=obs), clock=clock, sleep=clock.sleep, environ={}) as client:
        client.chat.completions.create(model="chat", messages=MSG)
        (sink,) = client.observer.sinks
        assert token not in repr(sink) and token not in json.dumps(client.status(), default=str)
    types = [r["type"] for r in receiver.records]
    assert types.count("request_routed") == 2 and "model_deactivated" in types and "request_log" in types
    assert receiver.headers_seen[0]["Authorization"] == f"Bearer {token}"
    assert SECRET not in json.dumps(receiver.batches)


def test_webhook_overflow_is_counted_and_warned_and_never_blocks_a_request(up, receiver, caplog):
    receiver.hold = threading.Event()  # the receiver hangs: the sender is stuck on its first batch
    obs = {"connector": "webhook", "config": {"url": receiver.url, "queue_size": 3, "batch_size": 1,
                                              "batch_interval": 0.01, "close_timeout": 0.5}}
    clock = FakeClock()
    caplog.set_level(logging.WARNING, "modelmesh.observability")
    with modelmesh.MeshClient(cfg(up.url, observability=obs), clock=clock, environ={}) as client:
        started = time.monotonic()
        for _ in range(5):
            client.chat.completions.create(model="chat", messages=MSG)
        assert time.monotonic() - started < 5  # the hung receiver holds up no request
        state = client.status()["observability"]
        assert state["overflow"] > 0 and state["sinks"][0]["overflow"] == state["overflow"]
        receiver.hold.set()
    assert any("queue full" in r.getMessage() for r in caplog.records)


def test_webhook_configuration_errors_name_their_path():
    with pytest.raises(E.ConfigurationError) as info:
        modelmesh.MeshClient(cfg("http://127.0.0.1:9/v1", observability={"connectors": [
            {"connector": "webhook", "config": {"url": "http://127.0.0.1:9/x", "queue_size": 0}},
            {"connector": "webhook", "config": {"url": "http://127.0.0.1:9/x", "retries": 3}},
            {"connector": "callback"},
            {"connector": "tests_nowhere.module:Sink"}]}), environ={})
    text = str(info.value)
    assert "observability.connectors[0].config.queue_size: expected a whole number > 0" in text
    assert "observability.connectors[1].config.retries: unknown key for the 'webhook' connector" in text
    assert "observability.connectors[2].config.callable: required for the 'callback' connector" in text
    assert "observability.connectors[3].connector: cannot load 'tests_nowhere.module:Sink'" in text


# -- callback, module:Class, CDK -------------------------------------------------------------------

def test_callback_by_path_and_by_function_and_a_module_class_sink(up):
    RECEIVED.clear()
    OneOverride.written.clear()
    given: list[dict] = []
    obs = {"connectors": [{"connector": "callback", "config": {"callable": "test_observability_sinks:collect"}},
                          {"connector": "callback", "config": {"callable": given.append}},
                          {"connector": "test_observability_sinks:OneOverride"}],
           "events": {"filter": ["routing"]}}
    with modelmesh.MeshClient(cfg(up.url, observability=obs), environ={}) as client:
        client.chat.completions.create(model="chat", messages=MSG)
    for got in (RECEIVED, given, OneOverride.written):
        assert [r["type"] for r in got] == ["request_routed", "request_completed"]
    assert given == RECEIVED


class Upper(cdk.ConsoleObservability):
    def _write(self, record):  # one override: the console sink writing upper case
        super()._write({k: v.upper() if isinstance(v, str) else v for k, v in record.items()})


def test_cdk_classes_subclassed_with_one_override(tmp_path, capsys):
    class JustIds(cdk.FileObservability):
        def emit(self, event):
            super().emit({"type": event.type, "at": event.at, "id": getattr(event, "request_id", None)})

    path = tmp_path / "ids.jsonl"
    sink = JustIds({"path": str(path)})
    sink.emit(Event(1))
    sink.trace({"severity": "debug", "message": "below the default min_severity"})
    sink.trace({"severity": "error", "message": "kept"})
    sink.close()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows == [{"type": "request_routed", "at": 1.0, "id": None},
                    {"severity": "error", "message": "kept", "type": "trace"}]
    Upper({"color": False}).emit(Event(2))
    assert capsys.readouterr().err.startswith("[modelmesh] 2.000 REQUEST_ROUTED n=2")
    null = cdk.NullObservability()
    null.emit(Event(3)), null.log({}), null.flush([{}]), null.trace({}), null.close()


def test_console_colours_only_a_terminal():
    class Tty:
        def __init__(self, tty):
            self.tty, self.text = tty, ""

        def isatty(self):
            return self.tty

        def write(self, s):
            self.text += s

    for tty in (True, False):
        out = Tty(tty)
        cdk.ConsoleObservability(stream=out).emit(Event(1))
        assert ("\x1b[" in out.text) is tty


# -- logging ------------------------------------------------------------------------------------------

def _run(up, tmp_path, obs, script=(), clock=None):
    path = tmp_path / "obs.jsonl"
    obs = {"connectors": [{"connector": "file", "config": {"path": str(path)}}], **obs}
    up.script(*script)
    clock = clock or FakeClock()
    with modelmesh.MeshClient(cfg(up.url, observability=obs), clock=clock, sleep=clock.sleep, environ={}) as client:
        client.chat.completions.create(
            model="chat", user="u1",
            messages=[{"role": "user", "content": f"my key is {SECRET}, keep it " + "x" * 500}])
    return path.read_text(), [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("redact", [True, False])
def test_a_full_log_has_the_payload_cut_to_size_and_never_a_secret(up, tmp_path, redact):
    text, rows = _run(up, tmp_path, {"logging": {"level": "full", "max_payload_size": 120, "redact_secrets": redact},
                                     "events": {"filter": ["logging"]}},
                      script=[Error(429, retry_after=30, message=f"bad key {SECRET}")])
    (log,) = rows
    assert SECRET not in text
    assert log["type"] == "request_log" and log["outcome"] == "success" and log["provider"] == "b"
    assert log["failed_attempts"] == [{"provider": "a", "model": "m1", "kind": "rate_limited", "status": 429}]
    assert log["request_truncated"] and len(log["request"].encode()) <= 120
    assert '"messages":[{"role":"user","content":"my key is ***, keep it' in log["request"]
    assert json.loads(log["response"]) if not log["response_truncated"] else log["response"].startswith('{"id"')


def test_metadata_and_summary_logs_leave_the_payload_out(up, tmp_path):
    _, rows = _run(up, tmp_path, {"events": {"filter": ["logging"]}})
    (log,) = rows
    assert log["level"] == "metadata" and "request" not in log and "request_summary" not in log
    assert log["prompt_tokens"] > 0 and log["attempts"] == 1
    _, rows = _run(up, tmp_path, {"logging": {"level": "summary"}, "events": {"filter": ["logging"]}})
    assert SECRET not in json.dumps(rows)
    summary = rows[-1]
    assert len(summary["request_summary"].encode()) <= 256 and summary["request_summary"].startswith("my key is ***")
    assert "request" not in summary and summary["response_summary"]


def test_include_metadata_false_leaves_models_and_providers_out_of_events(up, tmp_path):
    _, rows = _run(up, tmp_path, {"events": {"filter": ["routing"], "include_metadata": False}})
    assert [r["type"] for r in rows] == ["request_routed", "request_completed"]
    assert all("provider" not in r and "model" not in r for r in rows)


# -- tracing and statistics -------------------------------------------------------------------------

def test_traces_below_min_severity_are_discarded(up, tmp_path):
    _, rows = _run(up, tmp_path, {"tracing": {"min_severity": "warning"}, "events": {"filter": ["tracing"]}},
                   script=[Error(429, retry_after=30)])
    assert [(r["severity"], r["source"]) for r in rows] == [("warning", "attempt_failed"),
                                                            ("warning", "model_deactivated")]
    _, rows = _run(up, tmp_path, {"tracing": {"min_severity": "debug"}, "events": {"filter": ["tracing"]}})
    assert ("debug", "request_routed") in [(r["severity"], r["source"]) for r in rows[-2:] + rows[:1]]


def test_statistics_flush_per_scope_with_percentiles_and_downtime(up, tmp_path):
    path = tmp_path / "stats.jsonl"
    obs = {"connectors": [{"connector": "file", "config": {"path": str(path)}}], "events": {"filter": ["statistics"]},
           "statistics": {"scopes": ["model", "provider"], "flush_interval": "1h"}}
    clock = FakeClock()
    up.script(Error(429, retry_after=60))
    with modelmesh.MeshClient(cfg(up.url, observability=obs), clock=clock, sleep=clock.sleep, environ={}) as client:
        for _ in range(3):
            client.chat.completions.create(model="chat", messages=MSG)
            clock.advance(10)
        rows = {(r["scope"], r["key"]): r for r in client.flush_statistics()}
        assert not any(scope == "pool" for scope, _ in rows)  # not in scopes
        m2 = rows[("model", "b/m2")]
        assert m2["requests"] == 3 and m2["failures"] == 0 and m2["prompt_tokens"] > 0
        assert m2["latency_p50"] == 0.0 and m2["window_end"] - m2["window_start"] == 30
        assert rows[("model", "a/m1")]["downtime"] == 30  # on standby since the first request
        assert rows[("provider", "b")]["requests"] == 3
        clock.advance(40)  # a/m1 is back from its cooldown at the next request (+70): its downtime went on
        client.chat.completions.create(model="chat", messages=MSG)
        view = {(r["scope"], r["key"]): r for r in client.statistics()}
        assert view[("model", "a/m1")]["downtime"] == 70 and view[("model", "b/m2")]["requests"] == 4
    flushed = [json.loads(x) for x in path.read_text().splitlines()]
    assert {r["type"] for r in flushed} == {"statistics"}
    assert sum(r["requests"] for r in flushed if r["scope"] == "model") == 4  # the close flushed the rest


def test_a_broken_sink_never_fails_a_request(up, caplog):
    def boom(record):
        raise RuntimeError("sink bug")

    obs = {"connector": "callback", "config": {"callable": boom}}
    with modelmesh.MeshClient(cfg(up.url, observability=obs), environ={}) as client:
        for _ in range(2):
            assert client.chat.completions.create(model="chat", messages=MSG).choices
    assert sum("failed in emit" in r.getMessage() for r in caplog.records) == 1  # reported once


def test_import_modelmesh_loads_none_of_the_observability_extras():
    code = ("import sys, modelmesh, modelmesh.observability, modelmesh.connectors.observability\n"
            "print(sorted(m for m in ('prometheus_client', 'opentelemetry', 'tenacity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_streams_are_logged_at_their_end_and_a_stream_closed_early_as_cancelled():
    records: list[dict] = []
    with FakeUpstream("openai", models=["m1", "m2"], text="one two three four") as up:
        obs = {"connector": "callback", "config": {"callable": records.append}, "logging": {"level": "full"},
               "events": {"filter": ["logging"]}}
        with modelmesh.MeshClient(cfg(up.url, observability=obs), environ={}) as client:
            stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three four"
            stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
            next(iter(stream))
            stream.close()
    done, walked_away = records
    assert done["stream"] and done["outcome"] == "success"
    assert json.loads(done["response"]) == {"streamed_text": "one two three four"}
    assert walked_away["outcome"] == "failure" and walked_away["error"] == "request cancelled by the caller"
