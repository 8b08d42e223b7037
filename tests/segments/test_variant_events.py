"""Impressions and clicks of personalised content: through the real event pipeline (event
endpoint -> Redis stream -> drain -> PostgreSQL log). The report on them is tested in
tests/cms_blocks/test_results.py (segments.reporting.results.block_report)."""

import json
import re

import pytest

from segments.api import EventError
from segments.events import validate
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def markup_keys(html: str) -> dict:
    found = re.search(
        r'data-tailored-block="([^"]+)" data-tailored-variant="([^"]+)" '
        r'data-tailored-page="(\d+)"',
        html,
    )
    assert found, "no personalised block in the page"
    block, variant, page = found.groups()
    return {"block": block, "variant": variant, "page": int(page)}


def send(client, *events):
    body = {"events": [{"name": n, "properties": p} for n, p in events]}
    return client.post(
        "/api/events/", json.dumps(body), content_type="text/plain", HTTP_ORIGIN="http://testserver"
    )


def test_impressions_and_clicks_reach_the_log(backend):
    alice, bob = consenting_browser(), consenting_browser()
    keys = markup_keys(alice.get("/ceramic-mug/").content.decode())
    assert keys["variant"] == "default"
    assert send(alice, ("impression", keys), ("click", keys)).json() == {"recorded": 2}
    markup_keys(bob.get("/ceramic-mug/").content.decode())
    assert send(bob, ("impression", keys)).json() == {"recorded": 1}
    assert send(bob, ("impression", keys)).json() == {"recorded": 1}

    logged = LoggedEvent.objects.filter(name__in=("impression", "click"))
    assert logged.count() == 4
    assert all(e.properties == keys for e in logged)


def test_without_consent_nothing_is_recorded(backend):
    client = browser()
    keys = markup_keys(client.get("/ceramic-mug/").content.decode())
    assert send(client, ("impression", keys)).json() == {"recorded": 0}
    assert not LoggedEvent.objects.exists()


@pytest.mark.parametrize(
    "name, properties",
    [
        ("impression", {"variant": "default", "page": 3}),
        ("impression", {"block": "b", "page": 3}),
        ("impression", {"block": "b c", "variant": "default"}),
        ("click", {"block": "b", "variant": 7}),
        ("impression", {"block": "b", "variant": "default", "page": "3"}),
        ("impression", {"block": "b", "variant": "default", "page": 0}),
    ],
)
def test_the_schema_refuses_malformed_variant_events(name, properties):
    with pytest.raises(EventError):
        validate(name, properties)


def test_a_malformed_batch_is_refused_whole(backend):
    client = consenting_browser()
    response = send(client, ("impression", {"block": "b"}))
    assert response.status_code == 400
    assert "variant" in response.json()["error"]
