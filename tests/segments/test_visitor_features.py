"""Issue #12: editors and privacy officers can see a visitor's feature values (now, or as of a
date from the durable log) and memberships with explanations, through segments.api and a
permissioned REST endpoint that names the visitor by the pseudonymous key only."""

import time
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from consent.api import notice_version, visitor_key
from segments import events
from segments.api import exchange, explain_visitor, feature_values, mirror_consent
from segments.profiles.catalog import FEATURES
from segments.stream import drain as pipeline
from tests.builders import segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

DAY = 86400.0
VISITOR_ID = "c3" * 16  # the id a consent cookie holds
KEY = visitor_key(VISITOR_ID)
URL = "/api/visitors/features/"


def _visit(key, *items):
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    for name, ts, *props in items:
        exchange(
            key,
            events.Event(visitor_key=key, name=name, ts=ts, properties=props[0] if props else {}),
        )
    pipeline.drain_partition(pipeline.get_backend().partition_for(key))


def _values(features):
    return {f["name"]: f for f in features}


def test_feature_values_list_every_catalog_feature_with_the_visitors_value(backend):
    now = time.time()
    _visit(
        KEY,
        ("page_view", now - 120, {"path": "/shop/", "category": "kitchen", "device": "mobile"}),
        ("page_view", now - 60, {"path": "/shop/"}),
        ("purchase", now - 30, {"value": 25.0, "order_id": "o1"}),
    )
    features = _values(feature_values(KEY))
    assert list(features) == list(FEATURES)
    assert features["purchase_count"]["value"] == 1
    assert features["monetary_value"]["value"] == 25.0
    assert features["days_since_last_purchase"]["value"] < 0.01
    assert features["last_device"]["value"] == "mobile"
    assert features["total_events"]["value"] == 2  # page views, the parameter's default
    assert features["total_events"]["by_param"] == {"page_view": 2, "purchase": 1}
    assert set(features["category_affinity"]["by_param"]) == {"kitchen"}
    assert features["days_since_last_seen"]["unit"] == "days"
    assert features["days_since_last_seen"]["trend"] == "up"
    # Nothing known about someone else: every value unknown or zero, never an error.
    assert _values(feature_values("d4" * 16))["days_since_last_seen"]["value"] is None


def test_feature_values_as_of_a_past_date_come_from_the_log_as_it_stood(backend):
    now = time.time()
    _visit(
        KEY,
        ("purchase", now - 5 * DAY, {"value": 10.0, "order_id": "a"}),
        ("purchase", now - 1 * DAY, {"value": 90.0, "order_id": "b"}),
    )
    as_of = datetime.fromtimestamp(now - 3 * DAY, tz=UTC)
    then = _values(feature_values(KEY, as_of))
    assert then["purchase_count"]["value"] == 1 and then["monetary_value"]["value"] == 10.0
    assert then["days_since_last_purchase"]["value"] == pytest.approx(2.0, abs=0.01)
    latest = _values(feature_values(KEY))
    assert latest["purchase_count"]["value"] == 2


def test_a_non_members_explanation_says_which_condition_failed_and_by_how_much(backend):
    segment()  # engaged: at least 3 page views in the last 10 minutes
    _visit(KEY, ("page_view", time.time()))
    (engaged,) = explain_visitor(KEY)
    assert engaged["member"] is False
    assert engaged["because"] == (
        "not in engaged because: 1 page view event(s) in the last 10 minutes, fewer than the 3 "
        "required (2 short)"
    )


def _user(name, *perms, staff=True):
    user = User.objects.create_user(name, password="x", is_staff=staff)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    return user


def test_the_endpoint_answers_staff_who_may_see_segments_or_the_privacy_tools(client, backend):
    assert reverse("segments:visitor_features") == URL
    segment()
    _visit(KEY, *[("page_view", time.time())] * 3)
    assert client.get(URL, {"key": KEY}).status_code == 403  # anonymous
    for refused in (
        _user("nobody"),
        _user("not-staff", "segments.view_segment", staff=False),
    ):
        client.force_login(refused)
        assert client.get(URL, {"key": KEY}).status_code == 403
    for allowed in (
        _user("editor", "segments.view_segment"),
        _user("officer", "consent.view_consent_log"),
    ):
        client.force_login(allowed)
        response = client.get(URL, {"key": KEY.upper()})
        assert response.status_code == 200, response.content
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert body["visitor_key"] == KEY and body["as_of"] is None
        assert _values(body["features"])["total_events"]["value"] == 3
        (engaged,) = body["segments"]
        assert engaged["member"] is True and engaged["because"].startswith("in engaged because")


def test_the_consent_cookie_id_is_hashed_and_never_returned(client, backend):
    _visit(KEY, ("page_view", time.time()))
    client.force_login(_user("officer", "consent.view_consent_log"))
    response = client.post(URL, {"visitor_id": VISITOR_ID}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["visitor_key"] == KEY
    assert VISITOR_ID not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"key": "zz"},
        {"key": "a" * 5000},
        {"key": "a" * 32, "visitor_id": "b" * 32},
        {"key": "a" * 32, "as_of": "yesterday"},
        {"key": "a" * 32, "as_of": "2011-13-45"},
        {"key": "a" * 32, "as_of": "2999-01-01"},
        {"key": "a" * 32, "as_of": "x" * 500},
        {"key": "a" * 32, "as_of": "2011-01-01\x00"},
        {"key[]": "a" * 32},
        {"key": ""},
    ],
)
def test_hostile_query_strings_are_refused_not_errors(client, backend, query):
    client.force_login(_user("editor", "segments.view_segment"))
    response = client.get(URL, query)
    assert response.status_code == 400
    assert "error" in response.json()


def test_hostile_bodies_are_refused_not_errors(client, backend):
    client.force_login(_user("editor", "segments.view_segment"))
    for body in ("[1, 2]", '"key"', '{"visitor_id": 7}', "{"):
        response = client.post(URL, body, content_type="application/json")
        assert response.status_code == 400, (body, response.content)
