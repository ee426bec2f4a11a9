"""Standbys shared between processes, in the core: the facts, their merge, and `absorb`.

Two meshes built from one configuration stand for two worker processes; what one learns
reaches the other only as `facts()` handed to `absorb()` (the shell carries them through
storage). Nothing here does I/O.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmesh._core._health import ModelByHand
from modelmesh._core._sharing import Fact, live, merged

from core_helpers import T0, Clock, drive, make_mesh, member, provider, provider_up

MSG = [{"role": "user", "content": "hi"}]
POOLS = {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                  "rotation": {"selection": {"model_priority": ["a/m1", "b/m2"]},
                               "recovery": {"cooldown": "60s", "initial_cooldown": "60s", "probe_interval": None}}}}


def workers(n=2):
    return [make_mesh({"a": provider(["m1"]), "b": provider(["m2"])}, POOLS) for _ in range(n)]


def by_hand(mesh, ref, until, now=T0):
    mesh.health.record(ModelByHand(pool="chat", ref=ref, up=False, until=until), now, [])


def share(source, target, now):
    events = []
    target.health.absorb(source.health.facts(now), now, events)
    return events


# -- the merge --------------------------------------------------------------------------------

def test_two_standbys_are_one_that_lasts_the_longest_and_no_deadline_outlasts_any():
    a = Fact(down=True, at=10, until=100, reason="retry_limit")
    b = Fact(down=True, at=50, until=60, reason="rate_limited")
    assert merged(a, b) == merged(b, a) == Fact(down=True, at=50, until=100, reason="retry_limit")
    forever = Fact(down=True, at=70, until=None, reason="auth_failure")
    assert merged(a, forever) == Fact(down=True, at=70, until=None, reason="auth_failure")


def test_the_later_of_a_standby_and_a_recovery_wins_and_at_the_same_instant_the_standby():
    down = Fact(down=True, at=10, until=100, reason="retry_limit")
    assert merged(down, Fact(down=False, at=30)) == Fact(down=False, at=30)
    assert merged(down, Fact(down=False, at=5)) == down
    assert merged(down, Fact(down=False, at=10)) == down
    assert merged(None, down) == merged(down, None) == down and merged(None, None) is None


def test_a_standby_whose_deadline_passed_says_nothing_any_more():
    assert live(Fact(down=True, at=10, until=100), 99.9) and not live(Fact(down=True, at=10, until=100), 100)
    assert live(Fact(down=True, at=10, until=None), 10**9) and not live(Fact(down=False, at=10), 11)


_at = st.integers(0, 20).map(float)
facts = st.one_of(
    st.builds(Fact, down=st.just(True), at=_at, until=st.one_of(st.none(), st.integers(0, 40).map(float)),
              reason=st.sampled_from([None, "retry_limit", "auth_failure"])),
    st.builds(Fact, down=st.just(False), at=_at))


@given(facts, facts)
def test_the_merge_does_not_care_which_account_is_mine(a, b):
    assert merged(a, b) == merged(b, a)


@given(facts, facts)
def test_a_merged_standby_never_ends_before_either_standby_it_merged(a, b):
    m = merged(a, b)
    if a.down and b.down:
        assert m.down and (m.until is None or all(f.until is not None and f.until <= m.until for f in (a, b)))


@pytest.mark.parametrize("data, field", [
    ({"down": "yes", "at": 1.0}, "down"), ({"down": True, "at": float("nan")}, "at"),
    ({"down": True, "at": 1.0, "until": "soon"}, "until"), ({"down": True, "at": 1.0, "why": "x"}, "unknown"),
    ([1, 2], "object"), ({"down": False, "at": 1.0, "until": 5.0}, "standby"),
])
def test_a_stored_fact_that_is_not_one_is_refused_naming_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        Fact.from_dict(data)


def test_a_fact_round_trips_through_plain_data():
    fact = Fact(down=True, at=T0, until=T0 + 60, reason="retry_limit")
    assert Fact.from_dict(fact.to_dict()) == fact


# -- absorb -----------------------------------------------------------------------------------

def test_a_standby_learnt_by_one_worker_is_honoured_by_another_until_its_deadline():
    one, two = workers()
    by_hand(one, "a/m1", until=T0 + 120)
    events = share(one, two, T0 + 1)
    row = member(two, "a/m1", T0 + 1)
    assert row["status"] == "standby" and row["until"] == T0 + 120
    assert [e.type for e in events] == ["model_deactivated"] and "another process" in events[0].detail
    final, seen = drive(two.start("chat", {"messages": MSG}, model="chat", now=T0 + 1), {"b/m2": [200]}, Clock(T0 + 1))
    assert final.provider == "b" and [a.ref for a in seen if hasattr(a, "ref")] == ["b/m2"]  # nothing sent to a/m1
    assert member(two, "a/m1", T0 + 120)["status"] == "active"  # the shared deadline ends it there too


def test_a_shared_standby_never_shortens_a_longer_one_and_extends_a_shorter_one():
    one, two = workers()
    by_hand(one, "a/m1", until=T0 + 30)
    by_hand(two, "a/m1", until=T0 + 300)
    share(one, two, T0 + 1)
    assert member(two, "a/m1", T0 + 1)["until"] == T0 + 300
    share(two, one, T0 + 2)
    assert member(one, "a/m1", T0 + 2)["until"] == T0 + 300


def test_a_recovery_after_the_standby_began_ends_it_elsewhere_and_an_older_one_does_not():
    one, two = workers()
    by_hand(one, "a/m1", until=T0 + 300, now=T0)
    share(one, two, T0 + 1)
    one.health.record(ModelByHand(pool="chat", ref="a/m1", up=True), T0 + 10, [])
    events = share(one, two, T0 + 11)
    assert member(two, "a/m1", T0 + 11)["status"] == "active"
    assert [(e.type, e.how) for e in events] == [("model_recovered", "shared")]
    # a worker that went down after that recovery keeps its standby
    by_hand(two, "a/m1", until=T0 + 400, now=T0 + 20)
    share(one, two, T0 + 21)
    assert member(two, "a/m1", T0 + 21)["status"] == "standby"


def test_a_bad_key_found_by_one_worker_takes_the_provider_aside_in_every_other():
    one, two, three = workers(3)
    drive(one.start("chat", {"messages": MSG}, model="chat", now=T0), {"a/m1": [401], "b/m2": [200]}, Clock(T0))
    assert not provider_up(one, "a", T0 + 1)
    for other in (two, three):
        share(one, other, T0 + 1)
        assert not provider_up(other, "a", T0 + 1)
        assert other.health.provider_states["a"].reason == "auth_failure"


def test_facts_of_pools_and_providers_this_worker_does_not_have_are_ignored():
    one, = workers(1)
    foreign = {"model:other-pool:x/y": Fact(down=True, at=T0, until=T0 + 60),
               "model:chat:zz/nope": Fact(down=True, at=T0, until=T0 + 60),
               "provider:ghost": Fact(down=True, at=T0, until=None, reason="auth_failure"),
               "nonsense": Fact(down=True, at=T0)}
    events = []
    one.health.absorb(foreign, T0 + 1, events)
    assert events == [] and member(one, "a/m1", T0 + 1)["status"] == "active"


def test_an_expired_standby_from_elsewhere_changes_nothing():
    one, two = workers()
    by_hand(one, "a/m1", until=T0 + 30)
    events = share(one, two, T0 + 31)
    assert events == [] and member(two, "a/m1", T0 + 31)["status"] == "active"
