"""The segment form's membership options (persistent, a random percentage, static), the export
of a static segment's pseudonymous members (a permission of its own, written to the audit
log), and a site's own condition type offered by the rule builder and evaluated on pages."""

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.utils import timezone
from wagtail.models import ModelLogEntry

from segments.models import Segment, StaticMember
from segments.rules import conditions, register_condition, unregister_condition
from tests.builders import browser, demo_site, segment
from tests.cms_blocks.helpers import login
from tests.support.docs import docs_condition_example

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/snippets/segments/segment/add/"
ENGAGED = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}
MANAGE = ("segments.add_segment", "segments.change_segment", "segments.view_segment")


def _form(rule, **fields):
    return {
        "name": "Engaged",
        "slug": "engaged",
        "description": "",
        "rule": json.dumps(rule),
        "priority": "0",
        "enabled": "on",
        "persist_for": "",
        "sample_percent": "",
        **fields,
    }


def _edit_url(seg):
    return f"/admin/snippets/segments/segment/edit/{seg.pk}/"


def _catalog(html: str) -> dict:
    found = re.search(
        r'<script id="[^"]*-catalog" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1))


def test_the_segment_form_offers_persistence_a_random_percentage_and_static():
    client = login("manager", *MANAGE)
    html = client.get(ADD_URL).content.decode()
    for name in ("persist_for", "sample_percent", "static"):
        assert f'name="{name}"' in html
    response = client.post(ADD_URL, _form(ENGAGED, persist_for="30d", sample_percent="90"))
    assert response.status_code == 302, response.content
    saved = Segment.objects.get(slug="engaged")
    assert (saved.persist_for, saved.sample_percent, saved.static) == ("30d", 90, False)
    response = client.post(_edit_url(saved), _form(ENGAGED, persist_for="", sample_percent="90"))
    assert response.status_code == 302
    entry = ModelLogEntry.objects.get(action="cms_blocks.segment.change")
    assert entry.data["changes"] == [
        {"field": "persist_for", "before": "30d", "after": "not persistent"}
    ]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"persist_for": "3 days"}, "persist_for", "a window is a number followed by"),
        ({"persist_for": "500d"}, "persist_for", "at most 400 days"),
        ({"sample_percent": "101"}, "sample_percent", "less than or equal to 100"),
        ({"sample_percent": "-5"}, "sample_percent", ""),
    ],
)
def test_the_options_are_validated_with_a_message_on_the_field(fields, field, words):
    client = login("manager", *MANAGE)
    response = client.post(ADD_URL, _form(ENGAGED, **fields))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and words in " ".join(errors[field])
    assert not Segment.objects.exists()


def test_a_static_segment_of_request_conditions_only_is_refused_by_the_form():
    client = login("manager", *MANAGE)
    mobile = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
    response = client.post(ADD_URL, _form(mobile, static="on"))
    assert response.status_code == 200
    assert "computed from stored behaviour" in " ".join(response.context["form"].errors["static"])


# -- exporting a static segment's members ---------------------------------------------------------


def _static_with_members(*keys):
    seg = segment("shoppers", rule={"type": "event_count", "event": "purchase", "window": "30d"})
    Segment.objects.filter(pk=seg.pk).update(static=True, members_computed_at=timezone.now())
    seg.refresh_from_db()
    for n, key in enumerate(keys):
        StaticMember.objects.create(
            segment=seg, visitor_key=key, added_at=datetime(2026, 1, 1 + n, tzinfo=UTC)
        )
    return seg


def _export_url(seg):
    return f"/admin/tailored/segments/{seg.pk}/members.csv"


def test_members_of_a_static_segment_are_exported_by_pseudonymous_key():
    seg = _static_with_members("a1" * 32, "b2" * 32)
    client = login("exporter", "segments.export_segment_members")
    response = client.get(_export_url(seg))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="segment-shoppers-members.csv"' in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["visitor_key", "added_at"],
        ["a1" * 32, "2026-01-01T00:00:00+00:00"],
        ["b2" * 32, "2026-01-02T00:00:00+00:00"],
    ]
    entry = ModelLogEntry.objects.get(action="cms_blocks.segment.export_members")
    assert entry.data == {"segment": "shoppers", "members": 2}
    assert entry.user.username == "exporter"


def test_exporting_members_needs_its_own_permission():
    seg = _static_with_members("a1" * 32)
    # Managing segments is not enough.
    response = login("manager", *MANAGE).get(_export_url(seg))
    assert response.status_code == 403
    assert "Can export the pseudonymous members of static segments" in response.content.decode()
    assert not ModelLogEntry.objects.filter(action="cms_blocks.segment.export_members").exists()
    anonymous = browser().get(_export_url(seg))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_only_a_static_segment_has_members_to_export():
    dynamic = segment("engaged")
    client = login("exporter", "segments.export_segment_members")
    assert client.get(_export_url(dynamic)).status_code == 404
    assert client.get("/admin/tailored/segments/999999/members.csv").status_code == 404


# -- a site's own condition type ------------------------------------------------------------------


WeekdayIn = docs_condition_example()["WeekdayIn"]


@pytest.fixture
def weekday_in():
    register_condition(WeekdayIn)
    try:
        yield
    finally:
        unregister_condition("weekday_in")
    assert "weekday_in" not in conditions()


def test_a_registered_condition_type_is_offered_by_the_rule_builder_and_saved(weekday_in):
    client = login("manager", *MANAGE)
    catalog = _catalog(client.get(ADD_URL).content.decode())
    entry = next(c for c in catalog["conditions"] if c["type"] == "weekday_in")
    assert entry["label"] == "Day of the week" and entry["context_only"]
    assert entry["fields"][0]["kind"] == "choices"
    assert entry["new"] == {"type": "weekday_in", "days": [5, 6]}
    rule = {"type": "all", "conditions": [{"type": "weekday_in", "days": [6]}]}
    response = client.post(ADD_URL, _form(rule, name="Sunday", slug="sunday"))
    assert response.status_code == 302, response.content
    assert Segment.objects.get(slug="sunday").rule == rule
    # and the builder's check endpoint describes it
    checked = client.post(
        "/admin/tailored/rules/check/",
        data=json.dumps({"rule": rule}),
        content_type="application/json",
    ).json()
    assert checked["description"] == "Visitors matching a visit on Sunday."
    assert checked["problems"] == []


def test_a_registered_condition_type_decides_pages_for_visitors_without_consent(weekday_in):
    demo_site()
    segment("sunday", rule={"type": "weekday_in", "days": [6]})
    sunday = datetime(2017, 1, 1, 12, tzinfo=UTC)  # wagtail-personalisation's own day test
    with time_machine.travel(sunday, tick=False):
        assert "<b>sunday</b>" in browser().get("/").content.decode()
    with time_machine.travel(datetime(2017, 1, 2, 12, tzinfo=UTC), tick=False):
        assert "<b>sunday</b>" not in browser().get("/").content.decode()


def test_a_static_segments_editor_offers_the_export_to_users_allowed_to_export():
    seg = _static_with_members("a1" * 32)
    url = _export_url(seg)
    allowed = login("exporter", *MANAGE, "segments.export_segment_members")
    assert url in allowed.get(_edit_url(seg)).content.decode()
    assert url not in login("manager", *MANAGE).get(_edit_url(seg)).content.decode()
    dynamic = segment("engaged")
    assert "members.csv" not in allowed.get(_edit_url(dynamic)).content.decode()
