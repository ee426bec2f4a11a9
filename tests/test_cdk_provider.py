"""The CDK's BaseProvider: a connector that does its own I/O (seed 003's first example),
overriding `complete` only, or `stream` too, run end to end over loopback on both clients;
its outcomes reach the core as ResultReceived / ChunkReceived / ErrorReceived, so failover,
standbys, health checks and record/replay work as for the built-in connectors. And the
seed's Azure-style subclass that overrides `_get_headers`."""
from __future__ import annotations

import json
import pathlib
import re
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.cdk import (
    BaseProvider,
    CompletionRequest,
    ErrorKind,
)
from modelmesh.testing import FakeClock, FakeUpstream, assert_replays

from shells import SHELLS, make_client

KEY = "internal-key-0123456789"


def _documented():
    """The guide's classes, run as written: the `my_services` blocks of docs/cdk.md's section
    on BaseProvider (the module, then its streaming subclass) and its Azure-style subclass."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "cdk.md").read_text()
    section = next(p for p in re.split(r"\n(?=## )", text) if p.startswith("## Your own I/O"))
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    module = types.ModuleType("my_services")
    exec(compile("\n".join(blocks), "docs/cdk.md (my_services)", "exec"), module.__dict__)  # noqa: S102 - our docs
    small = next(p for p in re.split(r"\n(?=## )", text) if p.startswith("## Small differences"))
    azure = next(b for b in re.findall(r"```python\n(.*?)```", small, flags=re.S) if "class AzureStyleProvider" in b)
    scope: dict = {"__name__": "my_azure"}
    exec(compile(azure, "docs/cdk.md (my_azure)", "exec"), scope)  # noqa: S102 - our docs
    return module.MyCustomProvider, module.StreamingProvider, scope["AzureStyleProvider"]


MyCustomProvider, StreamingProvider, AzureStyleProvider = _documented()


class Service:
    """The internal service: POST /inference answers JSON, /inference/stream SSE pieces.
    `answers` queue (status, payload) for /inference; `cut_after` cuts the next stream."""

    def __init__(self):
        self.seen, self.answers = [], []
        self.cut_after = None
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.seen.append((self.path, dict(self.headers), body))
                if self.path == "/inference/stream":
                    return self._stream(body)
                status, payload = service.answers.pop(0) if service.answers else (200, {
                    "request_id": "r1", "model": "inf-1", "output": f"echo: {body['prompt']}",
                    "input_tokens": 2, "output_tokens": 3})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "7")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = ["echo", ": ", body["prompt"]]
                cut, service.cut_after = service.cut_after, None
                for i, piece in enumerate(pieces):
                    if cut is not None and i == cut:
                        self.wfile.flush()
                        self.connection.shutdown(2)  # the service dies mid-answer
                        return
                    self.wfile.write(f"data: {json.dumps({'piece': piece})}\n\n".encode())
                self.wfile.write(b"data: [END]\n\n")
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def service():
    s = Service()
    yield s
    s.close()


@pytest.fixture
def plugins():
    mod = types.ModuleType("mm_own_io_plugins")
    mod.MyCustomProvider = MyCustomProvider
    mod.StreamingProvider = StreamingProvider
    mod.Incomplete = type("Incomplete", (BaseProvider,), {})
    sys.modules["mm_own_io_plugins"] = mod
    yield "mm_own_io_plugins"
    del sys.modules["mm_own_io_plugins"]


@pytest.fixture
def backup():
    with FakeUpstream("openai", name="backup", models=["gpt-x"], text="from the backup") as up:
        yield up


def config(url, backup_url, connector="MyCustomProvider", **extra):
    return {"providers": {
        "internal": {"connector": f"mm_own_io_plugins:{connector}",
                     "config": {"base_url": url, "auth": {"api_key": KEY},
                                "models": [{"id": "inf-1", "capabilities": ["chat-completion"]}]}},
        "backup": {"connector": "openai", "config": {"base_url": backup_url, "auth": {"api_key": "sk-backup-0123456789"},
                                                     "models": ["gpt-x"]}}},
        "routing": {"retry": {"same_model_retries": 0, "base_delay": 0.01, "jitter": False}},
        "pools": {"chat": {"capability": "chat-completion", "strategy": "priority", "rotation": {
            "selection": {"model_priority": ["internal/inf-1", "backup/gpt-x"]},
            "deactivation": {"retry_limit": 1},
            "recovery": {"cooldown": "1h", "initial_cooldown": "1h", "probe_interval": "30s"}}}},
        **extra}


def ask(client, text="ping", **kw):
    return client.chat.completions.create(model="chat", messages=[{"role": "user", "content": text}], **kw)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_seed_example_overriding_complete_only_serves_and_fails_over(shell, service, plugins, backup):
    clock = FakeClock()
    with make_client(shell, config(service.url, backup.url), clock=clock, sleep=clock.sleep, environ={}) as client:
        r = ask(client, max_tokens=9)
        assert r.choices[0].message.content == "echo: ping" and r.choices[0].message.role == "assistant"
        assert r.choices[0].finish_reason == "stop" and r.usage.total_tokens == 5 and r.id == "r1"
        assert r.mesh.provider == "internal" and r.model == "inf-1"
        path, headers, body = service.seen[0]
        assert path == "/inference" and body == {"prompt": "ping", "max_length": 9}
        assert headers["Authorization"] == f"Bearer {KEY}"
        # the service fails: classified from its status and body, and the request fails over
        service.answers.append((503, {"error": "overloaded"}))
        r = ask(client, "again")
        assert r.mesh.provider == "backup" and r.choices[0].message.content == "from the backup"
        assert r.mesh.attempts[0].outcome == "server_error" and r.mesh.attempts[0].message == "overloaded"
        assert r.mesh.attempts[0].status == 503
        # retry_limit 1: the model went on standby; the next request goes to the backup directly
        before = len(service.seen)
        assert ask(client).mesh.provider == "backup" and len(service.seen) == before


@pytest.mark.parametrize("shell", SHELLS)
def test_a_provider_that_only_completes_still_serves_a_streaming_request(shell, service, plugins, backup):
    with make_client(shell, config(service.url, backup.url), environ={}) as client:
        stream = ask(client, "s", stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "echo: s"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage.total_tokens == 5 and stream.mesh.provider == "internal"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_provider_overriding_stream_streams_its_pieces(shell, service, plugins, backup):
    with make_client(shell, config(service.url, backup.url, "StreamingProvider"), environ={}) as client:
        chunks = list(ask(client, "world", stream=True))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert pieces == ["echo", ": ", "world"]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert service.seen[-1][0] == "/inference/stream"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stream_that_breaks_before_any_piece_fails_over_invisibly(shell, service, plugins, backup):
    with make_client(shell, config(service.url, backup.url, "StreamingProvider"), environ={}) as client:
        service.cut_after = 0
        stream = ask(client, "x", stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "from the backup" and stream.mesh.provider == "backup"
        assert stream.mesh.attempts[0].outcome == "connection"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stream_that_breaks_after_a_piece_ends_honestly_with_the_partial_text(shell, service, plugins, backup):
    with make_client(shell, config(service.url, backup.url, "StreamingProvider"), environ={}) as client:
        service.cut_after = 2
        got = []
        with pytest.raises(E.StreamInterruptedError) as info:
            for c in ask(client, "x", stream=True):
                got += [c.choices[0].delta.content or ""] if c.choices else []
        assert "".join(got) == "echo: " and info.value.partial_text == "echo: "
        assert "connection" in info.value.reason


def test_what_a_connector_raises_is_classified():
    p = MyCustomProvider()
    from modelmesh.errors import APIConnectionError, APITimeoutError, RateLimitError

    limited = RateLimitError("POST /x answered 429", status=429, retry_after=7.0)
    limited.response_body, limited.response_headers = b'{"error": {"message": "slow down"}}', {}
    info = p.classify_exception(limited)
    assert info.kind is ErrorKind.RATE_LIMITED and info.retry_after == 7.0 and info.message == "slow down"
    assert p.classify_exception(APITimeoutError("no answer")).kind is ErrorKind.TIMEOUT
    assert p.classify_exception(APIConnectionError("refused")).kind is ErrorKind.CONNECTION
    assert p.classify_exception(ConnectionResetError()).kind is ErrorKind.CONNECTION
    assert p.classify_exception(TimeoutError()).kind is ErrorKind.TIMEOUT
    requests = pytest.importorskip("requests")
    assert p.classify_exception(requests.ReadTimeout("slow")).kind is ErrorKind.TIMEOUT
    response = requests.Response()
    response.status_code, response._content = 401, b'{"message": "bad key"}'
    http_error = requests.HTTPError("401", response=response)
    assert p.classify_exception(http_error).kind is ErrorKind.AUTH
    bug = p.classify_exception(KeyError("output"))
    assert bug.kind is ErrorKind.MALFORMED and "KeyError" in bug.message


@pytest.mark.parametrize("shell", SHELLS)
def test_a_rate_limited_service_honours_its_retry_after_and_a_bug_is_the_models_fault(shell, service, plugins, backup):
    clock = FakeClock()
    cfg = config(service.url, backup.url)
    cfg["pools"]["chat"]["rotation"]["deactivation"] = {"retry_limit": 5}
    with make_client(shell, cfg, clock=clock, sleep=clock.sleep, environ={}) as client:
        service.answers.append((429, {"error": {"message": "slow down"}}))
        r = ask(client)
        assert r.mesh.provider == "backup" and r.mesh.attempts[0].outcome == "rate_limited"
        before = len(service.seen)
        assert ask(client).mesh.provider == "backup" and len(service.seen) == before  # standby for its Retry-After
        clock.advance(8)
        service.answers.append((200, {"no": "output"}))  # the connector's translation raises KeyError
        r = ask(client)
        assert r.mesh.provider == "backup" and r.mesh.attempts[0].outcome == "malformed"
        assert "KeyError" in r.mesh.attempts[0].message


@pytest.mark.parametrize("shell", SHELLS)
def test_a_standby_model_is_probed_back_through_the_connectors_own_check(shell, service, plugins, backup):
    clock = FakeClock()
    cfg = config(service.url, backup.url)
    with make_client(shell, cfg, clock=clock, sleep=clock.sleep, environ={}, probe_check_interval=3600.0) as client:
        service.answers.append((500, {"error": "down"}))
        assert ask(client).mesh.provider == "backup"
        clock.advance(31)
        before = len(service.seen)
        run = client.run(client.client.run_probes()) if shell == "async" else client.run_probes()
        assert run >= 1 and len(service.seen) == before + 1  # the default check: a one-token completion
        assert service.seen[-1][2]["max_length"] == 1
        assert ask(client).mesh.provider == "internal"


def test_a_recorded_session_with_an_own_io_connector_replays(service, plugins, backup, tmp_path):
    path = tmp_path / "rec.jsonl"
    cfg = config(service.url, backup.url, "StreamingProvider",
                 observability={"connector": "recorder", "config": {"path": str(path)}})
    clock = FakeClock()
    with modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}) as client:
        assert ask(client).choices[0].message.content == "echo: ping"
        assert "".join(c.choices[0].delta.content or "" for c in ask(client, "a", stream=True) if c.choices) == "echo: a"
        service.answers.append((503, {"error": "overloaded"}))
        assert ask(client).mesh.provider == "backup"
    lines = path.read_text().splitlines()
    kinds = {json.loads(line).get("in", {}).get("t") for line in lines}
    assert {"result", "chunk", "error"} <= kinds
    assert_replays(path, cfg)
    # a replay notices a changed outcome: the failure recorded as a success
    changed = [line.replace('"t":"error"', '"t":"ended"') for line in lines]
    with pytest.raises(AssertionError):
        assert_replays(changed, cfg)


def test_a_provider_class_without_complete_is_a_configuration_error(service, plugins, backup):
    with pytest.raises(E.ConfigurationError, match="providers.internal.connector: cannot create"):
        modelmesh.MeshClient(config(service.url, backup.url, "Incomplete"), environ={})


def test_a_request_shows_what_a_connector_needs_and_never_the_key():
    from modelmesh._core._types import ConnectorCall
    from modelmesh.cdk import Target

    p = MyCustomProvider()
    target = Target(provider="internal", model="inf-1", base_url="http://svc", api_key=KEY, options={"tier": "gold"})
    call = p.build_request(target, "chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                                            "stream": True}, stream=False)
    assert isinstance(call, ConnectorCall) and call.body["model"] == "inf-1" and "stream" not in call.body
    request = CompletionRequest(call, p, 5.0, 1.0)
    assert request.model == "inf-1" and request.max_tokens == 4 and request.options == {"tier": "gold"}
    assert request.api_key == KEY and KEY not in repr(request) and KEY not in repr(call)
    with pytest.raises(Exception, match="non-empty 'messages'"):
        p.build_request(target, "chat", {"messages": []}, stream=False)


# -- the seed's second example: a pre-shipped connector adjusted by one method ----------------------

def test_the_azure_style_subclass_overriding_get_headers_runs_end_to_end():
    mod = types.ModuleType("mm_azure_style")
    mod.AzureStyleProvider = AzureStyleProvider
    sys.modules["mm_azure_style"] = mod
    try:
        with FakeUpstream("openai", name="azure", models=["dep-1"], api_key="azure-key-0123456789") as up:
            cfg = {"providers": {"azure": {"connector": "mm_azure_style:AzureStyleProvider", "config": {
                "base_url": up.url.removesuffix("/v1"), "auth": {"api_key": "azure-key-0123456789"}, "models": ["dep-1"]}}}}
            with modelmesh.MeshClient(cfg, environ={}) as client:
                r = client.chat.completions.create(model="chat-completion", messages=[{"role": "user", "content": "hi"}])
                assert r.choices[0].message.content == "Hello from azure"
                sent = up.last_request
                assert sent.path == "/openai/deployments/dep-1/chat/completions" and sent.query["api-version"]
                assert sent.headers["api-key"] == "azure-key-0123456789"
    finally:
        del sys.modules["mm_azure_style"]


class CountingProvider(BaseProvider):
    """Streams "a", "b", "c" from memory; notes when its stream is closed."""

    closed = threading.Event()

    def complete(self, request):
        return {"choices": [{"message": {"content": "abc"}}]}

    def stream(self, request):
        try:
            yield from ("a", "b", "c")
        finally:
            CountingProvider.closed.set()


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stream_the_caller_walks_away_from_is_closed_in_the_connector(shell, service, plugins, backup):
    sys.modules["mm_own_io_plugins"].CountingProvider = CountingProvider
    CountingProvider.closed.clear()
    with make_client(shell, config(service.url, backup.url, "CountingProvider"), environ={}) as client:
        stream = ask(client, stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.content == "a" and not CountingProvider.closed.is_set()
        stream.close()
        assert CountingProvider.closed.wait(5)
        # and the client goes on: nothing was penalised
        assert "".join(c.choices[0].delta.content or "" for c in ask(client, stream=True) if c.choices) == "abc"
