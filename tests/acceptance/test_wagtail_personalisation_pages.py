"""wagtail-personalisation's acceptance cases for page variants, the template tag, the
sitemap and deletion, as tests of this project.

Ported from its ``tests/unit``: ``test_models.py``, ``test_wagtail_hooks.py``,
``test_utils.py``, ``test_templatetags.py``, ``test_regressions.py`` and the deletion cases of
``test_views.py``. There a variant is a copy of the page linked by ``PersonalisablePageMetadata``
and served by a ``before_serve_page`` hook; here it is a page of the same type whose
``variant_of`` names the original (``cms_blocks.models.PageVariantMixin``), served at the
original's URL. Tests drive the demo site through the test client and the admin (real
PostgreSQL and Redis); the segments are decided from the request (a query parameter), so the
visitors need no consent.

Cases that do not apply here, and why:

- ``test_models.py``: ``test_segment_create``, ``test_content_page_model``: factories; and
  ``test_segment_edit_view`` checks an ``InlinePanel`` per rule model, replaced here by the rule
  builder (``test_the_segment_editor_offers_every_condition_type``).
- ``test_utils.py``: ``test_impersonate_other_page`` copies the original's title and path onto
  the variant object; here the variant is served at the original's URL and names it as
  canonical (``test_a_variant_served_at_the_original_url_names_the_original_as_canonical``).
  ``test_can_delete_pages_with_superuser``, ``test_cannot_delete_pages_with_standard_user``:
  the permission helper of its delete hook; here Wagtail's own page permissions apply to the
  original and its variants (``test_a_user_without_permission_cannot_delete_a_segment``, and
  the deletion cases). ``test_get_client_ip_*``: the client address of its GeoIP look-up;
  here it is the address DRF's ``NUM_PROXIES`` trusts (tests/acceptance, rules:
  ``test_the_geoip_lookup_trusts_x_forwarded_for_only_behind_the_configured_proxies``), and a
  custom function setting (``WAGTAIL_PERSONALISATION_IP_FUNCTION``) is not offered.
- ``test_wagtail_hooks.py``: ``test_page_listing_more_buttons`` counts its three "more" buttons;
  the explorer's variant action is checked by
  ``test_the_page_explorer_offers_to_create_a_variant``.
"""

import pytest
from django.http import HttpResponse
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory
from wagtail.models import Page

from consent.middleware import ConsentMiddleware
from demo.home.models import ContentPage, HomePage
from personalization.middleware import PersonalizationMiddleware
from segments.models import Segment
from segments.rules import catalog
from tests.acceptance.helpers import visitor
from tests.builders import demo_site, page_variant, segment
from tests.cms_blocks.helpers import login

pytestmark = [pytest.mark.services, pytest.mark.django_db]

VIP = {"type": "query", "param": "segment", "op": "eq", "value": "vip"}


@pytest.fixture
def guides():
    demo_site()
    segment("vip", VIP)
    return ContentPage.objects.get(slug="guides")


@pytest.fixture
def variant(guides):
    return page_variant(guides, "vip", "VIP-ONLY discount code")


def shows_variant(path: str, query: str = "") -> bool:
    response = visitor().get(path + query, follow=True)
    return response.status_code == 200 and "VIP-ONLY" in response.content.decode()


# -- test_models.py -------------------------------------------------------------------------------


def test_a_page_with_a_variant_lists_it_and_the_variant_names_its_original(guides, variant):
    assert [pk for pk, *_ in guides.live_variants()] == [variant.pk]
    assert not guides.is_variant and guides.canonical_page == guides
    assert variant.is_variant and variant.canonical_page.pk == guides.pk
    assert variant.live_variants() == []  # a variant has no variants of its own


def test_a_variant_can_be_deleted_and_the_original_keeps_serving(guides, variant):
    variant.delete()
    assert not ContentPage.objects.filter(pk=variant.pk).exists()
    guides.refresh_from_db()
    assert guides.live_variants() == []
    assert visitor().get("/guides/?segment=vip").status_code == 200
    assert not shows_variant("/guides/", "?segment=vip")


def test_deleting_an_original_never_leaves_its_variant_as_a_public_page(guides, variant):
    admin = login("root", superuser=True)
    admin.post(f"/admin/pages/{guides.pk}/delete/")
    # Deleting a page deletes its variants (docs/editors.md): never a variant turned into an
    # ordinary page that anyone can open.
    assert not Page.objects.filter(pk=guides.pk).exists()
    assert not Page.objects.filter(pk=variant.pk).exists()
    assert not shows_variant(variant.url)
    assert "guides-vip" not in visitor().get("/sitemap.xml").content.decode()


def test_a_segment_used_by_a_page_variant_is_not_deleted_without_saying_so(guides, variant):
    admin = login("root", superuser=True)
    vip = Segment.objects.get(slug="vip")
    confirmation = admin.get(f"/admin/snippets/segments/segment/delete/{vip.pk}/")
    assert variant.title in confirmation.content.decode()
    admin.post(f"/admin/snippets/segments/segment/delete/{vip.pk}/")  # confirmed anyway
    assert Segment.objects.filter(pk=vip.pk).exists()  # refused while the variant uses it
    assert shows_variant("/guides/", "?segment=vip")


def test_the_sitemap_lists_the_original(guides, variant):
    sitemap = visitor().get("/sitemap.xml").content.decode()
    assert "http://localhost/guides/" in sitemap
    assert guides.get_sitemap_urls()


def test_the_sitemap_never_lists_a_variant(guides, variant):
    assert variant.get_sitemap_urls() == []
    assert "guides-vip" not in visitor().get("/sitemap.xml").content.decode()


def test_the_segment_editor_offers_every_condition_type():
    demo_site()
    html = login("root", superuser=True).get("/admin/snippets/segments/segment/add/")
    text = html.content.decode()
    for entry in catalog()["conditions"]:
        assert f'"type": "{entry["type"]}"' in text


# -- test_wagtail_hooks.py ------------------------------------------------------------------------


def test_a_page_without_variants_serves_itself(guides):
    response = visitor().get("/guides/?segment=vip")
    assert response.status_code == 200
    assert "How to choose" in response.content.decode()


def test_a_variant_requested_directly_is_not_shown_outside_its_segment(guides, variant):
    response = visitor().get(variant.url)
    assert response.status_code in (302, 404)
    assert not shows_variant(variant.url)


def test_a_visitor_outside_the_segment_gets_the_original(guides, variant):
    assert not shows_variant("/guides/")
    assert "How to choose" in visitor().get("/guides/").content.decode()


def test_a_visitor_in_the_segment_gets_the_variant_at_the_original_url(guides, variant):
    response = visitor().get("/guides/?segment=vip")
    assert response.status_code == 200
    assert "VIP-ONLY" in response.content.decode()


def test_the_page_explorer_offers_to_create_a_variant(guides):
    admin = login("root", superuser=True)
    listing = admin.get(f"/admin/pages/{guides.get_parent().pk}/").content.decode().lower()
    assert "create variant" in listing or "create a variant" in listing


def test_deleting_a_variant_leaves_the_original_and_its_other_variants(guides, variant):
    segment("regular-vip", {"type": "query", "param": "segment", "op": "eq", "value": "regular"})
    other = page_variant(guides, "regular-vip", "REGULAR offer")
    login("root", superuser=True).post(f"/admin/pages/{variant.pk}/delete/")
    assert not Page.objects.filter(pk=variant.pk).exists()
    assert Page.objects.filter(pk=guides.pk, live=True).exists()
    assert [pk for pk, *_ in ContentPage.objects.get(pk=guides.pk).live_variants()] == [other.pk]


def test_deleting_a_page_removes_or_protects_the_variants_of_its_child_pages(guides):
    home = HomePage.objects.get()
    section = home.add_child(instance=ContentPage(title="Section", slug="section", live=True))
    child = section.add_child(instance=ContentPage(title="Child", slug="child", live=True))
    child.save_revision().publish()
    # The child's variant lives outside the section (variants may live anywhere).
    variant = home.add_child(
        instance=ContentPage(
            title="Child (vip)",
            slug="child-vip",
            variant_of=child,
            variant_segments=["vip"],
            body=[("paragraph", "<p>VIP-ONLY child</p>")],
            live=True,
        )
    )
    variant.save_revision().publish()
    assert shows_variant("/section/child/", "?segment=vip")
    admin = login("root", superuser=True)
    response = admin.post(f"/admin/pages/{section.pk}/delete/")
    assert response.status_code == 302
    # The child went with its section, and its variant (elsewhere in the tree) with it.
    assert not Page.objects.filter(pk__in=[section.pk, child.pk, variant.pk]).exists()
    assert not shows_variant(variant.url)


# -- test_utils.py --------------------------------------------------------------------------------


def test_a_variant_served_at_the_original_url_names_the_original_as_canonical(guides, variant):
    html = visitor().get("/guides/?segment=vip").content.decode()
    assert "VIP-ONLY" in html
    assert '<link rel="canonical" href="http://localhost/guides/">' in html


def test_variants_are_left_out_of_menus_and_search(guides, variant):
    assert not Page.objects.in_menu().filter(pk=variant.pk).exists()
    assert not ContentPage.get_indexed_objects().filter(pk=variant.pk).exists()
    assert ContentPage.get_indexed_objects().filter(pk=guides.pk).exists()


def test_pages_without_variants_are_all_listed(guides):
    indexed = set(ContentPage.get_indexed_objects().values_list("pk", flat=True))
    assert indexed == set(ContentPage.objects.values_list("pk", flat=True))


# -- test_templatetags.py -------------------------------------------------------------------------


def _render(source: str, path: str) -> str:
    request = RequestFactory().get(path, HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64)")

    def view(req):
        return HttpResponse(Template(source).render(Context({"request": req})))

    return ConsentMiddleware(PersonalizationMiddleware(view))(request).content.decode().strip()


def test_the_segment_tag_shows_its_content_to_members_only():
    demo_site()
    segment("test", VIP)
    source = "{% load tailored_tags %}{% segment 'test' %}Test{% endsegment %}"
    assert _render(source, "/?segment=vip") == "Test"
    assert _render(source, "/") == ""
    other = "{% load tailored_tags %}{% segment 'test2' %}Test{% endsegment %}"
    assert _render(other, "/?segment=vip") == ""


def test_a_segment_tag_without_a_segment_is_a_template_syntax_error():
    with pytest.raises(TemplateSyntaxError):
        Template("{% load tailored_tags %}{% segment %}Test{% endsegment %}")
    with pytest.raises(TemplateSyntaxError):
        Template("{% load tailored_tags %}{% segment wrongname='test2' %}Test{% endsegment %}")


# -- test_regressions.py, test_views.py -----------------------------------------------------------


def test_a_page_type_that_cannot_have_variants_serves_normally():
    demo_site()
    segment("vip", VIP)
    response = visitor().get("/ceramic-mug/?segment=vip")  # a ProductPage
    assert response.status_code == 200


def test_a_user_without_permission_cannot_delete_a_segment(guides):
    vip = Segment.objects.get(slug="vip")
    editor = login("editor", "segments.change_segment", "segments.view_segment")
    response = editor.post(f"/admin/snippets/segments/segment/delete/{vip.pk}/")
    assert response.status_code in (302, 403)
    assert Segment.objects.filter(pk=vip.pk).exists()
