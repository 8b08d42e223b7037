"""What a page request costs and how it fails: at most one round trip, never a 500."""

import pytest

from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def _site():
    demo_site()


@pytest.fixture
def round_trips(backend, monkeypatch):
    """Count the request-path round trips to the real backend (the real call still runs)."""
    calls = []
    real = backend.exchange

    def counting(*args, **kwargs):
        calls.append(bool(kwargs.get("events")))
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "exchange", counting)
    return calls


def test_a_visitor_without_consent_costs_no_fast_store_call(round_trips):
    client = browser()
    for path in ("/", "/guides/", "/ceramic-mug/"):
        assert client.get(path).status_code == 200
    rejected = browser()
    rejected.post("/consent/", {"action": "reject_all"})
    rejected.get("/")
    assert round_trips == []


def test_a_consented_page_view_is_one_round_trip_that_records_and_reads(round_trips):
    client = consenting_browser()
    round_trips.clear()
    assert client.get("/guides/").status_code == 200
    assert round_trips == [True]  # one call, carrying the page view


def test_requests_that_are_not_page_views_are_not_recorded(round_trips, backend):
    client = consenting_browser()
    round_trips.clear()
    client.get("/does-not-exist/")  # 404
    client.get("/admin/login/")  # excluded path
    client.post("/")  # not a GET
    bot = consenting_browser()
    bot.defaults["HTTP_USER_AGENT"] = "Googlebot/2.1 (+http://www.google.com/bot.html)"
    bot.get("/")
    assert True not in round_trips


def test_three_views_show_the_engaged_variant_in_process(backend):
    client = consenting_browser()
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    home = client.get("/").content.decode()
    assert "ENGAGED10" in home
    assert LoggedEvent.objects.count() == 4


def test_redis_down_serves_default_content_and_recovers(backend, settings):
    client = consenting_browser()
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert "ENGAGED10" in client.get("/").content.decode()

    live = settings.SEGMENTS_BACKEND
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": live["OPTIONS"]["KEY_PREFIX"]},
    }
    down = client.get("/")
    assert down.status_code == 200
    assert "ENGAGED10" not in down.content.decode()  # default content
    # Consent decisions still work (the durable record is written) with the store down.
    assert browser().post("/consent/", {"action": "accept_all"}).status_code == 303

    import segments.backends

    segments.backends.request_breaker.reset()  # else the breaker skips the store for a while
    settings.SEGMENTS_BACKEND = live
    assert "ENGAGED10" in client.get("/").content.decode()  # recovered by itself


def test_a_lost_consent_mirror_is_rebuilt_from_the_durable_record(backend):
    client = consenting_browser()
    key = ConsentRecord.objects.get().visitor_key
    backend.flush()  # Redis restarted without persistence
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert backend.client.hget(f"{backend.prefix}:m:{key}", "_c:personalization") is not None
    assert "ENGAGED10" in client.get("/").content.decode()
