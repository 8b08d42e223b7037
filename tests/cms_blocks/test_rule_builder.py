"""Segments in the admin: the rule builder's form and widget, the rule-check endpoint (problems
with paths, the description, the estimated size), the history of changes and the chooser."""

import json
import re

import pytest
from django.urls import reverse
from wagtail.models import ModelLogEntry

from cms_blocks.forms import SegmentForm, readable_path
from cms_blocks.widgets import SegmentChooser
from segments.api import describe_rule as describe
from segments.models import Segment
from tests.builders import segment
from tests.cms_blocks.helpers import XSS, consent, login, visit

pytestmark = pytest.mark.django_db

ENGAGED = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}
ADD_URL = "/admin/snippets/segments/segment/add/"


def _edit_url(seg):
    return f"/admin/snippets/segments/segment/edit/{seg.pk}/"


def _form_data(rule, **fields):
    return {
        "name": "Engaged",
        "slug": "engaged",
        "description": "",
        "rule": rule if isinstance(rule, str) else json.dumps(rule),
        "priority": "5",
        "enabled": "on",
        **fields,
    }


def _check(client, rule):
    return client.post(
        reverse("cms_blocks_admin:rule_check"),
        data=json.dumps({"rule": rule}),
        content_type="application/json",
    )


@pytest.fixture
def manager():
    return login(
        "manager",
        "segments.add_segment",
        "segments.change_segment",
        "segments.delete_segment",
        "segments.view_segment",
    )


# -- the form ----------------------------------------------------------------------------------
def test_valid_rule_is_saved():
    form = SegmentForm(data=_form_data(ENGAGED), instance=Segment())
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.rule == ENGAGED and saved.priority == 5 and saved.enabled


def test_invalid_json_says_so_and_how_to_fix():
    form = SegmentForm(data=_form_data('{"type": "all", '), instance=Segment())
    assert not form.is_valid()
    (message,) = form.errors["rule"]
    assert message.startswith("The rule is not valid JSON (")
    assert "build the rule with the builder" in message
    assert not Segment.objects.exists()


def test_invalid_rule_names_the_condition_and_the_fix():
    rule = {"type": "all", "conditions": [ENGAGED, {**ENGAGED, "window": "ten minutes"}]}
    form = SegmentForm(data=_form_data(rule), instance=Segment())
    assert not form.is_valid()
    assert form.errors["rule"] == [
        "condition 2 > window: a window is a number followed by s, m, h or d, such as '10m'."
    ]
    nested = {"type": "any", "conditions": [{"type": "not", "condition": {"type": "feature"}}]}
    form = SegmentForm(data=_form_data(nested), instance=Segment())
    assert not form.is_valid()
    (message,) = form.errors["rule"]
    assert message.startswith("condition 1 > negated condition > feature: unknown feature None")


def test_readable_paths():
    assert readable_path("") == ""
    assert readable_path("conditions[0].conditions[2].min") == "condition 1 > condition 3 > min"
    assert readable_path("condition.window") == "negated condition > window"


def test_the_edit_form_has_the_builder_with_the_catalog_and_the_description(manager):
    seg = segment("engaged", ENGAGED)
    response = manager.get(_edit_url(seg))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cms_blocks/rule-builder.js" in html and "cms_blocks/rule-builder.css" in html
    assert "data-rule-builder" in html
    assert reverse("cms_blocks_admin:rule_check") in html
    # The raw JSON is in an ordinary textarea (works without JavaScript)...
    assert '<textarea name="rule"' in html
    # ...the catalog for the builder is a JSON data block, and the rule is described.
    assert 'id="id_rule-catalog" type="application/json"' in html
    assert "days_since_last_seen" in html
    assert "Visitors matching at least 3 page views in the last 10 minutes." in html


def test_the_builder_offers_device_and_country_and_saves_a_rule_on_them(manager):
    # wagtail-personalisation's device and country rules, in the builder's catalog...
    html = manager.get(ADD_URL).content.decode()
    found = re.search(
        r'<script id="id_rule-catalog" type="application/json">(.*?)</script>', html, re.S
    )
    catalog = json.loads(found.group(1))
    (context,) = [c for c in catalog["conditions"] if c["type"] == "context"]
    (attribute,) = [f for f in context["fields"] if f["name"] == "attribute"]
    offered = {choice["value"]: choice["words"] for choice in attribute["choices"]}
    assert offered["device"] == "the device" and offered["country"] == "the country"
    # ...and a rule built on them is saved through the form and described in plain words.
    rule = {
        "type": "all",
        "conditions": [
            {"type": "context", "attribute": "device", "op": "eq", "value": "tablet"},
            {"type": "context", "attribute": "country", "op": "in", "value": ["FR", "BE"]},
        ],
    }
    response = manager.post(ADD_URL, _form_data(rule, name="Tablets in France", slug="fr-tablets"))
    assert response.status_code == 302
    saved = Segment.objects.get(slug="fr-tablets")
    assert saved.rule == rule
    words = describe(saved.rule)
    assert "the device" in words and "tablet" in words and "the country" in words, words


def test_saving_through_the_admin_with_an_invalid_rule_shows_the_message(manager):
    response = manager.post(ADD_URL, _form_data({**ENGAGED, "min": 0}))
    assert response.status_code == 200
    assert "min: &#x27;min&#x27; must be a whole number from 1 to 1,000,000." in (
        response.content.decode()
    )
    assert not Segment.objects.exists()


# -- descriptions ------------------------------------------------------------------------------
def test_descriptions_cover_every_condition_type():
    rule = {
        "type": "all",
        "conditions": [
            ENGAGED,
            {
                "type": "not",
                "condition": {**ENGAGED, "event": "purchase", "min": 1, "window": "30d"},
            },
            {
                "type": "event_without",
                "event": "add_to_cart",
                "without": "purchase",
                "window": "1d",
                "min_age": "30m",
            },
            {
                "type": "any",
                "conditions": [
                    {
                        "type": "feature",
                        "feature": "category_affinity",
                        "param": "kitchen",
                        "op": "gte",
                        "value": 0.5,
                    },
                    {
                        "type": "context",
                        "attribute": "device",
                        "op": "in",
                        "value": ["mobile", "tablet"],
                    },
                ],
            },
            {"type": "visited", "path_prefix": "/guides/"},
            {"type": "model", "model": "churn", "op": "gte", "value": 0.6},
            {"type": "model", "model": "ltv", "top_percent": 10},
            {"type": "cluster", "model": "kmeans", "cluster": "3"},
        ],
    }
    assert describe(rule) == (
        "Visitors matching all of: at least 3 page views in the last 10 minutes; "
        "not (at least 1 purchase event in the last 30 days); "
        "add to cart in the last 1 day and no purchase since, at least 30 minutes ago; "
        "(any of: category affinity (kitchen) is at least 0.5; the device is one of “mobile”, "
        "“tablet”); a view of a page under “/guides/”; the score of model “churn” is at least "
        "0.6; among the top 10% scored by model “ltv”; in cluster “3” of model “kmeans”."
    )
    assert describe({"type": "bogus"}) == "Visitors matching an incomplete condition."
    assert describe("[]") == "Visitors matching an incomplete condition."


# -- the rule-check endpoint ---------------------------------------------------------------------
def test_check_reports_problems_with_paths_and_describes(manager):
    rule = {"type": "all", "conditions": [ENGAGED, {**ENGAGED, "max": 1}]}
    response = _check(manager, rule)
    assert response.status_code == 200
    data = response.json()
    assert data["problems"] == [
        {
            "path": "conditions[1].max",
            "where": "condition 2 > max",
            "message": "'max' must be a whole number no smaller than 'min'.",
        }
    ]
    assert data["estimate"] is None
    assert data["description"].startswith("Visitors matching all of:")


@pytest.mark.services
def test_check_estimates_the_size_of_a_valid_rule_from_stored_profiles(manager, backend):
    a, b, c = "a1" * 16, "b2" * 16, "c3" * 16
    consent(a, b, c)
    visit(a, *[("page_view", {"path": "/"})] * 3)
    visit(b, ("page_view", {"path": "/"}))
    visit(c, ("purchase", {"value": 12.5}))
    data = _check(manager, ENGAGED).json()
    assert data["problems"] == []
    assert data["estimate"]["profiles"] == 3
    assert data["estimate"]["matched"] == 1 and data["estimate"]["estimate"] == 1
    one_view = {**ENGAGED, "min": 1}
    assert _check(manager, one_view).json()["estimate"]["estimate"] == 2


def test_check_refuses_bad_requests_and_people_without_permission(manager):
    url = reverse("cms_blocks_admin:rule_check")
    assert manager.get(url).status_code == 405
    assert manager.post(url, data="{", content_type="application/json").status_code == 400
    assert manager.post(url, data="[1]", content_type="application/json").status_code == 400
    big = json.dumps({"rule": {"type": "all", "conditions": ["x" * 70_000]}})
    assert manager.post(url, data=big, content_type="application/json").status_code == 413
    reader = login("reader", "segments.view_segment")
    assert _check(reader, ENGAGED).status_code == 403
    assert login("results", "cms_blocks.view_results").post(url).status_code == 403


def test_a_typo_in_a_key_is_refused_by_the_form_and_the_check(manager):
    typo = {"type": "event_count", "event": "page_view", "minn": 3, "window": "10m"}
    rule = {"type": "any", "conditions": [ENGAGED, typo]}
    form = SegmentForm(data=_form_data(rule), instance=Segment())
    assert not form.is_valid()
    (message,) = form.errors["rule"]
    assert message.startswith("condition 2 > minn: unknown key 'minn'; event_count takes ")
    data = _check(manager, rule).json()
    assert [(p["path"], p["where"]) for p in data["problems"]] == [
        ("conditions[1].minn", "condition 2 > minn")
    ]
    assert data["problems"][0]["message"].startswith("unknown key 'minn'")
    assert data["estimate"] is None


# -- history -----------------------------------------------------------------------------------
def test_history_says_who_changed_what_and_escapes_it(manager):
    response = manager.post(ADD_URL, _form_data(ENGAGED, name=XSS))
    assert response.status_code == 302, response.content
    seg = Segment.objects.get()
    new_rule = {"type": "all", "conditions": [ENGAGED, {"type": "visited", "path": "/guides/"}]}
    response = manager.post(_edit_url(seg), _form_data(new_rule, name=XSS, priority="9"))
    assert response.status_code == 302, response.content

    change = ModelLogEntry.objects.get(action="cms_blocks.segment.change")
    assert change.user.username == "manager"
    fields = {c["field"]: c for c in change.data["changes"]}
    assert set(fields) == {"rule", "priority"}
    assert fields["priority"]["before"] == 5 and fields["priority"]["after"] == 9
    assert fields["rule"]["after_json"] == new_rule
    assert "a view of the page “/guides/”" in fields["rule"]["after"]
    actions = set(ModelLogEntry.objects.values_list("action", flat=True))
    assert {"wagtail.create", "wagtail.edit", "cms_blocks.segment.change"} <= actions

    history = manager.get(f"/admin/snippets/segments/segment/history/{seg.pk}/")
    assert history.status_code == 200
    html = history.content.decode()
    assert "Changed rule from" in html and "priority from “5” to “9”" in html
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_segment_listing_and_edit_form_escape_the_name(manager):
    seg = segment("xss", ENGAGED, name=XSS)
    for url in ("/admin/snippets/segments/segment/", _edit_url(seg)):
        html = manager.get(url).content.decode()
        assert XSS not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_a_segment_whose_stored_rule_is_broken_is_flagged_in_the_listing_and_editor(manager):
    """A rule written past validation (a data migration, the ORM, an older version) is shown as
    broken, with the engine's message saying where and what, in the listing and the editor."""
    segment("engaged", ENGAGED)
    broken = Segment.objects.create(
        slug="broken", name="Broken one", rule={**ENGAGED, "minn": 3}
    )  # no clean(): as a data migration would write it
    listing = manager.get("/admin/snippets/segments/segment/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert html.count("Broken: minn: unknown key &#x27;minn&#x27;") == 1, html
    edit = manager.get(_edit_url(broken))
    assert edit.status_code == 200
    html = edit.content.decode()
    assert "stored rule does not compile" in html and "minn: unknown key" in html


# -- the chooser -------------------------------------------------------------------------------
def test_segment_chooser_widget_renders_the_chosen_segment(manager):
    seg = segment("engaged", ENGAGED, name="Engaged visitors")
    html = SegmentChooser().render("segment", seg.pk, {"id": "id_segment"})
    assert "Engaged visitors" in html
    assert 'name="segment"' in html
    chooser = manager.get("/admin/snippets/choose/segments/segment/")
    assert chooser.status_code == 200
    assert "Engaged visitors" in chooser.content.decode()
