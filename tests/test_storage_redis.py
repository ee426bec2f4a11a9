"""RedisStorage against a real redis-server: every key under the prefix and with a TTL, a stopped
server is one clear error without the password, and the store works again when it is back."""
from __future__ import annotations

import os
import time

import pytest
from storage_worker import RedisServer, free_port, need_redis, redis_server

from modelmesh.connectors.storage import RedisStorage, StorageUnavailable
from modelmesh.errors import ModelMeshError

FUTURE = time.time() + 3600
PASSWORD = "s3cret-Passw0rd"


@pytest.fixture(scope="module", autouse=True)
def _need_redis():
    need_redis()


@pytest.fixture
def server(tmp_path):
    with redis_server(str(tmp_path), password=PASSWORD) as server:
        yield server


def raw_client(server):
    import redis

    return redis.Redis.from_url(server.url)


def test_every_key_is_under_the_prefix_and_has_a_ttl(server):
    future = time.time() + 3600  # taken now: the module's FUTURE is as old as the test run
    with RedisStorage(server.url, prefix="app:", default_ttl=600) as store:
        store.save("saved", b"v")
        store.add("counted", 1, expires_at=future)
        store.raise_to("deadline", 5, expires_at=future)
        store.acquire("job", timeout=0, lease=30)
    with raw_client(server) as r:
        keys = sorted(k.decode() for k in r.keys("*"))
        assert keys == ["app:k:counted", "app:k:deadline", "app:k:saved", "app:l:job"]
        assert 590_000 < r.pttl("app:k:saved") <= 600_000
        assert 3_500_000 < r.pttl("app:k:counted") <= 3_600_000
        assert 3_500_000 < r.pttl("app:k:deadline") <= 3_600_000
        assert 29_000 < r.pttl("app:l:job") <= 30_000


def test_prefixes_keep_stores_apart(server):
    with RedisStorage(server.url, prefix="one:") as one, RedisStorage(server.url, prefix="two:") as two:
        one.save("k", b"1")
        assert two.load("k") is None and two.list() == []
        assert one.acquire("job", timeout=0) is not None and not two.is_locked("job")


def test_a_stopped_server_raises_storage_unavailable_quickly_and_the_store_recovers(server):
    store = RedisStorage(server.url, socket_timeout=0.5)
    store.save("k", b"before")
    server.stop()
    calls = {"load": lambda: store.load("k"), "save": lambda: store.save("k", b"x"), "list": store.list,
             "delete": lambda: store.delete("k"), "stat": lambda: store.stat("k"),
             "add": lambda: store.add("n", 1, expires_at=FUTURE), "raise_to": lambda: store.raise_to("d", 1, expires_at=FUTURE),
             "acquire": lambda: store.acquire("job", timeout=0), "is_locked": lambda: store.is_locked("job")}
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert time.monotonic() - started < 2.0, name
        assert isinstance(caught.value, ModelMeshError)
        message = str(caught.value)
        assert PASSWORD not in message and PASSWORD not in repr(caught.value), message
        assert "redis://:***@127.0.0.1" in message and "Redis storage" in message
    server.start()  # same port; the data is gone (no persistence) but the store works again at once
    assert store.load("k") is None
    store.save("k", b"after")
    assert store.load("k") == b"after"
    assert store.add("n", 2, expires_at=FUTURE) == 2  # the Lua scripts are loaded again by themselves
    store.close()


def test_a_wrong_password_is_storage_unavailable_without_either_password(server):
    wrong = "not-the-Passw0rd"
    store = RedisStorage(server.url.replace(PASSWORD, wrong), socket_timeout=0.5)
    with pytest.raises(StorageUnavailable) as caught:
        store.load("k")
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)
    assert wrong not in repr(store) and wrong not in store.url


def test_a_server_that_is_not_there_is_storage_unavailable(tmp_path):
    port = free_port()
    url = f"redis://user:{PASSWORD}@127.0.0.1:{port}/0?password={PASSWORD}"
    store = RedisStorage(url, socket_timeout=0.5)
    with pytest.raises(StorageUnavailable, match="unavailable") as caught:
        store.save("k", b"v")
    assert PASSWORD not in str(caught.value)
    assert store.url == f"redis://user:***@127.0.0.1:{port}/0?password=***"


def test_a_server_that_answers_slowly_times_out(tmp_path):
    server = RedisServer(str(tmp_path))
    server.start()
    try:
        store = RedisStorage(server.url, socket_timeout=0.3)
        store.save("k", b"v")
        os.kill(server.process.pid, 19)  # SIGSTOP: the server holds the connection and says nothing
        try:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="Timeout"):
                store.load("k")
            assert time.monotonic() - started < 2.0
        finally:
            os.kill(server.process.pid, 18)  # SIGCONT
        assert store.load("k") == b"v"
    finally:
        server.stop()


def test_a_bad_url_is_a_value_error_without_the_password():
    with pytest.raises(ValueError) as caught:
        RedisStorage(f"ftp://:{PASSWORD}@host/0")
    assert PASSWORD not in str(caught.value)
