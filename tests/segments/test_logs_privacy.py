"""No log line, at any level, carries what a visitor sent: events with a sentinel property
value, an email address and an IP address go through the request path (page view, event
endpoint, server-side track), the drain, a refused batch, an outage of the fast store and a
withdrawal it could not mirror; every captured record is then searched for them, and for the
visitor's identifier and key."""

import json
import logging

import pytest

from consent.models import ConsentRecord
from segments.api import get_backend
from segments.stream import drain as pipeline
from tailored.logs import JsonFormatter
from tests.builders import consenting_browser, home_page, segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

SENTINEL = "sentinel-8f14e45fceea167a5a36dedd4bea2543"
EMAIL = "jane.sentinel@example.com"
IP = "203.0.113.77"
SECRETS = (SENTINEL, EMAIL, IP)


def _texts(record: logging.LogRecord) -> list[str]:
    """Everything a handler could write about a record."""
    texts = [record.getMessage(), repr(record.args), repr(vars(record))]
    texts.append(JsonFormatter(messages=True).format(record))
    texts.append(logging.Formatter().format(record))  # message, traceback and its message
    return texts


def test_property_values_never_reach_the_logs(
    backend, caplog, settings, django_capture_on_commit_callbacks
):
    # Every logger at DEBUG: the root, and the apps' own (the settings set them to INFO).
    for name in (None, "tailored", "consent", "segments", "segments_ml", "personalization"):
        caplog.set_level(logging.DEBUG, logger=name)
    segment()
    home_page()
    with django_capture_on_commit_callbacks(execute=True):
        client = consenting_browser()
    record = ConsentRecord.objects.get()
    visitor_key = record.visitor_key
    visitor_id = client.cookies["tailored_consent"].value  # the signed identifier

    # Page views, with the values in the query string and campaign parameters.
    for _ in range(3):
        response = client.get(f"/?utm_campaign={SENTINEL}&email={EMAIL}&ip={IP}")
        assert response.status_code == 200
    # Client events carrying them as property values.
    properties = {"note": SENTINEL, "email": EMAIL, "ip": IP}
    batch = {"events": [{"name": "signup", "properties": properties}] * 2}
    response = client.post("/api/events/", json.dumps(batch), content_type="application/json")
    assert response.status_code == 202 and response.json() == {"recorded": 2}
    # A batch refused for one bad event (its message answers the client, not the log).
    bad = {"events": [{"name": "signup", "properties": {"note": SENTINEL * 20}}]}
    assert (
        client.post("/api/events/", json.dumps(bad), content_type="application/json").status_code
        == 400
    )
    pipeline.drain_partition(backend.partition_for(visitor_key))
    assert backend.visitor_data(visitor_key).profile is not None  # it did flow through

    # The fast store goes away: requests, events and a withdrawal it cannot mirror.
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0"},
    }
    assert client.get(f"/?utm_campaign={SENTINEL}").status_code == 200
    client.post("/api/events/", json.dumps(batch), content_type="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/consent/", {"action": "withdraw"}).status_code in (200, 303)
    settings.SEGMENTS_BACKEND = {
        "BACKEND": backend.__class__.__module__ + "." + backend.__class__.__name__,
        "OPTIONS": backend.options,
    }
    assert get_backend().ping()

    events = {getattr(r, "event", None) for r in caplog.records}
    # The test saw the lines it means to check (else it could not fail).
    assert {"drain.batch_done", "fast_store.down", "consent.mirror_failed"} <= events, events
    leaks = [
        (r.name, r.levelname, secret)
        for r in caplog.records
        for text in _texts(r)
        for secret in (*SECRETS, visitor_id, visitor_key)
        if secret in text
    ]
    assert leaks == []
