"""wagtail-personalisation's acceptance cases for static segments and random percentages
(``tests/unit/test_static_dynamic_segments.py``) and for the export of a static segment's
members (``test_views.py``: ``test_segment_user_data_view*``), as tests of this project.

Segments are saved through the admin's segment form, as an editor does; visitors are real
test clients that consented and browsed the demo site (real PostgreSQL and Redis, Celery
eager: the static segment's members are computed when the form is saved). Where
wagtail-personalisation adds Django *users* to ``static_users``, members here are consenting
visitors, named by their pseudonymous key; its ``excluded_users`` (visitors who matched but
lost the random draw) need no table here: the draw is fixed per visitor (a keyed hash), so a
held-out visitor is held out again on every evaluation.

Cases that do not apply here, and why:

- ``test_user_not_added_to_full_static_segment_at_creation``,
  ``test_session_added_to_static_segment_after_creation``,
  ``test_session_not_added_to_static_segment_after_full``: wagtail-personalisation's static
  segments take a ``count`` and keep adding matching visitors until it is reached. Here a
  static segment's members are computed once, when it is saved as static, and then fixed:
  nobody is added later (checked by
  ``test_a_visitor_matching_after_the_members_were_computed_is_not_added``).
- ``test_mixed_static_dynamic_session_doesnt_generate_at_creation``,
  ``test_sessions_not_added_to_static_segment_if_rule_not_static``,
  ``test_non_static_rules_have_a_count``: there, rules that cannot be decided for a stored
  user (time, day, device...) make a static segment wait for sessions. Here a static
  segment's rule must have a condition on stored behaviour (a rule of request conditions only
  is refused when saved); request conditions within it read each visitor's latest known
  context.
- ``test_count_users_matching_static_rules``, ``test_count_matching_users_excludes_staff``,
  ``..._excludes_inactive``, ``..._only_counts_static_rules``, ``..._handles_match_any``,
  ``..._handles_match_all``: the form's count of matching Django users (staff and inactive
  ones left out). Visitors here are not users; the builder estimates a rule's size from
  stored profiles (tests/cms_blocks/test_rule_builder.py), and any/all groups populate a
  static segment as below.
"""

import csv
import io
import json

import pytest

from segments.api import get_backend
from segments.definitions import in_sample
from segments.models import MembershipChange, Segment, StaticMember
from tests.acceptance.helpers import consenting_visitor, key_of, segments_of, visitor
from tests.builders import demo_site
from tests.cms_blocks.helpers import login

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ADD_URL = "/admin/snippets/segments/segment/add/"
SAW_MUG = {"type": "page_visits", "path": "/ceramic-mug/", "min": 1}
SAW_GUIDES = {"type": "page_visits", "path": "/guides/", "min": 1}


@pytest.fixture(autouse=True)
def _site(backend):
    demo_site()


@pytest.fixture
def admin():
    return login("root", superuser=True)


def save_segment(admin, slug, rule, **fields):
    data = {
        "name": slug.title(),
        "slug": slug,
        "description": "",
        "rule": json.dumps(rule),
        "priority": "0",
        "enabled": "on",
        "persist_for": "",
        "sample_percent": "",
        **fields,
    }
    response = admin.post(ADD_URL, data)
    assert response.status_code == 302, response.context["form"].errors
    return Segment.objects.get(slug=slug)


def browsed(*paths):
    client = consenting_visitor()
    for path in paths:
        assert client.get(path).status_code == 200
    return client


def members(seg) -> set[str]:
    return set(StaticMember.objects.filter(segment=seg).values_list("visitor_key", flat=True))


def drawn(slug: str, percent: int, inside: bool, *paths):
    """A consenting visitor who browsed ``paths`` and whose draw for ``slug`` falls inside
    (or outside) ``percent``."""
    for _ in range(60):
        client = browsed(*paths)
        if in_sample(key_of(client), slug, percent) == inside:
            return client
    raise AssertionError("no visitor drawn on that side in 60 tries")


# -- creation -------------------------------------------------------------------------------------


def test_a_consenting_visitor_whose_behaviour_matches_is_a_member_once_the_static_segment_is_saved(
    admin,
):
    shopper = browsed("/ceramic-mug/")
    reader = browsed("/guides/")
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    assert members(seg) == {key_of(shopper)}
    assert "mug-viewers" in segments_of(shopper.get("/"))
    assert "mug-viewers" not in segments_of(reader.get("/"))


def test_a_visitor_without_consent_is_never_a_member_of_a_static_segment(admin):
    anonymous = visitor()
    anonymous.get("/ceramic-mug/")
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    assert members(seg) == set()
    assert "mug-viewers" not in segments_of(anonymous.get("/"))


def test_a_static_segment_with_an_any_group_takes_visitors_matching_either(admin):
    first, second = browsed("/ceramic-mug/"), browsed("/guides/")
    browsed("/")  # matches neither
    seg = save_segment(
        admin, "either", {"type": "any", "conditions": [SAW_MUG, SAW_GUIDES]}, static="on"
    )
    assert members(seg) == {key_of(first), key_of(second)}
    both = save_segment(
        admin, "both", {"type": "all", "conditions": [SAW_MUG, SAW_GUIDES]}, static="on"
    )
    assert members(both) == set()


def test_a_static_segments_size_is_its_member_count(admin):
    browsed("/ceramic-mug/"), browsed("/ceramic-mug/"), browsed("/")
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    assert get_backend().segment_sizes()["mug-viewers"] == len(members(seg)) == 2


# -- fixed ----------------------------------------------------------------------------------------


def test_a_visitor_matching_after_the_members_were_computed_is_not_added(admin):
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    late = browsed("/ceramic-mug/", "/ceramic-mug/")
    assert "mug-viewers" not in segments_of(late.get("/"))
    assert members(seg) == set()


def test_a_static_members_membership_is_not_evaluated_again(admin):
    member = browsed("/ceramic-mug/")
    seg = save_segment(admin, "mug-viewers", {**SAW_MUG, "max": 1}, static="on")
    # The member views the mug again: the rule (at most one view) no longer holds; they stay.
    for _ in range(3):
        member.get("/ceramic-mug/")
    assert "mug-viewers" in segments_of(member.get("/"))
    assert MembershipChange.objects.filter(segment="mug-viewers").count() == 1
    assert members(seg) == {key_of(member)}


def test_a_static_segment_needs_a_condition_on_stored_behaviour_but_a_dynamic_one_does_not(admin):
    desktop = {"type": "context", "attribute": "device", "op": "eq", "value": "desktop"}
    data = {
        "name": "Desktop",
        "slug": "desktop",
        "description": "",
        "rule": json.dumps(desktop),
        "priority": "0",
        "enabled": "on",
        "static": "on",
    }
    refused = admin.post(ADD_URL, data)
    assert refused.status_code == 200 and "static" in refused.context["form"].errors
    del data["static"]
    assert admin.post(ADD_URL, data).status_code == 302  # dynamic: fine
    mixed = save_segment(
        admin, "mixed", {"type": "all", "conditions": [SAW_MUG, desktop]}, static="on"
    )
    assert mixed.static


# -- a random percentage --------------------------------------------------------------------------


def test_the_random_percentage_is_saved_with_the_segment(admin):
    seg = save_segment(admin, "holdout", SAW_MUG, static="on", sample_percent="80")
    assert seg.sample_percent == 80


@pytest.mark.parametrize("percent", ["-1", "101"])
def test_a_random_percentage_below_0_or_above_100_is_refused(admin, percent):
    data = {
        "name": "X",
        "slug": "x",
        "rule": json.dumps(SAW_MUG),
        "priority": "0",
        "sample_percent": percent,
    }
    response = admin.post(ADD_URL, data)
    assert response.status_code == 200 and "sample_percent" in response.context["form"].errors


def test_a_static_segment_takes_only_the_drawn_share_of_matching_visitors(admin):
    inside = drawn("mugs", 40, True, "/ceramic-mug/")
    outside = drawn("mugs", 40, False, "/ceramic-mug/")
    seg = save_segment(admin, "mugs", SAW_MUG, static="on", sample_percent="40")
    assert key_of(inside) in members(seg)
    assert key_of(outside) not in members(seg)
    assert "mugs" in segments_of(inside.get("/")) and "mugs" not in segments_of(outside.get("/"))


def test_a_dynamic_segment_takes_only_the_drawn_share_of_matching_visitors(admin):
    save_segment(admin, "mugs", SAW_MUG, sample_percent="40")
    inside = drawn("mugs", 40, True, "/ceramic-mug/")
    outside = drawn("mugs", 40, False, "/ceramic-mug/")
    assert "mugs" in segments_of(inside.get("/"))
    # Held out, and held out again on every request (the draw is fixed per visitor).
    for _ in range(3):
        assert "mugs" not in segments_of(outside.get("/ceramic-mug/"))
    assert not MembershipChange.objects.filter(visitor_key=key_of(outside), segment="mugs")


def test_nobody_is_in_a_segment_taking_0_percent_and_everybody_matching_is_at_100(admin):
    save_segment(admin, "none", SAW_MUG, sample_percent="0")
    save_segment(admin, "all", SAW_MUG, sample_percent="100")
    clients = [browsed("/ceramic-mug/") for _ in range(3)]
    for client in clients:
        assert segments_of(client.get("/")) >= {"all"}
        assert "none" not in segments_of(client.get("/"))


# -- exporting the members (test_views.py) --------------------------------------------------------


def test_the_member_export_lists_the_members_by_pseudonymous_key(admin):
    first, second = browsed("/ceramic-mug/"), browsed("/ceramic-mug/")
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    response = admin.get(f"/admin/tailored/segments/{seg.pk}/members.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["visitor_key", "added_at"]
    assert {row[0] for row in rows[1:]} == {key_of(first), key_of(second)}


def test_the_member_export_needs_a_login_and_the_permission(admin):
    seg = save_segment(admin, "mug-viewers", SAW_MUG, static="on")
    url = f"/admin/tailored/segments/{seg.pk}/members.csv"
    anonymous = visitor().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    editor = login("editor", "segments.change_segment", "segments.view_segment")
    assert editor.get(url).status_code == 403
