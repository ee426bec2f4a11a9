"""The storage contract, run against every connector: memory, file, SQLite, a real redis-server and
a user's `modelmesh.cdk.KeyValueStorage` subclass that implements only the four primitives.

Expiry is tested with `expires_at` values in the past or the future, and lease ends by a clock
that the test sets, never by waiting.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from modelmesh.connectors.storage import (
    BaseStorage,
    FileStorage,
    KeyValueStorage,
    Lock,
    MemoryStorage,
    RedisStorage,
    SQLiteStorage,
    Stat,
)

CONNECTORS = ["memory", "file", "sqlite", "redis", "keyvalue"]
PAST = time.time() - 3600
FUTURE = time.time() + 3600


class DictStore(KeyValueStorage):
    """What a user writes for a new backend: the four primitives, over a dict it is given."""

    def __init__(self, data: dict, **options) -> None:
        super().__init__(**options)
        self.backend = data

    def _get(self, key):
        return self.backend.get(key)

    def _set(self, key, value):
        self.backend[key] = value

    def _delete(self, key):
        return self.backend.pop(key, None) is not None

    def _keys(self, prefix):
        return [k for k in list(self.backend) if k.startswith(prefix)]


class Clock:
    """Wall-clock time unless the test sets an offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(params=CONNECTORS)
def make(request, tmp_path):
    """A factory of stores of one connector that all share one place (directory, database, prefix)."""
    made: list[BaseStorage] = []
    shared: dict = {}  # the keyvalue stores' one place
    prefix = f"test-{uuid.uuid4().hex}:"

    def make(clock=time.time, **options) -> BaseStorage:
        if request.param == "memory":
            if made:  # a second memory store is another place: hand back the first
                return made[0]
            store: BaseStorage = MemoryStorage(clock=clock, **options)
        elif request.param == "file":
            store = FileStorage(tmp_path / "files", clock=clock, **options)
        elif request.param == "keyvalue":
            store = DictStore(shared, clock=clock, **options)
        elif request.param == "sqlite":
            store = SQLiteStorage(tmp_path / "store.db", clock=clock, **options)
        else:
            store = RedisStorage(request.getfixturevalue("redis_url"), prefix=prefix, socket_timeout=2, clock=clock,
                                 **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make):
    return make()


# -- persistence, inventory, stat --------------------------------------------------------------

def test_save_then_load_gives_the_bytes_back_and_a_missing_key_is_none(store):
    assert store.load("a") is None
    for data in (b"first", b"", bytes(range(256)) * 40, bytearray(b"line\nline\x00"), memoryview(b"view")):
        store.save("a", data)
        assert store.load("a") == bytes(data)
        assert type(store.load("a")) is bytes


def test_keys_of_any_shape_are_kept_apart(store):
    keys = ["plain", "with/slash", "../up", ".", "..", "Case", "case", "%41", "A", "ünïcødé ✓", "sp ace", "a*b?[c]\\",
            "x" * 1024, "x" * 1023 + "y", "é" * 1024]
    for i, key in enumerate(keys):
        store.save(key, str(i).encode())
    for i, key in enumerate(keys):
        assert store.load(key) == str(i).encode(), key
    assert store.list() == sorted(keys)


def test_list_is_sorted_and_filters_by_a_literal_prefix(store):
    for key in ("b/2", "b/1", "a", "b_x", "b%", "ba", "B/3", "[b]/1", "*"):
        store.save(key, b"x")
    assert store.list("b/") == ["b/1", "b/2"]
    assert store.list("b%") == ["b%"]
    assert store.list("b_") == ["b_x"]
    assert store.list("[b]") == ["[b]/1"]
    assert store.list("*") == ["*"]
    assert store.list("nothing") == []
    assert store.list() == sorted(["b/2", "b/1", "a", "b_x", "b%", "ba", "B/3", "[b]/1", "*"])


def test_load_many_reads_every_live_entry_under_a_literal_prefix_and_nothing_else(store):
    for key in ("b/2", "b/1", "b_x", "b%", "ba", "[b]/1", "a"):
        store.save(key, key.encode())
    store.add("b/counted", 2, expires_at=FUTURE)
    store.add("b/gone", 1, expires_at=time.time() - 1)  # already expired: not there
    assert store.load_many("b/") == {"b/1": b"b/1", "b/2": b"b/2", "b/counted": b"2"}
    assert store.load_many("[b]") == {"[b]/1": b"[b]/1"} and store.load_many("b%") == {"b%": b"b%"}
    assert store.load_many("nothing") == {}
    assert store.load_many() == {key: store.load(key) for key in store.list()}


def test_delete_says_whether_there_was_an_entry(store):
    store.save("k", b"v")
    assert store.exists("k")
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.load("k") is None and not store.exists("k") and store.stat("k") is None
    assert store.list() == []


def test_stat_gives_size_and_modification_time_without_loading(store):
    before = time.time()
    store.save("k", b"12345")
    after = time.time()
    stat = store.stat("k")
    assert isinstance(stat, Stat) and stat.key == "k" and stat.size == 5
    assert before - 2 <= stat.modified <= after + 2  # a file's mtime has the file system's granularity
    assert store.stat("other") is None


def test_stores_on_the_same_place_see_each_others_writes(make):
    one, two = make(), make()
    one.save("k", b"from one")
    assert two.load("k") == b"from one"
    two.add("n", 2, expires_at=FUTURE)
    assert one.add("n", 3, expires_at=FUTURE) == 5


# -- atomic numbers and expiry -----------------------------------------------------------------

def test_add_returns_the_running_total_and_the_entry_reads_as_decimal(store):
    assert store.add("n", 1, expires_at=FUTURE) == 1
    assert store.add("n", 2.5, expires_at=FUTURE) == 3.5
    assert store.add("n", -0.5, expires_at=FUTURE) == 3
    assert store.load("n") == b"3"
    assert float(store.load("n")) == 3
    assert store.list() == ["n"] and store.stat("n").size == 1


def test_add_and_raise_to_refuse_an_entry_that_is_not_a_number(store):
    store.save("blob", b"not a number")
    with pytest.raises(ValueError, match="'blob'"):
        store.add("blob", 1, expires_at=FUTURE)
    with pytest.raises(ValueError, match="'blob'"):
        store.raise_to("blob", 1, expires_at=FUTURE)
    assert store.load("blob") == b"not a number"


def test_add_refuses_amounts_that_are_not_finite_numbers(store):
    with pytest.raises(ValueError, match="finite"):
        store.add("n", float("nan"), expires_at=FUTURE)
    with pytest.raises(TypeError):
        store.add("n", True, expires_at=FUTURE)
    with pytest.raises(TypeError):
        store.add("n", "1", expires_at=FUTURE)
    with pytest.raises(ValueError, match="finite"):
        store.raise_to("n", float("inf"), expires_at=FUTURE)
    assert store.load("n") is None


def test_an_entry_whose_expiry_has_passed_is_gone_everywhere(store):
    assert store.add("n", 5, expires_at=PAST) == 5  # the total is still returned
    assert store.load("n") is None and store.stat("n") is None and not store.exists("n")
    assert store.list() == [] and store.delete("n") is False
    assert store.add("n", 1, expires_at=FUTURE) == 1  # counting starts again


def test_each_add_sets_the_expiry_anew(store):
    store.add("n", 1, expires_at=FUTURE)
    store.add("n", 1, expires_at=PAST)
    assert store.load("n") is None
    assert store.add("n", 1, expires_at=FUTURE) == 1


def test_raise_to_keeps_the_larger_value(store):
    assert store.raise_to("d", 100, expires_at=FUTURE) == 100
    assert store.raise_to("d", 50, expires_at=FUTURE) == 100
    assert store.raise_to("d", 100, expires_at=FUTURE) == 100
    assert store.raise_to("d", 150.5, expires_at=FUTURE) == 150.5
    assert store.load("d") == b"150.5"


def test_a_raise_to_that_does_not_raise_changes_nothing_not_even_the_expiry(store):
    store.raise_to("d", 100, expires_at=FUTURE)
    assert store.raise_to("d", 50, expires_at=PAST) == 100  # would have expired the entry had it written
    assert store.load("d") == b"100"


def test_raise_to_over_an_expired_deadline_starts_afresh(store):
    assert store.raise_to("d", 100, expires_at=PAST) == 100
    assert store.load("d") is None
    assert store.raise_to("d", 5, expires_at=FUTURE) == 5


def test_a_save_over_a_number_makes_it_a_plain_entry(store):
    store.add("n", 1, expires_at=FUTURE)
    store.save("n", b"plain")
    assert store.load("n") == b"plain"


def test_adds_from_many_threads_are_all_counted(store):
    def work():
        for _ in range(50):
            store.add("n", 1, expires_at=FUTURE)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load("n") == b"200"


# -- locks -------------------------------------------------------------------------------------

def test_a_lock_is_exclusive_until_released(store):
    lock = store.acquire("job", timeout=0)
    assert isinstance(lock, Lock) and lock.name == "job" and len(lock.token) >= 32
    assert lock.token not in repr(lock)
    assert store.is_locked("job")
    assert store.acquire("job", timeout=0) is None
    assert not store.is_locked("other") and store.acquire("other", timeout=0) is not None
    assert store.release(lock) is True
    assert not store.is_locked("job")
    assert store.release(lock) is False
    assert store.acquire("job", timeout=0) is not None


def test_only_the_holders_token_releases(store):
    lock = store.acquire("job", timeout=0)
    forged = Lock(lock.name, "0" * 32, lock.expires_at)
    assert store.release(forged) is False
    assert store.is_locked("job")
    assert store.release(lock) is True


def test_locks_and_entries_do_not_share_names(store):
    store.acquire("k", timeout=0)
    assert store.load("k") is None and store.list() == []
    store.save("k", b"v")
    assert store.is_locked("k")


def test_acquire_waits_up_to_its_timeout(make):
    store = make(retry_interval=0.01)
    assert store.acquire("job", timeout=0) is not None
    started = time.monotonic()
    assert store.acquire("job", timeout=0.05) is None
    assert 0.05 <= time.monotonic() - started < 1.0


def test_acquire_gets_a_lock_released_while_it_waits(make):
    store = make(retry_interval=0.01)
    lock = store.acquire("job", timeout=0)
    timer = threading.Timer(0.05, store.release, (lock,))
    timer.start()
    try:
        assert store.acquire("job", timeout=5) is not None
    finally:
        timer.join()


def test_a_lease_that_has_ended_frees_the_lock(make):
    clock = Clock()
    store = make(clock=clock)
    clock.offset = -100  # the holder takes a 30 s lease 100 s ago, and is never heard from again
    stale = store.acquire("job", timeout=0, lease=30)
    assert stale is not None and stale.expires_at < time.time()
    clock.offset = 0
    assert not store.is_locked("job")
    fresh = store.acquire("job", timeout=0, lease=30)
    assert fresh is not None and fresh.expires_at > time.time()
    assert store.release(stale) is False  # the old holder cannot release the new one's lock
    assert store.is_locked("job")
    assert store.release(fresh) is True


def test_the_default_lease_comes_from_the_store(make):
    store = make(lease=7)
    lock = store.acquire("job", timeout=0)
    assert time.time() + 5 < lock.expires_at <= time.time() + 7.5


def test_threads_under_a_lock_never_overlap(store):
    inside = []
    overlaps = []

    def work():
        for _ in range(10):
            lock = store.acquire("job", timeout=30)
            assert lock is not None
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            time.sleep(0.0005)
            inside.pop()
            assert store.release(lock)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


# -- keys and lifetime -------------------------------------------------------------------------

BAD_KEYS = [("", ValueError, "empty"), ("a\x00b", ValueError, "NUL"), ("k" * 1025, ValueError, "1025"),
            ("\ud800", ValueError, "surrogate"), (5, TypeError, "int"), (None, TypeError, "NoneType")]


@pytest.mark.parametrize(("key", "error", "words"), BAD_KEYS)
def test_bad_keys_are_refused_with_a_message_naming_them(store, key, error, words):
    calls = [lambda: store.load(key), lambda: store.save(key, b"v"), lambda: store.delete(key),
             lambda: store.stat(key), lambda: store.exists(key), lambda: store.add(key, 1, expires_at=FUTURE),
             lambda: store.raise_to(key, 1, expires_at=FUTURE), lambda: store.acquire(key, timeout=0),
             lambda: store.is_locked(key)]
    for call in calls:
        with pytest.raises(error, match=words):
            call()


def test_a_store_is_a_context_manager_and_close_is_idempotent(make):
    with make() as store:
        store.save("k", b"v")
    store.close()


def test_the_options_are_checked(make):
    with pytest.raises(ValueError, match="lease"):
        make(lease=0)
    with pytest.raises(ValueError, match="retry_interval"):
        make(retry_interval=-1)
    store = make()
    with pytest.raises(ValueError, match="timeout"):
        store.acquire("job", timeout=-1)
