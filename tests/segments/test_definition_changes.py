"""A segment's change reaches every visitor's next request: disabling, enabling again or changing
the rule of a segment in the admin re-evaluates the stored memberships on commit, so the very
next page a member asks for follows the new definition, not the one after it (the stored
memberships changed only when the visitor's next event was drained, after that request).
Real PostgreSQL, Redis and the Celery tasks (eager, as the demo runs them)."""

import json
import time

import pytest
from django.db.models import F
from django.utils import timezone

import segments.definitions
from segments.models import MembershipChange, Segment
from tests.builders import consenting_browser, demo_site, personalised_page, segment
from tests.cms_blocks.helpers import login

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def edit(admin, seg: Segment, **changes) -> None:
    data = {
        "name": seg.name,
        "slug": seg.slug,
        "description": seg.description,
        "rule": json.dumps(seg.rule),
        "priority": str(seg.priority),
        "enabled": "on" if seg.enabled else None,
        **changes,
    }
    data = {k: v for k, v in data.items() if v is not None}
    url = f"/admin/snippets/segments/segment/edit/{seg.pk}/"
    response = admin.post(url, data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    seg.refresh_from_db()


@pytest.fixture
def member(backend):
    """A consented visitor the pipeline made "engaged", and the offers page with its variant."""
    demo_site()
    segments.definitions.forget_definitions()
    personalised_page(default="Standard offer", variants=[("engaged", "ENGAGED offer")])
    return engaged_visitor()


def engaged_visitor():
    """A consented visitor whose three page views made them "engaged" (pipeline, eager)."""
    visitor = consenting_browser()
    for path in ("/guides/", "/about-us/", "/ceramic-mug/"):
        visitor.get(path)
    assert "ENGAGED offer" in visitor.get("/offers/").content.decode()
    return visitor


def sees_variant(visitor) -> bool:
    return "ENGAGED offer" in visitor.get("/offers/").content.decode()


def test_disabling_then_enabling_reaches_the_next_request(member):
    admin = login("boss", superuser=True)
    engaged = Segment.objects.get(slug="engaged")
    edit(admin, engaged, enabled=None)
    assert not sees_variant(member)
    edit(admin, engaged, enabled="on")
    assert sees_variant(member)  # the first request after enabling, not the second
    assert sees_variant(member)


def test_disabling_reaches_every_members_next_request(member):
    """Not only the visitor who happened to be cached: every member, whichever partition their
    stored membership lives in, loses the variant at their first request after the save."""
    members = [member, *(engaged_visitor() for _ in range(5))]
    admin = login("boss", superuser=True)
    edit(admin, Segment.objects.get(slug="engaged"), enabled=None)
    assert [sees_variant(m) for m in members] == [False] * len(members)
    edit(admin, Segment.objects.get(slug="engaged"), enabled="on")
    assert [sees_variant(m) for m in members] == [True] * len(members)


def test_a_change_saved_by_another_process_reaches_this_one_within_a_second(member):
    """Another process's save is a row changed under this process's cache (no signal here):
    this process asks the database at most every SEGMENTS_DEFINITIONS_CHECK_SECONDS (1 s) and
    reads the segments again, not after the 10 s cache time."""
    segments.definitions.enabled_segments()  # this process's cache, as a busy site has it
    Segment.objects.filter(slug="engaged").update(enabled=False, updated_at=timezone.now())
    time.sleep(1.1)
    assert not sees_variant(member)


def test_the_check_is_one_small_query_a_second_and_none_between(
    member, django_assert_num_queries, settings
):
    settings.SEGMENTS_DEFINITIONS_CHECK_SECONDS = 0.5
    segments.definitions.enabled_segments()
    with django_assert_num_queries(0):
        segments.definitions.enabled_segments()
    time.sleep(0.6)
    with django_assert_num_queries(1):  # the aggregate: nothing changed, nothing read again
        first = segments.definitions.enabled_segments()
        assert segments.definitions.enabled_segments() is first
    Segment.objects.filter(slug="engaged").update(priority=F("priority") + 1)  # no timestamp
    time.sleep(0.6)
    assert segments.definitions.enabled_segments() is first  # seen only after the cache time


def test_a_narrowed_rule_reaches_the_next_request(member):
    admin = login("boss", superuser=True)
    engaged = Segment.objects.get(slug="engaged")
    edit(admin, engaged, rule=json.dumps({**engaged.rule, "min": 100}))
    assert not sees_variant(member)  # no longer a member: not shown once more
    left = MembershipChange.objects.filter(segment="engaged", entered=False).latest("at")
    assert "100" in left.reason


def test_a_new_segment_takes_in_its_members_at_once(member):
    personalised_page(
        slug="club", title="Club", default="Join us", variants=[("regulars", "Welcome back")]
    )
    rule = {"type": "event_count", "event": "page_view", "min": 2, "window": "1h"}
    admin = login("boss", superuser=True)
    response = admin.post(
        "/admin/snippets/segments/segment/add/",
        {
            "name": "Regulars",
            "slug": "regulars",
            "description": "",
            "rule": json.dumps(rule),
            "priority": "0",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert "Welcome back" in member.get("/club/").content.decode()


@pytest.mark.django_db
def test_only_a_change_of_what_decides_membership_re_evaluates(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        engaged = segment("engaged")
    assert len(callbacks) == 1  # a new segment
    with django_capture_on_commit_callbacks() as callbacks:
        engaged.description = "People who came back"
        engaged.priority = 3
        engaged.save()
    assert callbacks == []
    for field, value in (
        ("enabled", False),
        ("slug", "keen"),
        ("rule", {**engaged.rule, "min": 4}),
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            setattr(engaged, field, value)
            engaged.save()
        assert len(callbacks) == 1, field
    with django_capture_on_commit_callbacks() as callbacks:
        engaged.delete()
    assert len(callbacks) == 1
