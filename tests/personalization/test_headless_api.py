"""The headless endpoints: the visitor's segments and a page resolved for the visitor, in the
shape of Wagtail's API v2, with an OpenAPI schema. Real PostgreSQL and Redis."""

import pytest
import yaml

import segments.definitions
from demo.home.models import ContentPage
from tests.builders import (
    browser,
    consenting_browser,
    demo_site,
    page_variant,
    personalised_page,
    segment,
)

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


@pytest.fixture
def site():
    demo_site()
    segment("french", FRENCH)
    segments.definitions.forget_definitions()
    return personalised_page(
        before=[("heading", "Offers")],
        default="Standard",
        variants=[("engaged", "Engaged"), ("french", "Français")],
    )


def page_json(client, page, **extra):
    response = client.get(f"/api/personalization/pages/{page.pk}/", **extra)
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    return response.json()


def personalised(data):
    [block] = [b for b in data["fields"]["body"] if b["type"] == "personalised"]
    return block


def test_a_page_in_wagtail_api_shape_with_the_default_for_a_visitor_without_consent(site):
    data = page_json(browser(), site, HTTP_ACCEPT_LANGUAGE="en")
    assert data["id"] == site.pk and data["title"] == "Offers"
    assert data["meta"]["type"] == "home.ContentPage"
    assert data["meta"]["html_url"] == "http://localhost/offers/"
    assert data["meta"]["variant"] is None
    assert data["visitor"] == {"consented": False, "segments": []}
    heading = data["fields"]["body"][0]
    assert heading["type"] == "heading" and heading["value"] == "Offers" and heading["id"]
    block = personalised(data)
    assert block["value"]["variant"] == "default" and block["value"]["index"] is None
    assert block["value"]["block"] == block["id"]  # the StreamField id is the block key
    assert block["value"]["content"][0]["value"] == "<p>Standard</p>"


def test_context_only_segments_apply_without_consent(site):
    data = page_json(browser(), site, HTTP_ACCEPT_LANGUAGE="fr")
    assert data["visitor"] == {"consented": False, "segments": ["french"]}
    value = personalised(data)["value"]
    assert value["index"] == 1 and value["variant"] not in ("default", "1")
    assert value["content"][0]["value"] == "<p>Français</p>"


def test_a_consented_visitors_stored_segments_resolve_the_variant(site):
    client = consenting_browser()
    for path in ("/guides/", "/about-us/", "/ceramic-mug/"):
        assert client.get(path).status_code == 200  # the pipeline makes them "engaged"
    data = page_json(client, site)
    assert data["visitor"]["consented"] is True
    assert "engaged" in data["visitor"]["segments"]
    assert personalised(data)["value"]["content"][0]["value"] == "<p>Engaged</p>"
    visitor = client.get("/api/personalization/visitor/").json()
    assert visitor == data["visitor"]


def test_page_variants_are_resolved_and_named(site):
    guides = ContentPage.objects.get(slug="guides")
    variant = page_variant(
        guides, "french", "Guides en français", slug="guides-fr", title="Guides FR"
    )
    french = page_json(browser(), guides, HTTP_ACCEPT_LANGUAGE="fr")
    assert french["id"] == guides.pk
    assert french["meta"]["variant"] == {"id": variant.pk, "title": "Guides FR"}
    assert french["fields"]["body"][0]["value"] == "<p>Guides en français</p>"
    other = page_json(browser(), guides)
    assert other["meta"]["variant"] is None
    # The variant's own id answers as the original, like its URL redirects to the original.
    direct = page_json(browser(), variant)
    assert direct["id"] == guides.pk and direct["meta"]["variant"] is None


def test_unknown_unpublished_and_bad_ids_are_404_not_500(site):
    client = browser()
    assert client.get("/api/personalization/pages/999999/").status_code == 404
    site.unpublish()
    response = client.get(f"/api/personalization/pages/{site.pk}/")
    assert response.status_code == 404
    assert client.get("/api/personalization/pages/abc/").status_code == 404
    assert client.post("/api/personalization/visitor/").status_code == 405


def test_the_fast_store_down_gives_default_content(site, settings):
    client = consenting_browser()
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "nowhere"},
    }
    data = page_json(client, site)
    assert personalised(data)["value"]["variant"] == "default"


def test_openapi_schema_describes_the_endpoints():
    response = browser().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    assert "/api/personalization/visitor/" in paths
    assert "/api/personalization/pages/{id}/" in paths
    ok = paths["/api/personalization/pages/{id}/"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][ref]["properties"]
    assert {"id", "title", "meta", "visitor", "fields"} <= set(properties)
    assert "/api/events/" in paths


def test_a_broken_stored_segment_does_not_fail_the_api(site):
    """A segment row whose rule the engine refuses (docs/rules.md): the endpoints answer, and
    every other segment still decides."""
    from segments.models import Segment

    Segment.objects.create(slug="broken", name="Broken", rule={"type": "event_count", "minn": 3})
    segments.definitions.forget_definitions()
    client = consenting_browser()
    data = page_json(client, site, HTTP_ACCEPT_LANGUAGE="fr")
    assert data["visitor"]["segments"] == ["french"]
    assert personalised(data)["value"]["content"][0]["value"] == "<p>Français</p>"
    response = client.get("/api/personalization/visitor/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200 and response.json()["segments"] == ["french"]
