"""The consent cookie over its life: the server's record wins over any copy of it, a lapsed
one (expired, or given under an earlier notice) is deleted with its identifier and purpose
cookies and what it identified is erased, and every decision is recorded with the way it was
made. Against the real PostgreSQL and Redis."""

import json
import time
from datetime import timedelta

import pytest
from cookie_consent.models import Cookie, CookieGroup
from django.core import signing
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from consent import cookies, standing
from consent.identity import visitor_key
from consent.middleware import ConsentMiddleware
from consent.models import ConsentRecord, ErasureRequest
from consent.notices import publish
from consent.policy import UNDECIDED
from consent.privacy import export_visitor, run_due_erasures
from consent.visitor import get_consent
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"
DENIED = {
    "ad_storage": "denied",
    "ad_user_data": "denied",
    "ad_personalization": "denied",
    "analytics_storage": "denied",
}


@pytest.fixture(autouse=True)
def _site(backend):
    demo_site()


@pytest.fixture
def inventory():
    """A cookie declared under each optional purpose."""
    for varname, name in (("analytics", "_ga"), ("marketing", "_ads"), ("personalization", "_p")):
        Cookie.objects.create(cookiegroup=CookieGroup.objects.get(varname=varname), name=name)
    publish()  # the inventory is part of the notice: consent is given under this version


def _id(client) -> str:
    return client.cookies[COOKIE].value.split("|")[1]


def _copy(client):
    """Another browser holding a copy of ``client``'s consent cookie as it is now."""
    other = browser()
    other.cookies[COOKIE] = client.cookies[COOKIE].value
    return other


def _deleted(response, name) -> bool:
    return name in response.cookies and response.cookies[name]["max-age"] == 0


# -- an old copy of a cookie counts for nothing --------------------------------------------
def test_an_old_copy_of_a_withdrawn_cookie_cannot_download_the_export():
    client = consenting_browser()
    old = _copy(client)
    assert old.get("/consent/my-data/").status_code == 200  # the copy works while current
    client.post("/consent/", {"action": "withdraw"})

    refused = old.get("/consent/my-data/", HTTP_ACCEPT="application/json")
    assert refused.status_code == 404
    assert refused.json() == {"error": "No data is held about you: you have no identifier."}
    assert old.get("/consent/my-data/?format=csv").status_code == 404


def test_an_old_copy_of_a_withdrawn_cookie_cannot_grant_again_under_its_identifier():
    client = consenting_browser()
    old = _copy(client)
    old_copy_value = client.cookies[COOKIE].value
    old_key = visitor_key(_id(client))
    client.post("/consent/", {"action": "withdraw"})
    withdrawal = ConsentRecord.objects.latest("seq")

    response = old.post("/consent/", {"action": "accept_all"})
    assert response.status_code == 303
    # A new grant after a withdrawal gets a new identifier: nothing more under the old one.
    assert _id(old) != "-" and visitor_key(_id(old)) != old_key
    assert ConsentRecord.objects.filter(visitor_key=old_key).latest("seq") == withdrawal
    # The same through the JSON API.
    again = _copy(client)
    again.cookies[COOKIE] = old_copy_value
    reply = again.post(
        "/consent/", json.dumps({"action": "accept_all"}), content_type="application/json"
    )
    assert reply.status_code == 200 and visitor_key(_id(again)) not in (
        old_key,
        visitor_key(_id(old)),
    )
    assert ConsentRecord.objects.filter(visitor_key=old_key).latest("seq") == withdrawal


def test_an_old_copy_of_a_withdrawn_cookie_reports_no_consent_to_consent_mode():
    client = consenting_browser()
    old = _copy(client)
    assert old.get("/consent/state/").json()["consent_mode"]["ad_storage"] == "granted"
    client.post("/consent/", {"action": "withdraw"})

    state = old.get("/consent/state/").json()
    assert state["decided"] is False and state["purposes"] == []
    assert state["consent_mode"] == DENIED
    page = old.get("/")
    assert page.wsgi_request.consent == UNDECIDED  # request.consent: no consent either
    assert "consent-banner" in page.content.decode()
    # The copy is left alone: the same browser may be receiving a newer cookie meanwhile.
    assert COOKIE not in page.cookies


def test_a_copy_older_than_the_latest_decision_counts_for_nothing(inventory):
    client = consenting_browser()
    old = _copy(client)
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})  # same id
    assert client.get("/consent/state/").json()["purposes"] == ["analytics"]

    state = old.get("/consent/state/").json()
    assert state["decided"] is False and state["consent_mode"] == DENIED
    old.cookies["_ads"] = old.cookies["_ga"] = "x"
    page = old.get("/")
    assert _deleted(page, "_ads") and _deleted(page, "_ga")  # no consent to any purpose
    assert old.get("/consent/my-data/").status_code == 404


def test_an_erasure_by_the_privacy_officer_voids_the_visitors_cookie():
    from consent.privacy import erase_visitor

    client = consenting_browser()
    erase_visitor(visitor_key(_id(client)))
    assert client.get("/consent/state/").json()["decided"] is False
    assert client.get("/consent/my-data/").status_code == 404


def test_the_current_cookie_keeps_working_and_survives_a_lost_cache():
    from django.core.cache import caches

    client = consenting_browser()
    client.post("/consent/", {"action": "custom", "purposes": ["analytics", "marketing"]})
    caches["default"].clear()  # Redis restarted, say: asked of the database
    assert client.get("/consent/state/").json()["purposes"] == ["analytics", "marketing"]
    assert client.get("/consent/my-data/").status_code == 200


def test_a_withdrawal_is_seen_even_when_the_cache_holds_an_older_standing():
    """The data download and a new grant ask the database, whatever the cache says."""
    from django.core.cache import caches

    client = consenting_browser()
    old = _copy(client)
    old_key = visitor_key(_id(client))
    cache = caches["default"]
    key = standing._cache_key(old_key)
    before = cache.get(key)
    assert before is not None
    client.post("/consent/", {"action": "withdraw"})
    cache.set(key, before)  # another process's cache, not yet told

    assert old.get("/consent/my-data/").status_code == 404
    old.post("/consent/", {"action": "accept_all"})
    assert visitor_key(_id(old)) != old_key
    assert ConsentRecord.objects.filter(visitor_key=old_key).count() == 2  # grant, withdrawal


def test_a_cookie_written_before_record_numbers_is_checked_by_its_signing_time():
    client = consenting_browser()
    visitor_id = _id(client)
    version = client.cookies[COOKIE].value.split("|")[3]
    legacy = signing.TimestampSigner(salt="tailored.consent.cookie").sign(
        f"2|{visitor_id}|analytics+marketing+personalization|{version}|"
    )
    old = browser()
    old.cookies[COOKIE] = legacy
    assert old.get("/consent/state/").json()["decided"] is True  # no later decision: honoured
    time.sleep(1.1)  # signing times are whole seconds
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})
    assert old.get("/consent/state/").json()["decided"] is False


def test_page_views_check_the_cookie_without_a_database_query(django_assert_num_queries):
    client = consenting_browser()
    request = RequestFactory().get("/", HTTP_COOKIE=f"{COOKIE}={client.cookies[COOKIE].value}")
    middleware = ConsentMiddleware(lambda request: HttpResponse())
    middleware(request)  # the notice in force, cached per process
    get_consent(request)  # (its standing, cached)
    with django_assert_num_queries(0):
        middleware(request)
        state = get_consent(request)
    assert state.decided and state.purposes


# -- a lapsed cookie is deleted, and what it identified erased ------------------------------
def test_a_cookie_from_before_a_notice_change_is_deleted_with_its_purpose_cookies(inventory):
    client = consenting_browser()
    key = visitor_key(_id(client))
    other = _copy(client)
    publish(banner_text="We changed what we do.")

    page = client.get("/")
    assert page.wsgi_request.consent == UNDECIDED
    assert _deleted(page, COOKIE)
    assert all(_deleted(page, name) for name in ("_ga", "_ads", "_p"))
    assert ErasureRequest.objects.get(visitor_key=key).reason == ErasureRequest.Reason.LAPSED
    # Concurrent requests with the same cookie schedule it once.
    assert _deleted(other.get("/"), COOKIE)
    assert ErasureRequest.objects.filter(visitor_key=key).count() == 1


def test_an_expired_cookie_is_deleted_with_its_purpose_cookies(inventory, monkeypatch):
    client = consenting_browser()
    key = visitor_key(_id(client))
    later = time.time() + 184 * 24 * 3600  # CONSENT_MAX_AGE: 183 days
    monkeypatch.setattr(cookies, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))

    page = client.get("/")
    assert page.wsgi_request.consent == UNDECIDED
    assert _deleted(page, COOKIE) and _deleted(page, "_ads") and _deleted(page, "_ga")
    assert ErasureRequest.objects.get(visitor_key=key).reason == ErasureRequest.Reason.LAPSED


def test_re_consenting_after_a_notice_change_leaves_no_data_stranded(settings):
    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 0
    client = consenting_browser()
    old_key = visitor_key(_id(client))
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert export_visitor(old_key)["consent_records"]
    publish(banner_text="New texts.")

    client.get("/")  # the old identifier is deleted from the browser...
    client.post("/consent/", {"action": "accept_all"})
    new_key = visitor_key(_id(client))
    assert new_key != old_key
    run_due_erasures(now=timezone.now() + timedelta(seconds=1))
    # ...and what was held under it, which nobody could reach any more, is erased.
    erasure = ErasureRequest.objects.get(visitor_key=old_key)
    assert erasure.completed_at is not None
    assert not LoggedEvent.objects.filter(visitor_key=old_key).exists()
    held = export_visitor(old_key)
    assert not any(rows for table, rows in held.items() if table.startswith("segments."))


def test_re_consenting_through_the_api_with_an_outdated_cookie_erases_the_old_identifier():
    client = consenting_browser()
    old_key = visitor_key(_id(client))
    publish(banner_text="New texts.")
    response = client.post(
        "/consent/", json.dumps({"action": "accept_all"}), content_type="application/json"
    )
    assert response.status_code == 200
    assert visitor_key(_id(client)) != old_key
    assert ErasureRequest.objects.get(visitor_key=old_key).reason == ErasureRequest.Reason.LAPSED


# -- the method of each decision -------------------------------------------------------------
def test_each_decision_records_the_way_it_was_made(officer_client):
    def post_json(client, body):
        return client.post("/consent/", json.dumps(body), content_type="application/json")

    api = browser()
    post_json(api, {"action": "accept_all"})
    post_json(api, {"action": "custom", "purposes": ["analytics"]})
    post_json(api, {"action": "withdraw"})
    post_json(api, {"action": "accept_all"})
    post_json(api, {"action": "reject_all"})
    form = consenting_browser()
    form.post("/consent/", {"action": "settings", "purposes": ["analytics"]})
    form.post("/consent/", {"action": "withdraw"})
    methods = list(ConsentRecord.objects.order_by("seq").values_list("method", flat=True))
    assert methods == [
        "api_accept_all",
        "api",
        "api_withdraw",
        "api_accept_all",
        "api_reject_all",
        "banner_accept_all",
        "settings_page",
        "withdraw",
    ]
    # The admin and the export show it.
    log = officer_client.get(reverse("consent_privacy:log_results")).content.decode()
    assert "API: accept all" in log and "API: withdrawal" in log and "API: reject all" in log
    key = ConsentRecord.objects.earliest("seq").visitor_key
    assert export_visitor(key)["consent_records"][0]["method"] == "api_accept_all"


@pytest.fixture
def officer_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("officer", "o@example.com", "x")
    client = Client()
    client.force_login(user)
    return client


# -- purpose cookies outlive the consent cookie ---------------------------------------------
def test_purpose_cookies_without_consent_are_deleted(inventory, django_assert_num_queries):
    """The browser drops an expired consent cookie but keeps the purposes' cookies."""
    client = browser()
    for name in ("_ga", "_ads", "theme"):
        client.cookies[name] = "x"
    page = client.get("/")
    assert _deleted(page, "_ga") and _deleted(page, "_ads")
    assert "theme" not in page.cookies and "_p" not in page.cookies  # undeclared, not held

    analytics_only = consenting_browser("custom", purposes=["analytics"])
    analytics_only.cookies["_ga"] = analytics_only.cookies["_ads"] = "x"
    page = analytics_only.get("/")
    assert "_ga" not in page.cookies and _deleted(page, "_ads")

    # Read from the notice in force: no query.
    request = RequestFactory().get("/", HTTP_COOKIE="_ads=x")
    middleware = ConsentMiddleware(lambda request: HttpResponse())
    middleware(request)
    with django_assert_num_queries(0):
        assert middleware(request).cookies["_ads"]["max-age"] == 0


def test_the_record_of_processing_states_what_happens_to_lapsed_consent(settings):
    from consent.processing import processing_record

    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 7200
    periods = dict(processing_record()["retention"])
    lapsed = periods["Data collected under a consent that expired or predates the notice in force"]
    assert lapsed.startswith("erased 2") and "identifier is deleted" in lapsed
