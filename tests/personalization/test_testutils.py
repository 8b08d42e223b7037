"""personalization.testutils: a site's own tests force segments and consent on real requests
(the test client, Wagtail serving pages, requests passed through the middleware), and nothing
is recorded under an override."""

from unittest import mock
from urllib.request import urlopen

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse
from django.test import AsyncClient, RequestFactory, TestCase, override_settings

import personalization.cache
from consent.middleware import ConsentMiddleware
from personalization.api import segments_for
from personalization.middleware import PersonalizationMiddleware
from personalization.testutils import override_consent, override_segments
from segments.models import LoggedEvent
from tests.builders import browser, consenting_browser, page_variant, personalised_page, segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
DEFAULT, ENGAGED, VIP, MOBILE_OFFER = "Standard offer", "ENGAGED offer", "VIP offer", "Mobile offer"
BANNER = 'class="consent-banner"'
VARIANTS = [("engaged", ENGAGED), ("vip", VIP), ("mobile", MOBILE_OFFER)]


@pytest.fixture
def page():
    segment("mobile", MOBILE)  # context-only: decided from the request, for any visitor
    return personalised_page(variants=VARIANTS)


def shown(response) -> str:
    """The one offer on the page."""
    assert response.status_code == 200
    html = response.content.decode()
    found = [offer for offer in (DEFAULT, ENGAGED, VIP, MOBILE_OFFER) if offer in html]
    assert len(found) == 1, found
    return found[0]


def banner(response) -> bool:
    return BANNER in response.content.decode()


def _stored(backend):
    return LoggedEvent.objects.count(), sorted(backend.client.keys(f"{backend.prefix}:*"))


@override_segments("engaged")
def test_a_decorated_test_gets_the_segments_variant_through_the_test_client(page):
    response = browser().get("/offers/")
    assert shown(response) == ENGAGED
    assert not banner(response)  # consented to every purpose


def test_without_an_override_the_default_and_the_banner(page):
    response = browser().get("/offers/")
    assert shown(response) == DEFAULT
    assert banner(response)


def test_as_a_context_manager_and_the_state_is_restored_after(page):
    client = browser()
    with override_segments("vip"):
        assert shown(client.get("/offers/")) == VIP
    assert shown(client.get("/offers/")) == DEFAULT


@override_consent(decided=False)
def test_an_undecided_visitor_gets_the_banner_even_with_a_consent_cookie(page):
    client = consenting_browser()  # a real consent cookie: the override wins
    response = client.get("/offers/")
    assert shown(response) == DEFAULT and banner(response)
    # Context-only segments still apply, as for any visitor without consent.
    assert shown(client.get("/offers/", HTTP_USER_AGENT=PHONE_UA)) == MOBILE_OFFER


def test_override_consent_sets_the_purposes_and_leaves_the_segments_to_the_request(page):
    with override_consent("analytics"):
        response = browser().get("/offers/")
        assert not banner(response)  # decided
        assert shown(response) == DEFAULT  # no identifier: no stored memberships
    with override_consent():  # rejected everything
        assert not banner(browser().get("/offers/"))


def test_override_segments_without_consent_keeps_only_context_only_segments(page):
    with override_segments("engaged", consented=False):
        response = browser().get("/offers/")
        assert shown(response) == DEFAULT and banner(response)
    with override_segments("engaged", "mobile", consented=False):
        assert shown(browser().get("/offers/")) == MOBILE_OFFER


def test_overrides_nest_the_innermost_deciding_what_it_sets(page):
    client = browser()
    with override_segments("engaged"):
        with override_segments("vip"):
            assert shown(client.get("/offers/")) == VIP
        assert shown(client.get("/offers/")) == ENGAGED
        with override_consent(decided=False):  # the segments stay; without consent only
            response = client.get("/offers/")  # context-only ones apply
            assert shown(response) == DEFAULT and banner(response)
        with override_consent("personalization"):
            assert shown(client.get("/offers/")) == ENGAGED
        assert shown(client.get("/offers/")) == ENGAGED
    assert shown(client.get("/offers/")) == DEFAULT


def test_an_override_records_nothing_and_never_asks_the_fast_store(page, backend):
    client = consenting_browser()  # a real identifier in a real consent cookie
    before = _stored(backend)
    with mock.patch.object(backend, "exchange", wraps=backend.exchange) as round_trips:
        with override_segments("engaged"):
            for _ in range(3):
                assert shown(client.get("/offers/")) == ENGAGED
        with override_consent("personalization"):
            assert shown(client.get("/offers/")) == DEFAULT
        assert round_trips.call_count == 0
        assert _stored(backend) == before  # no event, no key touched
        # The same visitor without an override: the page view goes to the fast store.
        client.get("/offers/")
        assert round_trips.called
    assert _stored(backend) != before


def test_a_request_factory_request_passed_through_the_middleware(page):
    stack = ConsentMiddleware(
        PersonalizationMiddleware(
            lambda request: HttpResponse(",".join(sorted(segments_for(request))))
        )
    )
    with override_segments("engaged", "vip"):
        assert stack(RequestFactory().get("/")).content == b"engaged,vip"
    assert stack(RequestFactory().get("/")).content == b""


def test_whole_page_variants_and_the_headless_endpoints_follow_the_override(page):
    page_variant(page, "vip", "VIP page")
    client = browser()
    with override_segments("vip"):
        assert "VIP page" in client.get("/offers/").content.decode()
        data = client.get(f"/api/personalization/pages/{page.pk}/").json()
        assert data["visitor"]["segments"] == ["vip"]
    assert "VIP page" not in client.get("/offers/").content.decode()


def test_an_async_test_function_can_be_decorated(page):
    @override_segments("vip")
    async def check() -> str:
        return shown(await AsyncClient().get("/offers/"))

    assert async_to_sync(check)() == VIP


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_live_server_in_the_test_process_sees_the_override(live_server):
    personalised_page(variants=VARIANTS)
    url = f"{live_server.url}/offers/"
    with override_segments("engaged"), urlopen(url) as response:  # noqa: S310 - an http URL
        assert ENGAGED in response.read().decode()


CACHE_SAFE = {
    "MIDDLEWARE": [
        "personalization.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "personalization.cache.FetchFromCacheMiddleware",
    ],
    "CACHES": {
        **settings.CACHES,
        "pages": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "testutils",
        },
    },
    "CACHE_MIDDLEWARE_ALIAS": "pages",
    "CONSENT_BANNER_MODE": "client",
}


@override_settings(**CACHE_SAFE)
def test_responses_under_an_override_never_enter_or_leave_the_shared_page_cache(page):
    personalization.cache.forget()
    caches["pages"].clear()
    client = browser()
    statuses = [client.get("/offers/")["X-Tailored-Cache"] for _ in range(3)]
    assert statuses[-1] == "hit"  # the page is in the shared cache, for visitors in no segment
    with override_segments("engaged"):
        response = client.get("/offers/")
        assert shown(response) == ENGAGED and response["X-Tailored-Cache"] == "pass"
    with override_consent(decided=False):
        assert client.get("/offers/")["X-Tailored-Cache"] == "pass"
    response = client.get("/offers/")
    assert shown(response) == DEFAULT and response["X-Tailored-Cache"] == "hit"
    personalization.cache.forget()


@override_segments("engaged")
class OverridesOnATestCaseClassTests(TestCase):
    """A class decorator applies to every test of the class, through ``self.client``."""

    @classmethod
    def setUpTestData(cls):
        cls.page = personalised_page(variants=VARIANTS)

    def test_every_test_of_the_class_gets_the_variant(self):
        self.assertContains(self.client.get("/offers/"), ENGAGED)

    @override_consent(decided=False)
    def test_a_method_decorator_nests_inside_the_class_one(self):
        response = consenting_browser().get("/offers/")
        self.assertContains(response, DEFAULT)
        self.assertContains(response, BANNER)


def test_mistakes_are_refused():
    with pytest.raises(ValueError, match="Unknown purpose"), override_consent("analytcs"):
        pass
    with pytest.raises(ValueError):
        override_consent("analytics", decided=False)
    with pytest.raises(TypeError):
        override_segments(["engaged", "vip"])
