"""Draining the stream: features, rules and membership against real Redis and PostgreSQL."""

import json
import time

import pytest

from consent.api import notice_version
from segments import events
from segments.api import exchange, mirror_consent
from segments.models import LoggedEvent
from segments.stream import drain as pipeline
from tests.builders import segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

KEY = "fedcba9876543210fedcba9876543210"


def _consent(key=KEY, granted=frozenset({"personalization"})):
    mirror_consent(key, granted, notice_version(), time.time() + 3600)


def _view(key=KEY, ts=None, name="page_view"):
    return exchange(key, events.Event(visitor_key=key, name=name, ts=ts or time.time()))


def _drain(backend, key=KEY):
    return pipeline.drain_partition(backend.partition_for(key))


def test_three_views_in_ten_minutes_make_a_member_with_an_exact_end(backend):
    segment()
    _consent()
    old = time.time() - 9 * 60  # three views nine minutes ago: still inside the window
    for _ in range(3):
        _view(ts=old)
    assert _drain(backend).processed == 3
    result = exchange(KEY)
    assert result.segments_at(time.time()) == {"engaged"}
    until = result.memberships["engaged"]
    # Leaves within a minute of the window passing, without any further event.
    assert old + 600 <= until <= old + 600 + 60
    assert result.segments_at(until + 0.001) == frozenset()
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 3


def test_two_views_are_not_enough(backend):
    segment()
    _consent()
    _view()
    _view()
    _drain(backend)
    assert exchange(KEY).segments_at(time.time()) == frozenset()


def test_membership_is_removed_when_the_rule_no_longer_holds(backend):
    segment()
    segment("buyer", {"type": "event_count", "event": "purchase", "min": 1, "window": "1h"})
    _consent()
    _view(name="purchase")
    _drain(backend)
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}
    backend.client.hset(f"{backend.prefix}:m:{KEY}", "s:stale", "inf")  # e.g. a deleted segment
    _view()
    _drain(backend)
    assert set(exchange(KEY).memberships) == {"buyer"}


def test_a_batch_is_applied_once_even_if_the_worker_dies_before_acknowledging(backend, monkeypatch):
    segment()
    _consent()
    for _ in range(3):
        _view()
    real_commit = backend.commit

    class WorkerKilled(BaseException):
        """The process ends here (no ``except Exception`` in the drain sees it)."""

    def crash(*args, **kwargs):  # the worker dies after the durable write, before the ack
        raise WorkerKilled

    monkeypatch.setattr(backend, "commit", crash)
    with pytest.raises(WorkerKilled):
        _drain(backend)
    monkeypatch.setattr(backend, "commit", real_commit)
    assert backend.pending_partitions() == [backend.partition_for(KEY)]

    assert _drain(backend).processed == 3  # reclaimed
    assert _drain(backend).processed == 0
    profile = json.loads(backend.visitor_data(KEY).profile)
    assert profile["t"] == {"page_view": 3}
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 3
    assert exchange(KEY).segments_at(time.time()) == {"engaged"}


def test_events_of_a_visitor_who_withdrew_before_processing_are_dropped(backend):
    segment()
    _consent()
    for _ in range(3):
        _view()
    _consent(granted=frozenset())  # withdrawn while in flight
    _drain(backend)
    assert backend.pending_partitions() == []
    assert LoggedEvent.objects.count() == 0
    assert backend.visitor_data(KEY).profile is None


def test_malformed_stream_entries_are_dropped_not_fatal(backend):
    segment()
    _consent()
    p = backend.partition_for(KEY)
    backend.client.xadd(f"{backend.prefix}:e:{p}", {"k": KEY, "d": "{not json"})
    _view()
    assert _drain(backend).processed == 1
    assert backend.pending_partitions() == []


def test_each_visitors_events_stay_in_order_in_one_partition(backend):
    _consent()
    for n in range(5):
        _view(ts=1_000 + n)
    p = backend.partition_for(KEY)
    entries = backend.read_batch(p, "reader", 10)
    assert [events.decode(e.fields).ts for e in entries] == [1_000 + n for n in range(5)]


def test_drain_rejects_unknown_partitions(backend):
    with pytest.raises(ValueError):
        pipeline.drain_partition(999)
