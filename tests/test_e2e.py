"""End to end over real HTTP on loopback: client -> shell -> codecs -> fake upstreams.

Every test runs twice, against MeshClient (the sync shell) and AsyncMeshClient (the asyncio
shell, through the blocking adapter of `shells.py`), from the same body."""
from __future__ import annotations

import threading
import time

import pytest

from modelmesh import errors as E
from modelmesh.testing import (
    CutStream,
    Drop,
    Error,
    FakeClock,
    FakeUpstream,
    HtmlError,
    MalformedJSON,
    Reply,
    SlowFirstByte,
    StreamErrorEvent,
    refuse_connections,
)

from core_helpers import MECHANICS
from shells import SHELLS, make_client

KEYS = {"openai": "sk-e2e-openai-0123456789", "anthropic": "sk-ant-e2e-0123456789", "gemini": "AIzaE2E0123456789abcdefghij",
        "azure-openai": "azure-e2e-key-0123456789"}


def prov(connector, url, model, **extra):
    cfg = {"base_url": url, "auth": {"api_key": KEYS.get(connector, "sk-e2e-compat-0123456789")},
           "models": [{"id": model, "capabilities": ["chat-completion", "text-embeddings"]}],
           "timeout": "2s", "connect_timeout": "1s", "stream_first_chunk_timeout": "1s"}
    cfg.update(extra)
    return {"connector": connector, "config": cfg}


_SHELL = ["sync"]


@pytest.fixture(autouse=True, params=SHELLS)
def shell(request):
    """Each test of this module once per client: the one client_for makes."""
    _SHELL[0] = request.param
    yield request.param
    _SHELL[0] = "sync"


def client_for(providers, order, clock=None, **pool):
    # one scripted fault shows one failover: no same-model retry (tests of the defaults are elsewhere)
    config = {"providers": providers, "routing": MECHANICS, "pools": {"chat": {
        "models": order, "strategy": "priority",
        "rotation": {"selection": {"model_priority": order}, "deactivation": {"retry_limit": 3}},
        **pool}}}
    clock = clock or FakeClock()
    return make_client(_SHELL[0], config, clock=clock, sleep=clock.sleep, environ={}), clock


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a, \
            FakeUpstream("anthropic", name="beta", models=["claude-x"]) as b, \
            FakeUpstream("gemini", name="gamma", models=["gemini-x"]) as g:
        yield a, b, g


@pytest.fixture
def mesh(ups):
    a, b, g = ups
    client, clock = client_for({"a": prov("openai", a.url, "gpt-x"), "b": prov("anthropic", b.url, "claude-x"),
                                "g": prov("gemini", g.url, "gemini-x")}, ["a/gpt-x", "b/claude-x", "g/gemini-x"])
    with client:
        yield client, clock, ups


MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


@pytest.mark.parametrize("which", ["openai", "anthropic", "gemini"])
def test_each_connector_round_trips_chat_and_stream(which):
    with FakeUpstream(which, name=which, models=["m-1.5"]) as up:
        client, _ = client_for({"p": prov(which, up.url, "m-1.5")}, ["p/m-1.5"])
        with client:
            r = client.chat.completions.create(model="chat", messages=MSG, temperature=0.2, max_tokens=50)
            assert r.choices[0].message.content == f"Hello from {which}"
            assert r.usage.total_tokens > 0 and r.mesh.provider == "p" and r.mesh.model == "m-1.5"
            chunks = list(client.chat.completions.create(model="chat", messages=MSG, stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == f"Hello from {which}"
        sent = up.requests[0]
        assert sent.model == "m-1.5"
        key = KEYS[which]
        assert key in " ".join(sent.headers.values())  # the vendor's own auth header carries the key
        if which == "anthropic":
            assert sent.json["system"] == "Be brief." and sent.headers["anthropic-version"]
        if which == "gemini":
            assert sent.json["systemInstruction"]["parts"][0]["text"] == "Be brief."


def test_azure_deployment_path_and_api_key_header():
    with FakeUpstream("openai", name="azure", models=["gpt-4o"]) as up:
        client, _ = client_for({"az": prov("azure-openai", up.url.rsplit("/v1", 1)[0], "gpt-4o",
                                           api_version="2024-10-21", deployment="prod-4o")}, ["az/gpt-4o"])
        with client:
            r = client.chat.completions.create(model="chat", messages=MSG)
            assert r.choices[0].message.content
        sent = up.requests[0]
        assert "/openai/deployments/prod-4o/chat/completions" in sent.path
        assert sent.query["api-version"] == "2024-10-21" and sent.headers["api-key"] == KEYS["azure-openai"]


def test_openai_parameters_pass_through_untouched(mesh):
    client, _, (a, _, _) = mesh
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    client.chat.completions.create(model="chat", messages=MSG, tools=tools, tool_choice="auto", seed=7, n=1, logprobs=True,
                                   stop=["x"], response_format={"type": "json_object"}, user="u1")
    body = a.requests[-1].json
    for k, v in {"tools": tools, "tool_choice": "auto", "seed": 7, "n": 1, "logprobs": True, "stop": ["x"],
                 "response_format": {"type": "json_object"}, "user": "u1"}.items():
        assert body[k] == v


@pytest.mark.parametrize("fault", [
    Error(500), Error(503), Error(429, retry_after=5), Error(401), Error(429, code="insufficient_quota"),
    Error(404, code="model_not_found"), MalformedJSON(), HtmlError(502), Drop(), SlowFirstByte(3.0),
])
def test_every_fault_fails_over_to_the_next_provider(mesh, fault):
    client, _, (a, b, _) = mesh
    a.script(fault)
    r = client.chat.completions.create(model="chat", messages=MSG)
    assert r.mesh.provider == "b" and r.choices[0].message.content == "Hello from beta"
    assert len(r.mesh.attempts) == 2 and r.mesh.attempts[0].outcome != "ok"


def test_refused_connection_fails_over():
    with FakeUpstream("openai", name="ok", models=["m"]) as up:
        client, _ = client_for({"dead": prov("openai", refuse_connections(), "m"), "live": prov("openai", up.url, "m")},
                               ["dead/m", "live/m"])
        with client:
            r = client.chat.completions.create(model="chat", messages=MSG)
            assert r.mesh.provider == "live" and r.mesh.attempts[0].outcome == "connection"


@pytest.mark.parametrize("fault", [Error(529, code="overloaded_error"), StreamErrorEvent(after_chunks=0, code="overloaded_error"),
                                   CutStream(after_chunks=0), SlowFirstByte(3.0)])
def test_stream_failures_before_the_first_chunk_fail_over_invisibly(mesh, fault):
    client, _, (a, b, g) = mesh
    a.always(Error(500))
    b.script(fault)
    s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert text == "Hello from gamma" and s.mesh.provider == "g"


@pytest.mark.parametrize("fault", [CutStream(after_chunks=2), StreamErrorEvent(after_chunks=2, code="overloaded_error")])
def test_stream_failures_after_content_continue_the_answer_exactly_once(mesh, fault):
    client, _, (a, b, g) = mesh
    a.script(fault)
    s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    # b speaks Anthropic: it continues the delivered "Hello from" from a prefill
    assert text == "Hello from beta" and s.mesh.provider == "b"
    assert b.requests[-1].json["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "Hello from"}]}
    assert [x.outcome for x in s.mesh.attempts][-1] == "ok" and len(s.mesh.attempts) == 2


@pytest.mark.parametrize("fault", [CutStream(after_chunks=2), StreamErrorEvent(after_chunks=2, code="overloaded_error")])
def test_stream_failures_after_content_raise_with_the_partial_text_when_recovery_is_off(ups, fault):
    a, b, g = ups
    client, _ = client_for({"a": prov("openai", a.url, "gpt-x"), "b": prov("anthropic", b.url, "claude-x")},
                           ["a/gpt-x", "b/claude-x"], stream_resume=False)
    a.script(fault)
    with client:
        s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        got = []
        with pytest.raises(E.StreamInterruptedError) as info:
            for c in s:
                if c.choices and c.choices[0].delta.content:
                    got.append(c.choices[0].delta.content)
    assert "".join(got) == info.value.partial_text and info.value.partial_text
    assert len(b.requests) == 0  # nothing was silently continued elsewhere


def test_first_chunk_reaches_the_caller_before_the_upstream_finishes(ups):
    from modelmesh.testing import SlowStream

    a, _, _ = ups
    client, _ = client_for({"a": prov("openai", a.url, "gpt-x")}, ["a/gpt-x"])
    a.script(SlowStream(chunk_delay=0.3))
    with client:
        start = time.perf_counter()
        s = iter(client.chat.completions.create(model="chat", messages=MSG, stream=True))
        first = next(s)
        first_at = time.perf_counter() - start
        rest = list(s)
        total = time.perf_counter() - start
    assert first and rest and first_at < total - 0.25


def test_retry_after_cooldown_skips_the_model_until_the_fake_clock_passes_it(mesh):
    client, clock, (a, b, _) = mesh
    a.script(Error(429, retry_after=30))
    assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
    n = len(a.requests)
    assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
    assert len(a.requests) == n  # not called while cooling down
    clock.advance(31)
    assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"


def test_auth_failure_error_carries_attempts_and_no_secret(ups):
    a, _, _ = ups
    a.always(Error(401))
    client, _ = client_for({"a": prov("openai", a.url, "gpt-x")}, ["a/gpt-x"])
    with client, pytest.raises(E.AuthenticationError) as info:
        client.chat.completions.create(model="chat", messages=MSG)
    text = str(info.value) + repr(info.value) + repr(client) + repr(client.config)
    assert KEYS["openai"] not in text and info.value.attempts


def test_embeddings_and_models_list(mesh):
    client, _, _ = mesh
    r = client.embeddings.create(model="a/gpt-x", input=["one", "two"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 8
    r = client.embeddings.create(model="g/gemini-x", input="one")
    assert len(r.data) == 1
    ids = [m.id for m in client.models.list().data]
    assert "a/gpt-x" in ids and "chat" in ids


def test_32_threads_share_one_client_nothing_lost_or_sent_twice(ups):
    a, b, _ = ups
    client, _ = client_for({"a": prov("openai", a.url, "gpt-x"), "b": prov("anthropic", b.url, "claude-x")},
                           ["a/gpt-x", "b/claude-x"], clock=None)
    a.always(lambda req: Error(503) if int(req.json["messages"][0]["content"].split()[-1]) % 3 == 0 else Reply())
    results, errors = [], []

    def work(i):
        for j in range(4):
            try:
                r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": f"n {i * 4 + j}"}])
                results.append((i * 4 + j, r.mesh.provider, len(r.mesh.attempts)))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    with client:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(results) == 128
    assert sorted(n for n, _, _ in results) == list(range(128))
    attempts = sum(n for _, _, n in results)
    assert attempts == len(a.requests) + len(b.requests)  # every attempt reached exactly one upstream
    status = client.status()["pools"]["chat"]
    assert sum(row["requests"] for row in status) == attempts


FAULTS = [Error(500), Error(503), Error(429, retry_after=5), Error(401), Error(404, code="model_not_found"),
          MalformedJSON(), HtmlError(502), Drop(), SlowFirstByte(1.0)]
STREAM_FAULTS = [Error(500), StreamErrorEvent(after_chunks=0, code="overloaded_error"), CutStream(after_chunks=0),
                 SlowFirstByte(1.0)]


def _first_fails(style):
    """A pool whose first model speaks `style` and fails; the second is a healthy OpenAI one."""
    up = FakeUpstream(style, name="first", models=["m-1"])
    backup = FakeUpstream("openai", name="backup", models=["b-1"])
    fast = {"timeout": "500ms", "stream_first_chunk_timeout": "500ms"}
    client, _ = client_for({"f": prov(style, up.url, "m-1", **fast), "k": prov("openai", backup.url, "b-1")},
                           ["f/m-1", "k/b-1"])
    return up, backup, client


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: type(f).__name__ + str(getattr(f, "status", "")))
def test_every_connector_fails_over_on_every_fault(style, fault):
    up, backup, client = _first_fails(style)
    with up, backup, client:
        up.script(fault)
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "k" and r.mesh.attempts[0].outcome != "ok"


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", STREAM_FAULTS, ids=lambda f: type(f).__name__)
def test_every_connector_fails_over_a_stream_before_its_first_chunk(style, fault):
    up, backup, client = _first_fails(style)
    with up, backup, client:
        up.script(fault)
        s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == "Hello from backup"
        assert s.mesh.provider == "k"


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
def test_every_connector_recovers_a_stream_cut_after_content(style):
    up, backup, client = _first_fails(style)
    with up, backup, client:
        up.script(CutStream(after_chunks=2))
        s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        # the OpenAI backup restarts the answer: it begins with what was delivered, so the rest follows
        assert text == "Hello from backup" and s.mesh.provider == "k"


def test_a_restarted_answer_that_differs_ends_honestly_with_the_original_cause():
    with FakeUpstream("openai", name="first", models=["m-1"]) as up, \
            FakeUpstream("openai", name="other", models=["b-1"], text="Quite another answer") as backup:
        client, _ = client_for({"f": prov("openai", up.url, "m-1"), "k": prov("openai", backup.url, "b-1")},
                               ["f/m-1", "k/b-1"])
        up.script(CutStream(after_chunks=2))
        got = []
        with client, pytest.raises(E.StreamInterruptedError) as info:
            for c in client.chat.completions.create(model="chat", messages=MSG, stream=True):
                got.append(c.choices[0].delta.content or "" if c.choices else "")
    assert "".join(got) == info.value.partial_text == "Hello from"  # nothing repeated, nothing dropped
    assert "cut" in info.value.reason and "did not repeat" in info.value.reason


def test_a_fallback_refusing_the_prefill_does_not_mask_the_original_failure():
    with FakeUpstream("openai", name="first", models=["m-1"]) as up, \
            FakeUpstream("openai", name="picky", models=["b-1"]) as backup:
        picky = prov("openai", backup.url, "b-1")
        picky["config"]["models"][0]["prefill"] = True  # configured so, but the server refuses it
        client, _ = client_for({"f": prov("openai", up.url, "m-1"), "k": picky}, ["f/m-1", "k/b-1"])
        up.script(CutStream(after_chunks=2))
        backup.script(Error(400, message="final assistant content cannot end with trailing whitespace"))
        with client, pytest.raises(E.StreamInterruptedError) as info:
            list(client.chat.completions.create(model="chat", messages=MSG, stream=True))
    assert info.value.partial_text == "Hello from"
    assert info.value.reason.startswith("stream from f/m-1 broke after content was delivered (connection")
    assert "trailing whitespace" in str(info.value)  # named as what stopped the continuation, not as the cause


