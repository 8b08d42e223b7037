"""One bad stored segment never stops pages or the pipeline (issue #12): a rule the engine now
refuses is skipped, its members are held, it is logged once per version, and every other
segment keeps working, in the real drain (Redis, PostgreSQL) and on real pages."""

import logging
import time

import pytest
from django.test import override_settings

import segments.definitions
from consent.api import get_consent, notice_version
from segments import events
from segments.api import exchange, get_backend, mirror_consent
from segments.checks import check_stored_rules
from segments.definitions import context_segments, enabled_segments
from segments.models import MembershipChange, Segment
from segments.rules import (
    Condition,
    Field,
    Outcome,
    register_condition,
    unregister_condition,
    validate_rule,
)
from segments.stream import drain as pipeline
from tests.builders import (
    browser,
    consenting_browser,
    demo_site,
    home_page,
    page_variant,
    personalised_page,
    segment,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db]

KEY = "0123456789abcdef0123456789abcdef"
BUYER = {"type": "event_count", "event": "purchase", "min": 1, "window": "1h"}
FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}

# Stored rules the engine refuses today, each the way such a row comes to be.
BROKEN_RULES = {
    "unknown key (saved by an older version)": {
        "type": "event_count",
        "event": "page_view",
        "minn": 3,
        "window": "10m",
    },
    "condition type no installed app registers": {"type": "experiment_arm", "arm": "b"},
    "feature removed from the catalog": {
        "type": "feature",
        "feature": "loyalty_tier",
        "op": "eq",
        "value": 2,
    },
    "not a condition at all (a data migration's bug)": ["page_view", 3],
    "a number no float holds (a data migration's bug)": {
        "type": "event_count",
        "event": "page_view",
        "min": 10**400,
        "window": "1h",
    },
}


def _consent(key=KEY):
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)


def _event(name="page_view", key=KEY):
    return exchange(key, events.Event(visitor_key=key, name=name, ts=time.time()))


def _drain(backend, key=KEY):
    return pipeline.drain_partition(backend.partition_for(key))


def _store_broken(slug, rule, **fields):
    """A segment row written past validation (the ORM, a data migration, an older version)."""
    return Segment.objects.create(slug=slug, name=slug, rule=rule, **fields)


def _break(slug, rule):
    Segment.objects.filter(slug=slug).update(rule=rule)  # no clean(): as a migration would
    segments.definitions.forget_definitions()


@pytest.mark.parametrize("rule", BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_a_stored_rule_the_engine_refuses_does_not_stall_the_drain(backend, rule):
    segment("buyer", BUYER)
    _store_broken("broken", rule, priority=10)
    _consent()
    _event("purchase")
    assert _drain(backend).processed == 1
    assert backend.pending_partitions() == []  # acknowledged: the partition is not stalled
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}
    loaded = enabled_segments()
    assert [s.slug for s in loaded] == ["buyer"]
    assert set(loaded.broken) == {"broken"}


def test_a_model_condition_without_the_ml_app_is_skipped(backend):
    """``model``/``cluster`` conditions stored while segments_ml was installed, read by a
    deployment without it (the types are unregistered here the way an uninstalled app leaves
    them)."""
    from segments.rules import conditions

    saved = {t: type(c) for t, c in conditions().items() if t in ("model", "cluster")}
    for name in saved:
        unregister_condition(name)
    try:
        segment("buyer", BUYER)
        _store_broken("likely", {"type": "model", "model": "buys-again", "op": "gte", "value": 0.5})
        _consent()
        _event("purchase")
        assert _drain(backend).processed == 1
        assert exchange(KEY).segments_at(time.time()) == {"buyer"}
        assert "unknown condition type 'model'" in enabled_segments().broken["likely"]
    finally:
        for cls in saved.values():
            register_condition(cls)


def test_members_of_a_segment_whose_rule_breaks_are_held_not_exited(backend):
    segment("buyer", BUYER)
    segment("viewer", {"type": "event_count", "event": "page_view", "min": 1, "window": "1h"})
    _consent()
    _event("purchase")
    _drain(backend)
    until = exchange(KEY).memberships["buyer"]
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}

    _break("buyer", BROKEN_RULES["unknown key (saved by an older version)"])
    _event("page_view")
    assert _drain(backend).processed == 1
    # The other segment keeps working; the broken one neither exits nor re-enters anyone.
    assert exchange(KEY).segments_at(time.time()) == {"buyer", "viewer"}
    assert exchange(KEY).memberships["buyer"] == until  # its own end time, unchanged
    assert not MembershipChange.objects.filter(segment="buyer", entered=False).exists()
    assert MembershipChange.objects.filter(segment="buyer").count() == 1

    _break("buyer", BUYER)  # corrected: evaluation resumes, still a member, no history noise
    _event("page_view")
    _drain(backend)
    assert exchange(KEY).segments_at(time.time()) == {"buyer", "viewer"}
    assert MembershipChange.objects.filter(segment="buyer").count() == 1


def test_a_held_membership_still_ends_at_its_own_time(backend):
    segment("buyer", BUYER)
    _consent()
    _event("purchase")
    _drain(backend)
    _break("buyer", BROKEN_RULES["condition type no installed app registers"])
    until = exchange(KEY).memberships["buyer"]
    assert pipeline.reevaluate([KEY], until + 1) == 1
    assert "buyer" not in exchange(KEY).memberships
    left = MembershipChange.objects.get(segment="buyer", entered=False)
    assert left.reason == "membership ended while the segment's rule is broken"
    assert abs(left.at.timestamp() - until) < 1


def test_disabling_a_broken_segment_still_removes_its_members(backend):
    segment("buyer", BUYER)
    _consent()
    _event("purchase")
    _drain(backend)
    Segment.objects.filter(slug="buyer").update(rule=["broken"], enabled=False)
    segments.definitions.forget_definitions()
    _event("page_view")
    _drain(backend)
    assert exchange(KEY).segments_at(time.time()) == frozenset()
    assert MembershipChange.objects.get(segment="buyer", entered=False).reason == (
        "segment disabled"
    )


def test_a_broken_segment_is_logged_once_per_version_without_personal_data(backend, caplog):
    segment("buyer", BUYER)
    broken = _store_broken("broken", {"type": "event_count", "minn": 3})
    _consent()
    caplog.set_level(logging.WARNING, logger="segments.definitions")
    for _ in range(3):
        _event("purchase")
        _drain(backend)
        segments.definitions.forget_definitions()  # every process reloads: still logged once
    warnings = [r for r in caplog.records if r.name == "segments.definitions"]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0].getMessage() and "minn" in warnings[0].getMessage()
    assert KEY not in caplog.text

    broken.rule = {"type": "event_count", "maxx": 3}  # a new version of the row: said again
    broken.save()
    segments.definitions.forget_definitions()
    enabled_segments()
    assert len([r for r in caplog.records if r.name == "segments.definitions"]) == 2


def test_a_rule_changed_without_touching_updated_at_reaches_the_process():
    """A data migration's update() (or raw SQL) leaves updated_at alone: the definitions are
    versioned by content, so the change is seen at the next reload, not at the next restart."""
    segment("buyer", BUYER)
    assert [s.slug for s in enabled_segments()] == ["buyer"]
    Segment.objects.filter(slug="buyer").update(rule={**BUYER, "minn": 1})
    segments.definitions.forget_definitions()  # the cache time has passed
    loaded = enabled_segments()
    assert list(loaded) == [] and set(loaded.broken) == {"buyer"}


def test_the_check_and_the_run_time_agree_on_what_is_broken():
    segment("buyer", BUYER)
    _store_broken("broken", BROKEN_RULES["feature removed from the catalog"])
    assert [e.id for e in check_stored_rules(databases=["default"])] == ["segments.E005"]
    assert set(enabled_segments().broken) == {"broken"}


class _Faulty(Condition):
    """A site's condition type with bugs: compiling a "boom" node raises, and its evaluator
    raises for every request (both break the Condition contract)."""

    type = "faulty"
    context_only = True
    fields = (Field("boom", "text"),)

    def compile(self, node, path, options):
        if node.get("boom"):
            raise KeyError("boom")

        def evaluate(profile, now, context=None) -> Outcome:
            raise ZeroDivisionError

        return evaluate

    def describe(self, node):
        return "faulty"


@pytest.fixture
def faulty():
    register_condition(_Faulty)
    yield
    unregister_condition("faulty")


def test_a_condition_type_that_fails_to_compile_is_a_broken_rule_not_a_crash(backend, faulty):
    segment("buyer", BUYER)
    _store_broken("boom", {"type": "faulty", "boom": True})
    assert validate_rule({"type": "faulty", "boom": True}) == [
        ("", "the faulty condition could not be compiled (KeyError: 'boom').")
    ]
    _consent()
    _event("purchase")
    assert _drain(backend).processed == 1
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}
    assert "could not be compiled" in enabled_segments().broken["boom"]


def test_a_context_evaluator_that_raises_leaves_only_its_segment_out(faulty):
    segment("french", FRENCH)
    segment("faulty", {"type": "faulty"})
    assert context_segments({"language": "fr"}) == {"french"}


class _FaultyStored(Condition):
    """A site's behavioural condition whose evaluator raises for visitors who bought (against
    the contract), and whose reasons cannot be worded."""

    type = "faulty_stored"
    fields = ()

    def compile(self, node, path, options):
        def evaluate(profile, now, context=None) -> Outcome:
            if profile.totals.get("purchase"):
                raise ZeroDivisionError
            return Outcome(True, float("inf"), lambda: [1 / 0])

        return evaluate

    def describe(self, node):
        return "faulty"


def test_an_evaluator_that_raises_in_the_drain_holds_only_its_segment(backend):
    register_condition(_FaultyStored)
    try:
        segment("buyer", BUYER)
        segment("faulty", {"type": "faulty_stored"})
        _consent()
        _event("page_view")
        assert _drain(backend).processed == 1
        assert exchange(KEY).segments_at(time.time()) == {"faulty"}
        entered = MembershipChange.objects.get(segment="faulty")
        assert entered.reason == "(the reasons could not be worded)"
        _event("purchase")  # now its evaluator raises for this visitor
        assert _drain(backend).processed == 1
        assert backend.pending_partitions() == []
        assert exchange(KEY).segments_at(time.time()) == {"faulty", "buyer"}
        assert not MembershipChange.objects.filter(entered=False).exists()
    finally:
        unregister_condition("faulty_stored")


@override_settings(SEGMENTS_TIME_ZONE="Mars/Olympus_Mons")
def test_an_unknown_time_zone_falls_back_to_utc_for_the_drain_and_pages(backend):
    segment("buyer", BUYER)
    segment("any-day", {"type": "context", "attribute": "weekday", "op": "gte", "value": 0})
    _consent()
    _event("purchase")
    assert _drain(backend).processed == 1
    assert exchange(KEY).segments_at(time.time()) == {"buyer"}
    assert context_segments({}) == {"any-day"}
    assert segments.definitions.site_timezone().key == "UTC"


# -- pages ------------------------------------------------------------------------------------


@pytest.fixture
def site_with_a_broken_segment():
    demo_site()
    segment("french", FRENCH, priority=1)
    _store_broken("broken", BROKEN_RULES["unknown key (saved by an older version)"], priority=9)
    segments.definitions.forget_definitions()


def test_pages_render_when_one_stored_segment_is_broken(backend, site_with_a_broken_segment):
    client = consenting_browser()
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    response = browser().get("/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200


def test_page_variants_are_chosen_when_one_stored_segment_is_broken(
    backend, site_with_a_broken_segment
):
    original = personalised_page(variants=[("french", "Bonjour"), ("broken", "Never")])
    page_variant(original, "broken", "BROKEN PAGE", slug="offers-broken")
    page_variant(original, "french", "PAGE FRANCAISE", slug="offers-fr")
    response = browser().get(original.url, HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    assert b"PAGE FRANCAISE" in response.content
    response = browser().get(original.url)
    assert response.status_code == 200
    assert b"Standard offer" in response.content


def test_variants_naming_a_deleted_segment_render_the_default(backend):
    home_page()
    segment("french", FRENCH)
    original = personalised_page(variants=[("gone", "GONE BLOCK")])
    page_variant(original, ["gone"], "GONE PAGE", slug="offers-gone")
    page_variant(original, ["french"], "PAGE FRANCAISE", slug="offers-fr")
    response = browser().get(original.url)
    assert response.status_code == 200
    assert b"Standard offer" in response.content and b"GONE" not in response.content


def _member_of(client, slugs):
    """Give the client's visitor stored memberships as the drain would have left them."""
    response = client.get("/")
    key = get_consent(response.wsgi_request).visitor_key
    store = get_backend()
    store.client.hset(f"{store.prefix}:m:{key}", mapping={f"s:{s}": "inf" for s in slugs})
    return key


def test_a_stale_membership_of_a_deleted_segment_chooses_no_content(backend):
    home_page()
    viewer = segment("viewer", {**BUYER, "event": "page_view"})
    original = personalised_page(variants=[("viewer", "VIEWER BLOCK")], slug="deals")
    page_variant(original, ["viewer"], "VIEWER PAGE", slug="deals-viewer")
    client = consenting_browser()
    key = get_consent(client.get("/").wsgi_request).visitor_key
    _drain(backend, key)  # the page view makes the visitor a member
    assert b"VIEWER PAGE" in client.get(original.url).content
    viewer.delete()  # the drain removes the membership after the visitor's next event only
    segments.definitions.forget_definitions()
    response = client.get(original.url)
    assert response.status_code == 200
    assert b"VIEWER" not in response.content and b"Standard offer" in response.content


def test_held_members_of_a_broken_segment_keep_their_content(backend):
    home_page()
    segment("buyer", BUYER)
    original = personalised_page(variants=[("buyer", "BUYER BLOCK")], slug="deals")
    client = consenting_browser()
    _member_of(client, ["buyer"])
    _break("buyer", BROKEN_RULES["feature removed from the catalog"])
    response = client.get(original.url)
    assert response.status_code == 200 and b"BUYER BLOCK" in response.content


def test_a_variant_with_malformed_stored_segments_is_skipped_not_a_500(backend):
    home_page()
    segment("french", FRENCH, priority=3)
    segment("other", {**FRENCH, "value": "de"}, priority=1)
    original = personalised_page(slug="guide")
    odd = page_variant(original, ["other"], "ODD", slug="guide-odd")
    page_variant(original, ["french"], "PAGE FRANCAISE", slug="guide-fr")
    type(odd).objects.filter(pk=odd.pk).update(variant_segments={"french": True})
    response = browser().get(original.url, HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200 and b"PAGE FRANCAISE" in response.content
    type(odd).objects.filter(pk=odd.pk).update(variant_segments=7)
    response = browser().get(original.url, HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200 and b"PAGE FRANCAISE" in response.content
