"""Behind a proxy, the consent endpoints count each client, as the event endpoint does: one
address resolution (consent.rest.throttling.client_address, honouring DRF's NUM_PROXIES) for
every rate limit of the suite."""

import json

import pytest

from tests.builders import browser

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.1"


def _post(client, url, body, client_address):
    return client.post(
        url,
        json.dumps(body),
        content_type="application/json",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=client_address,
    )


def test_visitors_behind_one_proxy_have_their_own_consent_allowance(settings):
    settings.REST_FRAMEWORK = {**getattr(settings, "REST_FRAMEWORK", {}), "NUM_PROXIES": 1}
    settings.CONSENT_RATE = "2/min"
    settings.SEGMENTS_EVENT_RATE = "2/min"
    for url, body in (("/consent/", {"action": "reject_all"}), ("/api/events/", {"events": []})):
        first, second = browser(), browser()
        assert [_post(first, url, body, "203.0.113.1").status_code for _ in range(2)] != [429] * 2
        assert _post(first, url, body, "203.0.113.1").status_code == 429
        # Another visitor behind the same proxy is not refused for the first one's requests.
        assert _post(second, url, body, "203.0.113.2").status_code != 429, url


def test_without_num_proxies_the_forwarded_header_is_not_trusted(settings):
    settings.CONSENT_RATE = "2/min"
    client = browser()
    for n in range(2):
        assert (
            _post(client, "/consent/", {"action": "reject_all"}, f"198.51.100.{n}").status_code
            == 200
        )
    # A client cannot buy itself a new allowance by sending another X-Forwarded-For.
    refused = _post(client, "/consent/", {"action": "reject_all"}, "198.51.100.99")
    assert refused.status_code == 429
