"""Membership over time: history, sizes, leaving and entering on time, snapshots, estimates
and explanations, against the real Redis and PostgreSQL."""

import time

import pytest

from consent.api import notice_version
from segments import events
from segments.api import exchange, mirror_consent
from segments.models import MembershipChange, SegmentSnapshot
from segments.reporting import insights
from segments.stream import drain as pipeline
from tests.builders import segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

A = "a1" * 16
B = "b2" * 16


def _consent(*keys):
    for key in keys:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)


def _events(key, *items):
    for name, ts, *props in items:
        exchange(
            key,
            events.Event(visitor_key=key, name=name, ts=ts, properties=props[0] if props else {}),
        )
    pipeline.drain_partition(pipeline.get_backend().partition_for(key))


def test_entering_and_leaving_are_recorded_with_reasons_and_sizes(backend):
    segment()  # engaged: 3 page views in 10 minutes
    _consent(A, B)
    now = time.time()
    _events(A, *[("page_view", now - 300)] * 3)
    _events(B, ("page_view", now))
    change = MembershipChange.objects.get()
    assert (change.visitor_key, change.segment, change.entered) == (A, "engaged", True)
    assert change.reason == "3 page view event(s) in the last 10 minutes (threshold 3)"
    assert backend.segment_sizes() == {"engaged": 1}

    # Nothing more happens; the window passes and the sweeper records the exit on time.
    until = exchange(A).memberships["engaged"]
    assert pipeline.reevaluate_due(now=until - 1) == 0
    assert pipeline.reevaluate_due(now=until + 1) == 1
    left = MembershipChange.objects.get(entered=False)
    assert left.at.timestamp() == pytest.approx(until, abs=1)
    assert backend.segment_sizes() == {"engaged": 0}
    assert exchange(A).memberships == {}
    assert backend.due_visitors(until + 10**6, 10) == []


def test_time_based_segments_are_entered_without_traffic(backend):
    segment(
        "lapsed",
        {"type": "feature", "feature": "days_since_last_seen", "op": "gte", "value": 30},
    )
    _consent(A)
    seen = time.time() - 29 * 86400
    _events(A, ("page_view", seen))
    assert exchange(A).memberships == {}
    due = backend.due_visitors(seen + 31 * 86400, 10)
    assert due == [A]
    pipeline.reevaluate_due(now=seen + 30 * 86400 + 1)
    assert set(exchange(A).memberships) == {"lapsed"}
    assert MembershipChange.objects.get().entered is True


def test_a_disabled_segment_is_left(backend):
    seg = segment()
    _consent(A)
    now = time.time()
    _events(A, *[("page_view", now)] * 3)
    seg.enabled = False
    seg.save()
    _events(A, ("page_view", now))
    assert MembershipChange.objects.filter(entered=False).get().reason == "segment disabled"


def test_snapshots_estimates_and_the_small_segment_guard(backend, settings):
    segment()
    segment("buyers", {"type": "event_count", "event": "purchase", "min": 1, "window": "30d"})
    _consent(A, B)
    now = time.time()
    _events(A, *[("page_view", now)] * 3)
    _events(B, ("purchase", now, {"value": 10.0}))
    settings.SEGMENTS_MIN_SIZE = 2
    snaps = {s.segment: s for s in insights.take_snapshots()}
    assert snaps["engaged"].size == 1 and snaps["buyers"].size == 1
    assert len(snaps["engaged"].rule_hash) == 64
    insights.take_snapshots()  # same day: updated, not duplicated
    assert SegmentSnapshot.objects.count() == 2
    sizes = {s["segment"]: s for s in insights.segment_sizes()}
    assert sizes["engaged"]["too_small"] is True

    estimate = insights.estimate_size(
        {"type": "event_count", "event": "page_view", "min": 1, "window": "1h"}
    )
    assert estimate == {"sampled": 2, "matched": 1, "profiles": 2, "estimate": 1, "too_small": True}


def test_explanations_say_why(backend):
    segment()
    _consent(A)
    now = time.time()
    _events(A, *[("page_view", now)] * 4)
    (engaged,) = insights.explain(A)
    assert engaged["member"] is True
    assert engaged["because"] == (
        "in engaged because: 4 page view event(s) in the last 10 minutes (threshold 3)"
    )
    assert engaged["until"] and engaged["history"][0]["entered"] is True


def test_erasure_keeps_sizes_right(backend):
    from segments.privacy import erase

    segment()
    _consent(A)
    _events(A, *[("page_view", time.time())] * 3)
    assert backend.segment_sizes() == {"engaged": 1} and backend.profile_count() == 1
    erase(A, frozenset())
    assert backend.segment_sizes() == {"engaged": 0} and backend.profile_count() == 0
