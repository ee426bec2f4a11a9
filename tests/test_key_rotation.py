"""Provider keys: several keys with `auth.key_rotation` (a throttled key hands over to the
next on the same model, a refused key is retired, the provider goes down only when none is
left), keys re-read from the secret store every `cache_ttl`, and no key in any event,
error or repr. The key ring's table is tested pair by pair."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import modelmesh
from modelmesh import errors as E
from modelmesh._core._call import Attempt, ResponseReceived, Succeeded
from modelmesh._core._keys import TRANSITIONS, KeyEffect, KeyInput, KeyRing, KeyState, fingerprint
from modelmesh.cdk import BaseSecretStore
from modelmesh.testing import Error, FakeClock, FakeUpstream

from core_helpers import T0, make_mesh, ok_body, provider

K1, K2, K3 = "sk-first-key-0123456789", "sk-second-key-0123456789", "sk-third-key-0123456789"
MSG = [{"role": "user", "content": "hi"}]


def _config(url: str, keys: Any, *, rotation: bool = True, secrets: dict | None = None, **auth: Any) -> dict:
    cfg: dict[str, Any] = {
        "providers": {"p": {"connector": "openai-compatible", "config": {
            "base_url": url, "auth": {"api_keys": keys, "key_rotation": rotation, **auth},
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}},
        "pools": {"chat": {"models": ["p/m"], "rotation": {"recovery": {"cooldown": "60s"}}}},
    }
    if secrets is not None:
        cfg["secrets"] = secrets
    return cfg


def _sent_keys(up: FakeUpstream) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in up.requests]


def _client(cfg: dict, clock: FakeClock, events: list) -> modelmesh.MeshClient:
    return modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append)


# -- a throttled key hands over to the next ---------------------------------------------------

@pytest.mark.parametrize("error", [Error(429), Error(429, code="insufficient_quota")])
def test_a_throttled_key_hands_over_to_the_next_key_on_the_same_model(error: Error) -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2]), clock, events) as client:
        up.script(error)
        r = client.chat.completions.create(model="chat", messages=MSG)
        again = client.chat.completions.create(model="chat", messages=MSG)  # the ring stays on key 2
        assert _sent_keys(up) == [K1, K2, K2]
        assert client.status()["pools"]["chat"][0]["status"] == "active"  # no standby: the key took the blame
    assert r.choices[0].message.content and len(again.mesh.attempts) == 1 and len(r.mesh.attempts) == 2
    rotated = [e for e in events if e.type == "key_rotated"]
    assert len(rotated) == 1 and (rotated[0].from_key, rotated[0].to_key) == (0, 1)
    assert rotated[0].fingerprint == fingerprint(K2)
    assert not [e for e in events if e.type in ("model_deactivated", "provider_deactivated")]


def test_when_every_key_is_throttled_the_model_goes_on_standby_as_before() -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2]), clock, events) as client:
        up.always(Error(429))
        with pytest.raises(E.RateLimitError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up)[:2] == [K1, K2]
    assert K1 not in str(info.value) and K2 not in str(info.value)
    assert any(e.type == "model_deactivated" for e in events)


def test_without_key_rotation_a_second_key_is_a_configuration_problem() -> None:
    with pytest.raises(E.ConfigurationError) as info:
        modelmesh.MeshClient(_config("http://127.0.0.1:9/v1", [K1, K2], rotation=False), environ={})
    assert "providers.p.config.auth.api_keys: 2 keys given but auth.key_rotation is off" in str(info.value)
    assert K1 not in str(info.value) and K2 not in str(info.value)


# -- a refused key is retired ---------------------------------------------------------------------

def test_an_auth_failure_retires_the_key_and_the_provider_stays_up() -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2, K3]), clock, events) as client:
        up.script(Error(401, code="invalid_api_key"))
        client.chat.completions.create(model="chat", messages=MSG)
        client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K2, K2]
        assert client.status()["providers"]["p"]["up"]
    retired = [e for e in events if e.type == "key_retired"]
    assert len(retired) == 1 and retired[0].key == 0 and retired[0].remaining == 2 and retired[0].reason == "auth"
    assert not any(e.type == "provider_deactivated" for e in events)


def test_a_retired_key_is_not_used_again_when_a_later_key_is_throttled() -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2, K3]), clock, events) as client:
        up.script(Error(401), Error(429))
        client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K2, K3]


def test_with_every_key_retired_the_provider_is_down() -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2]), clock, events) as client:
        up.always(Error(401, code="invalid_api_key"))
        with pytest.raises(E.AuthenticationError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K2]
        assert not client.status()["providers"]["p"]["up"]
    assert [e.remaining for e in events if e.type == "key_retired"] == [1, 0]
    down = [e for e in events if e.type == "provider_deactivated"]
    assert len(down) == 1 and down[0].reason == "auth_failure"
    text = str(info.value) + repr(info.value) + repr(events)
    assert K1 not in text and K2 not in text


def test_a_provider_brought_back_by_hand_gets_its_keys_back() -> None:
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up, _client(_config(up.url, [K1, K2]), clock, events) as client:
        up.script(Error(401), Error(401))
        with pytest.raises(E.AuthenticationError):
            client.chat.completions.create(model="chat", messages=MSG)
        client.reactivate(provider="p")
        client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K2, K2]  # the ring stayed on the last key, now active again
    assert client.core.providers["p"].keys.active == 2


# -- keys re-read from the store after cache_ttl ----------------------------------------------------

def _env_file(path: Path, **values: str) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    stamp = path.stat().st_mtime_ns + 1_000_000 if path.exists() else 0
    os.utime(path, ns=(stamp, stamp))  # a rewrite within one clock tick still counts as a change


def test_a_key_changed_in_the_store_is_used_after_cache_ttl_and_not_before(tmp_path: Path) -> None:
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, OPENAI_KEY=K1)
    secrets = {"store": "dotenv", "path": str(secrets_file), "cache_ttl": "300s"}
    clock, events = FakeClock(), []
    cfg = _config("", "${secrets:openai-key}", rotation=False, secrets=secrets)
    with FakeUpstream("openai") as up:
        cfg["providers"]["p"]["config"]["base_url"] = up.url
        with _client(cfg, clock, events) as client:
            client.chat.completions.create(model="chat", messages=MSG)
            _env_file(secrets_file, OPENAI_KEY=K2)
            clock.advance(299)
            client.chat.completions.create(model="chat", messages=MSG)  # still within the TTL
            clock.advance(1)
            client.chat.completions.create(model="chat", messages=MSG)
            client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K1, K2, K2]
    reloaded = [e for e in events if e.type == "keys_reloaded"]
    assert len(reloaded) == 1 and reloaded[0].fingerprint == fingerprint(K2)
    assert K2 in client.core.secret_values  # the new key is redacted like the old one


def test_the_store_is_read_at_most_once_per_ttl(tmp_path: Path) -> None:
    reads: list[str] = []

    class CountingStore(BaseSecretStore):
        def _resolve(self, name: str) -> str | None:
            reads.append(name)
            return K1 if name == "k" else None

    clock = FakeClock()
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, "${secrets:k}", rotation=False,
                      secrets={"store": "memory", "values": {"k": K1}, "cache_ttl": "300s"})
        client = modelmesh.MeshClient(cfg, clock=clock, environ={})
        refresher = client.transport.driver.secrets
        refresher.store = CountingStore()
        for _ in range(5):
            client.chat.completions.create(model="chat", messages=MSG)
        assert reads == []
        clock.advance(301)
        for _ in range(5):
            client.chat.completions.create(model="chat", messages=MSG)
        client.close()
    assert reads == ["k"]


def test_a_secret_gone_from_the_store_keeps_its_last_value(tmp_path: Path, caplog: Any) -> None:
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, OPENAI_KEY=K1)
    clock = FakeClock()
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, "${secrets:openai-key}", rotation=False,
                      secrets={"store": "dotenv", "path": str(secrets_file), "cache_ttl": "60s"})
        with _client(cfg, clock, []) as client:
            _env_file(secrets_file, OTHER="x")
            clock.advance(61)
            client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1]
    assert "no longer in the store" in caplog.text and K1 not in caplog.text


def test_reload_on_rotation_picks_up_a_replaced_key_when_the_old_one_is_refused(tmp_path: Path) -> None:
    """Both keys come from the store; key 1 is replaced there and refused upstream: the
    refusal makes the next request re-read the store, before cache_ttl."""
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, A=K1, B=K2)
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, ["${secrets:A}", "${secrets:B}"],
                      secrets={"store": "dotenv", "path": str(secrets_file), "cache_ttl": "1h"})
        with _client(cfg, clock, events) as client:
            _env_file(secrets_file, A=K3, B=K2)
            up.script(Error(401))
            client.chat.completions.create(model="chat", messages=MSG)   # K1 refused -> K2
            client.chat.completions.create(model="chat", messages=MSG)   # re-read: K3 replaces K1
            assert client.core.providers["p"].keys.values() == (K3, K2)
            up.script(Error(429))
            client.chat.completions.create(model="chat", messages=MSG)   # K2 throttled -> K3 (new, active)
        assert _sent_keys(up) == [K1, K2, K2, K2, K3]


def test_without_reload_on_rotation_the_store_waits_for_cache_ttl(tmp_path: Path) -> None:
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, A=K1, B=K2)
    clock = FakeClock()
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, ["${secrets:A}", "${secrets:B}"],
                      secrets={"store": "dotenv", "path": str(secrets_file), "cache_ttl": "1h",
                               "reload_on_rotation": False})
        with _client(cfg, clock, []) as client:
            _env_file(secrets_file, A=K3, B=K2)
            up.script(Error(401))
            client.chat.completions.create(model="chat", messages=MSG)
            client.chat.completions.create(model="chat", messages=MSG)
            assert client.core.providers["p"].keys.values() == (K1, K2)


def test_a_new_key_brings_back_a_provider_whose_keys_were_all_refused(tmp_path: Path) -> None:
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, OPENAI_KEY=K1)
    clock, events = FakeClock(), []
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, "${secrets:openai-key}", rotation=False,
                      secrets={"store": "dotenv", "path": str(secrets_file), "cache_ttl": "60s"})
        with _client(cfg, clock, events) as client:
            up.script(Error(401))
            with pytest.raises(E.AuthenticationError):
                client.chat.completions.create(model="chat", messages=MSG)
            _env_file(secrets_file, OPENAI_KEY=K2)
            clock.advance(60)
            client.chat.completions.create(model="chat", messages=MSG)
        assert _sent_keys(up) == [K1, K2]
    assert any(e.type == "provider_recovered" for e in events)


# -- the key ring, pure ------------------------------------------------------------------------------

def test_every_state_and_input_pair_is_in_the_table() -> None:
    assert set(TRANSITIONS) == {(s, i) for s in KeyState for i in KeyInput}


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(list(KeyInput))), max_size=30))
def test_the_ring_follows_its_table_and_never_sends_a_retired_key_while_one_is_active(steps: list) -> None:
    ring = KeyRing("p", ["a", "b", "c", "d"])
    for index, what in steps:
        before, current = ring.state(index), ring.current
        ring.feed(index, what, 0.0)
        end, effect = TRANSITIONS[(before, what)]
        assert ring.state(index) is end
        if (effect is KeyEffect.NONE or index != current) and ring.state(current) is KeyState.ACTIVE:
            assert ring.current == current  # the ring moves only for the key in use
        if ring.active:
            assert ring.state(ring.current) is KeyState.ACTIVE  # a live key is sent while there is one
        else:
            assert ring.current == current  # none left: the last one stays, for probes
    assert all(k not in repr(ring) for k in ("'a'", "'b'", "'c'", "'d'"))


def test_a_key_restored_after_all_were_retired_is_the_one_sent() -> None:
    ring = KeyRing("p", [K1, K2])
    ring.feed(1, KeyInput.REFUSED, 0.0)
    ring.feed(0, KeyInput.REFUSED, 0.0)
    assert ring.active == 0 and ring.key == K1
    events = ring.feed(1, KeyInput.RESTORED, 1.0)
    assert ring.key == K2 and events[0].type == "key_rotated" and events[0].reason == "restored"


def test_replace_keeps_known_keys_state_and_the_key_in_use() -> None:
    ring = KeyRing("p", [K1, K2])
    ring.feed(0, KeyInput.REFUSED, 0.0)
    assert ring.key == K2
    events = ring.replace([K1, K2, K3], 1.0)
    assert ring.key == K2 and ring.state(0) is KeyState.RETIRED and ring.state(2) is KeyState.ACTIVE
    assert events[0].type == "keys_reloaded" and K3 not in repr(events)
    assert ring.replace([K1, K2, K3], 2.0) == []


def test_no_key_shows_in_the_reprs_of_what_holds_keys(tmp_path: Path) -> None:
    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, A=K1, B=K2)
    with FakeUpstream("openai") as up:
        cfg = _config(up.url, ["${secrets:A}", "${secrets:B}"],
                      secrets={"store": "dotenv", "path": str(secrets_file)})
        with modelmesh.MeshClient(cfg, environ={}) as client:
            runtime = client.core.providers["p"]
            held = [client, client.core, client.config, runtime, runtime.keys, runtime.config.auth,
                    client.transport.driver.secrets, client.transport.driver.secrets.store]
            text = " ".join(repr(x) for x in held)
    assert K1 not in text and K2 not in text and "KeyRing(provider='p', keys=2, current=0)" in text


def test_the_async_client_re_reads_keys_too(tmp_path: Path) -> None:
    import asyncio

    secrets_file = tmp_path / "keys.env"
    _env_file(secrets_file, OPENAI_KEY=K1)
    clock = FakeClock()

    async def run(url: str) -> None:
        cfg = _config(url, "${secrets:openai-key}", rotation=False,
                      secrets={"store": "dotenv", "path": str(secrets_file), "cache_ttl": "10s"})
        async with modelmesh.AsyncMeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}) as client:
            await client.chat.completions.create(model="chat", messages=MSG)
            _env_file(secrets_file, OPENAI_KEY=K2)
            clock.advance(10)
            await client.chat.completions.create(model="chat", messages=MSG)

    with FakeUpstream("openai") as up:
        asyncio.run(run(up.url))
        assert _sent_keys(up) == [K1, K2]


# -- the core alone: inputs in, decisions out ------------------------------------------------------------

def test_the_core_decides_key_handovers_from_fed_outcomes_alone() -> None:
    """No shell: a 429 then a 401 are fed; the core's next Attempts carry the next keys, and
    set_api_keys hands it a key read from a store."""
    core = make_mesh({"p": provider(["m"], auth={"api_keys": [K1, K2, K3], "key_rotation": True})},
                     pools={"chat": {"models": ["p/m"]}})
    call = core.start("chat", {"messages": MSG}, model="chat", now=T0)
    sent = []
    for status, body in ((429, b"{}"), (401, b"{}"), (200, ok_body())):
        action = call.next_action(T0)
        assert isinstance(action, Attempt) and action.ref == "p/m"
        sent.append(action.request.headers["Authorization"])
        call.feed(ResponseReceived(status=status, headers={}, body=body), T0)
    assert isinstance(call.next_action(T0), Succeeded)
    assert sent == [f"Bearer {k}" for k in (K1, K2, K3)]
    kinds = [e.type for e in call.drain_events() if e.type.startswith("key")]
    assert kinds == ["key_rotated", "key_retired", "key_rotated"]
    events = core.set_api_keys("p", [K1, "sk-fresh-key-0123456789", K3], now=T0 + 1)
    assert [e.type for e in events] == ["keys_reloaded"] and core.providers["p"].keys.key == K3
    assert "sk-fresh-key-0123456789" in core.secret_values
