"""No page content reaches anyone the site would not show it to, canonical page or variant,
through any way a page is served: its URL, the variant's own URL, the headless page endpoint
(by either id), the sitemap and menus. Private (login or groups), password-protected,
unpublished and not-yet-live pages, restricted themselves or through an ancestor. Real
PostgreSQL and Redis."""

import pytest
from django.contrib.auth.models import Group
from wagtail.models import PageViewRestriction

import segments.definitions
from demo.home.models import ContentPage, HomePage
from tests.builders import browser, home_page, page_variant, paragraph, segment
from tests.cms_blocks.helpers import user

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}
CANONICAL = "CANONICAL-BODY"
SECRET = "VARIANT-SECRET-CODE"
RESTRICTIONS = ["password", "login", "groups"]


@pytest.fixture
def pages():
    """A section with a page and its French variant beside it."""
    segment("french", FRENCH)
    segments.definitions.forget_definitions()
    shop = HomePage(title="Shop", slug="shop")
    home_page().add_child(instance=shop)
    shop.save_revision().publish()
    offers = ContentPage(title="Offers", slug="offers", body=[paragraph(CANONICAL)])
    shop.add_child(instance=offers)
    offers.save_revision().publish()
    variant = page_variant(offers, "french", SECRET, slug="offers-fr", title="Offres")
    return shop, offers, variant


def restrict(page, kind: str) -> PageViewRestriction:
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=kind, password="open-sesame" if kind == "password" else ""
    )
    if kind == "groups":
        restriction.groups.add(Group.objects.create(name="Members"))
    return restriction


def api(client, page, **extra):
    return client.get(f"/api/personalization/pages/{page.pk}/", **extra)


def everything_served(client, offers, variant, **extra) -> list:
    """Every response that could carry the pages' content, for one visitor."""
    return [
        api(client, offers, **extra),
        api(client, variant, **extra),
        client.get("/shop/offers/", follow=True, **extra),
        client.get(variant.url_path.removeprefix("/welcome"), follow=True, **extra),
    ]


def leaked(responses, *texts) -> list[str]:
    return [
        f"{r.request['PATH_INFO']} ({r.status_code}) shows {text!r}"
        for r in responses
        for text in texts
        if text in r.content.decode()
    ]


@pytest.mark.parametrize("kind", RESTRICTIONS)
@pytest.mark.parametrize("where", ["page", "ancestor"])
def test_a_restricted_page_and_its_variant_show_nothing_to_outsiders(pages, kind, where):
    shop, offers, variant = pages
    restrict(offers if where == "page" else shop, kind)
    for language in ("fr", "en"):
        responses = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE=language)
        assert not leaked(responses, CANONICAL, SECRET, "Offres")
        assert api(browser(), variant).status_code == 404
        assert api(browser(), offers).status_code == 404


@pytest.mark.parametrize("kind", RESTRICTIONS)
def test_a_restricted_variant_is_never_served_and_its_page_still_is(pages, kind):
    _shop, offers, variant = pages
    restrict(variant, kind)
    responses = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE="fr")
    assert not leaked(responses, SECRET, "Offres")
    data = api(browser(), offers, HTTP_ACCEPT_LANGUAGE="fr").json()
    assert data["meta"]["variant"] is None and CANONICAL in str(data["fields"])


def test_those_the_restriction_admits_get_the_content(pages):
    """The same requests answer once the visitor may see the page (the checks are not a blanket
    refusal): signed in for a login restriction, the password given for a password one."""
    shop, offers, variant = pages
    restrict(offers, "login")
    member = browser()
    member.force_login(user("member"))
    data = api(member, variant, HTTP_ACCEPT_LANGUAGE="fr").json()
    assert data["id"] == offers.pk and SECRET in str(data["fields"])

    PageViewRestriction.objects.all().delete()
    restriction = restrict(shop, "password")
    visitor = browser()
    assert api(visitor, offers).status_code == 404
    form = visitor.get("/shop/offers/")
    assert CANONICAL not in form.content.decode()
    from django.urls import reverse

    url = reverse("wagtailcore_authenticate_with_password", args=[restriction.pk, shop.pk])
    visitor.post(url, {"password": "open-sesame", "return_url": "/shop/offers/"})
    assert CANONICAL in str(api(visitor, offers, HTTP_ACCEPT_LANGUAGE="en").json()["fields"])


def test_an_unpublished_page_and_its_variant_show_nothing(pages):
    _shop, offers, variant = pages
    offers.unpublish()
    for language in ("fr", "en"):
        responses = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE=language)
        assert not leaked(responses, CANONICAL, SECRET, "Offres")
        assert {r.status_code for r in responses} == {404}


def test_an_unpublished_or_not_yet_live_variant_is_never_served(pages):
    _shop, offers, variant = pages
    variant.unpublish()
    from datetime import timedelta

    from django.utils import timezone

    later = page_variant(offers, "french", "LATER-SECRET", slug="offers-fr-later", live=False)
    later.go_live_at = timezone.now() + timedelta(days=1)
    later.save_revision().publish()  # scheduled: not live until then
    later.refresh_from_db()
    assert not later.live
    responses = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE="fr")
    responses.append(api(browser(), later, HTTP_ACCEPT_LANGUAGE="fr"))
    assert not leaked(responses, SECRET, "LATER-SECRET", "Offres")


def test_a_variant_shows_only_to_its_segment_whichever_way_it_is_asked_for(pages):
    _shop, offers, variant = pages
    outsider = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE="en")
    assert not leaked(outsider, SECRET, "Offres")
    assert all(CANONICAL in r.content.decode() for r in outsider)
    direct = browser().get("/shop/offers-fr/", HTTP_ACCEPT_LANGUAGE="en")
    assert direct.status_code == 302 and direct["Location"] == "/shop/offers/"
    insider = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE="fr")
    assert all(SECRET in r.content.decode() for r in insider)


def test_variants_stay_out_of_the_sitemap_and_menus(pages):
    _shop, offers, variant = pages
    ContentPage.objects.filter(pk=offers.pk).update(show_in_menus=True)
    client = browser()
    sitemap = client.get("/sitemap.xml").content.decode()
    assert "/shop/offers/" in sitemap and "offers-fr" not in sitemap
    variant.refresh_from_db()
    assert not variant.show_in_menus
    assert not ContentPage.get_indexed_objects().filter(pk=variant.pk).exists()


def test_a_variant_placed_in_a_private_section_is_not_served_at_its_public_page(pages):
    _shop, offers, variant = pages
    members = HomePage(title="Members", slug="members")
    home_page().add_child(instance=members)
    members.save_revision().publish()
    variant.move(members, pos="last-child")
    restrict(members, "login")
    responses = everything_served(browser(), offers, variant, HTTP_ACCEPT_LANGUAGE="fr")
    responses.append(browser().get("/members/offers-fr/", follow=True, HTTP_ACCEPT_LANGUAGE="fr"))
    assert not leaked(responses, SECRET, "Offres")
