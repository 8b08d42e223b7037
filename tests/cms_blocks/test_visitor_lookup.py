"""Issue #12: the admin's visitor lookup shows one visitor's feature values (now, or as of a
date) and their segments with explanations, to editors who may see segments and privacy
officers only; a consent cookie id is taken by POST only and never shown; hostile input is a
form error, never a 500."""

import time

import pytest
from django.test import Client
from django.urls import reverse

from consent.api import notice_version, visitor_key
from segments import events
from segments.api import exchange, mirror_consent
from segments.stream import drain as pipeline
from tests.builders import segment
from tests.cms_blocks.helpers import XSS, login

pytestmark = [pytest.mark.services, pytest.mark.django_db]

VISITOR_ID = "e5" * 16
KEY = visitor_key(VISITOR_ID)


@pytest.fixture
def visitor(backend):
    segment()  # engaged: at least 3 page views in the last 10 minutes
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    exchange(KEY, events.Event(visitor_key=KEY, name="page_view", ts=time.time(), properties={}))
    pipeline.drain_partition(pipeline.get_backend().partition_for(KEY))
    return KEY


def test_editors_and_officers_see_features_and_why_a_visitor_is_not_in_a_segment(visitor):
    url = reverse("cms_blocks_admin:visitor")
    for who, perms in (
        ("editor", ["segments.view_segment"]),
        ("officer", ["consent.view_consent_log"]),
    ):
        client = login(who, *perms)
        page = client.get(url, {"key": KEY})
        assert page.status_code == 200
        html = page.content.decode()
        assert "days_since_last_seen" in html and "Visitor lookup" in html
        assert (
            "not in engaged because: 1 page view event(s) in the last 10 minutes, fewer than "
            "the 3 required (2 short)"
        ) in html
    for who, perms in (("analyst", ["cms_blocks.view_results"]), ("nobody", [])):
        assert login(who, *perms).get(url, {"key": KEY}).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page


def test_a_consent_cookie_id_is_taken_by_post_and_never_shown(visitor):
    client = login("officer", "consent.view_consent_log")
    url = reverse("cms_blocks_admin:visitor")
    page = client.post(url, {"visitor_id": VISITOR_ID})
    html = page.content.decode()
    assert page.status_code == 200 and KEY in html and VISITOR_ID not in html
    # In a URL it is ignored (a raw id never travels in one).
    html = client.get(url, {"visitor_id": VISITOR_ID, "key": ""}).content.decode()
    assert VISITOR_ID not in html and "days_since_last_seen" not in html


@pytest.mark.parametrize(
    "query",
    [
        {"key": "zz"},
        {"key": "a" * 5000},
        {"key": XSS},
        {"key": KEY, "as_of": "yesterday"},
        {"key": KEY, "as_of": "2999-01-01"},
        {"key": KEY, "as_of": "x" * 5000},
        {"key": KEY, "as_of": "2011-01-01\x00"},
        {"key": ""},
    ],
)
def test_hostile_query_strings_are_form_errors(visitor, query):
    page = login("editor", "segments.view_segment").get(reverse("cms_blocks_admin:visitor"), query)
    assert page.status_code == 200
    html = page.content.decode()
    assert "days_since_last_seen" not in html and "<script>alert" not in html


def test_as_of_a_date_reads_the_log(visitor):
    page = login("editor", "segments.view_segment").get(
        reverse("cms_blocks_admin:visitor"), {"key": KEY, "as_of": "2020-01-01"}
    )
    html = page.content.decode()
    assert page.status_code == 200 and "as of 2020-01-01" in html
    assert "unknown" in html  # nothing had happened yet then
