"""Discovery: the health monitor (`discovery.health`), start checks (`probe_on_start`) and
registry sync (`discovery.sync`, `catalogue.auto_discover`), end to end over loopback fakes.

The background thread is given an hour-long interval, so nothing races the tests: they drive
its round by hand (`client.run_probes()`, `client.transport.background_round()`), and time is
a FakeClock. No test sleeps to wait for an interval.
"""
from __future__ import annotations

import threading

import pytest

import modelmesh
from modelmesh.testing import Error, FakeClock, FakeUpstream

KEY = "sk-discovery-secret-0123456789"
MSG = [{"role": "user", "content": "hello"}]


def prov(url, *models, **catalogue):
    config = {"base_url": url, "auth": {"api_key": KEY}, "models": [{"id": m} for m in models]}
    if catalogue:
        config["catalogue"] = catalogue
    return {"connector": "openai", "config": config}


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="a", models=["gpt-4o-mini"]) as a, \
            FakeUpstream("openai", name="b", models=["gpt-4o"]) as b:
        yield a, b


def make(ups, *, discovery=None, routing=None, pools=None, probe_check_interval=3600.0):
    a, b = ups
    clock = FakeClock()
    events = []
    config = {"providers": {"a": prov(a.url, "gpt-4o-mini"), "b": prov(b.url, "gpt-4o")},
              "pools": pools or {"chat": {"capability": "chat-completion", "strategy": "priority",
                                          "rotation": {"selection": {"provider_priority": ["a", "b"]}}}}}
    if discovery is not None:
        config["discovery"] = discovery
    if routing is not None:
        config["routing"] = routing
    client = modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append,
                                  probe_check_interval=probe_check_interval)
    return client, clock, events


def gets(up):
    return [r.path for r in up.requests if r.method == "GET"]


def ask(client, model="chat"):
    return client.chat.completions.create(model=model, messages=MSG)


# -- health monitoring ----------------------------------------------------------------------------

def test_the_monitor_checks_every_provider_each_interval_and_never_in_a_request(ups):
    a, b = ups
    client, clock, _ = make(ups, discovery={"health": {"enabled": True, "interval": "30s"}})
    with client:
        assert ask(client).mesh.provider == "a"
        assert client.run_probes() == 0  # the first check is one interval after the start
        clock.advance(30)
        assert ask(client).mesh.provider == "a"  # a request sends no check, even a due one
        assert gets(a) == [] and gets(b) == []
        assert client.run_probes() == 2
        assert gets(a) == ["/v1/models"] and gets(b) == ["/v1/models"]
        clock.advance(29)
        assert client.run_probes() == 0
        clock.advance(1)
        assert client.run_probes() == 2


def test_failure_threshold_failed_checks_put_a_provider_down_and_a_passing_one_brings_it_back(ups):
    a, b = ups
    client, clock, events = make(ups, discovery={"health": {"enabled": True, "interval": "10s",
                                                            "failure_threshold": 3, "providers": ["a"]}})
    a.script(Error(503), Error(503), Error(503))
    with client:
        for _ in range(2):
            clock.advance(10)
            assert client.run_probes() == 1  # b is not monitored: only a is checked
            assert client.status()["providers"]["a"]["up"] is True  # below the threshold: still up
        clock.advance(10)
        assert client.run_probes() == 1
        status = client.status()["providers"]["a"]
        assert status["up"] is False and status["reason"] == "health check failed"
        assert ask(client).mesh.provider == "b"  # the request goes straight to b: a is not tried
        assert [r.path for r in a.requests] == ["/v1/models"] * 3
        clock.advance(10)
        assert client.run_probes() == 1  # the recovery probe passes
        assert client.status()["providers"]["a"]["up"] is True
        assert ask(client).mesh.provider == "a"
    kinds = [e.type for e in events if e.type.startswith("provider_")]
    assert kinds == ["provider_deactivated", "provider_recovered"]


def test_a_passing_check_resets_the_failure_count(ups):
    a, _ = ups
    client, clock, _ = make(ups, discovery={"health": {"enabled": True, "interval": "10s",
                                                       "failure_threshold": 2, "providers": ["a"]}})
    a.script(Error(500))  # fail, pass, fail: never two in a row
    with client:
        clock.advance(10)
        client.run_probes()
        clock.advance(10)
        client.run_probes()  # the default reply: the listing
        a.script(Error(500))
        clock.advance(10)
        client.run_probes()
        assert client.status()["providers"]["a"]["up"] is True


def test_health_disabled_sends_no_probe_at_all_and_a_provider_standby_ends_by_cooldown(ups):
    a, b = ups
    client, clock, _ = make(ups, discovery={"health": {"enabled": False}},
                            routing={"rotation": {"recovery": {"cooldown": "60s"}}})
    a.script(Error(401))  # an auth failure: the provider is down (until a probe, were probes sent)
    with client:
        assert ask(client).mesh.provider == "b"
        assert client.status()["providers"]["a"]["up"] is False
        for _ in range(5):
            clock.advance(30)
            assert client.run_probes() == 0
        assert gets(a) == [] and gets(b) == []
        assert ask(client).mesh.provider == "a"  # the cooldown ended it
    assert gets(a) == []


def test_health_disabled_with_probe_on_start_is_a_configuration_error(ups):
    with pytest.raises(modelmesh.ConfigurationError, match=r"routing\.rotation\.recovery\.probe_on_start"):
        make(ups, discovery={"health": {"enabled": False}}, routing={"rotation": {"recovery": {"probe_on_start": True}}})


def test_probe_on_start_checks_providers_once_in_the_background_without_blocking_construction(ups):
    a, b = ups
    gate = threading.Event()
    a.script(lambda request: gate.wait(5) and Error(503))  # the check hangs until the test lets it go
    client, clock, events = make(ups, routing={"rotation": {"recovery": {"probe_on_start": True}}},
                                 discovery={"health": {"failure_threshold": 1}})
    with client:  # the constructor has returned while a's check is still in flight
        a.wait_for_requests(1)
        b.wait_for_requests(1)
        down = threading.Event()
        client.subscribe(lambda ev: down.set() if ev.type == "provider_deactivated" else None)
        gate.set()
        assert down.wait(5)
        assert client.status()["providers"]["a"]["up"] is False
        assert client.status()["providers"]["b"]["up"] is True
        clock.advance(3600)
        assert client.run_probes() == 1  # a's recovery probe; b is not checked again (no monitor)


# -- registry sync ----------------------------------------------------------------------------------

SYNC = {"sync": {"enabled": True, "interval": "1h", "providers": ["a"]}}


def test_a_model_that_appears_in_the_listing_is_registered_and_serves_in_its_pool(ups):
    a, _ = ups
    client, clock, events = make(ups, discovery=SYNC)
    with client:
        assert client.run_discovery() == 0  # the first sync is one interval after the start
        a.models = ("gpt-4o-mini", "gpt-4.1-mini")
        clock.advance(3600)
        assert client.run_discovery() == 1  # only a is synced
        assert gets(a) == ["/v1/models"]
        found = [e for e in events if e.type == "model_discovered"]
        assert [(e.model, e.registered, e.pools) for e in found] == [("a/gpt-4.1-mini", True, ("chat",))]
        new = client.core.models["a/gpt-4.1-mini"]
        assert new.input_per_1m > 0 and new.context_window  # priced from the shipped catalogue
        assert "a/gpt-4.1-mini" in {m.id for m in client.models.list()}
        client.deactivate("a/gpt-4o-mini")
        r = ask(client)
        assert (r.mesh.provider, r.mesh.model) == ("a", "gpt-4.1-mini")
        assert a.requests[-1].json["model"] == "gpt-4.1-mini"
        assert client.run_discovery() == 0  # next one in an hour
        clock.advance(3600)
        assert client.run_discovery() == 1
        assert len([e for e in events if e.type == "model_discovered"]) == 1  # known now: not again


def test_a_model_gone_from_the_listing_is_deactivated_and_comes_back_when_listed_again(ups):
    a, _ = ups
    client, clock, events = make(ups, discovery={"sync": {**SYNC["sync"], "on_deprecated_model": "deactivate",
                                                          "on_new_model": "ignore"}})
    with client:
        a.models = ("gpt-4.1",)
        clock.advance(3600)
        client.run_discovery()
        assert "a/gpt-4.1" not in client.core.models  # on_new_model: ignore
        kinds = [(e.type, getattr(e, "model", None)) for e in events]
        assert ("model_deprecated", "a/gpt-4o-mini") in kinds and ("model_deactivated", "a/gpt-4o-mini") in kinds
        row = next(r for r in client.status()["pools"]["chat"] if r["model"] == "a/gpt-4o-mini")
        assert row["status"] == "standby" and row["reason"] == "deprecated" and row["until"] is None
        assert ask(client).mesh.provider == "b"
        clock.advance(3600)
        client.run_discovery()
        assert len([e for e in events if e.type == "model_deprecated"]) == 1  # said once
        a.models = ("gpt-4o-mini",)
        clock.advance(3600)
        client.run_discovery()
        assert any(e.type == "model_recovered" and e.how == "listed" for e in events)
        assert ask(client).mesh.provider == "a"


def test_notify_reports_without_changing_anything(ups):
    a, _ = ups
    client, clock, events = make(ups, discovery={"sync": {**SYNC["sync"], "on_new_model": "notify"}})
    with client:
        a.models = ("gpt-4.1",)
        clock.advance(3600)
        client.run_discovery()
        assert "a/gpt-4.1" not in client.core.models
        said = {(e.type, e.model, getattr(e, "action", None)) for e in events if e.type.startswith("model_")}
        assert said == {("model_discovered", "a/gpt-4.1", None), ("model_deprecated", "a/gpt-4o-mini", "notify")}
        assert ask(client).mesh.provider == "a"  # notify: the model still serves


def test_a_failed_listing_changes_nothing(ups):
    a, _ = ups
    client, clock, events = make(ups, discovery={"sync": {**SYNC["sync"], "on_deprecated_model": "deactivate"}})
    a.script(Error(500))
    with client:
        clock.advance(3600)
        assert client.run_discovery() == 1
        assert not [e for e in events if e.type.startswith("model_")]
        assert ask(client).mesh.provider == "a"


def test_models_added_by_discovery_are_capped(ups, monkeypatch):
    from modelmesh._core import _discovery

    monkeypatch.setattr(_discovery, "MAX_DISCOVERED", 2)
    a, _ = ups
    client, clock, events = make(ups, discovery=SYNC)
    with client:
        a.models = ("gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini")
        clock.advance(3600)
        client.run_discovery()
        found = [(e.model, e.registered) for e in events if e.type == "model_discovered"]
        assert found == [("a/gpt-4.1", True), ("a/gpt-4.1-mini", True), ("a/gpt-4.1-nano", False), ("a/o3-mini", False)]
        assert sum(1 for m in client.core.models.values() if m.provider == "a") == 3


def test_auto_discover_lists_a_providers_models_as_the_client_starts():
    with FakeUpstream("openai", name="c", models=["gpt-4o-mini", "text-embedding-3-small"]) as c:
        found = threading.Event()
        config = {"providers": {"c": {"connector": "openai", "config": {
                      "base_url": c.url, "auth": {"api_key": KEY}, "catalogue": {"auto_discover": True}}}},
                  "pools": {"chat": {"capability": "chat-completion"}}}
        client = modelmesh.MeshClient(config, environ={}, probe_check_interval=3600.0,
                                      on_event=lambda ev: found.set() if ev.type == "model_discovered" else None)
        with client:
            assert c.wait_for_requests(1)[0].path == "/v1/models"  # from the background, not the constructor
            assert found.wait(5)
            for _ in range(200):
                if "c/text-embedding-3-small" in client.core.models:
                    break
                threading.Event().wait(0.01)
            assert client.chat.completions.create(model="chat", messages=MSG).mesh.model == "gpt-4o-mini"
            assert client.embeddings.create(model="text-embeddings", input="x").mesh.model == "text-embedding-3-small"


def test_refresh_interval_without_anything_to_sync_is_a_configuration_error(ups):
    a, b = ups
    config = {"providers": {"a": prov(a.url, "gpt-4o-mini", refresh_interval="1h")}}
    with pytest.raises(modelmesh.ConfigurationError, match=r"providers\.a\.config\.catalogue\.refresh_interval"):
        modelmesh.MeshClient(config, environ={})
    config["providers"]["a"]["config"]["catalogue"]["auto_discover"] = True
    modelmesh.MeshClient(config, environ={}).close()


def test_bad_discovery_settings_name_their_path():
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.MeshClient({"providers": {}, "discovery": {"sync": {"on_new_model": "adopt", "interval": "soon"},
                                                             "health": {"failure_threshold": 0}}}, environ={})
    text = str(info.value)
    for path in ("discovery.sync.on_new_model", "discovery.sync.interval", "discovery.health.failure_threshold"):
        assert path in text


def test_the_async_client_syncs_and_checks_too(ups):
    import asyncio

    a, _ = ups

    async def main():
        clock = FakeClock()
        config = {"providers": {"a": prov(a.url, "gpt-4o-mini")}, "discovery": {
            "sync": SYNC["sync"], "health": {"enabled": True, "interval": "10s", "failure_threshold": 1}}}
        async with modelmesh.AsyncMeshClient(config, clock=clock, environ={}, probe_check_interval=3600.0) as client:
            a.models = ("gpt-4o-mini", "gpt-4.1")
            clock.advance(3600)
            assert await client.run_discovery() == 1
            assert "a/gpt-4.1" in client.core.models
            a.script(Error(503))
            assert await client.run_probes() == 1
            assert client.status()["providers"]["a"]["up"] is False

    asyncio.run(main())
