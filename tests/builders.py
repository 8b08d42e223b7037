"""Builders for test data: small functions instead of big fixtures."""

from django.core.management import call_command
from django.test import Client

from segments.models import Segment

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

ENGAGED_RULE = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}


def segment(slug: str = "engaged", rule: dict | None = None, **fields) -> Segment:
    return Segment.objects.create(
        slug=slug, name=fields.pop("name", slug.title()), rule=rule or ENGAGED_RULE, **fields
    )


def browser() -> Client:
    """A test client that looks like a browser (bots are not recorded)."""
    return Client(HTTP_USER_AGENT=BROWSER_UA)


def consenting_browser(action: str = "accept_all", **data) -> Client:
    client = browser()
    response = client.post("/consent/", {"action": action, **data})
    assert response.status_code == 303, response.content
    return client


def demo_site() -> None:
    call_command("seed_demo", verbosity=0)
