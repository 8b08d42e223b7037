"""Variants follow their page (cms_blocks.variants): deleting, unpublishing or moving a page
does the same to its variants, on every path (the page's own methods, an ancestor's deletion,
querysets, Wagtail's actions), and a move a variant cannot follow is refused before anything
moves. A variant is never left behind as an ordinary live page. Real PostgreSQL and Redis."""

import pytest
from wagtail.log_actions import LogContext
from wagtail.models import Page, PageLogEntry

import segments.definitions
from cms_blocks.variants import VariantMoveError, variants_in_subtree
from demo.home.models import ContentPage, HomePage
from tests.builders import browser, home_page, page_variant, paragraph, segment
from tests.cms_blocks.helpers import user

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


@pytest.fixture
def guides():
    segment("french", FRENCH)
    segments.definitions.forget_definitions()
    page = ContentPage(title="Guides", slug="guides", body=[paragraph("How to choose")])
    home_page().add_child(instance=page)
    page.save_revision().publish()
    return page


def section(title: str, parent: Page | None = None) -> HomePage:
    """A second section beside the demo's pages (built in code: the editor's type rules do not
    apply to ``add_child``)."""
    parent = parent or HomePage.objects.get(slug="welcome")
    page = HomePage(title=title, slug=title.lower().replace(" ", "-"))
    parent.add_child(instance=page)
    page.save_revision().publish()
    return page


def exists(page: Page) -> bool:
    return Page.objects.filter(pk=page.pk).exists()


def tree_is_sound() -> bool:
    return all(not problems for problems in Page.find_problems())


def test_deleting_a_page_deletes_its_variants_and_leaves_nothing_to_serve(guides):
    variant = page_variant(guides, "french", "Code promo FR-SECRET", slug="guides-fr")
    guides.delete()
    assert not exists(variant)
    assert tree_is_sound()
    client = browser()
    assert client.get("/guides-fr/", HTTP_ACCEPT_LANGUAGE="fr").status_code == 404
    assert "guides-fr" not in client.get("/sitemap.xml").content.decode()
    assert client.get(f"/api/personalization/pages/{variant.pk}/").status_code == 404


def test_deleting_an_ancestor_deletes_variants_placed_elsewhere(guides):
    offers = section("Offers")
    canonical = ContentPage(title="Deals", slug="deals", body=[("paragraph", "<p>Deals</p>")])
    offers.add_child(instance=canonical)
    canonical.save_revision().publish()
    elsewhere = page_variant(canonical, "french", "Affaires", slug="deals-fr")  # beside it
    elsewhere.move(HomePage.objects.get(slug="welcome"), pos="last-child")
    assert variants_in_subtree(offers) == [ContentPage.objects.get(pk=elsewhere.pk)]
    offers.delete()
    assert not exists(canonical) and not exists(elsewhere)
    assert tree_is_sound()


def test_a_queryset_deleting_a_page_and_its_variant_together(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    other = page_variant(guides, "french", "Salut", slug="guides-fr-2")
    Page.objects.filter(pk__in=[guides.pk, variant.pk]).delete()
    assert not exists(guides) and not exists(variant) and not exists(other)
    assert tree_is_sound()


def test_deleting_a_variant_leaves_its_page(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    variant.delete()
    assert exists(guides) and not exists(variant)


def test_the_deletion_of_a_variant_is_logged_under_the_editor(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    editor = user("remover", superuser=True)
    with LogContext(user=editor):
        guides.delete(user=editor)
    entry = PageLogEntry.objects.get(page_id=variant.pk, action="wagtail.delete")
    assert entry.user_id == editor.pk


def test_unpublishing_a_page_unpublishes_its_variants(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    draft = page_variant(guides, "french", "Brouillon", slug="guides-fr-draft", live=False)
    guides.unpublish()
    variant.refresh_from_db()
    draft.refresh_from_db()
    assert not variant.live and not draft.live
    assert PageLogEntry.objects.filter(page_id=variant.pk, action="wagtail.unpublish").exists()
    # Publishing the page again does not publish the variants: an editor decides that.
    guides.save_revision().publish()
    variant.refresh_from_db()
    assert not variant.live


def test_a_page_unpublished_with_its_parent_takes_its_variants(guides):
    shop = section("Shop")
    canonical = ContentPage(title="Deals", slug="deals", body=[("paragraph", "<p>Deals</p>")])
    shop.add_child(instance=canonical)
    canonical.save_revision().publish()
    elsewhere = page_variant(canonical, "french", "Affaires", slug="deals-fr")
    elsewhere.move(HomePage.objects.get(slug="welcome"), pos="last-child")
    from wagtail.actions.unpublish_page import UnpublishPageAction

    UnpublishPageAction(shop, user=user("boss", superuser=True), include_descendants=True).execute()
    elsewhere.refresh_from_db()
    assert not elsewhere.live


def test_moving_a_page_moves_the_variants_beside_it(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    destination = section("Learn")
    guides.move(destination, pos="last-child")
    variant.refresh_from_db()
    assert variant.get_parent().pk == destination.pk
    assert variant.url_path == "/welcome/learn/guides-fr/"
    assert tree_is_sound()
    french = browser().get("/learn/guides/", HTTP_ACCEPT_LANGUAGE="fr")
    assert "Bonjour" in french.content.decode()


def test_a_move_a_variant_cannot_follow_is_refused_before_anything_moves(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    destination = section("Learn")
    taken = ContentPage(title="Taken", slug="guides-fr", body=[])
    destination.add_child(instance=taken)
    with pytest.raises(VariantMoveError, match="guides-fr"):
        guides.move(destination, pos="last-child")
    guides.refresh_from_db()
    variant.refresh_from_db()
    assert guides.get_parent().slug == "welcome" and variant.get_parent().slug == "welcome"
    assert tree_is_sound()


def test_moving_a_page_and_its_variant_from_one_stale_list(guides):
    """Code that loads both and moves each in turn: the variant has already followed its page
    when its own move comes; it must not be moved from where it no longer is."""
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    destination = section("Learn")
    pages = list(Page.objects.filter(pk__in=[guides.pk, variant.pk]).order_by("path"))
    for page in pages:
        page.move(destination, pos="last-child")
    assert tree_is_sound()
    assert {p.slug for p in destination.get_children()} == {"guides", "guides-fr"}


def test_reordering_among_siblings_leaves_the_variants_alone(guides):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    guides.move(guides.get_parent(), pos="first-child")
    variant.refresh_from_db()
    assert variant.get_parent().slug == "welcome"
    assert guides.get_parent().get_first_child().pk == guides.pk
