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
