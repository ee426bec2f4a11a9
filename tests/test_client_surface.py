"""MeshClient's public surface, end to end over loopback: responses that read like the OpenAI
SDK's, streams, route/status, manual control, events, argument handling, session
stickiness, budgets, and secrets that never show."""
from __future__ import annotations

import json

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._core._events import EVENT_TYPES, MeshEvent
from modelmesh._core._protocol import Cancelled
from modelmesh.testing import Error, FakeClock, FakeUpstream, Reply

from core_helpers import MECHANICS

KEYS = {"a": "sk-surface-a-0123456789", "b": "sk-surface-b-0123456789", "c": "sk-surface-c-0123456789"}
MSG = [{"role": "user", "content": "Say hi"}]
ORDER = ["a/gpt-x", "b/gpt-x", "c/gpt-x"]


def prov(url, key, model="gpt-x", **extra):
    cfg = {"base_url": url, "auth": {"api_key": key}, "timeout": "2s",
           "models": [{"id": model, "capabilities": ["chat-completion"]}]}
    cfg.update(extra)
    return {"connector": "openai", "config": cfg}


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"]) as a, \
            FakeUpstream("openai", name="beta", models=["gpt-x"]) as b, \
            FakeUpstream("openai", name="gamma", models=["gpt-x"]) as c:
        yield a, b, c


def make(ups, strategy="priority", pool_extra=None, provider_extra=None, **client_kw):
    a, b, c = ups
    provider_extra = provider_extra or {}
    providers = {name: prov(up.url, KEYS[name], **provider_extra.get(name, {})) for name, up in zip("abc", ups, strict=True)}
    pool = {"models": ORDER, "strategy": strategy, "rotation": {"selection": {"model_priority": ORDER}}}
    pool.update(pool_extra or {})
    clock = FakeClock()
    events: list = []
    # one scripted fault shows one failover: no same-model retry (tests of the defaults are elsewhere)
    client_kw.setdefault("on_event", events.append)
    client = modelmesh.MeshClient({"providers": providers, "pools": {"chat": pool}, "routing": MECHANICS},
                                  clock=clock, sleep=clock.sleep, environ={}, **client_kw)
    return client, clock, events


def chat_requests(up):
    return [r for r in up.requests if r.path.endswith("/chat/completions")]


# -- responses ------------------------------------------------------------------------------

def test_a_response_reads_like_the_openai_sdk(ups):
    client, _, _ = make(ups)
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG)
    assert r.choices[0].message.content == "Hello from alpha"
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "stop"
    assert r.object == "chat.completion" and r.model == "gpt-x" and r.id
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert r["choices"][0]["message"]["content"] == r.choices[0].message.content
    assert r.moderation is None  # a field the SDK declares and the payload lacks reads as None, as there
    with pytest.raises(AttributeError):
        r.system_fingerprint_that_does_not_exist  # noqa: B018  (any other name is an error, as there)
    dumped = r.model_dump()
    assert isinstance(dumped, dict) and json.loads(json.dumps(dumped)) == dumped
    assert json.loads(r.model_dump_json()) == dumped and json.loads(r.to_json()) == r.to_dict()
    dumped["choices"][0]["message"]["content"] = "changed"
    assert r.choices[0].message.content == "Hello from alpha"  # a dump is a copy
    assert r.mesh.provider == "a" and r.mesh.model == "gpt-x" and r.mesh.pool == "chat"
    assert r.mesh.request_id and r.mesh.failovers == 0
    assert [(x.provider, x.outcome) for x in r.mesh.attempts] == [("a", "ok")]


def test_attempts_record_every_failover(ups):
    a, b, c = ups
    client, _, _ = make(ups)
    a.script(Error(503))
    b.script(Error(429, code="rate_limit_exceeded"))
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG)
    assert r.choices[0].message.content == "Hello from gamma" and r.mesh.failovers == 2
    assert [(x.provider, x.outcome, x.status) for x in r.mesh.attempts] == [
        ("a", "server_error", 503), ("b", "rate_limited", 429), ("c", "ok", None)]


def test_a_stream_gets_its_mesh_info_once_iterated(ups):
    a, b, _ = ups
    client, _, _ = make(ups)
    a.script(Error(500))
    with client:
        s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert s.mesh is None
        chunks = list(s)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Hello from beta"
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert s.mesh.provider == "b" and [x.outcome for x in s.mesh.attempts] == ["server_error", "ok"]
    assert chat_requests(b)[-1].json["stream"] is True


def test_a_stream_closed_early_leaves_the_client_usable(ups):
    _, _, _ = ups
    client, _, _ = make(ups)
    with client:
        with client.chat.completions.create(model="chat", messages=MSG, stream=True) as s:
            first = next(iter(s))
            assert first.choices
        assert s.mesh is None
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "a"


# -- route and status ------------------------------------------------------------------------

def test_route_decides_without_sending_anything(ups):
    client, _, _ = make(ups)
    with client:
        d = client.route("chat")
    assert isinstance(d, modelmesh.RoutingDecision)
    assert (d.pool_id, d.provider_id, d.model_id) == ("chat", "a", "gpt-x")
    assert d.fallback_chain == ("b/gpt-x", "c/gpt-x")
    assert all(up.requests == [] for up in ups)


def test_route_follows_manual_deactivation_and_raises_when_nothing_is_left(ups):
    client, _, _ = make(ups)
    with client:
        client.deactivate("a/gpt-x")
        assert client.route("chat").provider_id == "b"
        client.deactivate("b/gpt-x")
        client.deactivate("c/gpt-x")
        with pytest.raises(modelmesh.NoModelAvailableError):
            client.route("chat")
    assert all(up.requests == [] for up in ups)


def test_status_has_every_provider_and_every_pool_member(ups):
    a, _, _ = ups
    client, _, _ = make(ups)
    a.script(Error(500))
    with client:
        client.chat.completions.create(model="chat", messages=MSG)
        snap = client.status()
    json.dumps(snap)  # plain data
    assert set(snap) == {"providers", "pools"}
    assert set(snap["providers"]) == {"a", "b", "c"}
    assert set(snap["providers"]["a"]) == {"up", "reason", "until", "spend_day", "spend_month", "enabled"}
    rows = {row["model"]: row for row in snap["pools"]["chat"]}
    assert list(rows) == ORDER
    assert set(rows["a/gpt-x"]) == {"model", "status", "breaker", "reason", "until", "requests", "failures",
                                    "success_rate", "avg_latency", "tokens", "cost"}
    assert (rows["a/gpt-x"]["requests"], rows["a/gpt-x"]["failures"]) == (1, 1)
    assert (rows["b/gpt-x"]["requests"], rows["b/gpt-x"]["failures"]) == (1, 0) and rows["b/gpt-x"]["tokens"] > 0
    assert rows["c/gpt-x"]["requests"] == 0


# -- manual control ----------------------------------------------------------------------------

def test_manual_deactivate_and_reactivate(ups):
    a, b, _ = ups
    client, _, events = make(ups)
    with client:
        client.deactivate("a/gpt-x")
        row = client.status()["pools"]["chat"][0]
        assert (row["status"], row["reason"], row["until"]) == ("standby", "manual", None)
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        assert chat_requests(a) == []
        client.reactivate("a/gpt-x")
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
    kinds = [(e.type, getattr(e, "reason", None) or getattr(e, "how", None)) for e in events if e.type.startswith("model_")]
    assert kinds == [("model_deactivated", "manual"), ("model_recovered", "manual")]


def test_manual_deactivation_until_a_time_ends_by_itself(ups):
    client, clock, _ = make(ups)
    with client:
        client.deactivate("a/gpt-x", until=clock() + 10)
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        clock.advance(10)
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"


def test_manual_control_names_what_it_does_not_know(ups):
    client, _, _ = make(ups)
    with client:
        with pytest.raises(modelmesh.NotFoundError, match="unknown model 'z/nope'"):
            client.deactivate("z/nope")
        with pytest.raises(modelmesh.NotFoundError, match="not in pool 'other'"):
            client.deactivate("a/gpt-x", pool="other")
        with pytest.raises(modelmesh.NotFoundError, match="unknown provider 'zz'"):
            client.reactivate(provider="zz")


def test_reactivating_a_provider_by_hand_after_an_auth_failure(ups):
    a, _, _ = ups
    client, _, events = make(ups)
    a.script(Error(401))
    with client:
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        assert client.status()["providers"]["a"]["up"] is False
        client.reactivate(provider="a")
        assert client.status()["providers"]["a"]["up"] is True
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
    assert [(e.type, e.how) for e in events if e.type == "provider_recovered"] == [("provider_recovered", "manual")]


def test_reactivating_by_hand_a_model_that_failed_its_way_to_standby(ups):
    a, _, _ = ups
    client, _, events = make(ups, pool_extra={"rotation": {"selection": {"model_priority": ORDER},
                                                           "deactivation": {"retry_limit": 1},
                                                           "recovery": {"cooldown": "1h"}}})
    a.script(Error(500))
    with client:
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        client.reactivate("a/gpt-x")
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"


# -- events ------------------------------------------------------------------------------------

def test_subscribers_receive_every_event_in_order(ups):
    a, _, _ = ups
    client, _, from_init = make(ups)
    seen: list = []
    client.subscribe(seen.append)
    a.script(Error(500))
    with client:
        client.chat.completions.create(model="chat", messages=MSG)
    assert seen == from_init  # every listener gets the same events
    assert all(isinstance(e, MeshEvent) and e.type in EVENT_TYPES for e in seen)
    assert [e.type for e in seen] == ["request_routed", "attempt_failed", "request_routed", "request_completed"]
    routed, failed, _, done = seen
    assert (routed.provider, routed.attempt, routed.fallback_chain) == ("a", 1, ("b/gpt-x", "c/gpt-x"))
    assert (failed.provider, failed.kind, failed.status) == ("a", "server_error", 500)
    assert (done.provider, done.attempts, done.stream) == ("b", 2, False)
    assert len({e.request_id for e in (routed, failed, done)}) == 1
    assert all(e.to_dict()["type"] == e.type for e in seen)


def test_with_nobody_listening_no_events_are_built_and_a_late_subscriber_gets_them_whole(ups):
    client, _, _ = make(ups, on_event=None)
    with client:
        assert client.core.listening is False
        call = client.core.start("chat", {"messages": MSG}, model="chat", now=1.0)
        call.next_action(1.0)
        assert call.drain_events() == []  # nobody reads them: RequestRouted (and its score) is skipped
        call.feed(Cancelled(), 1.0)
        seen: list = []
        client.subscribe(seen.append)
        assert client.core.listening is True
        client.chat.completions.create(model="chat", messages=MSG)
    routed, done = seen
    assert routed.type == "request_routed" and routed.fallback_chain == ("b/gpt-x", "c/gpt-x")
    assert done.type == "request_completed" and done.provider == "a"


def test_events_of_a_standby_and_a_recovery(ups):
    a, _, _ = ups
    client, clock, events = make(ups, pool_extra={"rotation": {"selection": {"model_priority": ORDER},
                                                               "deactivation": {"retry_limit": 1},
                                                               "recovery": {"cooldown": "20s", "probe_interval": None,
                                                                            "initial_cooldown": "20s"}}})
    a.script(Error(500))
    with client:
        client.chat.completions.create(model="chat", messages=MSG)
        clock.advance(20)
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
    down = next(e for e in events if e.type == "model_deactivated")
    assert (down.pool, down.model, down.reason, down.until) == ("chat", "a/gpt-x", "retry_limit", down.at + 20)
    up = next(e for e in events if e.type == "model_recovered")
    assert (up.model, up.how) == ("a/gpt-x", "cooldown")


# -- arguments ---------------------------------------------------------------------------------

def test_missing_required_arguments_are_type_errors(ups):
    client, _, _ = make(ups)
    with client:
        with pytest.raises(TypeError, match="'messages' is required"):
            client.chat.completions.create(model="chat")
        with pytest.raises(TypeError, match="'model' is required"):
            client.chat.completions.create(messages=MSG)
        with pytest.raises(TypeError, match="'model' is required"):
            client.chat.completions.create(model="", messages=MSG)
        with pytest.raises(TypeError, match="'input' is required"):
            client.embeddings.create(model="chat")
        with pytest.raises(TypeError, match="'extra_headers': x-bad: holds a line break"):
            client.chat.completions.create(model="chat", messages=MSG, extra_headers={"x-bad": "y\r\nInjected: 1"})
        with pytest.raises(TypeError, match="'extra_query': 'q' must be a string or a number"):
            client.chat.completions.create(model="chat", messages=MSG, extra_query={"q": [1, 2]})
    assert all(up.requests == [] for up in ups)


def test_extra_body_is_merged_and_none_values_are_left_out(ups):
    a, _, _ = ups
    client, _, _ = make(ups)
    with client:
        client.chat.completions.create(model="chat", messages=MSG, temperature=None, max_tokens=None, top_p=0.5,
                                       user=None, extra_body={"top_k": 40, "repetition_penalty": 1.1},
                                       timeout=5, session_id=None, routing_metadata=None)
    body = chat_requests(a)[-1].json
    assert body == {"messages": MSG, "top_p": 0.5, "top_k": 40, "repetition_penalty": 1.1, "model": "gpt-x"}


def test_routing_hints_are_not_sent_upstream(ups):
    a, b, _ = ups
    client, _, _ = make(ups)
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG, preferred_provider="b", session_id="s1",
                                           routing_metadata={"tenant": "t"})
    assert r.mesh.provider == "b"
    body = chat_requests(b)[-1].json
    assert not {"preferred_provider", "session_id", "routing_metadata"} & set(body)


def test_session_id_sticks_to_one_model(ups):
    client, _, _ = make(ups, strategy="session-sticky")
    placed = {}
    with client:
        for sid in (f"user-{i}" for i in range(12)):
            where = {client.chat.completions.create(model="chat", messages=MSG, session_id=sid).mesh.provider
                     for _ in range(3)}
            assert len(where) == 1, (sid, where)
            placed[sid] = where.pop()
            assert client.route("chat", session_id=sid).provider_id == placed[sid]
    assert len(set(placed.values())) >= 2  # sessions are spread, each stays put


def test_a_session_moves_when_its_model_fails_and_stays_on_the_new_one(ups):
    client, _, _ = make(ups, strategy="session-sticky")
    by_name = dict(zip("abc", ups, strict=True))
    with client:
        home = client.chat.completions.create(model="chat", messages=MSG, session_id="s").mesh.provider
        by_name[home].script(Error(500))
        moved = client.chat.completions.create(model="chat", messages=MSG, session_id="s").mesh.provider
        again = client.chat.completions.create(model="chat", messages=MSG, session_id="s").mesh.provider
    assert moved != home and again == moved


# -- budgets -------------------------------------------------------------------------------------

def test_a_spent_daily_budget_stops_requests_until_the_next_day(ups):
    a, _, _ = ups
    priced = {"models": [{"id": "gpt-x", "capabilities": ["chat-completion"],
                          "pricing": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}}],
              "budget": {"daily_limit": 0.001}}
    client, clock, events = make(ups, pool_extra={"models": ["a/gpt-x"]}, provider_extra={"a": priced})
    a.always(Reply(usage=(10, 5)))
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.cost == pytest.approx(15 * 1000.0 / 1e6)
        assert client.status()["providers"]["a"]["spend_day"] == pytest.approx(0.015)
        with pytest.raises(modelmesh.BudgetExceededError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
        assert "budget" in str(info.value) and "'chat'" in str(info.value)
        assert len(chat_requests(a)) == 1  # refused before anything was sent
        clock.advance(86400)
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
    done = [e for e in events if e.type == "request_completed"]
    assert done[0].cost == pytest.approx(0.015) and (done[0].prompt_tokens, done[0].completion_tokens) == (10, 5)


def test_a_spent_budget_fails_over_to_a_provider_with_money_left(ups):
    a, b, _ = ups
    priced = {"models": [{"id": "gpt-x", "capabilities": ["chat-completion"],
                          "pricing": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}}],
              "budget": {"daily_limit": 0.001}}
    client, _, _ = make(ups, provider_extra={"a": priced})
    with client:
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "a"
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
    assert len(chat_requests(a)) == 1


# -- secrets -------------------------------------------------------------------------------------

def test_keys_never_show_in_reprs_errors_or_events(ups):
    a, b, c = ups
    client, _, events = make(ups)
    a.always(Error(500, message=f"upstream log: key {KEYS['a']} rejected"))
    b.always(Error(401, message=f"Incorrect API key provided: {KEYS['b']}"))
    c.always(Error(503, message=f"bad {KEYS['c']}"))
    with client:
        with pytest.raises(modelmesh.ModelMeshError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
        err = info.value
        text = " ".join([str(err), repr(err), repr(client), repr(client.core), repr(client.config),
                         repr(client.core.providers), repr(client.core.pools), str(client.status())]
                        + [str(x) for x in err.attempts]
                        + [json.dumps(e.to_dict(), default=str) + repr(e) for e in events])
    assert [x.status for x in err.attempts][:3] == [500, 401, 503]
    assert "rejected" in text and "Incorrect API key provided" in text  # the messages are kept...
    for key in KEYS.values():
        assert key not in text  # ...without the keys
    assert chat_requests(a)[0].headers["authorization"] == f"Bearer {KEYS['a']}"  # yet the key was sent


def test_an_authentication_error_carries_its_attempts_but_no_key(ups):
    a, _, _ = ups
    client, _, _ = make(ups, pool_extra={"models": ["a/gpt-x"]})
    a.always(Error(401))
    with client, pytest.raises(E.AuthenticationError) as info:
        client.chat.completions.create(model="chat", messages=MSG)
    err = info.value
    assert err.status == 401 and err.provider == "a" and err.attempts
    assert KEYS["a"] not in str(err) + repr(err)


def test_a_failing_listener_does_not_fail_the_request():
    from modelmesh.testing import FakeUpstream

    def broken(event):
        raise RuntimeError("observer bug")

    with FakeUpstream("openai", models=["m"]) as up:
        config = {"providers": {"p": {"connector": "openai", "config": {"base_url": up.url,
                                                                        "auth": {"api_key": "sk-l-0123456789"},
                                                                        "models": ["m"]}}}}
        with modelmesh.MeshClient(config, environ={}, on_event=broken) as client:
            r = client.chat.completions.create(model="p/m", messages=[{"role": "user", "content": "hi"}], timeout=5)
            assert r.choices[0].message.content
            with pytest.raises(TypeError, match="timeout"):
                client.chat.completions.create(model="p/m", messages=[{"role": "user", "content": "hi"}], timeout="soon")


def test_a_pool_strategy_named_by_module_path_is_imported(tmp_path, monkeypatch):
    (tmp_path / "mm_strategy_mod.py").write_text("def last(cands, ctx):\n    return cands[-1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"providers": {"p": {"connector": "openai", "config": {"base_url": "http://127.0.0.1:9/v1",
                                                                    "auth": {"api_key": "sk-s-0123456789"},
                                                                    "models": ["m1", "m2"]}}},
              "pools": {"chat": {"models": ["p/m1", "p/m2"], "strategy": "mm_strategy_mod:last"}}}
    with modelmesh.MeshClient(config, environ={}) as client:
        assert client.route("chat").model_id == "m2"
    config["pools"]["chat"]["strategy"] = "mm_strategy_mod:nope"
    with pytest.raises(modelmesh.ConfigurationError, match="pools.chat.strategy"):
        modelmesh.MeshClient(config, environ={})


# -- the SDK's per-request options -------------------------------------------------------------

def test_extra_headers_and_query_go_with_every_attempt_over_the_providers_own(ups):
    a, b, _ = ups
    client, _, _ = make(ups)
    a.script(Error(503))
    with client:
        r = client.chat.completions.create(model="chat", messages=MSG, extra_headers={"X-Trace": "t-1"},
                                           extra_query={"tier": "gold", "n": 2, "flag": True})
    assert r.mesh.provider == "b"
    for sent in (chat_requests(a)[0], chat_requests(b)[0]):  # the failed attempt and the one that served
        assert sent.headers["x-trace"] == "t-1" and sent.headers["authorization"].startswith("Bearer sk-surface-")
        assert sent.query == {"tier": "gold", "n": "2", "flag": "true"}


def test_an_extra_header_replaces_the_providers_own_of_the_same_name_whatever_its_case(ups):
    a, _, _ = ups
    client, _, _ = make(ups)
    with client:
        client.chat.completions.create(model="chat", messages=MSG, extra_headers={"authorization": "Bearer other-key"})
    sent = chat_requests(a)[0]
    assert sent.headers["authorization"] == "Bearer other-key"
    assert sum(1 for k in sent.headers if k.lower() == "authorization") == 1


def test_with_options_sets_defaults_for_a_copy_that_shares_the_mesh(ups):
    a, b, _ = ups
    client, _, _ = make(ups)
    with client:
        tagged = client.with_options(timeout=30, max_retries=0, default_headers={"X-Team": "search"},
                                     default_query={"v": "2"})
        assert tagged.core is client.core and tagged.transport is client.transport
        assert client.copy(timeout=5)._defaults.timeout == 5.0 and client._defaults.timeout is None
        a.script(Error(503))
        r = tagged.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "b"  # max_retries=0: no second try on a; failover is not a retry
        assert chat_requests(a)[0].headers["x-team"] == "search" and chat_requests(b)[0].query == {"v": "2"}
        plain = client.chat.completions.create(model="chat", messages=MSG)  # the original keeps its defaults
        assert "x-team" not in chat_requests({"a": a, "b": b}[plain.mesh.provider])[-1].headers
        with pytest.raises(TypeError, match="with_options: api_key cannot be set per client copy"):
            client.with_options(api_key="sk-other")
        with pytest.raises(TypeError, match="'max_retries' must be a whole number"):
            client.with_options(max_retries=-1)


def test_with_raw_response_gives_headers_and_parse(ups):
    a, b, _ = ups
    client, _, _ = make(ups)
    a.script(Error(503))
    with client:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
        r = raw.parse()
        assert r.choices[0].message.content and r.mesh.provider == "b"
        assert raw.status_code == 200 and raw.retries_taken == 1
        assert raw.headers["X-ModelMesh-Provider"] == "b" and raw.headers["x-modelmesh-model"] == "gpt-x"
        assert raw.headers["x-modelmesh-attempts"] == "2" and raw.headers["x-modelmesh-request-id"] == r.mesh.request_id
        assert raw.request_id == raw.headers["x-request-id"]
        assert raw.json()["id"] == r.id
        raw = client.with_raw_response.chat.completions.create(model="chat", messages=MSG, stream=True)
        assert raw.headers["x-modelmesh-provider"] == "a"  # the one 503 is behind it
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        with pytest.raises(AttributeError, match="no method 'nope'"):
            client.chat.completions.with_raw_response.nope  # noqa: B018


def test_a_stream_is_an_iterator_that_next_reads(ups):
    client, _, _ = make(ups)
    with client:
        stream = client.chat.completions.create(model="chat", messages=MSG, stream=True)
        first = next(stream)
        rest = list(stream)
    assert first.object == "chat.completion.chunk" and rest and stream.mesh.provider == "a"


def test_request_ids_name_the_process_and_a_forked_worker_renames_them(ups):
    import os

    client, _, _ = make(ups)
    with client:
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.request_id == f"mm-{os.getpid():x}-1"
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a worker forked after the client was made (gunicorn --preload)
            try:
                os.write(write, client.core.request_prefix.encode())
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        assert os.read(read, 100).decode() == f"mm-{child:x}-"
        os.close(read)
        os.close(write)
        assert client.core.request_prefix == f"mm-{os.getpid():x}-"


@pytest.mark.parametrize("strategy", ["stick-until-failure", "round-robin"])
def test_a_preferred_provider_moves_its_own_request_only(ups, strategy):
    client, _, _ = make(ups, strategy=strategy)
    with client:
        plain = [client.chat.completions.create(model="chat", messages=MSG).mesh.provider for _ in range(2)]
        hint = "c" if strategy == "stick-until-failure" else "a"  # not what the strategy would pick next
        hinted = client.chat.completions.create(model="chat", messages=MSG, preferred_provider=hint).mesh.provider
        after = [client.chat.completions.create(model="chat", messages=MSG).mesh.provider for _ in range(2)]
    assert hinted == hint
    if strategy == "stick-until-failure":  # the pool keeps sticking to what served it unhinted
        assert plain == ["a", "a"] and after == ["a", "a"]
    else:  # the rotation goes on from where the unhinted requests left it
        assert plain == ["a", "b"] and after == ["c", "a"]


def test_delivery_mode_is_a_routing_hint_checked_against_the_call_never_sent_upstream(ups):
    a, _, _ = ups
    client, _, _ = make(ups)
    with client:
        client.chat.completions.create(model="chat", messages=MSG, delivery_mode="sync")
        list(client.chat.completions.create(model="chat", messages=MSG, stream=True, delivery_mode="streaming"))
        with pytest.raises(TypeError, match="delivery_mode 'batch' is not available"):
            client.chat.completions.create(model="chat", messages=MSG, delivery_mode="batch")
        with pytest.raises(TypeError, match="the one this call is \\('sync'\\), got 'streaming'"):
            client.chat.completions.create(model="chat", messages=MSG, delivery_mode="streaming")
    assert len(chat_requests(a)) == 2 and not any("delivery_mode" in r.json for r in chat_requests(a))


def test_a_request_goes_only_to_models_whose_capabilities_take_it(ups):
    a, b, _ = ups
    providers = {"a": prov(a.url, KEYS["a"], model="text-embedding-3-small"), "b": prov(b.url, KEYS["b"])}
    providers["a"]["config"]["models"] = [{"id": "text-embedding-3-small", "capabilities": ["text-embeddings"]}]
    pools = {"mixed": {"models": ["a/text-embedding-3-small", "b/gpt-x"], "strategy": "priority"},
             "vectors": {"models": ["a/text-embedding-3-small"]}}
    with modelmesh.MeshClient({"providers": providers, "pools": pools}, environ={}) as client:
        # the embedding model is first in the pool, but cannot take a chat request: it is passed over, unblamed
        assert client.chat.completions.create(model="mixed", messages=MSG).mesh.provider == "b"
        assert client.embeddings.create(model="mixed", input="hi").mesh.provider == "a"
        with pytest.raises(E.BadRequestError, match="'vectors' cannot take a chat completion request: its models "
                                                    "offer text-embeddings; nothing was sent") as info:
            client.chat.completions.create(model="vectors", messages=MSG)
        assert info.value.status_code == 400 and info.value.param == "model"
        with pytest.raises(E.BadRequestError, match="'text-embeddings' cannot take a chat completion request"):
            client.chat.completions.create(model="text-embeddings", messages=MSG)
        rows = {r["model"]: r for r in client.status()["pools"]["mixed"]}
    assert chat_requests(a) == [] and rows["a/text-embedding-3-small"]["failures"] == 0
