"""The proxy's keys, buckets and metrics over real stores, in one process: two "workers" are
two objects sharing one SQLite file (or Redis), time is a FakeClock shared with the store."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh.connectors.storage import MemoryStorage, RedisStorage, Serializer, SQLiteStorage
from modelmesh.proxy._keys import KeyRing, KeyStore, period_end
from modelmesh.proxy._limits import Bucket, Limiter
from modelmesh.proxy._metrics import Metrics
from modelmesh.testing import FakeClock


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def db(tmp_path, clock):
    stores = []

    def open_store():
        store = SQLiteStorage(tmp_path / "shared.sqlite3", clock=clock)
        stores.append(store)
        return store

    yield open_store
    for s in stores:
        s.close()


# -- keys -------------------------------------------------------------------------------------
def test_a_key_is_stored_as_its_hash_only_and_found_by_its_plaintext(db, clock, tmp_path):
    store = KeyStore(db(), Serializer(), clock=clock)
    token, key = store.create("alice", pools=["chat"], budget=2.5, period="month", rpm=30)
    assert token.startswith("sk-mm-") and len(token) > 40
    assert token not in repr(key) and key.digest not in repr(key)
    raw = (tmp_path / "shared.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("shared.sqlite3-*"))
    assert token.encode() not in raw and key.digest.encode() in raw
    ring = KeyRing(KeyStore(db(), Serializer(), clock=clock), refresh=1.0, clock=clock)
    found = ring.find(token)
    assert found is not None and (found.name, found.pools, found.budget, found.period, found.rpm) == \
        ("alice", ("chat",), 2.5, "month", 30.0)
    assert ring.find(token + "x") is None
    listed = store.list()
    assert [(k.name, k.id, k.revoked) for k in listed] == [("alice", key.id, None)]


def test_names_are_unique_among_live_keys_and_revoke_takes_a_name_an_id_or_the_key(db, clock):
    store = KeyStore(db(), Serializer(), clock=clock)
    token, key = store.create("alice")
    with pytest.raises(ValueError, match="exists already"):
        store.create("alice")
    with pytest.raises(LookupError) as missing:
        store.revoke("sk-mm-not-a-key-of-ours")
    assert "sk-mm-not" not in str(missing.value)  # a plaintext is never repeated
    clock.advance(5)
    assert store.revoke(token).revoked == clock()
    _, bob = store.create("alice")  # the name is free again
    assert store.revoke(bob.id).name == "alice"
    with pytest.raises(LookupError):
        store.revoke("alice")


def test_a_revocation_reaches_a_worker_at_its_next_refresh(db, clock):
    admin = KeyStore(db(), Serializer(), clock=clock)
    token, _ = admin.create("alice")
    ring = KeyRing(KeyStore(db(), Serializer(), clock=clock), refresh=1.0, clock=clock)
    assert ring.find(token).revoked is None
    admin.revoke("alice")
    clock.advance(0.5)
    assert ring.find(token).revoked is None  # its copy, read less than `refresh` ago
    clock.advance(0.5)
    assert ring.find(token).revoked is not None


def test_a_new_key_works_at_once_and_an_unknown_one_costs_one_read_per_refresh(db, clock):
    class Counting(SQLiteStorage):
        loads = 0

        def load(self, key):
            Counting.loads += 1
            return super().load(key)

    admin = KeyStore(db(), Serializer(), clock=clock)
    ring = KeyRing(KeyStore(Counting(db().path, clock=clock), Serializer(), clock=clock), refresh=1.0, clock=clock)
    assert ring.find("sk-mm-unknown") is None
    token, _ = admin.create("new")
    assert ring.find(token) is not None  # created after the last refresh: read through
    before = Counting.loads
    for _ in range(5):
        assert ring.find("sk-mm-unknown") is None
    assert Counting.loads == before


def test_spend_is_counted_across_workers_per_period(db, clock):
    admin = KeyStore(db(), Serializer(), clock=clock)
    token, _ = admin.create("alice", budget=1.0)
    a = KeyRing(KeyStore(db(), Serializer(), clock=clock), refresh=1.0, clock=clock)
    b = KeyRing(KeyStore(db(), Serializer(), clock=clock), refresh=1.0, clock=clock)
    key = a.find(token)
    a.record_spend(key, 0.6)
    assert b.over_budget(key) is None
    b.record_spend(key, 0.4)
    assert a.over_budget(key) == pytest.approx(1.0)
    clock.advance(period_end("day", clock()) - clock() + 1)  # a new day: a new budget
    assert a.over_budget(key) is None


# -- buckets ----------------------------------------------------------------------------------
def test_two_workers_share_one_bucket_and_a_refusal_says_when_to_come_back(db, clock):
    one, two = Limiter(db(), clock=clock), Limiter(db(), clock=clock)
    bucket = Bucket(rpm=60, burst=3)  # a token a second, three at once
    assert [one.take("k", bucket), two.take("k", bucket), one.take("k", bucket)] == [None, None, None]
    assert two.take("k", bucket) == pytest.approx(1.0)
    assert one.take("k", bucket) == pytest.approx(1.0)  # a refusal takes nothing
    clock.advance(1.0)
    assert two.take("k", bucket) is None
    assert one.take("k", bucket) == pytest.approx(1.0)
    assert one.take("other", bucket) is None  # buckets are per name


def test_an_idle_bucket_fills_up_to_its_burst_and_no_further(db, clock):
    limiter = Limiter(db(), clock=clock)
    bucket = Bucket(rpm=6)  # burst defaults to a minute's worth: 6
    clock.advance(3600)
    taken = sum(limiter.take("k", bucket) is None for _ in range(10))
    assert taken == 6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 1)), min_size=1, max_size=60),
       st.integers(1, 4), st.sampled_from([30.0, 60.0, 120.0]))
def test_no_window_ever_gets_more_than_burst_plus_refill(steps, burst, rpm):
    clock = FakeClock(1_800_000_000.0)
    store = MemoryStorage(clock=clock)
    workers = [Limiter(store, clock=clock), Limiter(store, clock=clock)]
    bucket = Bucket(rpm=rpm, burst=burst)
    taken: list[float] = []
    for gap, who in steps:
        clock.advance(gap)
        if workers[who].take("k", bucket) is None:
            taken.append(clock())
    for i, start in enumerate(taken):  # in any window of w seconds: at most burst + w * rate
        for end in taken[i:]:
            inside = sum(start <= t <= end for t in taken)
            assert inside <= burst + (end - start) * rpm / 60 + 1e-6


def test_buckets_on_redis(redis_url, clock):
    store = RedisStorage(redis_url, prefix=f"mm-test-{id(clock)}:", clock=clock)
    try:
        one, two = Limiter(store, clock=clock), Limiter(RedisStorage(redis_url, prefix=store.prefix, clock=clock),
                                                         clock=clock)
        bucket = Bucket(rpm=60, burst=2)
        assert [one.take("k", bucket), two.take("k", bucket)] == [None, None]
        assert two.take("k", bucket) == pytest.approx(1.0, abs=0.01)
    finally:
        for key in store.list():
            store.delete(key)
        store.close()


# -- metrics ----------------------------------------------------------------------------------
def _served(status=200, attempts=1, cost=0.5, latency_ms=12.0):
    return {"path": "/v1/chat/completions", "pool": "chat", "provider": "up", "model": "gpt-x", "status": status,
            "attempts": attempts, "latency_ms": latency_ms, "cost": cost, "prompt_tokens": 3, "completion_tokens": 4}


def _value(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert found, f"{series} not in\n{text}"
    return float(found.group(1))


def test_metrics_of_two_workers_are_summed_once_and_survive_a_restart(db, clock):
    a, b = Metrics(db(), clock=clock), Metrics(db(), clock=clock)
    for _ in range(3):
        a.observe(_served(), failovers=0)
    b.observe(_served(attempts=3, latency_ms=700.0), failovers=1)
    b.observe(_served(status=429, cost=0.0), failovers=0)
    b.flush()
    text = a.render([("modelmesh_standby_models", (("pool", "chat"),), 1.0)])
    where = 'pool="chat",provider="up",model="gpt-x"'
    assert _value(text, f'modelmesh_requests_total{{{where},status="200"}}') == 4
    assert _value(text, f'modelmesh_requests_total{{{where},status="429"}}') == 1
    assert _value(text, f"modelmesh_attempts_total{{{where}}}") == 7
    assert _value(text, 'modelmesh_failovers_total{pool="chat"}') == 1
    assert _value(text, f"modelmesh_cost_usd_total{{{where}}}") == 2.0
    assert _value(text, f'modelmesh_tokens_total{{{where},kind="completion"}}') == 20
    assert _value(text, 'modelmesh_request_duration_seconds_bucket{pool="chat",le="0.025"}') == 4
    assert _value(text, 'modelmesh_request_duration_seconds_bucket{pool="chat",le="1.0"}') == 5
    assert _value(text, 'modelmesh_request_duration_seconds_bucket{pool="chat",le="+Inf"}') == 5
    assert _value(text, 'modelmesh_request_duration_seconds_count{pool="chat"}') == 5
    assert _value(text, 'modelmesh_standby_models{pool="chat"}') == 1
    assert "# TYPE modelmesh_request_duration_seconds histogram" in text
    assert _value(a.render(), f'modelmesh_requests_total{{{where},status="200"}}') == 4  # rendering adds nothing
    b.observe(_served(), failovers=0)
    b.flush()  # b stops (a worker's close flushes); a new worker reads every count there was
    fresh = Metrics(db(), clock=clock)
    assert _value(fresh.render(), f'modelmesh_requests_total{{{where},status="200"}}') == 5


def test_metrics_flush_after_their_interval_only(db, clock):
    m = Metrics(db(), flush_every=5.0, clock=clock)
    reader = Metrics(db(), clock=clock)
    m.observe(_served(), failovers=0)
    m.maybe_flush()
    assert "modelmesh_requests_total{" not in reader.render()
    clock.advance(5.0)
    m.maybe_flush()
    assert "modelmesh_requests_total{" in reader.render()


def test_label_values_are_escaped(clock):
    m = Metrics(MemoryStorage(clock=clock), clock=clock)
    m.observe(dict(_served(), model='we"ird\\name\n'), failovers=0)
    assert 'model="we\\"ird\\\\name\\n"' in m.render()


# -- configuration ----------------------------------------------------------------------------
def test_the_proxy_limits_configuration_names_each_problem_by_its_path():
    from modelmesh import ConfigurationError
    from modelmesh.config import load_config

    proxy = {"rate_limit": {"per_key": {"burst": 0}, "per_ip": {"rpm": "fast"}, "per_user": {}},
             "metrics": {"public": "yes", "path": "/m"}}
    with pytest.raises(ConfigurationError) as bad:
        load_config({"providers": {}, "proxy": proxy})
    problems = "\n".join(bad.value.problems)
    for path in ("proxy.rate_limit.per_key.rpm: required", "proxy.rate_limit.per_key.burst",
                 "proxy.rate_limit.per_ip.rpm", "proxy.rate_limit.per_user: unknown key",
                 "proxy.metrics.public", "proxy.metrics.path: unknown key"):
        assert path in problems
    good = load_config({"providers": {}, "proxy": {"rate_limit": {"per_ip": {"rpm": 90}}, "metrics": {"public": True}}})
    assert (good.proxy.rate_limit_per_ip.rpm, good.proxy.rate_limit_per_ip.burst, good.proxy.rate_limit_per_key,
            good.proxy.metrics_public) == (90.0, None, None, True)


def test_an_app_given_buckets_and_no_store_keeps_them_itself():
    from modelmesh.proxy import ProxyApp

    class Mesh:  # a stand-in with what the app uses of a MeshClient before a request is routed
        core = None

        def subscribe(self, listener):
            pass

    app = ProxyApp(Mesh(), keys=["sk-test-key-0123456789"], per_ip=Bucket(rpm=60, burst=1))
    seen = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/nothing", "REMOTE_ADDR": "10.0.0.1",
               "HTTP_AUTHORIZATION": "Bearer sk-test-key-0123456789"}
    app(dict(environ), lambda status, headers: seen.append((status, dict(headers))))
    app(dict(environ), lambda status, headers: seen.append((status, dict(headers))))
    assert seen[0][0].startswith("404") and seen[1][0].startswith("429") and seen[1][1]["retry-after"] == "1"
