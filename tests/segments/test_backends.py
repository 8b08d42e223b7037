"""One contract, two backends: the embedded one must behave exactly like Redis."""

import time

import pytest
from django.conf import settings

from segments import events
from segments.backends.base import VisitorUpdate
from segments.backends.embedded import EmbeddedBackend
from segments.backends.redis import RedisBackend

pytestmark = pytest.mark.services

KEY = "0123456789abcdef0123456789abcdef"
FAR = time.time() + 3600


@pytest.fixture(params=["embedded", "redis"])
def store(request):
    if request.param == "embedded":
        b = EmbeddedBackend({"PARTITIONS": 2})
    else:
        b = RedisBackend(
            {
                "URL": settings.TEST_REDIS_URL,
                "KEY_PREFIX": f"tailored-contract-{settings.TEST_RUN_ID}",
                "PARTITIONS": 2,
            }
        )
    b.flush()
    yield b
    b.flush()


def _event(name="page_view", key=KEY):
    return events.encode(events.Event(visitor_key=key, name=name, ts=time.time()))


def _exchange(store, event=None, key=KEY, version="1"):
    return store.exchange(
        key,
        purpose="personalization",
        notice_version=version,
        now=time.time(),
        events=[event] if event else (),
    )


def test_unknown_visitor_has_no_consent_state(store):
    assert _exchange(store, _event()).consented is None
    assert store.pending_partitions() == []


def test_events_are_appended_only_with_consent_for_the_purpose(store):
    store.set_consent(KEY, {"analytics": FAR}, "1", 3600)
    assert _exchange(store, _event()).consented is False
    assert store.pending_partitions() == []
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    result = _exchange(store, _event())
    assert result.consented is True and result.drain_needed is True
    assert store.pending_partitions() == [store.partition_for(KEY)]
    # The drain flag is now set: the next event does not ask for another drain.
    assert _exchange(store, _event()).drain_needed is False


def test_expired_consent_or_another_notice_version_counts_as_none(store):
    store.set_consent(KEY, {"personalization": time.time() - 1}, "1", 3600)
    assert _exchange(store, _event()).consented is False
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    assert _exchange(store, _event(), version="2").consented is False


def test_withdrawal_replaces_grants(store):
    store.set_consent(KEY, {"personalization": FAR, "analytics": FAR}, "1", 3600)
    store.set_consent(KEY, {"analytics": FAR}, "1", 3600)
    assert _exchange(store).consented is False


def test_read_commit_acknowledges_and_memberships_round_trip(store):
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    for _ in range(3):
        _exchange(store, _event())
    p = store.partition_for(KEY)
    entries = store.read_batch(p, "c1", 10)
    assert len(entries) == 3
    assert [events.decode(e.fields).name for e in entries] == ["page_view"] * 3
    until = time.time() + 60
    store.commit(
        p, [VisitorUpdate(KEY, '{"x":1}', {"engaged": until}, [])], [e.entry_id for e in entries]
    )
    assert store.pending_partitions() == []
    assert store.read_batch(p, "c1", 10, reclaim=True) == []
    result = _exchange(store)
    assert result.memberships == {"engaged": pytest.approx(until)}
    assert result.segments_at(time.time()) == {"engaged"}
    assert result.segments_at(until + 1) == frozenset()  # expires on time, no traffic needed
    state = store.load_visitors([KEY])[KEY]
    assert state.profile == '{"x":1}'
    store.commit(p, [VisitorUpdate(KEY, "{}", {}, ["engaged"])], [])
    assert _exchange(store).memberships == {}


def test_entries_of_a_consumer_that_died_are_reclaimed_in_order(store):
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    for name in ("a", "b", "c"):
        _exchange(store, _event(name))
    p = store.partition_for(KEY)
    first = store.read_batch(p, "dead-worker", 2)
    assert [events.decode(e.fields).name for e in first] == ["a", "b"]
    # The dead worker never acknowledged; new reads without reclaiming skip its entries...
    assert [events.decode(e.fields).name for e in store.read_batch(p, "w2", 10)] == ["c"]
    # ...and a drain that reclaims gets them back, oldest first.
    again = store.read_batch(p, "w2", 10, reclaim=True)
    assert [e.entry_id for e in again][:2] == [e.entry_id for e in first]


def test_partition_lock_is_exclusive_and_only_released_by_its_holder(store):
    assert store.lock_partition(0, "t1", 5000)
    assert not store.lock_partition(0, "t2", 5000)
    store.unlock_partition(0, "t2")
    assert not store.lock_partition(0, "t2", 5000)
    store.unlock_partition(0, "t1")
    assert store.lock_partition(0, "t2", 5000)


def test_drain_flag(store):
    assert store.set_drain_flag(1) is True
    assert store.set_drain_flag(1) is False
    store.clear_drain_flag(1)
    assert store.set_drain_flag(1) is True


def test_visitors_are_spread_over_partitions_deterministically(store):
    keys = [f"{n:08x}" + "0" * 24 for n in range(64)]
    parts = {store.partition_for(k) for k in keys}
    assert parts == {0, 1}
    assert all(store.partition_for(k) == store.partition_for(k) for k in keys)


def test_several_events_are_appended_in_order_in_one_call(store):
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    batch = [_event(name) for name in ("a", "b", "c")]
    result = store.exchange(
        KEY, purpose="personalization", notice_version="1", now=time.time(), events=batch
    )
    assert result.consented and result.drain_needed
    entries = store.read_batch(store.partition_for(KEY), "c1", 10)
    assert [events.decode(e.fields).name for e in entries] == ["a", "b", "c"]
