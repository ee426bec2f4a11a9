"""Health shared between real processes through storage (SQLite on one host, Redis across
hosts): what one worker learns, the others honour; it outlives every worker; and a storage
outage never fails a request.

Workers are separate Python processes (`tests/mesh_worker.py`); the fake upstreams run here,
so their request logs show what every worker sent.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from storage_worker import need_redis, redis_server

import modelmesh
from modelmesh.testing import Error, FakeUpstream

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mesh_worker.py")
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["sqlite", "redis"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        return {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    return {"connector": "redis", "config": {"url": request.getfixturevalue("redis_url"),
                                             "prefix": f"mesh-{uuid.uuid4().hex}:"}}


def mesh_config(x, y, storage, **persistence):
    providers = {name: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": f"sk-{name}-0123456789abcdef"},
        "models": [{"id": "m", "capabilities": ["chat-completion"]}]}} for name, up in (("x", x), ("y", y))}
    pools = {"chat": {"models": ["x/m", "y/m"], "strategy": "priority",
                      "rotation": {"selection": {"model_priority": ["x/m", "y/m"]}}}}
    return {"providers": providers, "pools": pools, "storage": dict(storage, persistence=persistence)}


def workers(config, count, requests):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, WORKER, json.dumps(config), str(requests)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(count)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_a_bad_key_found_by_one_worker_is_honoured_by_every_other_and_outlives_them_all(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        x.always(Error(401, code="invalid_api_key"))
        config = mesh_config(x, y, storage)
        assert workers(config, 1, 1) == [["y"]]          # worker A: x answers 401, y serves
        assert len(x.requests) == 1
        assert workers(config, 3, 5) == [["y"] * 5] * 3  # workers B-D: nothing more goes to x
        assert len(x.requests) == 1
        assert workers(config, 1, 3) == [["y"] * 3]      # all restarted: the standby is still known
        assert len(x.requests) == 1 and len(y.requests) == 1 + 15 + 3


def test_with_immediate_sync_a_standby_reaches_a_running_worker_before_its_next_request(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage, sync_policy="immediate")
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"
            x.always(Error(401, code="invalid_api_key"))
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            sent = len(x.requests)
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert len(x.requests) == sent  # two never asked x again: it knew before its request


def test_a_storage_outage_fails_no_request_and_sharing_resumes_when_it_returns(tmp_path):
    need_redis()
    with redis_server(str(tmp_path)) as server, \
            FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        storage = {"connector": "redis", "config": {"url": server.url, "socket_timeout": 0.5}}
        config = mesh_config(x, y, storage, sync_policy="immediate")
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as client:
            assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"
            server.stop()
            for _ in range(3):  # every request syncs, and every sync finds storage gone: none fails
                assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"
            assert client.sync() is False
            assert client.status()["storage"]["reachable"] is False
            server.start()
            assert client.sync() is True
            shown = client.status()["storage"]
            assert shown["reachable"] is True and shown["sync_policy"] == "immediate" and shown["last_sync"] is not None
            assert shown["connector"] == "RedisStorage" and "127.0.0.1" not in str(shown)
            client.deactivate("x/m", until=None)
            assert client.sync() is True
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as later:
            assert later.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"


def test_four_workers_share_one_daily_budget_and_overshoot_it_by_at_most_one_request_each(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        config["providers"]["x"]["config"]["budget"] = {"daily_limit": 1.00}
        config["providers"]["x"]["config"]["models"][0]["pricing"] = {"per_request": 0.01}
        served = [p for worker in workers(config, 4, 50) for p in worker]
        billed = served.count("x")
        assert len(served) == 200 and len(x.requests) == billed
        assert 100 <= billed <= 100 + 4, billed  # $1.00 at $0.01, plus at most one in flight per worker
        assert served.count("y") == 200 - billed  # the rest failed over, none failed


def test_one_process_at_a_time_probes_and_its_verdict_reaches_the_others(tmp_path):
    from modelmesh.connectors.storage import SQLiteStorage

    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        x.script(Error(401, code="invalid_api_key"))  # then x answers normally: its key was fixed
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two, \
                SQLiteStorage(str(tmp_path / "mesh.db")) as store:
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert one.sync() and two.sync()
            assert two.status()["providers"]["x"]["up"] is False
            held = store.acquire("probe/provider:x", 0, lease=60)  # a third process is probing x
            sent = len(x.requests)
            assert one.run_probes() == 1 and len(x.requests) == sent  # due, but not sent: the lease is taken
            store.release(held)
            assert two.run_probes() == 1 and len(x.requests) == sent + 1
            assert two.status()["providers"]["x"]["up"] is True
            assert two.sync() and one.sync()
            assert one.status()["providers"]["x"]["up"] is True  # the recovery two saw reached one
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"


def test_modelmesh_status_shows_what_every_process_sharing_the_store_knows(tmp_path, capsys):
    from modelmesh import cli

    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        path = tmp_path / "mesh.json"
        path.write_text(json.dumps(config))
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as worker:
            worker.deactivate("x/m", until=None)
            assert worker.sync()
        assert cli.main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shared through SQLiteStorage (periodic): read now" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("x/m"))
    assert "standby" in row


def test_four_workers_share_a_pools_request_limit_per_model(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        config["pools"]["chat"]["rotation"]["deactivation"] = {"request_limit": 40, "quota_window": "daily"}
        served = [p for worker in workers(config, 4, 15) for p in worker]
        assert len(served) == 60 and len(x.requests) == served.count("x")
        assert 40 <= served.count("x") <= 40 + 4, served.count("x")  # one limit for all, one in flight each at most



def locked_config(x, y, tmp_path, locking):
    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")},
               "locking": {"enabled": locking, "timeout": "100ms"}}
    return mesh_config(x, y, storage)


@pytest.mark.parametrize("locking", [True, False])
def test_with_locking_off_facts_are_written_without_the_lock_so_a_stuck_holder_does_not_stop_them(tmp_path, locking):
    from modelmesh.connectors.storage import SQLiteStorage

    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y, \
            SQLiteStorage(str(tmp_path / "mesh.db")) as stuck:
        config = locked_config(x, y, tmp_path, locking)
        x.always(Error(401, code="invalid_api_key"))
        assert stuck.acquire("health-sync", 0, lease=600)  # a process that froze holding the lock
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert one.status()["storage"]["locking"] is locking
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert one.sync() is not locking  # the write waits for the lock only when locking is on
            assert two.sync()  # reading never needs it
            assert two.status()["providers"]["x"]["up"] is locking  # off: the standby arrived all the same


@pytest.mark.parametrize("locking", [True, False])
def test_with_locking_off_no_probe_lease_is_taken_and_every_process_probes_itself(tmp_path, locking):
    from modelmesh.connectors.storage import SQLiteStorage

    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y, \
            SQLiteStorage(str(tmp_path / "mesh.db")) as other:
        x.script(Error(401, code="invalid_api_key"))
        with modelmesh.MeshClient(locked_config(x, y, tmp_path, locking), environ={},
                                  probe_check_interval=3600) as one:
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert one.sync()
            assert other.acquire("probe/provider:x", 0, lease=600)  # another process is probing x
            sent = len(x.requests)
            assert one.run_probes() == 1
            assert len(x.requests) == sent + (0 if locking else 1)


def held_workers(config, count, requests):
    """`count` workers that made their requests and synced, and stay live until told to close."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, WORKER, json.dumps(config), str(requests), "hold"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(count)]
    for proc in procs:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
    return procs


def release(procs):
    for proc in procs:
        proc.communicate("\n", timeout=60)
        assert proc.returncode == 0


def test_status_lists_every_live_process_with_what_it_saw_and_its_last_sync(storage, tmp_path, capsys):
    import socket
    import time

    from modelmesh import cli

    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        x.always(Error(401, code="invalid_api_key"))
        config = mesh_config(x, y, storage)
        procs = held_workers(config, 3, 1)
        try:
            with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as watcher:
                assert watcher.sync()
                shown = watcher.status()["storage"]
                rows = {p["pid"]: p for p in shown["processes"]}
                assert set(rows) == {os.getpid()} | {p.pid for p in procs}
                assert rows[os.getpid()]["this"] is True and sum(p["this"] for p in rows.values()) == 1
                for proc in procs:
                    row = rows[proc.pid]
                    assert row["host"] == socket.gethostname()
                    assert row["last_sync"] is not None and row["last_sync"] <= time.time()
                    assert row["standby"] == ["provider:x"] and row["facts"] >= 1  # each saw x go down
                assert sum(rows[p.pid]["written"] for p in procs) >= 1  # someone wrote the standby
                path = tmp_path / "mesh.json"
                path.write_text(json.dumps(config))
                assert cli.main(["status", str(path)]) == 0
            out = capsys.readouterr().out
            assert "processes sharing it (5 live):" in out  # three workers, the watcher, the command
            assert out.count("(this command)") == 1
            assert all(f"pid {p.pid}: last sync" in out for p in procs)
        finally:
            release(procs)
        late = modelmesh.MeshClient(config, environ={}, probe_check_interval=3600)
        with late:
            assert late.sync()
            assert [p["pid"] for p in late.status()["storage"]["processes"]] == [os.getpid()]  # closed: gone


def test_a_process_killed_without_closing_drops_out_of_status_when_its_heartbeat_ends(tmp_path):
    import signal
    import time

    storage = {"connector": "sqlite", "config": {"path": str(tmp_path / "mesh.db")}}
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        (proc,) = held_workers(config, 1, 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as now:
            assert now.sync() and proc.pid in [p["pid"] for p in now.status()["storage"]["processes"]]
        later = time.time() + 3 * 5.0 + 1  # past the killed worker's heartbeat (three heartbeats of 5 s)
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600, clock=lambda: later) as after:
            assert after.sync()
            assert [p["pid"] for p in after.status()["storage"]["processes"]] == [os.getpid()]
        from modelmesh.connectors.storage import SQLiteStorage

        with SQLiteStorage(str(tmp_path / "mesh.db")) as store:
            assert store.list("process/") == []  # the ended heartbeat was deleted, and the closed client's too


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the killed worker is forked so that 100 rounds stay quick")
def test_a_worker_killed_mid_sync_100_times_never_leaves_the_store_unreadable_and_the_others_work_on(
        storage, tmp_path):
    """Beside the connectors' own kill test (test_storage_processes), this kills whole mesh
    workers in their syncs: a fact, a heartbeat and spend counters being written, the store's
    lock held. Two other workers request and sync all along."""
    storage = dict(storage, config=dict(storage["config"], lease=0.1), locking={"timeout": "10ms"})
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage)
        config["providers"]["y"]["config"]["budget"] = {"daily_limit": 1000.0}
        config["providers"]["y"]["config"]["models"][0]["pricing"] = {"per_request": 0.01}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
        stop = tmp_path / "stop"
        others = [subprocess.Popen([sys.executable, WORKER, json.dumps(config), "1", "loop", str(stop)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            for proc in others:
                assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            killer = subprocess.run([sys.executable, WORKER, json.dumps(config), "0", "killsync", "100", "11"],
                                    capture_output=True, text=True, timeout=120, env=env)
        finally:
            stop.touch()
        outputs = [proc.communicate(timeout=60) for proc in others]
    assert killer.returncode == 0, killer.stderr  # after every kill, every record read whole and a client synced
    report = json.loads(killer.stdout)
    assert report["rounds"] == report["read"] == 100, report
    assert report["changed"] == 99, report  # every round wrote before its kill, which came amid later writes
    for proc, (out, err) in zip(others, outputs, strict=True):
        assert proc.returncode == 0, err  # no request of theirs failed
        counts = json.loads(out.strip().splitlines()[-1])
        assert counts["requests"] >= 10 and counts["synced"] >= 1, counts


def rated_config(x, y, storage, max_rpm):
    config = mesh_config(x, y, storage)
    config["pools"]["chat"] = {"models": ["x/m", "y/m"], "strategy": "rate-limit-aware",
                               "rotation": {"selection": {"rate_limit": {"max_rpm": max_rpm}}}}
    return config


def test_a_pools_max_rpm_counts_every_processs_requests_and_an_account_fades_with_its_age(storage):
    from modelmesh.testing import FakeClock

    clock = FakeClock()
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = rated_config(x, y, storage, max_rpm=10)
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600, clock=clock) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600, clock=clock) as two:
            served = [one.chat.completions.create(model="chat", messages=MSG).mesh.provider for _ in range(4)]
            assert sorted(served) == ["x", "x", "y", "y"]  # the most headroom first: they alternate
            assert one.route("chat").score == pytest.approx(0.8)  # 2 of 10 a minute on each
            assert two.route("chat").score == 1.0  # two has not heard of them yet
            assert one.sync() and two.sync()
            assert two.route("chat").score == pytest.approx(0.8)  # one's requests count against two's limit
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"
            assert two.sync() and one.sync()
            assert one.route("chat").score == pytest.approx(0.8)  # y: 2 of one's; x: 2 of one's and 1 of two's
            assert one.route("chat").model_id == "m" and one.route("chat").provider_id == "y"
            clock.advance(30)  # one's account was taken 30 s ago: half of it is still in the last minute
            assert two.sync()
            assert two.route("chat").score == pytest.approx(0.9)
            clock.advance(31)
            assert two.sync()
            assert two.route("chat").score == 1.0  # a minute on, nothing of it is left
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600, clock=clock) as three:
            assert three.sync()
            shared = three.transport.shared
            assert shared.storage.list("rate/") == []  # closed clients took their accounts with them


def test_workers_share_requests_per_minute_for_max_rpm(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = rated_config(x, y, storage, max_rpm=20)
        procs = held_workers(config, 3, 4)
        try:
            with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as checker:
                assert checker.route("chat").score == 1.0
                assert checker.sync()
                fewest = min(len(x.requests), len(y.requests))
                assert len(x.requests) + len(y.requests) == 12 and fewest >= 4
                # the 12 requests of the others, their accounts up to a few seconds old (rounded)
                assert 1 - fewest / 20 <= checker.route("chat").score <= 1 - (fewest - 1) / 20
        finally:
            release(procs)


class Counting:
    """A store that counts the calls made to it, by method and first argument."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def counted(*args, **kwargs):
            self.calls.append((name, args[0] if args else None))
            return method(*args, **kwargs)
        return counted


def test_a_sync_reads_the_facts_only_when_the_stores_health_version_moved(storage):
    with FakeUpstream("openai", name="x", models=["m"]) as x, FakeUpstream("openai", name="y", models=["m"]) as y:
        config = mesh_config(x, y, storage, sync_policy="immediate")
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"  # its first full read
            counted = two.transport.shared.storage = Counting(two.transport.shared.storage)
            for _ in range(5):
                assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "x"
            assert counted.calls.count(("load", "health-version")) == 5  # one number read per request
            assert ("load_many", "health/") not in counted.calls  # and no fact: none was written meanwhile
            x.always(Error(401, code="invalid_api_key"))
            assert one.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"  # writes the standby
            sent = len(x.requests)
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert len(x.requests) == sent  # moved: two read the facts before its request
            reads = counted.calls.count(("load_many", "health/"))
            assert reads >= 1
            assert two.chat.completions.create(model="chat", messages=MSG).mesh.provider == "y"
            assert counted.calls.count(("load_many", "health/")) == reads  # nothing new: the number only
            assert two.sync() and counted.calls.count(("load_many", "health/")) == reads + 1  # by hand: always read
