"""The consent endpoint and middleware against the real database and fast store."""

import json

import pytest
from django.core import signing
from django.test import Client

from consent.api import notice_version
from consent.models import ConsentRecord
from consent.notices import publish
from tests.builders import browser, consenting_browser, demo_site

# Transactional: the fast-store mirror of a decision is written when the record commits.
pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def _keys(backend):
    return backend.client.keys(f"{backend.prefix}:*")


def test_accept_all_issues_an_identifier_records_proof_and_mirrors_consent(backend):
    client = browser()
    response = client.post("/consent/", {"action": "accept_all", "next": "/guides/"})
    assert response.status_code == 303
    assert response["Location"] == "/guides/"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    visitor_id = cookie.value.split("|")[1]
    assert len(visitor_id) == 32

    record = ConsentRecord.objects.get()
    assert record.visitor_key != visitor_id and len(record.visitor_key) == 32
    assert record.granted == ["analytics", "marketing", "personalization"]
    assert record.method == "banner_accept_all"
    fields = backend.client.hgetall(f"{backend.prefix}:m:{record.visitor_key}")
    assert float(fields["_c:personalization"]) > 0 and fields["_nv"] == notice_version()


def test_reject_all_stores_nothing_and_sets_no_identifier(backend):
    response = browser().post("/consent/", {"action": "reject_all"})
    assert response.status_code == 303
    assert response.cookies[COOKIE].value.startswith(f"3|-||{notice_version()}||-:")
    assert ConsentRecord.objects.count() == 0
    assert _keys(backend) == []


def test_custom_choice_with_nothing_ticked_is_a_rejection(backend):
    response = browser().post("/consent/", {"action": "custom"})
    assert response.status_code == 303
    assert response.cookies[COOKIE].value.split("|")[1] == "-"
    assert ConsentRecord.objects.count() == 0


def test_custom_choice_grants_only_what_was_ticked(backend):
    client = browser()
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})
    assert ConsentRecord.objects.get().granted == ["analytics"]
    client.get("/")  # analytics alone does not allow recording behaviour for segments
    assert backend.client.keys(f"{backend.prefix}:e:*") == []


@pytest.mark.parametrize(
    "data, message",
    [
        ({"action": "sell_everything"}, "Unknown action"),
        ({}, "Missing 'action'"),
        ({"action": "custom", "purposes": ["analytics", "telepathy"]}, "Unknown purpose"),
    ],
)
def test_invalid_choices_are_refused_with_400_and_change_nothing(backend, data, message):
    response = browser().post("/consent/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert COOKIE not in response.cookies
    assert ConsentRecord.objects.count() == 0
    assert _keys(backend) == []


def test_json_api_errors_are_json(backend):
    client = browser()
    bad_json = client.post("/consent/", "{nope", content_type="application/json")
    assert bad_json.status_code == 400
    assert "not valid JSON" in bad_json.json()["error"]
    wrong_shape = client.post("/consent/", json.dumps([1]), content_type="application/json")
    assert wrong_shape.status_code == 400
    bad_list = client.post(
        "/consent/",
        json.dumps({"action": "custom", "purposes": "analytics"}),
        content_type="application/json",
    )
    assert bad_list.status_code == 400
    ok = client.post(
        "/consent/", json.dumps({"action": "accept_all"}), content_type="application/json"
    )
    assert ok.status_code == 200
    assert ok.json()["decided"] is True
    assert ok.json()["purposes"] == ["analytics", "marketing", "personalization"]
    # Recorded as what it was, a decision through the API (not a click on the banner).
    assert ConsentRecord.objects.get().method == "api_accept_all"
    custom = client.post(
        "/consent/",
        json.dumps({"action": "custom", "purposes": ["analytics"]}),
        content_type="application/json",
    )
    assert custom.status_code == 200
    assert ConsentRecord.objects.latest("seq").method == "api"


def test_oversized_body_is_refused(backend):
    response = browser().post("/consent/", {"action": "custom", "purposes": ["analytics"] * 2000})
    assert response.status_code == 413
    assert ConsentRecord.objects.count() == 0


def test_get_is_not_allowed():
    assert browser().get("/consent/").status_code == 405


def test_csrf_is_enforced(backend):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/consent/", {"action": "accept_all"})
    assert response.status_code == 403
    assert ConsentRecord.objects.count() == 0


def test_open_redirects_are_not_followed(backend):
    response = browser().post(
        "/consent/", {"action": "reject_all", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "1|" + "a" * 32 + "|personalization|1:forged:signature",
        signing.TimestampSigner(salt="another.salt").sign("1|" + "a" * 32 + "|personalization|1"),
        "x" * 5000,
    ],
)
def test_forged_or_malformed_cookies_count_as_no_consent(backend, value):
    client = browser()
    client.cookies[COOKIE] = value
    response = client.get("/")
    assert response.status_code == 200
    assert "consent-banner" in response.content.decode()  # asked again
    assert _keys(backend) == []


def test_a_cookie_from_an_older_notice_version_asks_again(backend):
    client = consenting_browser()
    assert "consent-banner" not in client.get("/").content.decode()
    publish(banner_text="We changed what we do with your data.")
    page = client.get("/").content.decode()
    assert "consent-banner" in page and "We changed what we do" in page


def test_withdrawal_stops_recording_on_the_next_request(backend):
    client = consenting_browser()
    client.get("/")
    stream_len = lambda: sum(  # noqa: E731
        backend.client.xlen(k) for k in backend.client.keys(f"{backend.prefix}:e:*")
    )
    key = ConsentRecord.objects.get().visitor_key
    assert backend.visitor_data(key).profile is not None  # drained in-process

    old_cookie = client.cookies[COOKIE].value
    response = client.post("/consent/", {"action": "withdraw"})
    assert response.status_code == 303
    assert response.cookies[COOKIE].value.split("|")[1] == "-"
    assert ConsentRecord.objects.latest("created_at").method == "withdraw"

    # Even replaying the old cookie (another tab, a stale copy) records nothing any more:
    # the server's own record decides.
    replay = browser()
    replay.cookies[COOKIE] = old_cookie
    before = stream_len()
    replay.get("/")
    replay.get("/guides/")
    assert stream_len() == before
    assert backend.client.hget(f"{backend.prefix}:m:{key}", "_c:personalization") is None


def test_the_banner_escapes_the_page_address_and_carries_the_pages_csrf_token(backend):
    client = browser()
    page = client.get('/?x="><script>alert(1)</script>').content.decode()
    assert "<script>alert(1)" not in page
    assert "x=%22%3E%3Cscript%3Ealert(1)%3C/script%3E" in page  # kept, encoded
    token = client.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken" value="' in page and "__tailored" not in page
    assert token  # the form posts with the page's own token
    other = browser().get("/").content.decode()
    assert 'value="/"' in other and "alert(1)" not in other  # nothing leaks between visitors


def test_a_projects_own_banner_template_replaces_the_packages(backend, settings, tmp_path):
    """docs/installation.md, "Styling the banner": a project's templates/consent/banner.html,
    started from the package's copy, is the banner every page shows, and its forms still
    decide."""
    from pathlib import Path

    import consent

    package = Path(consent.__file__).parent / "templates" / "consent" / "banner.html"
    (tmp_path / "consent").mkdir()
    (tmp_path / "consent" / "banner.html").write_text(
        package.read_text().replace(
            '<h2 id="consent-banner-title">', '<h2 id="consent-banner-title" class="our-banner">'
        )
    )
    settings.TEMPLATES = [
        {**engine, "DIRS": [tmp_path, *engine.get("DIRS", [])]}
        if engine["BACKEND"].endswith("DjangoTemplates")
        else engine
        for engine in settings.TEMPLATES
    ]
    client = browser()
    page = client.get("/guides/").content.decode()
    assert 'class="our-banner"' in page and 'value="/guides/"' in page
    response = client.post("/consent/", {"action": "accept_all", "next": "/guides/"})
    assert response.status_code == 303 and ConsentRecord.objects.count() == 1
    assert 'class="our-banner"' not in client.get("/guides/").content.decode()  # decided
