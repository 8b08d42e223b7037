"""Cache-safe mode against a REAL shared cache: Django's cache middleware (the cache-safe
drop-in replacements) backed by Redis, real PostgreSQL, the real segment pipeline.

Visitors in different segments never receive each other's variant; visitors in the same
segments share cache entries (counted as executions of the page's ``serve``)."""

import re
import uuid
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.test import override_settings

import personalization.cache
import segments.definitions
from demo.home.models import ContentPage
from personalization.cache import CacheAwareSegments, CacheState
from tests.builders import browser, consenting_browser, demo_site, personalised_page, segment

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}
PREFIX = f"tailored-pages-{settings.TEST_RUN_ID}-{uuid.uuid4().hex[:8]}"
CACHE_SAFE = {
    "MIDDLEWARE": [
        "personalization.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "personalization.cache.FetchFromCacheMiddleware",
    ],
    "CACHES": {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pages": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.TEST_REDIS_URL,  # db 15
            "KEY_PREFIX": PREFIX,
        },
    },
    "CACHE_MIDDLEWARE_ALIAS": "pages",
    "CACHE_MIDDLEWARE_SECONDS": 300,
    "CACHE_MIDDLEWARE_KEY_PREFIX": "",
    "CONSENT_BANNER_MODE": "client",
}
OFFER_DEFAULT, OFFER_FRENCH, OFFER_ENGAGED = "Standard offer", "Offre française", "ENGAGED offer"


@pytest.fixture
def shared_cache():
    """Cache-safe mode on, with the pages cache in Redis under a prefix of this test only
    (deleted by prefix afterwards: the database is never flushed)."""
    personalization.cache.forget()
    with override_settings(**CACHE_SAFE):
        yield
    personalization.cache.forget()
    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    keys = list(client.scan_iter(match=f"{PREFIX}:*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def offers(shared_cache):
    demo_site()
    segment("french", FRENCH)
    segments.definitions.forget_definitions()
    return personalised_page(
        default=OFFER_DEFAULT, variants=[("engaged", OFFER_ENGAGED), ("french", OFFER_FRENCH)]
    )


@pytest.fixture
def renders():
    """Executions of the page's serve (the real one runs): a cache hit executes none."""
    with mock.patch.object(ContentPage, "serve", autospec=True, side_effect=ContentPage.serve):
        yield ContentPage.serve


def offer(response) -> str:
    html = response.content.decode()
    found = [o for o in (OFFER_DEFAULT, OFFER_FRENCH, OFFER_ENGAGED) if o in html]
    assert len(found) == 1, found
    return found[0]


def visit(client, path="/offers/", **extra):
    response = client.get(path, **extra)
    assert response.status_code == 200, response.content[:300]
    return response


def test_visitors_without_consent_share_entries_per_context_segment(offers, renders):
    english = {"HTTP_ACCEPT_LANGUAGE": "en-GB"}
    french = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.8"}

    first = visit(browser(), **english)  # learns which segments the page uses: not stored
    assert offer(first) == OFFER_DEFAULT
    assert first["X-Tailored-Cache"] == "pass"
    assert visit(browser(), **english)["X-Tailored-Cache"] == "miss"
    assert renders.call_count == 2

    for _ in range(3):
        response = visit(browser(), **english)
        assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_DEFAULT, "hit")
    assert renders.call_count == 2  # three visitors served from Redis, no render

    response = visit(browser(), **french)
    assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_FRENCH, "miss")
    for _ in range(2):
        response = visit(browser(), **french)
        assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_FRENCH, "hit")
        response = visit(browser(), **english)
        assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_DEFAULT, "hit")
    assert renders.call_count == 3

    # What leaves: no segment cookie without consent, Vary as Django would send it, and no
    # session or CSRF cookie in a shared page.
    assert not response.cookies
    assert "Cookie" in response["Vary"] and "X-Tailored-Segments" not in response["Vary"]
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]*)"', response.content.decode())
    assert tokens and set(tokens) == {""}  # the client-mode banner fetches its token


def test_consented_visitors_in_different_segments_never_share(offers, renders, backend):
    # Warm the content-segment set (the first render of the page is never stored).
    visit(browser(), HTTP_ACCEPT_LANGUAGE="en")

    def engaged_visitor():
        client = consenting_browser()
        for path in ("/guides/", "/about-us/", "/ceramic-mug/"):
            visit(client, path)  # three page views: the pipeline puts them in "engaged"
        return client

    alice = engaged_visitor()
    first = visit(alice)
    assert offer(first) == OFFER_ENGAGED
    assert first.cookies["tl_seg"].value  # the signed segment-set key
    cookie = first.cookies["tl_seg"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    again = visit(alice)
    assert (offer(again), again["X-Tailored-Cache"]) == (OFFER_ENGAGED, "hit")

    bob = consenting_browser()  # consented, one page view: not engaged
    response = visit(bob)
    assert offer(response) == OFFER_DEFAULT
    assert response["X-Tailored-Cache"] in ("miss", "pass")
    response = visit(bob)
    assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_DEFAULT, "hit")

    served_before = renders.call_count
    carol = engaged_visitor()  # another engaged visitor: Alice's entry, not a new render
    response = visit(carol)
    assert (offer(response), response["X-Tailored-Cache"]) == (OFFER_ENGAGED, "hit")
    assert renders.call_count == served_before

    # A visitor without consent never gets the engaged variant, and a copied cookie is ignored.
    stranger = browser()
    stranger.cookies["tl_seg"] = alice.cookies["tl_seg"].value
    response = visit(stranger)
    assert offer(response) == OFFER_DEFAULT
    assert response.cookies["tl_seg"].value == ""  # deleted


def test_pages_with_a_csrf_token_or_a_session_are_never_shared(offers):
    first = browser().get("/consent/preferences/")
    second = browser().get("/consent/preferences/")
    assert first.status_code == second.status_code == 200
    assert first["X-Tailored-Cache"] == second["X-Tailored-Cache"] == "pass"
    assert first.cookies["csrftoken"].value != second.cookies["csrftoken"].value

    visit(browser())
    visit(browser())  # stored
    editor = browser()
    editor.cookies[settings.SESSION_COOKIE_NAME] = "some-session"
    assert visit(editor)["X-Tailored-Cache"] == "pass"


def test_a_forged_key_header_or_cookie_gets_nothing_of_anyone_elses(offers):
    visit(browser(), HTTP_ACCEPT_LANGUAGE="fr")
    visit(browser(), HTTP_ACCEPT_LANGUAGE="fr")  # French entry stored
    forged = browser()
    forged.cookies["tl_seg"] = "0000000000.1111111111:forged-signature"
    response = visit(forged, HTTP_X_TAILORED_SEGMENTS="anything", HTTP_ACCEPT_LANGUAGE="en")
    assert offer(response) == OFFER_DEFAULT


def test_listing_the_segments_makes_a_page_unshareable():
    state = CacheState(content=frozenset({"a"}), context_all=frozenset(), stored=None)
    segments = CacheAwareSegments(frozenset({"a", "b"}), state)
    assert "a" in segments and state.consulted == {"a"} and not state.opaque
    assert segments.peek() == {"a", "b"} and not state.opaque
    assert sorted(segments) == ["a", "b"]
    assert state.opaque


def test_system_checks_of_the_mode():
    from personalization.checks import check_cache_safe_mode

    ids = lambda: {e.id for e in check_cache_safe_mode()}  # noqa: E731
    with override_settings(**CACHE_SAFE):
        assert ids() == set()
    with override_settings(**{**CACHE_SAFE, "CONSENT_BANNER_MODE": "server"}):
        assert ids() == {"personalization.E007"}
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, CACHE_SAFE["MIDDLEWARE"][-1]]):
        assert "personalization.E003" in ids()
    reordered = [CACHE_SAFE["MIDDLEWARE"][-1], *CACHE_SAFE["MIDDLEWARE"][:-1]]
    with override_settings(**{**CACHE_SAFE, "MIDDLEWARE": reordered}):
        assert "personalization.E004" in ids()
    update, fetch = CACHE_SAFE["MIDDLEWARE"][0], CACHE_SAFE["MIDDLEWARE"][-1]
    late = [*settings.MIDDLEWARE, update, fetch]
    with override_settings(**{**CACHE_SAFE, "MIDDLEWARE": late}):
        assert "personalization.E005" in ids()


def test_a_broken_stored_segment_does_not_fail_cache_safe_pages(offers):
    """The cache-safe middleware decides context segments before the view: a segment row
    whose rule the engine refuses (docs/rules.md) must not turn that into a 500."""
    from segments.models import Segment

    Segment.objects.create(slug="broken", name="Broken", rule={"type": "no_longer_installed"})
    segments.definitions.forget_definitions()
    french = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.8"}
    assert offer(visit(browser(), **french)) == OFFER_FRENCH
    assert offer(visit(browser(), HTTP_ACCEPT_LANGUAGE="en")) == OFFER_DEFAULT


def test_a_query_parameter_segment_decides_shared_pages_too(shared_cache, renders):
    demo_site()
    segment("newsletter", {"type": "query", "param": "ref", "op": "eq", "value": "newsletter"})
    segments.definitions.forget_definitions()
    personalised_page(default=OFFER_DEFAULT, variants=[("newsletter", OFFER_FRENCH)])
    for _ in range(3):
        assert offer(visit(browser(), "/offers/?ref=newsletter")) == OFFER_FRENCH
        assert offer(visit(browser(), "/offers/")) == OFFER_DEFAULT
        assert offer(visit(browser(), "/offers/?ref=other")) == OFFER_DEFAULT
