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


@pytest.fixture(params=["embedded", "redis", "cluster"])
def store(request):
    if request.param == "embedded":
        b = EmbeddedBackend({"PARTITIONS": 2})
    else:
        # The cluster: three masters of the suite's own (tests.support.cluster).
        cluster = request.getfixturevalue("redis_cluster") if request.param == "cluster" else None
        b = RedisBackend(
            {
                "URL": cluster.url if cluster else settings.TEST_REDIS_URL,
                "CLUSTER": cluster is not None,
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


def _claimed(store, claim, event=None):
    return store.exchange(
        KEY,
        purpose="personalization",
        notice_version="1",
        now=time.time(),
        events=[event] if event else (),
        claim=claim,
    )


@pytest.mark.parametrize(
    ("standing", "claim", "honoured"),
    [
        ("7:1700000000", (7, 0), True),  # the cookie of the latest record
        ("7:1700000000", (9, 0), True),  # a newer one (the mirror is not told yet)
        ("7:1700000000", (6, 1800000000), False),  # an old copy, whatever its signing time
        ("7:1700000000", (-1, 1700000000), True),  # no record number: by its signing time
        ("7:1700000000", (-1, 1699999999), False),
        ("0:0", (-1, 0), True),  # a key rotation: every copy of the current cookie
        ("void", (7, 1800000000), False),  # the latest record grants nothing
    ],
)
def test_the_exchange_checks_a_cookies_claim_against_the_records_standing(
    store, standing, claim, honoured
):
    """The consent cookie is checked in the page view's own round trip (consent.standing's
    rule, as the store mirrors the record): an old copy records nothing."""
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600, standing=standing)
    result = _claimed(store, claim, _event())
    assert result.honoured is honoured
    assert result.consented is (honoured and standing != "void")
    assert store.pending_partitions() == ([store.partition_for(KEY)] if result.consented else [])
    # Without a claim (a server-side event, an import), the standing is not asked.
    assert _exchange(store).honoured is None


def test_a_claim_without_a_mirrored_standing_asks_for_the_record(store):
    """A mirror written before standings were part of it: rebuilt from the record first."""
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    if isinstance(store, RedisBackend):
        store.client.hdel(store._m(KEY), "_sq")
    else:
        del store._hashes[KEY]["_sq"]
    assert _claimed(store, (7, 0), _event()).consented is None
    assert store.pending_partitions() == []
    assert _exchange(store).consented is True  # events without a claim are not held up


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


def test_batch_step_fields_are_committed_and_read_back_by_the_same_exchange(store):
    """Sticky experiment assignments ("x:" fields) are written by the drain's commit and come
    back with the memberships in the request's one call, never as segments."""
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    p = store.partition_for(KEY)
    until = time.time() + 60
    update = VisitorUpdate(KEY, "{}", {"engaged": until}, [], set_fields={"x:7": "1:2"})
    store.commit(p, [update], [])
    result = _exchange(store, _event())
    assert result.assignments == {"7": "1:2"}
    assert result.segments_at(time.time()) == {"engaged"}
    assert result.memberships == {"engaged": pytest.approx(until)}
    store.commit(
        p,
        [VisitorUpdate(KEY, "{}", {}, [], set_fields={"x:8": "2:0"}, delete_fields=["x:7"])],
        [],
    )
    assert _exchange(store).assignments == {"8": "2:0"}


def test_erasure_removes_and_rekeying_moves_sticky_assignments(store):
    other = "f" * 32
    store.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    p = store.partition_for(KEY)
    store.commit(p, [VisitorUpdate(KEY, "{}", {}, [], set_fields={"x:7": "1:1"})], [])
    store.rename_visitor(KEY, other)
    assert store.visitor_data(other).fields.get("x:7") == "1:1"
    assert "x:7" not in store.visitor_data(KEY).fields
    store.erase_visitor(other)
    assert not any(f.startswith("x:") for f in store.visitor_data(other).fields)


def test_an_unconsented_exchange_returns_no_assignments(store):
    store.set_consent(KEY, {}, "1", 3600)
    p = store.partition_for(KEY)
    store.commit(p, [VisitorUpdate(KEY, "{}", {}, [], set_fields={"x:7": "1:1"})], [])
    result = _exchange(store)
    assert result.consented is False
    assert result.assignments == {}


def test_over_the_hard_cap_only_the_kept_events_are_accepted(store):
    """Back-pressure in two steps: over MAX_LENGTH the page views go, over HARD_MAX_LENGTH
    everything but purchases, so a burst of any event cannot grow a partition for ever."""
    capped = type(store)({**store.options, "MAX_LENGTH": 2, "HARD_MAX_LENGTH": 4})
    capped.set_consent(KEY, {"personalization": FAR}, "1", 3600)
    names = ["click", "page_view", "click", "page_view", "click"]
    names += ["page_view", "click", "add_to_cart", "purchase", "purchase"]
    shed = [_exchange(capped, _event(name)).shed for name in names]
    # Below 2 entries all go in; from 2, page views are shed; from 4, all but purchases.
    assert shed == [0, 0, 0, 1, 0, 1, 1, 1, 0, 0]
    stats = {s.partition: s for s in capped.stream_stats()}[capped.partition_for(KEY)]
    assert stats.length == 6 and stats.shed == 4


def test_the_store_remembers_the_partition_count_it_was_sealed_with(store):
    """Every backend (embedded, one Redis, a cluster) keeps the count the same way: recorded
    by the first process to use the store (never by a read-only look), kept by a rebuild
    (the waiting events were recorded by it), replaced by a seal only, forgotten with the
    store; and it says which partitions still hold events (what seal_partitions waits for)."""
    assert store.stored_partitions() is None
    assert store.partition_problem(record=False) is None
    assert store.stored_partitions() is None
    assert store.partition_problem() is None
    assert store.stored_partitions() == 2
    assert store.record_partitions(4) == 2  # the first count stays
    assert store.record_partitions(4, replace=True) == 4
    assert "sealed with 4" in store.partition_problem()
    store.flush(keep_stream=True)
    assert store.stored_partitions() == 4
    store.append_events(1, [_event()])
    assert store.waiting_partitions(2) == [1]
    store.flush()
    assert store.stored_partitions() is None
    assert store.waiting_partitions(2) == []
