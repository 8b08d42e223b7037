"""Whether a consent cookie still counts (consent.standing) is answered in the round trip a
consented page view makes to the fast store anyway: no cache read of its own, whichever asks
first (a consent template tag in the page's head, or ``request.segments``). Against the real
PostgreSQL and Redis."""

import pytest

import consent.standing
from segments.backends import breaker_policy, request_breaker
from segments.backends.redis import RedisBackend
from tests.builders import browser, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"


@pytest.fixture
def calls(backend, monkeypatch):
    """Counts of the fast store's round trips and of consent's own standing look-ups."""
    assert isinstance(backend, RedisBackend)
    counts = {"store": 0, "standing": 0}
    round_trip, lookup = RedisBackend._round_trip, consent.standing.lookup

    def counted_round_trip(self, *args, **kwargs):
        counts["store"] += 1
        return round_trip(self, *args, **kwargs)

    def counted_lookup(*args, **kwargs):
        counts["standing"] += 1
        return lookup(*args, **kwargs)

    monkeypatch.setattr(RedisBackend, "_round_trip", counted_round_trip)
    monkeypatch.setattr(consent.standing, "lookup", counted_lookup)
    demo_site()
    return counts


def _copy(client):
    other = browser()
    other.cookies[COOKIE] = client.cookies[COOKIE].value
    return other


def test_a_consented_page_view_checks_its_cookie_in_its_one_round_trip(calls):
    client = consenting_browser()
    client.get("/")  # the consent mirror, copied from the record on first sight
    calls.update(store=0, standing=0)

    page = client.get("/")
    assert page.status_code == 200
    # The demo's page shows the consent tags (its head) and personalised blocks (its body).
    assert page.wsgi_request.consent.allows("personalization")
    assert calls == {"store": 1, "standing": 0}


def test_an_old_copy_records_nothing_and_gets_no_consent_in_the_same_round_trip(calls, backend):
    client = consenting_browser()
    old = _copy(client)
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})  # same id
    client.post("/consent/", {"action": "accept_all"})  # grants again: a newer record
    partitions_before = backend.stream_stats()
    calls.update(store=0, standing=0)

    page = old.get("/")
    assert page.status_code == 200
    assert not page.wsgi_request.consent.decided  # request.consent: no consent
    assert "consent-banner" in page.content.decode()
    assert calls == {"store": 1, "standing": 0}
    assert [p.length for p in backend.stream_stats()] == [p.length for p in partitions_before]

    calls.update(store=0, standing=0)
    assert client.get("/").wsgi_request.consent.allows("personalization")  # the current one
    assert calls["standing"] == 0


def test_without_the_fast_store_the_cookie_is_still_checked(calls):
    """When the store cannot answer (breaker open), consent asks its own cache/database."""
    client = consenting_browser()
    old = _copy(client)
    client.post("/consent/", {"action": "withdraw"})
    request_breaker.failure(breaker_policy())
    calls.update(store=0, standing=0)

    page = old.get("/")
    assert not page.wsgi_request.consent.decided
    assert calls == {"store": 0, "standing": 1}
