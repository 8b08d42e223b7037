"""Reports → Page variants: which pages have variants and for which segments, with a "Create
variant" action that copies a page as a draft variant beside it (also from the page's header
and listing menus). Real PostgreSQL and Redis."""

import re

import pytest
from django.urls import reverse
from wagtail.models import GroupPagePermission, Page

import segments.definitions
from demo.home.models import ContentPage, HomePage
from tests.builders import browser, home_page, page_variant, paragraph, segment
from tests.cms_blocks.helpers import login

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}
MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
REPORT = "/admin/tailored/variants/"


@pytest.fixture
def pages():
    segment("french", FRENCH, name="French speakers")
    segment("mobile", MOBILE, name="Phones")
    segments.definitions.forget_definitions()
    made = []
    for title in ("Guides", "About"):
        page = ContentPage(title=title, slug=title.lower(), body=[paragraph(f"{title} text")])
        home_page().add_child(instance=page)
        page.save_revision().publish()
        made.append(page)
    guides, about = made
    page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides FR")
    page_variant(guides, ["french", "mobile"], "Both", slug="guides-both", match="all", live=False)
    return guides, about


@pytest.fixture
def admin():
    return login("boss", superuser=True)


def rows(html: str) -> list[str]:
    """The report's table rows, as text."""
    table = re.search(r'<table[^>]*class="[^"]*listing.*?</table>', html, re.S)
    found = re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(0), re.S) if table else []
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found[1:]]


def test_the_report_shows_which_pages_have_variants_for_which_segments(pages, admin):
    response = admin.get(REPORT)
    assert response.status_code == 200
    table = rows(response.content.decode())
    guides_row = next(r for r in table if r.startswith("Guides /guides/"))
    assert "Guides FR for French speakers live" in guides_row
    assert "for French speakers and Phones draft" in guides_row
    assert "French speakers, Phones" in guides_row and "Create variant" in guides_row
    about_row = next(r for r in table if r.startswith("About"))
    assert "No variants" in about_row
    assert not any(r.startswith("Guides FR") for r in table)  # variants show under their page
    assert "/admin/tailored/variants/" in response.content.decode()


def test_the_report_filters_and_exports(pages, admin):
    only = rows(admin.get(REPORT + "?has_variants=yes").content.decode())
    assert [r.split()[0] for r in only] == ["Guides"]
    without = rows(admin.get(REPORT + "?has_variants=no").content.decode())
    assert "About" in [r.split()[0] for r in without]
    guides, _about = pages
    ContentPage.objects.filter(pk=guides.pk).update(title="=HYPERLINK(1)")
    csv = b"".join(admin.get(REPORT + "?export=csv").streaming_content).decode()
    assert "Guides FR (French speakers)" in csv
    assert "'=HYPERLINK(1)" in csv  # a title is never a formula in a spreadsheet


def test_the_report_lists_only_pages_the_editor_may_edit(pages):
    section = HomePage(title="Shop", slug="shop")
    home_page().add_child(instance=section)
    shop_page = ContentPage(title="Deals", slug="deals", body=[])
    section.add_child(instance=shop_page)
    client = login("limited")
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="limited group")
    GroupPagePermission.objects.create(group=group, page=section, permission_type="change")
    listed = [r.split()[0] for r in rows(client.get(REPORT).content.decode())]
    assert listed == ["Deals"]
    assert login("nobody").get(REPORT).status_code == 403


def test_create_variant_copies_the_page_as_a_draft_variant_and_opens_it(pages, admin):
    _guides, about = pages
    url = reverse("cms_blocks_variants:create", args=[about.pk])
    assert "French speakers" in admin.get(url).content.decode()
    response = admin.post(url, {"segments": ["mobile"], "match": "any"})
    variant = ContentPage.objects.get(variant_of=about)
    assert response.status_code == 302
    assert response["Location"] == reverse("wagtailadmin_pages:edit", args=[variant.pk])
    assert variant.slug == "about-mobile" and variant.title == "About (Phones)"
    assert variant.variant_segments == ["mobile"] and not variant.live
    assert variant.get_parent().pk == about.get_parent().pk
    assert variant.body[0].value.source == "<p>About text</p>"  # a copy of the content
    assert not variant.show_in_menus
    # A draft is served to no one until published; then to its segment at the page's URL.
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    assert browser().get("/about/", HTTP_USER_AGENT=phone).status_code == 200
    variant.body = [paragraph("About, on your phone")]
    variant.save_revision().publish()
    assert "on your phone" in browser().get("/about/", HTTP_USER_AGENT=phone).content.decode()


def test_create_variant_refuses_a_taken_slug_and_a_variant(pages, admin):
    guides, _about = pages
    url = reverse("cms_blocks_variants:create", args=[guides.pk])
    response = admin.post(url, {"segments": ["french"], "match": "any", "slug": "guides-fr"})
    assert response.status_code == 200
    assert "already used beside this page" in response.content.decode()
    variant = ContentPage.objects.get(slug="guides-fr")
    assert admin.get(reverse("cms_blocks_variants:create", args=[variant.pk])).status_code == 404
    assert admin.post(url, {"match": "any"}).status_code == 200  # segments are required
    assert ContentPage.objects.filter(variant_of=guides).count() == 2


def test_create_variant_needs_permission_to_add_beside_the_page(pages):
    guides, _about = pages
    client = login("reader")
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="reader group")
    GroupPagePermission.objects.create(group=group, page=guides, permission_type="change")
    url = reverse("cms_blocks_variants:create", args=[guides.pk])
    assert client.get(url).status_code == 403  # may edit the page, not add beside it
    GroupPagePermission.objects.create(group=group, page=home_page(), permission_type="add")
    GroupPagePermission.objects.create(group=group, page=home_page(), permission_type="change")
    assert client.get(url).status_code == 200


def test_the_page_header_and_listing_offer_create_variant(pages, admin):
    guides, _about = pages
    create = reverse("cms_blocks_variants:create", args=[guides.pk])
    edit = admin.get(reverse("wagtailadmin_pages:edit", args=[guides.pk])).content.decode()
    assert create in edit
    listing = admin.get(reverse("wagtailadmin_explore", args=[home_page().pk])).content.decode()
    assert create in listing
    variant = Page.objects.get(slug="guides-fr")
    variant_edit = admin.get(reverse("wagtailadmin_pages:edit", args=[variant.pk])).content
    own = reverse("cms_blocks_variants:create", args=[variant.pk])
    assert own.encode() not in variant_edit  # a variant has no variants of its own


def test_wagtails_page_explorer_marks_pages_with_variants_and_for_whom(pages, admin):
    guides, about = pages
    listing = admin.get(reverse("wagtailadmin_explore", args=[home_page().pk])).content.decode()
    text = " ".join(listing.split())
    assert f'data-tailored-variants="{guides.pk}"' in listing
    assert "Variants: French speakers; French speakers and Phones" in text
    assert f'data-tailored-variants="{about.pk}"' not in listing  # no variants: no mark
