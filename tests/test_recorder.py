"""Record and replay: a live session's every core input, written by the `recorder` sink and
replayed offline into a fresh core to the same decisions and events.

The sessions run the real clients (both shells) over loopback fakes: failovers, a standby
by Retry-After, a model probed back, a stream cut after content and recovered elsewhere,
several threads at once, and health learnt from another process through shared storage.
The mutation tests change one recorded outcome and show the replay notices, so a replay
test can fail.
"""
from __future__ import annotations

import base64
import json
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelmesh
from modelmesh import ConfigurationError
from modelmesh.testing import CutStream, Error, FakeClock, FakeUpstream, Reply, assert_replays
from modelmesh.transports.replay import ByteMask, ReplayDiverged, mask_text, replay

from shells import SHELLS, make_client

KEY = "sk-recorder-secret-0123456789abcdef"
PROMPT = "héllo wörld 😀 the secret plan"


def prov(url, model):
    return {"connector": "openai", "config": {"base_url": url, "auth": {"api_key": KEY},
                                              "models": [{"id": model, "capabilities": ["chat-completion"]}]}}


def config(a, b, path, **recorder):
    order = ["a/m1", "b/m2"]
    return {"providers": {"a": prov(a.url, "m1"), "b": prov(b.url, "m2")},
            "pools": {"p1": {"models": order, "strategy": "priority", "rotation": {
                "selection": {"model_priority": order}, "deactivation": {"retry_limit": 1},
                "recovery": {"cooldown": "1h", "initial_cooldown": "1h", "probe_interval": "30s"}}}},
            "routing": {"retry": {"same_model_retries": 0}},
            "observability": {"connector": "recorder", "config": {"path": str(path), **recorder}}}


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="a", models=["m1"]) as a, FakeUpstream("openai", name="b", models=["m2"]) as b:
        yield a, b


def ask(client, stream=False, text=PROMPT):
    return client.chat.completions.create(model="p1", messages=[{"role": "user", "content": text}], stream=stream)


def probes(client):
    if hasattr(client, "run"):  # the async client, seen through the test adapter
        return client.run(client.client.run_probes())
    return client.run_probes()


def incident(shell, ups, path, **recorder):
    """A session with every kind of input: returns the config it ran with and its events."""
    a, b = ups
    cfg = config(a, b, path, **recorder)
    clock = FakeClock()
    events = []
    a.script(CutStream(after_chunks=2), Reply(text="a is back"), Error(500))
    client = make_client(shell, cfg, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append,
                         probe_check_interval=3600.0)
    with client:
        text = "".join(c.choices[0].delta.content or "" for c in ask(client, stream=True))  # cut on a, ends on b
        assert text.startswith("Hel")
        assert ask(client).mesh.provider == "b"  # a is on standby
        clock.advance(31)
        assert probes(client) == 1  # a probed back ("a is back")
        assert ask(client).mesh.provider == "b"  # a answers 500: failover
        clock.advance(31)
        assert probes(client) == 1
        assert ask(client).mesh.provider == "a"
        client.deactivate("a/m1")
        assert ask(client).mesh.provider == "b"
        client.reactivate("a/m1")
        client.status()
    return cfg, events


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path, entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


@pytest.mark.parametrize("shell", SHELLS)
def test_a_recorded_incident_replays_to_the_same_decisions_and_events(shell, ups, tmp_path):
    path = tmp_path / "incident.jsonl"
    cfg, events = incident(shell, ups, path)
    done = replay(path, cfg)
    kinds = {e.type for e in events}
    assert {"attempt_failed", "model_deactivated", "model_recovered", "request_completed"} <= kinds
    assert done.calls == 5 and done.decisions > 10
    assert {"start", "next", "feed", "due_probes", "probe_result", "deactivate_model", "reactivate_model",
            "snapshot"} <= set(done.doors)
    streamed = [e for e in read(path) if e.get("in", {}).get("t") == "data"]
    assert len(streamed) >= 4  # the cut stream's chunks and the recovered one's
    assert done.events == sum(len(e.get("events", ())) for e in read(path))
    assert done.events >= len(events)


def test_the_pytest_helper_replays_an_incident_in_three_lines(ups, tmp_path):
    path = tmp_path / "incident.jsonl"
    cfg, _ = incident("sync", ups, path)
    (tmp_path / "mesh.json").write_text(json.dumps(cfg))
    done = assert_replays(path, tmp_path / "mesh.json")
    assert done.calls == 5


@pytest.mark.parametrize("line_of", ["a 500 becomes a 200", "a stream's last content chunk is lost", "a probe fails"])
def test_a_changed_outcome_makes_the_replay_diverge(line_of, ups, tmp_path):
    path = tmp_path / "incident.jsonl"
    cfg, _ = incident("sync", ups, path)
    entries = read(path)
    if line_of == "a 500 becomes a 200":
        i = next(i for i, e in enumerate(entries) if e.get("in", {}).get("status") == 500)
        entries[i]["in"]["status"] = 200
    elif line_of == "a stream's last content chunk is lost":
        i = max(i for i, e in enumerate(entries) if e.get("in", {}).get("t") == "data"
                and b'"content":"x' in base64.b64decode(e["in"]["data"]["$b"]))
        entries[i]["in"]["data"] = {"$b": base64.b64encode(b"").decode()}
    else:
        i = next(i for i, e in enumerate(entries) if e.get("door") == "probe_result")
        entries[i]["kwargs"]["ok"] = False
    write(path, entries)
    with pytest.raises(ReplayDiverged) as caught:
        replay(path, cfg)
    assert caught.value.line >= i + 1
    assert "recorded:" in str(caught.value) and "replayed:" in str(caught.value)


def test_another_seed_makes_a_jittered_session_diverge(ups, tmp_path):
    """The seed is an input: the same outcomes under other random draws decide differently."""
    a, b = ups
    path = tmp_path / "jitter.jsonl"
    cfg = config(a, b, path)
    cfg["routing"] = {"retry": {"same_model_retries": 2}}
    a.script(Error(500), Error(500))
    clock = FakeClock()
    with modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}) as client:
        client.chat.completions.create(model="a/m1", messages=[{"role": "user", "content": "hi"}])  # retried twice
    replay(path, cfg)
    entries = read(path)
    entries[0]["seed"] += 1
    write(path, entries)
    with pytest.raises(ReplayDiverged, match="delay"):
        replay(path, cfg)


def test_payloads_and_keys_are_redacted_by_default_and_kept_when_asked(ups, tmp_path):
    redacted, plain = tmp_path / "r.jsonl", tmp_path / "p.jsonl"
    incident("sync", ups, redacted)
    for up in ups:
        up.requests.clear()
    incident("sync", ups, plain, redact_payloads=False)
    for path in (redacted, plain):
        text = path.read_text()
        assert KEY not in text
        decoded = "".join(base64.b64decode(v).decode("utf-8", "replace")
                          for v in _b64_values(read(path)))
        assert KEY not in decoded
    r, p = redacted.read_text(), plain.read_text()
    assert "héllo" not in r and "secret plan" not in r and mask_text(PROMPT) in r
    assert "héllo" in p and "secret plan" in p
    r_bytes = "".join(base64.b64decode(v).decode("utf-8", "replace") for v in _b64_values(read(redacted)))
    p_bytes = "".join(base64.b64decode(v).decode("utf-8", "replace") for v in _b64_values(read(plain)))
    assert "Hello from" in p_bytes and "Hello from" not in r_bytes
    assert '"finish_reason":"stop"' in r_bytes.replace(" ", "")  # what routing reads is kept


def _b64_values(entries):
    stack = list(entries)
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if set(v) == {"$b"}:
                yield v["$b"]
            else:
                stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def test_threads_sharing_a_client_are_recorded_in_the_order_the_core_saw(ups, tmp_path):
    a, b = ups
    path = tmp_path / "threads.jsonl"
    cfg = config(a, b, path)
    a.always(lambda req: Error(503) if random.Random(req.json["messages"][0]["content"]).random() < 0.3 else Reply())
    errors = []
    with modelmesh.MeshClient(cfg, environ={}, probe_check_interval=3600.0) as client:
        def work(n):
            try:
                for i in range(8):
                    ask(client, stream=i % 3 == 0, text=f"thread {n} request {i}")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    done = replay(path, cfg)
    assert done.calls == 48


def test_health_learnt_from_another_process_is_recorded_and_replayed(ups, tmp_path):
    a, b = ups
    path = tmp_path / "shared.jsonl"
    store = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}, "persistence": {"sync_policy": "immediate"}}
    cfg = dict(config(a, b, path), storage=store)
    other = {k: v for k, v in cfg.items() if k != "observability"}
    with modelmesh.MeshClient(cfg, environ={}, probe_check_interval=3600.0) as recorded, \
            modelmesh.MeshClient(other, environ={}, probe_check_interval=3600.0) as elsewhere:
        assert ask(recorded).mesh.provider == "a"
        a.always(Error(401, code="invalid_api_key"))
        assert ask(elsewhere).mesh.provider == "b"  # a goes on standby there, and in the store
        sent = len(a.requests)
        assert ask(recorded).mesh.provider == "b"  # learnt from the store: a is not tried
        assert len(a.requests) == sent
    done = replay(path, cfg)
    assert done.doors.get("absorb", 0) >= 1


def test_a_forked_process_records_to_its_own_file(ups, tmp_path):
    import os

    a, b = ups
    path = tmp_path / "forked.jsonl"
    cfg = config(a, b, path)
    with modelmesh.MeshClient(cfg, environ={}, probe_check_interval=3600.0) as client:
        ask(client)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                ask(client)
                client.close()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        ask(client)
    child = tmp_path / f"forked.{pid}.jsonl"
    assert child.exists()
    assert sum(1 for e in read(path) if e.get("door") == "start") == 2
    child_entries = read(child)
    assert child_entries[0]["modelmesh_recording"] == 1 and [e["door"] for e in child_entries[1:2]] == ["start"]


# -- what replay refuses -------------------------------------------------------------------------

def test_replay_refuses_a_file_that_is_not_a_recording(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"door": "start"}\n')
    with pytest.raises(ValueError, match="not a modelmesh recording"):
        replay(path, {"providers": {}})
    path.write_text('{"modelmesh_recording": 1, "seed": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        replay(path, {"providers": {"a": {"connector": "openai", "config": {"base_url": "http://127.0.0.1:9/v1",
                                                                             "models": ["m"]}}}})


def test_replay_refuses_a_configuration_pointing_elsewhere(ups, tmp_path):
    path = tmp_path / "incident.jsonl"
    cfg, _ = incident("sync", ups, path)
    cfg["providers"]["a"]["config"]["base_url"] = "http://127.0.0.1:1/v1"
    with pytest.raises(ValueError, match="provider 'a': the recording's base URL"):
        replay(path, cfg)


@pytest.mark.parametrize("sink, problem", [
    ({"connector": "recorder"}, "config.path: required"),
    ({"connector": "recorder", "config": {"path": "x.jsonl", "redact": True}}, "config.redact: unknown key"),
    ({"connector": "recorder", "config": {"path": "x.jsonl", "redact_payloads": "yes"}}, "expected true or false"),
])
def test_recorder_configuration_mistakes_are_named(sink, problem):
    cfg = {"providers": {"a": prov("http://127.0.0.1:9/v1", "m1")}, "observability": {"connectors": [sink]}}
    with pytest.raises(ConfigurationError, match=problem):
        modelmesh.MeshClient(cfg, environ={})


def test_two_recorders_and_an_unwritable_path_are_refused(tmp_path):
    base = {"providers": {"a": prov("http://127.0.0.1:9/v1", "m1")}}
    two = {"connectors": [{"connector": "recorder", "config": {"path": str(tmp_path / "1.jsonl")}},
                          {"connector": "recorder", "config": {"path": str(tmp_path / "2.jsonl")}}]}
    with pytest.raises(ConfigurationError, match=r"connectors\[1\]: a second 'recorder'"):
        modelmesh.MeshClient(dict(base, observability=two), environ={})
    bad = {"connector": "recorder", "config": {"path": str(tmp_path / "no" / "such" / "dir.jsonl")}}
    with pytest.raises(ConfigurationError, match="config.path: cannot open"):
        modelmesh.MeshClient(dict(base, observability=bad), environ={})


# -- the byte mask -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["content", "role", "type", "text", "id", "x\"y", "é"]), inner, max_size=4),
    max_leaves=20)


def _mask_in_pieces(data: bytes, cuts: list[int]) -> bytes:
    mask = ByteMask()
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        piece = mask(data[last:p])
        assert len(piece) == p - last
        out.append(piece)
        last = p
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(json_values, st.lists(st.integers(min_value=0), max_size=6), st.booleans())
def test_the_byte_mask_keeps_structure_and_lengths_whatever_the_chunking(value, cuts, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    masked = _mask_in_pieces(data, cuts)
    assert len(masked) == len(data)
    back = json.loads(masked)
    from modelmesh.transports.replay import shape

    assert shape(back) == shape(value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.lists(st.integers(min_value=0), max_size=4))
def test_the_byte_mask_keeps_what_was_invalid_invalid(junk, cuts):
    data = b'{"content": "' + junk + b'"}'
    masked = _mask_in_pieces(data, cuts)

    def parses(raw):
        try:
            json.loads(raw.decode("utf-8"))
            return True
        except ValueError:
            return False

    assert parses(masked) == parses(data)


def test_registry_sync_is_recorded_and_replayed(ups, tmp_path):
    """Listings the sync asked for and what they held (with the catalogue's prices for new
    models) are inputs too: a model registered at run time replays, and serves."""
    a, b = ups
    path = tmp_path / "sync.jsonl"
    cfg = config(a, b, path)
    cfg["discovery"] = {"sync": {"enabled": True, "interval": "1h", "auto_register": True,
                                 "on_new_model": "register", "on_deprecated_model": "deactivate"}}
    cfg["pools"]["any"] = {"capability": "chat-completion", "strategy": "priority"}
    clock = FakeClock()
    with modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}, probe_check_interval=3600.0) as client:
        a.models = ("gpt-4o-mini",)
        clock.advance(3601)
        assert client.run_discovery() == 2
        assert "a/gpt-4o-mini" in client.core.models
        assert client.chat.completions.create(model="a/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    done = replay(path, cfg)
    assert done.doors.get("due_listings") and done.doors.get("listed") == 2
    entries = read(path)
    assert any("$obj" in json.dumps(e.get("kwargs", {})) for e in entries if e.get("door") == "listed")


def test_key_rotation_and_keys_reloaded_from_the_store_replay_without_a_key_in_the_file(tmp_path):
    """Keys are inputs the file must not hold: they are recorded by print, and the replay
    stands in its own keys for the recorded ones, position by position."""
    k1, k2, k3 = ("sk-rot-first-0123456789abcdef", "sk-rot-second-0123456789abcdef", "sk-rot-third-0123456789abcdef")
    store = tmp_path / "keys.env"
    store.write_text(f"A={k1}\nB={k2}\n")
    path = tmp_path / "keys.jsonl"
    clock = FakeClock()
    with FakeUpstream("openai", models=["m"]) as up:
        cfg = {"secrets": {"store": "dotenv", "path": str(store), "cache_ttl": "300s"},
               "providers": {"p": {"connector": "openai-compatible", "config": {
                   "base_url": up.url, "auth": {"api_keys": ["${secrets:A}", "${secrets:B}"], "key_rotation": True},
                   "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}},
               "pools": {"p1": {"models": ["p/m"]}},
               "observability": {"connector": "recorder", "config": {"path": str(path)}}}
        with modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}) as client:
            up.script(Error(429))
            ask(client, text="one")  # key 1 throttled: key 2 serves
            store.write_text(f"A={k3}\nB={k2}\n")
            clock.advance(301)
            ask(client, text="two")  # the store is read again: key 1 is now k3
    text = path.read_text()
    assert not any(k in text for k in (k1, k2, k3))
    doors = [e.get("door") for e in read(path)]
    assert "set_api_keys" in doors
    kinds = {ev["type"] for e in read(path) for ev in e.get("events", ())}
    assert {"key_rotated", "keys_reloaded"} <= kinds
    replay(path, cfg)  # the store now holds k3 and k2: the replay's own keys stand in for k1, k2


def test_a_recording_replays_without_the_keys_it_was_made_with(tmp_path):
    """Keys from the environment are not in the file, and a replay needs none: the builder
    stands a dummy in for each one the replaying environment lacks."""
    path = tmp_path / "env.jsonl"
    with FakeUpstream("openai", models=["m"], api_key="sk-from-env-0123456789") as up:
        cfg = {"providers": {"p": {"connector": "openai", "config": {"base_url": up.url, "models": ["m"]}}},
               "observability": {"connector": "recorder", "config": {"path": str(path)}}}
        with modelmesh.MeshClient(cfg, environ={"OPENAI_API_KEY": "sk-from-env-0123456789"}) as client:
            client.chat.completions.create(model="p/m", messages=[{"role": "user", "content": "x"}])
    assert "sk-from-env" not in path.read_text()
    with pytest.raises(ConfigurationError, match="no key for connector 'openai'"):
        modelmesh.MeshClient(cfg, environ={})  # a client does need one
    assert replay(path, cfg, environ={}).calls == 1
