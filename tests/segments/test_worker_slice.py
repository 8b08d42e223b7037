"""The first slice end to end: real Redis, PostgreSQL and a Celery worker process."""

import pytest
from django.conf import settings

from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site
from tests.support.worker import wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ENGAGED_TEXT = "ENGAGED10"


def test_three_views_put_a_consenting_visitor_in_engaged_via_the_worker(celery_worker, backend):
    assert settings.SEGMENTS_BACKEND["BACKEND"].endswith("RedisBackend")
    demo_site()
    client = consenting_browser()

    first = client.get("/")
    assert first.status_code == 200
    assert ENGAGED_TEXT not in first.content.decode()
    for path in ("/guides/", "/ceramic-mug/"):
        assert client.get(path).status_code == 200

    # The worker, not this process, drains the stream; membership shows up on a later request.
    def engaged():
        body = client.get("/about-us/").content.decode()
        return "<b>engaged</b>" in body

    assert wait_for(engaged), "the worker never put the visitor in 'engaged'"
    assert "segments.drain" in celery_worker.log_path.read_text()  # drained by the worker
    home = client.get("/").content.decode()
    assert ENGAGED_TEXT in home
    assert 'data-tailored-variant="default"' not in home

    # The durable log in PostgreSQL has the page views, keyed by the pseudonymous key only.
    key = ConsentRecord.objects.get().visitor_key
    assert wait_for(lambda: LoggedEvent.objects.filter(visitor_key=key).count() >= 4)
    assert set(LoggedEvent.objects.values_list("name", flat=True)) == {"page_view"}
    assert not any(len(v) != 32 for v in LoggedEvent.objects.values_list("visitor_key", flat=True))


def test_a_visitor_who_rejects_gets_no_identifier_and_nothing_is_stored(celery_worker, backend):
    demo_site()
    client = browser()
    response = client.post("/consent/", {"action": "reject_all"})
    assert response.status_code == 303
    cookie = response.cookies["tailored_consent"].value
    assert cookie.split("|")[1] == "-"  # no identifier in the cookie

    for path in ("/", "/guides/", "/ceramic-mug/", "/"):
        body = client.get(path).content.decode()
        assert ENGAGED_TEXT not in body
    assert set(response.cookies) == {"tailored_consent"}
    assert ConsentRecord.objects.count() == 0
    assert LoggedEvent.objects.count() == 0
    assert backend.client.keys(f"{backend.prefix}:*") == []
