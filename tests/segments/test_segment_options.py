"""Segment options (docs/rules.md, "Segment options"): persistent and non-persistent
segments, a random percentage of the matching visitors (a fixed draw per visitor), and static
segments whose members are computed once and then fixed, against the real Redis and
PostgreSQL (the drain and the static computation run in process)."""

import math
import time

import pytest
import time_machine
from django.core.exceptions import ValidationError

from consent.api import notice_version
from segments import events
from segments.api import exchange, mirror_consent
from segments.definitions import context_segments, in_sample
from segments.models import MembershipChange, StaticMember
from segments.stream import drain as pipeline
from segments.stream.static import compute_members
from tests.builders import segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

A, B, C = "a1" * 16, "b2" * 16, "c3" * 16
ENGAGED = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}
SHOPPER = {"type": "event_count", "event": "add_to_cart", "min": 1, "window": "1d"}


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


# -- persistent ---------------------------------------------------------------------------------


def test_a_persistent_segment_keeps_its_members_for_the_chosen_time_after_they_last_matched(
    backend,
):
    segment(rule=ENGAGED, persist_for="2h")
    _consent(A)
    now = time.time()
    _events(A, *[("page_view", now - 60)] * 3)
    until = exchange(A).memberships["engaged"]
    assert until == pytest.approx(now + 7200, abs=2)  # two hours after they last matched

    # The rule stops holding ten minutes later (the sweep looks then): the member stays, and
    # no exit is recorded ...
    assert pipeline.reevaluate_due(now=now + 700) == 1
    assert exchange(A).memberships == {"engaged": until}
    assert not MembershipChange.objects.filter(entered=False).exists()
    # ... until the two hours are over: then the exit is recorded, on time, with the reason.
    assert pipeline.reevaluate_due(now=until + 1) == 1
    left = MembershipChange.objects.get(entered=False)
    assert left.at.timestamp() == pytest.approx(until, abs=1)
    assert "fewer than the 3 required" in left.reason
    assert exchange(A).memberships == {}


def test_a_non_persistent_segment_loses_its_members_as_soon_as_the_rule_stops_holding(backend):
    segment(rule=ENGAGED)
    _consent(A)
    now = time.time()
    _events(A, *[("page_view", now - 60)] * 3)
    until = exchange(A).memberships["engaged"]
    assert until < now + 900  # the rule's own end: the window (and a minute's bucket)
    pipeline.reevaluate([A], until + 1)
    assert exchange(A).memberships == {}


def test_a_persistent_member_who_matches_again_is_kept_longer(backend):
    segment(rule=ENGAGED, persist_for="1h")
    _consent(A)
    now = time.time()
    _events(A, *[("page_view", now - 1800)] * 3)  # matched half an hour ago
    first = exchange(A).memberships.get("engaged")
    _events(A, *[("page_view", now)] * 3)
    assert exchange(A).memberships["engaged"] > (first or 0) + 1700
    assert MembershipChange.objects.filter(entered=True).count() == 1  # never left


def test_persistence_is_a_window_up_to_400_days():
    for value, ok in (("30d", True), ("400d", True), ("401d", False), ("3 days", False)):
        candidate = segment(slug=f"p{len(value)}{ok}", persist_for=value)
        if ok:
            candidate.full_clean()
        else:
            with pytest.raises(ValidationError) as error:
                candidate.full_clean()
            assert "persist_for" in error.value.message_dict


# -- a random percentage ------------------------------------------------------------------------


def test_the_draw_is_fixed_per_visitor_and_takes_about_the_percentage():
    keys = [f"{n:064x}" for n in range(20_000)]
    drawn = [k for k in keys if in_sample(k, "spring", 10)]
    assert 0.09 < len(drawn) / len(keys) < 0.11
    assert drawn == [k for k in keys if in_sample(k, "spring", 10)]  # the same every time
    # independent from one segment to another
    other = {k for k in keys if in_sample(k, "autumn", 10)}
    assert 0.07 < len(other & set(drawn)) / len(drawn) < 0.13
    assert all(in_sample(k, "spring", 100) for k in keys[:100])
    assert not any(in_sample(k, "spring", 0) for k in keys[:100])
    assert not in_sample(None, "spring", 50) and in_sample(None, "spring", None)


def _split(slug: str, percent: int) -> tuple[str, str]:
    """A visitor key drawn into the segment and one held out."""
    keys = [f"{n:02x}" * 32 for n in range(256)]
    inside = next(k for k in keys if in_sample(k, slug, percent))
    outside = next(k for k in keys if not in_sample(k, slug, percent))
    return inside, outside


def test_only_the_drawn_share_of_matching_visitors_enters_and_the_others_stay_out(backend):
    segment(rule=ENGAGED, sample_percent=40)
    inside, outside = _split("engaged", 40)
    _consent(inside, outside)
    now = time.time()
    for key in (inside, outside):
        _events(key, *[("page_view", now)] * 3)
    assert "engaged" in exchange(inside).memberships
    assert exchange(outside).memberships == {}
    # Evaluated again and again, the held-out visitor never enters (their draw is fixed).
    for _ in range(3):
        _events(outside, ("page_view", time.time()))
    assert exchange(outside).memberships == {}
    assert MembershipChange.objects.filter(visitor_key=outside).count() == 0


def test_a_segment_whose_draw_changes_lets_the_held_out_members_go_with_the_reason(backend):
    row = segment(rule=ENGAGED)
    _inside, outside = _split("engaged", 30)
    _consent(outside)
    _events(outside, *[("page_view", time.time())] * 3)
    assert "engaged" in exchange(outside).memberships
    row.sample_percent = 30
    row.save()
    pipeline.reevaluate([outside], time.time())
    assert exchange(outside).memberships == {}
    left = MembershipChange.objects.get(entered=False)
    assert "held out" in left.reason and "30%" in left.reason


def test_a_request_decides_a_sampled_context_segment_only_for_a_drawn_visitor():
    segment(
        "mobile",
        rule={"type": "context", "attribute": "device", "op": "eq", "value": "mobile"},
        sample_percent=50,
    )
    inside, outside = _split("mobile", 50)
    context = {"device": "mobile", "path": "/"}
    assert context_segments(context, visitor_key=inside) == {"mobile"}
    assert context_segments(context, visitor_key=outside) == frozenset()
    assert context_segments(context) == frozenset()  # no consent, no key: never drawn in


def test_the_percentage_is_0_to_100():
    for value, ok in ((0, True), (100, True), (-1, False), (101, False)):
        candidate = segment(slug=f"s{value + 5}", sample_percent=None)
        candidate.sample_percent = value
        if ok:
            candidate.full_clean()
        else:
            with pytest.raises(ValidationError) as error:
                candidate.full_clean()
            assert "sample_percent" in error.value.message_dict


# -- static ---------------------------------------------------------------------------------------


def test_a_static_segment_takes_the_matching_visitors_once_and_keeps_them(backend):
    _consent(A, B, C)
    now = time.time()
    _events(A, ("add_to_cart", now - 60))
    _events(B, ("page_view", now - 60))
    shoppers = segment("shoppers", rule=SHOPPER, static=True)
    assert compute_members(shoppers.pk) == 1
    assert list(StaticMember.objects.values_list("visitor_key", flat=True)) == [A]
    assert exchange(A).memberships == {"shoppers": math.inf}
    entry = MembershipChange.objects.get(segment="shoppers")
    assert entry.reason.startswith("in the static segment when its members were computed")
    assert backend.segment_sizes()["shoppers"] == 1

    # Computed once: asking again does nothing.
    assert compute_members(shoppers.pk) is None
    # Fixed: B now matches and is not added; A's cart event ages out and A stays.
    _events(B, ("add_to_cart", time.time()))
    pipeline.reevaluate([A], now + 3 * 86400)
    assert "shoppers" not in exchange(B).memberships
    assert exchange(A).memberships == {"shoppers": math.inf}
    # Editing the rule changes nobody's membership either.
    shoppers.rule = ENGAGED
    shoppers.save()
    _events(A, ("page_view", time.time()))
    assert exchange(A).memberships == {"shoppers": math.inf}
    assert MembershipChange.objects.filter(segment="shoppers").count() == 1


def test_visitors_without_consent_are_never_members_of_a_static_segment(backend):
    _consent(A)
    _events(A, ("add_to_cart", time.time()))
    mirror_consent(A, frozenset(), notice_version(), time.time() + 3600)  # withdrew since
    shoppers = segment("shoppers", rule=SHOPPER, static=True)
    assert compute_members(shoppers.pk) == 0
    assert not StaticMember.objects.exists()


def test_a_static_segment_switched_back_to_dynamic_forgets_its_members(backend):
    _consent(A)
    _events(A, ("add_to_cart", time.time() - 3 * 86400))  # no longer matches
    shoppers = segment("shoppers", rule={**SHOPPER, "window": "7d"}, static=True)
    assert compute_members(shoppers.pk) == 1
    shoppers.rule = SHOPPER  # one day: A's cart is too old now
    shoppers.static = False
    shoppers.save()
    assert not StaticMember.objects.exists()
    shoppers.refresh_from_db()
    assert shoppers.members_computed_at is None
    pipeline.reevaluate([A], time.time())
    assert exchange(A).memberships == {}


def test_a_static_segment_needs_a_condition_on_stored_behaviour():
    candidate = segment(
        "mobile-static",
        rule={"type": "context", "attribute": "device", "op": "eq", "value": "mobile"},
        static=True,
    )
    with pytest.raises(ValidationError) as error:
        candidate.full_clean()
    assert "static" in error.value.message_dict
    candidate.static = False
    candidate.full_clean()


def test_the_visitor_lookup_explains_the_draw_persistence_and_static_membership(backend):
    from segments.reporting.insights import explain

    segment("sampled", rule=ENGAGED, sample_percent=30)
    segment("kept", rule={**ENGAGED, "min": 2}, persist_for="1d")
    _inside, outside = _split("sampled", 30)
    _consent(outside)
    now = time.time()
    _events(outside, *[("page_view", now - 60)] * 3)
    shoppers = segment("shoppers", rule=SHOPPER, static=True)
    _events(outside, ("add_to_cart", now - 30))
    compute_members(shoppers.pk)  # after the cart: a member
    found = {e["segment"]: e for e in explain(outside)}
    assert not found["sampled"]["member"]  # the rule holds, the draw does not
    assert "held out: not among the 30%" in found["sampled"]["because"]
    pipeline.reevaluate([outside], now + 3600)  # the page views aged out of every window
    with time_machine.travel(now + 3600, tick=False):
        found = {e["segment"]: e for e in explain(outside)}
    assert found["kept"]["member"] and "persistent" in found["kept"]["because"]
    assert found["shoppers"]["member"]
    assert "members were computed" in found["shoppers"]["because"]
