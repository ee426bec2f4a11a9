"""Health probes end to end: provider auth failure and recovery, standby models probed back.

The shell (`client.run_probes()`, which the client's background probe thread calls every
`probe_check_interval` real seconds; requests never do) asks the core for `due_probes(now)`,
sends each over HTTP to a fake upstream and feeds `probe_result`. Provider probes are GET
{base_url}/models; model probes are a one-token "ping" to the model. Time is a FakeClock:
no test waits for a cooldown. `make` gives the probe thread an hour-long interval, so the
tests driving `run_probes()` by hand are not raced by it; the tests of the thread itself
give it a short real interval and wait on an event it causes.
"""
from __future__ import annotations

import threading
import time

import pytest

import modelmesh
from modelmesh.testing import Error, FakeClock, FakeUpstream, Reply

from core_helpers import MECHANICS

KEY = "sk-probe-secret-0123456789"
MSG = [{"role": "user", "content": "hello"}]
ORDER = ["a/m1", "b/m2"]


def prov(url, model):
    return {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": KEY},
                                              "models": [{"id": model, "capabilities": ["chat-completion"]}]}}


def pool(**rotation):
    rot = {"selection": {"model_priority": ORDER}}
    rot.update(rotation)
    return {"models": ORDER, "strategy": "priority", "rotation": rot}


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="a", models=["m1"]) as a, FakeUpstream("openai", name="b", models=["m2"]) as b:
        yield a, b


def make(ups, pools=None, *, probe_check_interval=3600.0, **top):
    a, b = ups
    clock = FakeClock()
    events = []
    # scripts say what the request and then each probe get: no same-model retry in between
    config = {"providers": {"a": prov(a.url, "m1"), "b": prov(b.url, "m2")}, "pools": pools or {"p1": pool()},
              "routing": MECHANICS, **top}
    client = modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append,
                                  probe_check_interval=probe_check_interval)
    return client, clock, events


def signal_on(client, event_type):
    """A threading.Event set when the client emits an event of `event_type`."""
    seen = threading.Event()
    client.subscribe(lambda ev: seen.set() if ev.type == event_type else None)
    return seen


def ask(client, model="p1"):
    return client.chat.completions.create(model=model, messages=MSG)


def probe_paths(up):
    return [r.path for r in up.requests if r.method == "GET"]


# -- provider-level: auth failure and recovery by probe ----------------------------------------

def test_auth_failure_puts_the_provider_down_in_every_pool(ups):
    a, b = ups
    client, _, events = make(ups, {"p1": pool(), "p2": pool()})
    a.script(Error(401))
    with client:
        assert ask(client, "p1").mesh.provider == "b"
        status = client.status()
        assert status["providers"]["a"]["up"] is False and status["providers"]["a"]["reason"] == "auth_failure"
        for name in ("p1", "p2"):
            row = next(r for r in status["pools"][name] if r["model"] == "a/m1")
            assert row["status"] == "standby" and row["reason"] == "auth_failure" and row["until"] is None
        sent = len(a.requests)
        assert ask(client, "p2").mesh.provider == "b"  # the other pool never tries a
        assert len(a.requests) == sent
    down = [e for e in events if e.type == "provider_deactivated"]
    assert [(e.provider, e.reason, e.until) for e in down] == [("a", "auth_failure", None)]


def test_a_request_naming_only_the_down_provider_fails_without_calling_it(ups):
    a, _ = ups
    client, _, _ = make(ups)
    a.script(Error(401))
    with client:
        ask(client)
        sent = len(a.requests)
        with pytest.raises(modelmesh.NoModelAvailableError) as info:
            ask(client, "a/m1")
    assert len(a.requests) == sent
    assert KEY not in str(info.value)


def test_run_probes_sends_models_listing_and_the_provider_recovers_on_200(ups):
    a, b = ups
    client, clock, events = make(ups)
    a.script(Error(401))
    with client:
        ask(client)
        assert client.run_probes() == 1
        probe = a.requests[-1]
        assert (probe.method, probe.path) == ("GET", "/v1/models")
        assert probe.headers["authorization"] == f"Bearer {KEY}"
        assert client.status()["providers"]["a"]["up"] is True
        assert ask(client).mesh.provider == "a"  # priority puts it first again
        assert client.run_probes() == 0  # nothing is down: nothing to probe


def test_a_failing_probe_keeps_the_provider_down(ups):
    a, b = ups
    client, clock, _ = make(ups)
    a.script(Error(401), Error(401))  # the chat request, then the probe
    with client:
        ask(client)
        assert client.run_probes() == 1
        assert probe_paths(a) == ["/v1/models"]
        assert client.status()["providers"]["a"]["up"] is False
        assert ask(client).mesh.provider == "b"


def test_provider_probes_respect_the_discovery_health_interval(ups):
    a, b = ups
    client, clock, _ = make(ups, discovery={"health": {"interval": "45s"}})
    a.script(Error(401), Error(500), Error(500))
    with client:
        ask(client)
        assert client.run_probes() == 1
        clock.advance(44)
        assert client.run_probes() == 0  # no second probe before the interval
        assert ask(client).mesh.provider == "b"  # a request sends no probe
        assert probe_paths(a) == ["/v1/models"]
        clock.advance(1)
        assert client.run_probes() == 1
        assert probe_paths(a) == ["/v1/models", "/v1/models"]
        clock.advance(45)
        assert client.run_probes() == 1
        assert client.status()["providers"]["a"]["up"] is True


def test_a_request_never_sends_a_due_probe(ups):
    a, b = ups
    client, clock, _ = make(ups)  # the probe thread's interval is an hour: it does not run here
    a.script(Error(401))
    with client:
        assert ask(client).mesh.provider == "b"
        clock.advance(120)  # a's probe is long due
        assert ask(client).mesh.provider == "b"
        assert probe_paths(a) == []
        assert client.run_probes() == 1
        assert ask(client).mesh.provider == "a"
    assert [(q.method, q.path) for q in a.requests] == [
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


def test_the_probe_thread_sends_due_probes_by_itself(ups):
    a, b = ups
    client, clock, _ = make(ups, probe_check_interval=0.02)
    recovered = signal_on(client, "provider_recovered")
    a.script(Error(401))
    with client:
        assert ask(client).mesh.provider == "b"  # the first request starts the probe thread
        assert recovered.wait(5), "the probe thread did not bring the provider back"
        assert ask(client).mesh.provider == "a"
    assert [(q.method, q.path) for q in a.requests] == [
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


def test_the_probe_thread_reads_due_times_from_the_clients_clock(ups):
    a, b = ups
    client, clock, events = make(ups, standby_pool(), probe_check_interval=0.02)
    recovered = signal_on(client, "model_recovered")
    a.script(Error(500))
    with client:
        assert ask(client).mesh.provider == "b"
        assert not recovered.wait(0.1)  # rounds pass, but no fake time: the probe is not due
        assert probe_paths(a) == [] and len(a.requests) == 1
        clock.advance(30)
        assert recovered.wait(5), "the probe thread did not probe the standby model"
        assert ask(client).mesh.provider == "a"
    assert [(e.model, e.how) for e in events if e.type == "model_recovered"] == [("a/m1", "probe")]


def test_a_request_does_not_wait_for_a_hanging_probe(ups):
    a, b = ups
    client, clock, _ = make(ups, probe_check_interval=0.02)
    probing = threading.Event()

    def hang(req):  # the probe reaches the fake, which holds it for far longer than the request may take
        probing.set()
        return Reply(delay=30)

    a.script(Error(401), hang)
    with client:
        assert ask(client).mesh.provider == "b"
        assert probing.wait(5), "the probe thread sent no probe"
        started = time.perf_counter()
        assert ask(client).mesh.provider == "b"
        assert time.perf_counter() - started < 1.0
        prober = client.transport._prober
        a.close()  # cut the hanging probe, so that close() joins the probe thread at once
    assert prober is not None and not prober.is_alive()


def test_close_stops_the_probe_thread_and_it_never_restarts(ups):
    client, _, _ = make(ups, probe_check_interval=0.02)
    with client:
        ask(client)
        prober = client.transport._prober
        assert prober is not None and prober.is_alive() and prober.daemon
    assert not prober.is_alive()
    ask(client)  # a request after close() starts no thread
    assert client.transport._prober is None


def test_a_client_never_used_starts_no_thread(ups):
    before = set(threading.enumerate())
    client, _, _ = make(ups)
    assert set(threading.enumerate()) - before == set()
    client.close()


def test_provider_recovery_by_probe_is_announced_and_clears_the_reason(ups):
    a, _ = ups
    client, _, events = make(ups)
    a.script(Error(401))
    with client:
        ask(client)
        client.run_probes()
        assert client.status()["providers"]["a"]["reason"] is None
    recovered = [e for e in events if e.type == "provider_recovered"]
    assert [(e.provider, e.how) for e in recovered] == [("a", "probe")]


def test_provider_recovery_on_manual_is_not_undone_by_a_probe(ups):
    a, _ = ups
    client, _, _ = make(ups, {"p1": pool(provider_recovery="on_manual")})
    a.script(Error(401))
    with client:
        ask(client)
        client.run_probes()
        assert client.status()["providers"]["a"]["up"] is False
        assert ask(client).mesh.provider == "b"
        client.reactivate(provider="a")
        assert ask(client).mesh.provider == "a"


# -- model-level: standby models probed back ------------------------------------------------------

def standby_pool(probe_interval="30s"):
    return {"p1": pool(deactivation={"retry_limit": 1},
                       recovery={"cooldown": "1h", "initial_cooldown": "1h", "probe_interval": probe_interval})}


def test_a_standby_model_is_probed_with_a_one_token_ping_and_recovers_on_success(ups):
    a, b = ups
    client, clock, events = make(ups, standby_pool())
    a.script(Error(500))
    with client:
        assert ask(client).mesh.provider == "b"
        assert client.status()["pools"]["p1"][0]["status"] == "standby"
        clock.advance(30)
        assert client.run_probes() == 1
        probe = a.requests[-1]
        assert (probe.method, probe.path) == ("POST", "/v1/chat/completions")
        assert probe.json["model"] == "m1" and probe.json["max_tokens"] == 1
        assert probe.json["messages"] == [{"role": "user", "content": "ping"}]
        assert client.run_probes() == 0
    recovered = [e for e in events if e.type == "model_recovered"]
    assert [(e.pool, e.model, e.how) for e in recovered] == [("p1", "a/m1", "probe")]
    assert len(b.requests) == 1  # probes go only to the model on standby


def test_a_failed_model_probe_keeps_it_down_and_the_next_waits_an_interval(ups):
    a, b = ups
    client, clock, events = make(ups, standby_pool())
    a.script(Error(500), Error(500))  # the request, then the probe
    with client:
        ask(client)
        clock.advance(30)
        assert client.run_probes() == 1
        assert [e for e in events if e.type == "model_recovered"] == []
        assert client.status()["pools"]["p1"][0]["status"] == "standby"
        assert ask(client).mesh.provider == "b"
        clock.advance(29)
        assert client.run_probes() == 0
        clock.advance(1)
        assert client.run_probes() == 1  # this one succeeds (default reply)
    assert [e.how for e in events if e.type == "model_recovered"] == ["probe"]
    assert sum(1 for r in a.requests if r.json and r.json.get("max_tokens") == 1) == 2


def test_with_probes_switched_off_a_standby_model_is_never_probed(ups):
    a, _ = ups
    client, clock, _ = make(ups, {"p1": pool(deactivation={"retry_limit": 1},
                                             recovery={"cooldown": "1h", "probe_interval": None})})
    a.script(Error(500))
    with client:
        ask(client)
        for _ in range(3):
            clock.advance(600)
            assert client.run_probes() == 0
    assert len(a.requests) == 1


def test_no_model_probe_before_the_interval_has_passed(ups):
    a, _ = ups
    client, clock, _ = make(ups, standby_pool())
    a.script(Error(500))
    with client:
        ask(client)
        assert client.run_probes() == 0
        clock.advance(29)
        assert client.run_probes() == 0
        clock.advance(1)
        assert client.run_probes() == 1


def test_a_model_recovered_by_probe_serves_the_next_request(ups):
    a, _ = ups
    client, clock, events = make(ups, standby_pool())
    a.script(Error(500))
    with client:
        ask(client)
        clock.advance(30)
        assert client.run_probes() == 1
        assert ask(client).mesh.provider == "a"
    assert [e.type for e in events if e.type.startswith("model_")] == ["model_deactivated", "model_recovered"]


def test_after_four_failed_probes_a_passing_probe_brings_the_provider_back_for_good(ups):
    # regression: the passing probe announced the recovery and the next line put the provider
    # down again (its score was still below the threshold), leaving {"up": False, "reason": None}
    a, _ = ups
    client, clock, events = make(ups)
    a.script(Error(401), Error(500), Error(500), Error(500), Error(500))
    with client:
        ask(client)
        for _ in range(4):
            clock.advance(60)
            assert client.run_probes() == 1
            assert client.status()["providers"]["a"] == {**client.status()["providers"]["a"], "up": False,
                                                         "reason": "auth_failure"}
        clock.advance(60)
        assert client.run_probes() == 1  # the fake answers 200 now
        row = client.status()["providers"]["a"]
        assert row["up"] is True and row["reason"] is None and row["until"] is None
        clock.advance(60)
        assert client.run_probes() == 0  # up: nothing to probe
        assert ask(client).mesh.provider == "a"
    downs = [e for e in events if e.type == "provider_deactivated"]
    ups_ = [e for e in events if e.type == "provider_recovered"]
    assert [e.reason for e in downs] == ["auth_failure"] and [e.how for e in ups_] == ["probe"]


def test_by_default_a_standby_model_is_probed_back_within_ten_seconds(ups):
    a, b = ups
    client, clock, events = make(ups, {"p1": pool(deactivation={"retry_limit": 1}, recovery={"cooldown": "1h",
                                                                                               "initial_cooldown": "1h"})})
    a.script(Error(500))
    with client:
        assert ask(client).mesh.provider == "b"
        clock.advance(9)
        assert client.run_probes() == 0
        clock.advance(1)
        assert client.run_probes() == 1  # the fake answers the ping: back, long before its hour is up
        assert ask(client).mesh.provider == "a"
    assert [e.how for e in events if e.type == "model_recovered"] == ["probe"]


_NEVER_CLOSED = """
import threading
import modelmesh
from modelmesh.testing import Error, FakeUpstream, Reply

a, b = FakeUpstream("openai", name="a", models=["m1"]), FakeUpstream("openai", name="b", models=["m2"])
probing = threading.Event()
a.script(Error(401), lambda req: probing.set() or Reply(delay=30))
prov = lambda up, m: {"connector": "openai", "config": {"base_url": up.url, "auth": {"api_key": "k"},
                      "models": [{"id": m, "capabilities": ["chat-completion"]}]}}
client = modelmesh.MeshClient({"providers": {"a": prov(a, "m1"), "b": prov(b, "m2")},
                               "pools": {"p": {"models": ["a/m1", "b/m2"], "strategy": "priority"}}},
                              environ={}, probe_check_interval=0.01)
client.chat.completions.create(model="p", messages=[{"role": "user", "content": "hi"}])
assert probing.wait(5)
print("exiting with a probe in flight")
"""


def test_a_client_never_closed_does_not_hold_up_interpreter_exit():
    import subprocess
    import sys

    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _NEVER_CLOSED], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "probe in flight" in done.stdout
    assert time.perf_counter() - started < 8  # the probe's own timeout is 10s, the fake holds it 30s
