"""Rebuilding the fast store brings back nothing a visitor took away: a withdrawal whose
erasure waits for its delay, an erasure, a visitor without any consent record."""

import io

import pytest
from django.core.management import call_command

from consent.identity import visitor_key
from consent.models import ErasureRequest
from segments.backends.base import CONSENT_PREFIX, SEGMENT_PREFIX
from segments.models import LoggedEvent
from tests.builders import consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def _key(client) -> str:
    return visitor_key(client.cookies[COOKIE].value.split("|")[1])


def _engaged(client) -> str:
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    assert "ENGAGED10" in client.get("/").content.decode()
    return _key(client)


def _memberships(backend, key) -> list[str]:
    return [f for f in backend.visitor_data(key).fields if f.startswith(SEGMENT_PREFIX)]


def test_rebuild_leaves_out_a_withdrawn_visitor_whose_erasure_is_pending(backend, settings):
    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 3600
    stays, leaves = consenting_browser(), consenting_browser()
    stays_key, leaves_key = _engaged(stays), _engaged(leaves)
    leaves.post("/consent/", {"action": "custom", "purposes": ["analytics"]})
    assert ErasureRequest.objects.get(visitor_key=leaves_key).completed_at is None
    assert LoggedEvent.objects.filter(visitor_key=leaves_key).exists()  # until the delay ends

    backend.flush()  # the fast store is lost
    out = io.StringIO()
    call_command("rebuild_fast_store", stdout=out)

    assert backend.visitor_data(leaves_key).profile is None
    assert _memberships(backend, leaves_key) == []
    mirror = backend.visitor_data(leaves_key).fields
    assert CONSENT_PREFIX + "personalization" not in mirror  # never mirrored as granted
    assert backend.visitor_data(stays_key).profile is not None
    assert _memberships(backend, stays_key) == [SEGMENT_PREFIX + "engaged"]
    assert backend.segment_sizes()["engaged"] == 1
    assert "1 visitors left out" in out.getvalue()


def test_rebuild_does_not_mirror_a_purpose_whose_erasure_is_pending_as_granted(backend, settings):
    """A pending erasure that covers the purpose wins over a record that still grants it."""
    from consent.actions import schedule_erasure

    client = consenting_browser()
    key = _engaged(client)
    schedule_erasure(
        key, ErasureRequest.Reason.WITHDRAWAL, frozenset({"personalization"}), delay=3600
    )

    backend.flush()
    call_command("rebuild_fast_store", stdout=io.StringIO())

    assert backend.visitor_data(key).profile is None
    assert CONSENT_PREFIX + "personalization" not in backend.visitor_data(key).fields


def test_rebuild_leaves_out_events_without_any_consent_record(backend):
    client = consenting_browser()
    key = _engaged(client)
    LoggedEvent.objects.filter(visitor_key=key).update(visitor_key="0" * 32)

    backend.flush()
    call_command("rebuild_fast_store", stdout=io.StringIO())

    assert backend.visitor_data("0" * 32).profile is None
    assert _memberships(backend, "0" * 32) == []
