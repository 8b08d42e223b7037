"""One HTTP edge for the suite: the consent, event and headless endpoints share one throttle (keyed
by one keyed hash of the client address), one error envelope and one set of bounded parsers."""

import json

import pytest
from django.test import RequestFactory

from consent.api import ClientRateThrottle
from consent.identity import client_key
from consent.models import ConsentRecord
from consent.rest.views import DecideView
from segments.rest.views import EventIntakeView
from tests.builders import browser

pytestmark = pytest.mark.django_db

CONSENT, EVENTS = "/consent/", "/api/events/"


def post_json(client, url, body, **extra):
    return client.post(url, body, content_type="application/json", **extra)


def test_one_address_is_one_client_for_the_consent_and_event_endpoints(settings):
    throttle = ClientRateThrottle()
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7")
    ident = client_key("203.0.113.7")
    assert "203.0.113.7" not in ident
    assert throttle.get_cache_key(request, DecideView()) == f"throttle_consent_decide_{ident}"
    assert throttle.get_cache_key(request, EventIntakeView()) == f"throttle_segments_events_{ident}"

    # Without NUM_PROXIES a client's X-Forwarded-For is not trusted, by either endpoint...
    spoofed = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert throttle.get_cache_key(spoofed, DecideView()).endswith(ident)
    assert throttle.get_cache_key(spoofed, EventIntakeView()).endswith(ident)
    # ...behind one proxy both take the address the proxy saw.
    settings.REST_FRAMEWORK = {"NUM_PROXIES": 1}
    proxied = RequestFactory().post("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert throttle.get_cache_key(proxied, DecideView()).endswith(ident)
    assert throttle.get_cache_key(proxied, EventIntakeView()).endswith(ident)


def test_a_throttled_consent_post_is_429_with_retry_after(settings):
    settings.CONSENT_RATE = "2/min"
    client = browser()
    choice = json.dumps({"action": "reject_all"})
    assert [post_json(client, CONSENT, choice).status_code for _ in range(2)] == [200, 200]
    refused = post_json(client, CONSENT, choice)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["error"]
    # The banner's form gets the same answer, as text for the person reading it.
    form = client.post(CONSENT, {"action": "accept_all"})
    assert form.status_code == 429 and form["Retry-After"]
    assert form["Content-Type"] == "text/plain; charset=utf-8"
    assert b"throttled" in form.content
    assert not ConsentRecord.objects.exists()
    # Another address has its own allowance.
    assert post_json(client, CONSENT, choice, REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.parametrize("url, limit", [(CONSENT, 4096), (EVENTS, 16 * 1024)])
def test_bad_bodies_get_the_same_status_and_envelope_from_every_endpoint(url, limit):
    client = browser()
    oversized = post_json(client, url, json.dumps({"action": "x" * limit}))
    assert oversized.status_code == 413
    assert oversized.json() == {"error": f"The request body is larger than {limit} bytes."}
    # A body claiming to be too large is refused before it is read.
    claimed = post_json(client, url, "{}", CONTENT_LENGTH=str(limit + 1))
    assert claimed.status_code == 413
    malformed = post_json(client, url, '{"action": ')
    assert malformed.status_code == 400
    assert malformed.json() == {"error": "The body is not valid JSON."}
    other_type = client.post(
        url, b"<x/>", content_type="application/xml", HTTP_ACCEPT="application/json"
    )
    assert other_type.status_code == 415
    assert "application/xml" in other_type.json()["error"]


def test_a_forms_errors_are_plain_text_and_a_scripts_are_json():
    client = browser()
    form = client.post(CONSENT, {"action": "telepathy"})
    assert form.status_code == 400
    assert form["Content-Type"] == "text/plain; charset=utf-8"
    assert form.content.decode().startswith("Unknown action")
    script = post_json(client, CONSENT, json.dumps({"action": "telepathy"}))
    assert script.status_code == 400
    assert script.json()["error"].startswith("Unknown action")
    # A form post that asks for JSON (a script submitting the form) is answered in JSON.
    asked = client.post(CONSENT, {"action": "telepathy"}, HTTP_ACCEPT="application/json")
    assert asked.json()["error"].startswith("Unknown action")


def test_the_throttle_lets_requests_through_when_its_cache_is_down(settings):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    settings.CONSENT_RATE_LIMIT_CACHE = "down"
    settings.CONSENT_RATE = "1/min"
    client = browser()
    choice = json.dumps({"action": "reject_all"})
    assert [post_json(client, CONSENT, choice).status_code for _ in range(3)] == [200] * 3
    assert client.get("/consent/state/").status_code == 200
