"""The health owner through its doors: a question moves nothing, every event reaches its caller
once, the consequence table covers every error kind, and the per-provider retry keys act."""
from __future__ import annotations

import pytest

from modelmesh._core._consequences import CONSEQUENCES, Effect, Scope, consequence_for
from modelmesh._core._protocol import Cancelled, ResponseReceived, Succeeded
from modelmesh._core._types import ErrorInfo, ErrorKind

from core_helpers import T0, Clock, drive, err_body, health_of, make_mesh, member, ok_body, provider


def two(**rotation):
    return make_mesh({"a": provider(["m1"]), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                               "rotation": {"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "10s"},
                                            "selection": {"model_priority": ["a/m1"]}, **rotation}}})


def start(mesh, now=T0, stream=False):
    return mesh.start("chat", {"messages": [{"role": "user", "content": "x"}]}, model="chat", stream=stream, now=now)


def test_every_error_kind_has_one_row():
    assert set(CONSEQUENCES) == set(ErrorKind)
    assert all(c.scope is Scope.NONE for c in CONSEQUENCES.values() if not c.penalise)
    assert consequence_for(ErrorInfo(kind=ErrorKind.CONNECTION, code="connect")).scope is Scope.PROVIDER


def test_provider_code_lists_adjust_same_model_retries():
    info = ErrorInfo(kind=ErrorKind.SERVER_ERROR, status=503)
    assert consequence_for(info).same_model_retry
    assert not consequence_for(info, non_retryable_codes=[503]).same_model_retry
    auth = ErrorInfo(kind=ErrorKind.AUTH, status=401)
    transient = consequence_for(auth, retryable_codes=[401])
    assert transient.same_model_retry and transient.scope is Scope.MODEL and transient.provider_rule is None
    bad = ErrorInfo(kind=ErrorKind.BAD_REQUEST, status=400)
    assert consequence_for(bad, retryable_codes=[400]).effect is Effect.FAIL  # never retried


def test_max_retries_and_non_retryable_codes_act_on_requests():
    retrying = make_mesh({"a": provider(["m1"], max_retries=2), "b": provider(["m2"])},
                         {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    final, _ = drive(start(retrying), {"a/m1": [500, 500, 200], "b/m2": [200]})
    assert final.provider == "a" and [a.outcome for a in final.attempts] == ["server_error", "server_error", "ok"]
    rotating = make_mesh({"a": provider(["m1"], max_retries=2, error={"retryable_codes": [502], "non_retryable_codes": [500]}),
                          "b": provider(["m2"])}, {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    final, _ = drive(start(rotating), {"a/m1": [500, 200], "b/m2": [200]})
    assert final.provider == "b" and len(final.attempts) == 2


def test_a_status_listed_as_retryable_is_transient_not_a_provider_standby():
    mesh = make_mesh({"a": provider(["m1"], max_retries=1, error={"retryable_codes": [401, 500], "non_retryable_codes": [400]}),
                      "b": provider(["m2"])}, {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    final, _ = drive(start(mesh), {"a/m1": [401, 200], "b/m2": [200]})
    assert final.provider == "a" and [a.outcome for a in final.attempts] == ["auth", "ok"]
    assert mesh.snapshot(T0 + 5)["providers"]["a"]["up"]


def test_questions_move_nothing_and_the_recovery_is_announced_once_to_the_request_that_sees_it():
    mesh = two()
    first = start(mesh)
    drive(first, {"a/m1": [500], "b/m2": [200]})
    assert [e.type for e in first.drain_events()].count("model_deactivated") == 1
    later = T0 + 60  # the cooldown is over
    before = health_of(mesh, "a/m1").to_dict()
    for _ in range(3):
        assert member(mesh, "a/m1", later)["status"] == "active"
        assert member(mesh, "a/m1", later)["breaker"] == "half_open"
        assert mesh.route("chat", now=later).model_id == "m1"
    assert health_of(mesh, "a/m1").to_dict() == before  # still open inside: nobody asked for a trial
    nxt = start(mesh, now=later)
    final, _ = drive(nxt, {"a/m1": [200], "b/m2": [200]}, Clock(later))
    assert final.provider == "a"
    assert [e.type for e in nxt.drain_events()].count("model_recovered") == 1


def test_cancelling_a_call_drops_none_of_another_calls_events():
    mesh = two()
    failing, idle = start(mesh), start(mesh)
    action = failing.next_action(T0)
    failing.feed(ResponseReceived(status=500, body=err_body()), T0)  # a/m1 goes on standby
    idle.next_action(T0)
    idle.feed(Cancelled(), T0)
    assert {e.request_id for e in idle.drain_events()} == {idle.request_id}  # its own only
    kinds = [e.type for e in failing.drain_events()]
    assert kinds == ["request_routed", "attempt_failed", "model_deactivated"] and action.ref == "a/m1"
    failing.next_action(T0)
    failing.feed(ResponseReceived(status=200, body=ok_body()), T0)
    assert isinstance(failing.next_action(T0), Succeeded)
    assert [e.type for e in failing.drain_events()] == ["request_routed", "request_completed"]


def test_a_provider_budget_period_that_ended_reads_as_spent_nothing():
    mesh = make_mesh({"a": provider([{"id": "m1", "capabilities": ["chat-completion"],
                                       "pricing": {"input_per_1m": 1e6, "output_per_1m": 0}}],
                                    budget={"daily_limit": 1.0}),
                      "b": provider(["m2"])}, {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    final, _ = drive(start(mesh), {"a/m1": [200], "b/m2": [200]})
    assert final.provider == "a" and mesh.snapshot(T0 + 1)["providers"]["a"]["spend_day"] >= 1.0
    assert member(mesh, "a/m1", T0 + 1)["status"] == "standby"
    assert member(mesh, "a/m1", T0 + 86400)["status"] == "active"


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_each_row_is_what_a_request_does(kind):
    row = CONSEQUENCES[kind]
    assert row.effect in Effect and issubclass(row.error, Exception)


def test_a_maintenance_window_shows_in_the_view_before_any_request_sees_it():
    mesh = two(deactivation={"retry_limit": 1, "maintenance_window": "0 3 * * *", "maintenance_duration": "1h"})
    three_am = (T0 // 86400 + 1) * 86400 + 3 * 3600
    row = member(mesh, "a/m1", three_am + 60)
    assert row["status"] == "standby" and row["reason"] == "maintenance" and row["until"] == three_am + 3600
    assert health_of(mesh, "a/m1").breaker.state.value == "closed"  # the view moved nothing
    call = start(mesh, now=three_am + 60)
    final, _ = drive(call, {"a/m1": [200], "b/m2": [200]}, Clock(three_am + 60))
    assert final.error.recovery_at == three_am + 3600  # the whole pool is in its window
    assert [e.type for e in call.drain_events()].count("model_deactivated") == 2


def test_health_refuses_an_outcome_it_does_not_know():
    with pytest.raises(TypeError, match="cannot record"):
        two().health.record(object(), T0, [])


def test_without_on_auth_failure_only_the_model_goes_aside():
    mesh = two(provider_deactivation=["on_api_outage"])
    call = start(mesh)
    final, _ = drive(call, {"a/m1": [(401, err_body(type_="invalid_request_error", code="invalid_api_key"))],
                            "b/m2": [200]})
    assert final.provider == "b"
    assert mesh.snapshot(T0 + 1)["providers"]["a"]["up"]
    assert member(mesh, "a/m1", T0 + 1)["reason"] == "auth_failure"
    assert member(mesh, "a/m1", T0 + 11)["status"] == "active"  # the recovery policy's cooldown


def test_a_disabled_provider_reads_as_disabled():
    mesh = make_mesh({"a": {**provider(["m1"]), "enabled": False}, "b": provider(["m2"])},
                     {"chat": {"models": ["b/m2"], "strategy": "priority"}})
    assert [r["model"] for r in mesh.snapshot(T0)["pools"]["chat"]] == ["b/m2"]
    assert mesh.snapshot(T0)["providers"]["a"]["enabled"] is False


def test_policies_composed_in_python_act_through_the_client():
    import modelmesh
    from modelmesh.policies import Cooldown, ErrorRate, PolicySet, RetryLimit
    from modelmesh.testing import Error, FakeClock, FakeUpstream

    with FakeUpstream("openai", name="a", models=["m1"]) as a, FakeUpstream("openai", name="b", models=["m2"]) as b:
        prov = {pid: {"connector": "openai", "config": {"base_url": up.url, "auth": {"api_key": "sk-pol-0123456789"},
                                                         "models": [{"id": m, "capabilities": ["chat-completion"]}]}}
                for pid, up, m in (("a", a, "m1"), ("b", b, "m2"))}
        config = {"providers": prov, "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                                                         "rotation": {"deactivation": {"retry_limit": 50},
                                                                      "selection": {"model_priority": ["a/m1"]}}}}}
        clock = FakeClock()
        plugged = PolicySet(deactivation=(RetryLimit(1) | ErrorRate(0.5, min_requests=1),), recovery=(Cooldown(5),))
        a.script(Error(500))
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, policies={"chat": plugged}) as c:
            msg = [{"role": "user", "content": "hi"}]
            assert c.chat.completions.create(model="chat", messages=msg).mesh.provider == "b"
            row = next(r for r in c.status()["pools"]["chat"] if r["model"] == "a/m1")
            assert row["status"] == "standby" and row["until"] == pytest.approx(clock() + 5, abs=1)
            clock.advance(6)
            assert c.chat.completions.create(model="chat", messages=msg).mesh.provider == "a"
