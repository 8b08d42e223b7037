"""Helpers of the acceptance cases ported from wagtail-personalisation's own suite."""

import re

from django.test import Client

from consent.api import visitor_key
from tests.builders import BROWSER_UA, consenting_browser

COOKIE = "tailored_consent"
SEGMENTS = re.compile(r'data-testid="segments">Your segments: (.*?)</span>', re.S)


def segments_of(response) -> set[str]:
    """The segments a demo page says the visitor is in (``templates/base.html``)."""
    assert response.status_code == 200, response.status_code
    found = SEGMENTS.search(response.content.decode())
    assert found, "the page lists no segments"
    return set(re.findall(r"<b>(.*?)</b>", found.group(1)))


def visitor(**headers) -> Client:
    """A visitor without consent (a browser's user agent unless ``HTTP_USER_AGENT`` is given)."""
    return Client(**{"HTTP_USER_AGENT": BROWSER_UA, **headers})


def consenting_visitor() -> Client:
    return consenting_browser()


def key_of(client: Client) -> str:
    """The pseudonymous key of a consenting test client."""
    return visitor_key(client.cookies[COOKIE].value.split("|")[1])
