"""The CDK base classes of rotation policies, storage and discovery (seed 003): each works as
configured ("package.module:Class" names classes of this module), and a subclass that
overrides one method changes behaviour end to end over loopback fakes. Time is a FakeClock.
"""
from __future__ import annotations

import json

import pytest

import modelmesh
from modelmesh.cdk import (
    BaseDiscovery,
    BaseRotationPolicy,
    HttpHealthDiscovery,
    KeyValueStorage,
    ThresholdRotationPolicy,
)
from modelmesh.errors import ConfigurationError
from modelmesh.policies import Deactivation, DeactivationReason
from modelmesh.testing import Error, FakeClock, FakeUpstream

MSG = [{"role": "user", "content": "hi"}]


def two_providers(x, y, **pool):
    providers = {name: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": f"sk-{name}-0123456789abcdef"},
        "models": [{"id": "m", "capabilities": ["chat-completion"]}]}} for name, up in (("x", x), ("y", y))}
    rotation = {"selection": {"model_priority": ["x/m", "y/m"]}, **pool.pop("rotation", {})}
    pools = {"chat": {"models": ["x/m", "y/m"], "strategy": "priority", "rotation": rotation,
                      "retry": {"same_model_retries": 0}, **pool}}
    return {"providers": providers, "pools": pools}


def served(client):
    return client.chat.completions.create(model="chat", messages=MSG).mesh.provider


# -- rotation policies ----------------------------------------------------------------------------

class OneStrike(BaseRotationPolicy):
    """Overrides one method: any failure with status 500 takes the model out at once."""

    def get_reason(self, state, now):
        return DeactivationReason.PROVIDER_OUTAGE if state.last_status == 500 else None


class BackInFive(BaseRotationPolicy):
    """Overrides one method: every standby lasts five seconds, whatever the pool's cooldown."""

    def get_recovery_schedule(self, state, decision, now):
        return now + 5.0


class ProbeWhenAsked(BaseRotationPolicy):
    """Overrides one method: asks for a probe of a standby model while READY says so."""

    def should_recover(self, state, now):
        return READY


READY = False


class NotAPolicy:
    pass


def test_a_threshold_policy_from_config_deactivates_after_n_failures_and_cools_down():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={
            "deactivation": {"retry_limit": 10}, "recovery": {"probe_interval": None},
            "policy": {"connector": "threshold", "config": {"failure_threshold": 2, "cooldown": "30s"}}})
        clock, events = FakeClock(), []
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append) as c:
            x.always(Error(500))
            assert [served(c), served(c)] == ["y", "y"]  # each failed over after x's 500
            (down,) = [e for e in events if e.type == "model_deactivated"]
            assert down.model == "x/m" and down.reason == "retry_limit" and "2 consecutive failures" in down.detail
            assert down.until == pytest.approx(clock() + 30.0)
            sent = len(x.requests)
            assert served(c) == "y" and len(x.requests) == sent  # on standby: not asked
            x.reset()
            clock.advance(30.0)
            assert served(c) == "x"  # the trial after the policy's cooldown


def test_one_failure_is_not_enough_for_a_threshold_of_two():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={"deactivation": {"retry_limit": 10},
                                               "policy": {"connector": "threshold", "config": {"failure_threshold": 2}}})
        with modelmesh.MeshClient(config, clock=FakeClock(), environ={}) as c:
            x.script(Error(500))
            assert served(c) == "y"
            assert served(c) == "x"  # one failure, then a success: still active


def test_a_subclass_overriding_get_reason_takes_a_model_out_at_its_first_500():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={"policy": "test_cdk_bases:OneStrike",
                                               "recovery": {"probe_interval": None}})
        clock, events = FakeClock(), []
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append) as c:
            x.script(Error(500))
            assert served(c) == "y"
            (down,) = [e for e in events if e.type == "model_deactivated"]
            assert down.reason == "provider_outage" and down.detail == "OneStrike: provider_outage"
            assert served(c) == "y" and len(x.requests) == 1  # the built-in retry_limit (3) would have kept it
            # every other method is inherited: recovery is the pool's own (initial cooldown 5s)
            clock.advance(5.0)
            assert served(c) == "x"


def test_without_the_subclass_the_same_500_leaves_the_model_active():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y, \
            modelmesh.MeshClient(two_providers(x, y), clock=FakeClock(), environ={}) as c:
        x.script(Error(500))
        assert served(c) == "y"
        assert served(c) == "x"


def test_a_subclass_overriding_the_recovery_schedule_wins_over_the_pools_cooldown():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={
            "deactivation": {"retry_limit": 1},
            "recovery": {"cooldown": "10m", "initial_cooldown": "10m", "probe_interval": None},
            "policy": {"connector": "test_cdk_bases:BackInFive"}})
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}) as c:
            x.script(Error(500))
            assert served(c) == "y"
            clock.advance(4.9)
            assert served(c) == "y"
            clock.advance(0.1)
            assert served(c) == "x"


def test_a_subclass_overriding_should_recover_brings_a_model_back_by_a_probe():
    global READY
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={
            "deactivation": {"retry_limit": 1},
            "recovery": {"cooldown": "1h", "initial_cooldown": "1h", "probe_interval": None},
            "policy": "test_cdk_bases:ProbeWhenAsked"})
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={},
                                  probe_check_interval=3600.0) as c:
            x.script(Error(500))
            assert served(c) == "y"
            assert c.run_probes() == 0  # not asked for yet
            READY = True
            try:
                assert c.run_probes() == 1  # a one-token probe of x/m, which passes
            finally:
                READY = False
            assert served(c) == "x"  # back long before the hour's cooldown


def test_a_policy_class_in_a_policies_list_is_made_once_and_used():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={"deactivation": {"policies": ["test_cdk_bases:OneStrike"]}})
        with modelmesh.MeshClient(config, clock=FakeClock(), environ={}) as c:
            x.script(Error(500))
            assert [served(c), served(c)] == ["y", "y"]


def test_the_base_class_alone_changes_nothing():
    policy = BaseRotationPolicy()
    decision = Deactivation(reason=DeactivationReason.RETRY_LIMIT)
    assert policy.should_deactivate(None, 0.0) is None and policy.get_reason(None, 0.0) is None
    assert policy.recover_at(None, decision, 0.0) is None
    assert repr(policy) == "BaseRotationPolicy()"


def test_threshold_parameters_are_checked_naming_them():
    with pytest.raises(ValueError, match="failure_threshold"):
        ThresholdRotationPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="error_rate_threshold"):
        ThresholdRotationPolicy(error_rate_threshold=2)
    with pytest.raises(ValueError, match="cooldown"):
        ThresholdRotationPolicy(cooldown="soon")
    with pytest.raises(ValueError, match="at least one threshold"):
        ThresholdRotationPolicy(failure_threshold=None)


def test_a_lifetime_cap_is_not_lifted_by_the_threshold_cooldown():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={"recovery": {"probe_interval": None},
                                               "policy": {"connector": "threshold",
                                                          "config": {"request_limit": 2, "cooldown": 1}}})
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}) as c:
            assert [served(c), served(c), served(c)] == ["x", "x", "y"]
            clock.advance(3600)
            assert served(c) == "y"


@pytest.mark.parametrize(("policy", "path", "words"), [
    ({"connector": "test_cdk_bases:NotAPolicy"}, "pools.chat.rotation.policy.connector", "not a rotation policy"),
    ({"connector": "no_such_module:P"}, "pools.chat.rotation.policy.connector", "cannot load"),
    ({"connector": "threshold", "config": {"failure_threshold": -1}}, "pools.chat.rotation.policy.config",
     "failure_threshold"),
    ({"connector": "threshold", "config": {"colldown": 5}}, "pools.chat.rotation.policy.config", "colldown"),
    ({"connector": "nonsense"}, "pools.chat.rotation.policy.connector", "threshold"),
    ({"config": {}}, "pools.chat.rotation.policy.connector", "required"),
])
def test_a_bad_rotation_policy_is_a_configuration_error_naming_its_path(policy, path, words):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y, rotation={"policy": policy})
        with pytest.raises(ConfigurationError) as info:
            modelmesh.build(config, environ={})
        (problem,) = info.value.problems
        assert problem.startswith(path + ":") and words in problem


def test_a_routing_level_policy_reaches_every_pool():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y)
        config["routing"] = {"rotation": {"policy": "test_cdk_bases:OneStrike"}}
        with modelmesh.MeshClient(config, clock=FakeClock(), environ={}) as c:
            x.script(Error(500))
            assert [served(c), served(c)] == ["y", "y"]


# -- storage ----------------------------------------------------------------------------------------

SHARED: dict[str, bytes] = {}  # one "backend" for every DictStore of this process


class DictStore(KeyValueStorage):
    """A user's backend: only the four primitives, over a module-level dict."""

    def __init__(self, namespace: str = "", **options) -> None:
        super().__init__(**options)
        self.namespace = namespace

    def _get(self, key):
        return SHARED.get(self.namespace + key)

    def _set(self, key, value):
        SHARED[self.namespace + key] = value

    def _delete(self, key):
        return SHARED.pop(self.namespace + key, None) is not None

    def _keys(self, prefix):
        return [k[len(self.namespace):] for k in list(SHARED) if k.startswith(self.namespace + prefix)]


def test_two_clients_share_a_standby_through_a_key_value_storage_subclass():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y)
        config["storage"] = {"connector": "test_cdk_bases:DictStore", "config": {"namespace": "share-test/"},
                             "persistence": {"sync_policy": "immediate"}}
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert type(one.transport.shared.storage) is DictStore
            assert served(two) == "x"
            x.always(Error(401, code="invalid_api_key"))
            assert served(one) == "y"
            sent = len(x.requests)
            assert served(two) == "y"
            assert len(x.requests) == sent  # two knew from the store before its request
            assert any(k.startswith("share-test/e/health/") for k in SHARED)
            assert one.status()["storage"]["connector"] == "DictStore"


@pytest.mark.parametrize(("storage", "path", "words"), [
    ({"connector": "test_cdk_bases:NotAPolicy"}, "storage.connector", "not a storage class"),
    ({"connector": "no_such_module:Store"}, "storage.connector", "cannot load"),
    ({"connector": "test_cdk_bases:DictStore", "config": {"colour": "blue"}}, "storage.config", "colour"),
    ({"connector": "test_cdk_bases:DictStore", "config": {"lease": 0}}, "storage.config", "lease"),
])
def test_a_bad_storage_class_is_a_configuration_error_naming_its_path(storage, path, words):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y)
        config["storage"] = storage
        with pytest.raises(ConfigurationError) as info:
            modelmesh.build(config, environ={})
        (problem,) = info.value.problems
        assert problem.startswith(path + ":") and words in problem


def test_the_key_value_storage_defaults_keep_entries_in_this_object():
    store = KeyValueStorage()
    store.save("k", b"v")
    assert store.load("k") == b"v" and store.list() == ["k"]
    assert store.add("n", 2, expires_at=4e9) == 2.0
    held = store.acquire("job", 0)
    assert held is not None and store.is_locked("job") and store.release(held)


# -- discovery: health checks -----------------------------------------------------------------------

DOWN: set[str] = set()  # providers NotByHttp says are down


class NotByHttp(BaseDiscovery):
    """Overrides one method: the verdict comes from elsewhere (here a set), no HTTP is sent."""

    def probe(self, check):
        assert "sk-" not in repr(check)  # the provider's key is in the check, never in its repr
        return check.provider not in DOWN


class ListsItsModel(BaseDiscovery):
    """Overrides one method: a 2xx listing passes only if it still lists the configured model."""

    def judge(self, check, status, headers, body):
        listed = [m.get("id") for m in json.loads(body).get("data", [])] if 200 <= status < 300 else []
        return check.target.model in listed


class Raises(BaseDiscovery):
    def probe(self, check):
        raise RuntimeError("backend unreachable")


def monitored(x, y, health, **client):
    config = two_providers(x, y)
    config["discovery"] = {"health": {"enabled": True, "interval": "10s", "failure_threshold": 2,
                                      "providers": ["x"], **health}}
    clock = FakeClock()
    return modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}, probe_check_interval=3600.0,
                                **client), clock


def gets(up):
    return [r.path for r in up.requests if r.method == "GET"]


def test_a_discovery_subclass_overriding_probe_is_what_the_health_monitor_uses():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        client, clock = monitored(x, y, {"connector": "test_cdk_bases:NotByHttp"})
        DOWN.add("x")
        try:
            with client:
                assert type(client.transport.driver.discovery) is NotByHttp
                for _ in range(2):
                    clock.advance(10)
                    assert client.run_probes() == 1
                status = client.status()["providers"]["x"]
                assert status["up"] is False and status["reason"] == "health check failed"
                assert served(client) == "y"
                assert gets(x) == []  # the verdicts were the class's own: nothing was sent to x
                DOWN.discard("x")
                clock.advance(10)
                assert client.run_probes() == 1  # the recovery probe: the class says up
                assert client.status()["providers"]["x"]["up"] is True
                assert served(client) == "x"
        finally:
            DOWN.clear()


def test_a_discovery_subclass_overriding_judge_fails_a_listing_without_the_model():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        client, clock = monitored(x, y, {"connector": "test_cdk_bases:ListsItsModel"})
        with client:
            clock.advance(10)
            assert client.run_probes() == 1
            assert client.status()["providers"]["x"]["up"] is True  # the listing names m
            x.models = ("other",)
            for _ in range(2):
                clock.advance(10)
                client.run_probes()
            assert gets(x) == ["/v1/models"] * 3  # still the built-in request: only the verdict changed
            assert client.status()["providers"]["x"]["up"] is False


def test_http_health_discovery_by_configuration_checks_its_own_path():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        client, clock = monitored(x, y, {"connector": "http", "config": {"path": "/models/m"}, "failure_threshold": 1})
        with client:
            clock.advance(10)
            assert client.run_probes() == 1
            assert gets(x) == ["/v1/models/m"] and client.status()["providers"]["x"]["up"] is True
            headers = x.requests[0].headers
            assert headers.get("Authorization") == "Bearer sk-x-0123456789abcdef"  # the provider's own credentials
            x.models = ("other",)  # now a 404
            clock.advance(10)
            assert client.run_probes() == 1
            assert client.status()["providers"]["x"]["up"] is False
            x.models = ("m",)
            clock.advance(10)
            assert client.run_probes() == 1
            assert gets(x) == ["/v1/models/m"] * 3 and client.status()["providers"]["x"]["up"] is True


def test_http_health_discovery_can_count_other_statuses_as_healthy():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        client, clock = monitored(x, y, {"connector": "http", "failure_threshold": 1,
                                         "config": {"path": "/health", "healthy_statuses": [200, 404]}})
        with client:
            clock.advance(10)
            assert client.run_probes() == 1
            assert gets(x) == ["/v1/health"]  # the fake has no /health: a 404, here counted healthy
            assert client.status()["providers"]["x"]["up"] is True


def test_a_check_whose_probe_raises_counts_as_failed():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        client, clock = monitored(x, y, {"connector": "test_cdk_bases:Raises", "failure_threshold": 1})
        with client:
            clock.advance(10)
            assert client.run_probes() == 1
            assert client.status()["providers"]["x"]["up"] is False and gets(x) == []


async def _async_monitor(x, y):
    config = two_providers(x, y)
    config["discovery"] = {"health": {"enabled": True, "interval": "10s", "failure_threshold": 1,
                                      "providers": ["x"], "connector": "test_cdk_bases:NotByHttp"}}
    clock = FakeClock()
    async with modelmesh.AsyncMeshClient(config, clock=clock, environ={}, probe_check_interval=3600.0) as client:
        clock.advance(10)
        assert await client.run_probes() == 1
        return client.status()["providers"]["x"]["up"]


def test_the_async_client_uses_the_discovery_class_too():
    import asyncio

    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        DOWN.add("x")
        try:
            assert asyncio.run(_async_monitor(x, y)) is False
        finally:
            DOWN.clear()
        assert gets(x) == []


def test_http_health_discovery_settings_are_checked():
    with pytest.raises(ValueError, match="path"):
        HttpHealthDiscovery(path="health")
    with pytest.raises(TypeError, match="method"):
        HttpHealthDiscovery(method="HEAD")
    with pytest.raises(ValueError, match="healthy_statuses"):
        HttpHealthDiscovery(healthy_statuses=[True])


@pytest.mark.parametrize(("health", "path", "words"), [
    ({"connector": "test_cdk_bases:NotAPolicy"}, "discovery.health.connector", "not a health check class"),
    ({"connector": "no_such_module:Check"}, "discovery.health.connector", "cannot load"),
    ({"connector": "http", "config": {"path": "health"}}, "discovery.health.config", "path"),
    ({"connector": "test_cdk_bases:NotByHttp", "config": {"x": 1}}, "discovery.health.config", "takes no arguments"),
    ({"config": {"path": "/health"}}, "discovery.health.config", "connector"),
    ({"connector": "nonsense"}, "discovery.health.connector", "http"),
])
def test_a_bad_discovery_class_is_a_configuration_error_naming_its_path(health, path, words):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y)
        config["discovery"] = {"health": health}
        with pytest.raises(ConfigurationError) as info:
            modelmesh.build(config, environ={})
        (problem,) = info.value.problems
        assert problem.startswith(path + ":") and words in problem


def test_a_storage_class_gets_the_locking_retry_interval_unless_its_config_gives_one():
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = two_providers(x, y)
        config["storage"] = {"connector": "test_cdk_bases:DictStore", "locking": {"retry_interval": "200ms"}}
        built = modelmesh.build(config, environ={})
        assert type(built.storage) is DictStore and built.storage.retry_interval == 0.2
        built.storage.close()
        config["storage"]["config"] = {"retry_interval": 0.5}
        built = modelmesh.build(config, environ={})
        assert built.storage.retry_interval == 0.5
        built.storage.close()
