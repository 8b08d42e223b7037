"""The admin's side of variants following their page (cms_blocks.variant_hooks): the delete and
move screens list the variants that go with the page, the success message names them, and an
action an editor may not do to a variant is refused with a message naming it, nothing
changed. Bulk actions too. Real PostgreSQL and Redis."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from wagtail.models import GroupPagePermission, Page

import segments.definitions
from demo.home.models import ContentPage, HomePage
from tests.builders import home_page, page_variant, paragraph, segment
from tests.cms_blocks.helpers import login, user

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


@pytest.fixture
def guides():
    segment("french", FRENCH, name="French speakers")
    segments.definitions.forget_definitions()
    page = ContentPage(title="Guides", slug="guides", body=[paragraph("How to choose")])
    home_page().add_child(instance=page)
    page.save_revision().publish()
    return page


@pytest.fixture
def admin():
    return login("boss", superuser=True)


def section(title: str) -> HomePage:
    page = HomePage(title=title, slug=title.lower())
    home_page().add_child(instance=page)
    page.save_revision().publish()
    return page


def messages_of(response) -> str:
    """The text of the admin's messages on a rendered screen."""
    html = response.content.decode()
    found = re.search(r'<div class="messages".*?<ul[^>]*>(.*?)</ul>\s*<template', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""


def exists(page) -> bool:
    return Page.objects.filter(pk=page.pk).exists()


def limited_editor(page: Page, *kinds: str) -> Client:
    """An editor with page permissions ``kinds`` below ``page`` only."""
    account = user("limited")
    group = Group.objects.get(name="limited group")
    for kind in kinds:
        GroupPagePermission.objects.create(group=group, page=page, permission_type=kind)
    client = Client()
    client.force_login(account)
    return client


# -- delete ---------------------------------------------------------------------------------------
def test_the_delete_screen_lists_the_variants_it_will_remove(guides, admin):
    page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides en français")
    response = admin.get(reverse("wagtailadmin_pages:delete", args=[guides.pk]))
    assert response.status_code == 200
    said = messages_of(response)
    assert "Deleting this page also deletes its page variants:" in said
    assert "“Guides en français” for French speakers" in said


def test_a_page_without_variants_gets_no_such_warning(guides, admin):
    response = admin.get(reverse("wagtailadmin_pages:delete", args=[guides.pk]))
    assert "variants" not in messages_of(response)


def test_confirming_deletes_the_variants_and_says_so(guides, admin):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides FR")
    response = admin.post(reverse("wagtailadmin_pages:delete", args=[guides.pk]), follow=True)
    assert not exists(guides) and not exists(variant)
    said = messages_of(response)
    assert "Its page variants were deleted too:" in said and "“Guides FR”" in said


def test_an_editor_who_may_not_delete_a_variant_may_not_delete_its_page(guides):
    shop = section("Shop")
    deals = ContentPage(title="Deals", slug="deals", body=[paragraph("Deals")])
    shop.add_child(instance=deals)
    deals.save_revision().publish()
    variant = page_variant(deals, "french", "Affaires", slug="deals-fr", title="Deals FR")
    variant.move(home_page(), pos="last-child")  # outside what the editor may change
    client = limited_editor(shop, "add", "change", "publish")
    assert deals.permissions_for_user(user_model(client)).can_delete()
    response = client.post(reverse("wagtailadmin_pages:delete", args=[deals.pk]), follow=True)
    assert exists(deals) and exists(variant)
    said = messages_of(response)
    assert "was not deleted" in said and "“Deals FR” for French speakers" in said


def user_model(client: Client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def test_bulk_deleting_a_page_with_its_variant_selected(guides, admin):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr")
    other = page_variant(guides, "french", "Salut", slug="guides-fr-2")
    url = reverse("wagtail_bulk_action", args=["wagtailcore", "page", "delete"])
    response = admin.post(f"{url}?id={variant.pk}&id={guides.pk}&next=/admin/", follow=True)
    assert response.status_code == 200
    assert not exists(guides) and not exists(variant) and not exists(other)
    assert all(not problems for problems in Page.find_problems())


# -- move -----------------------------------------------------------------------------------------
def test_the_move_screen_lists_the_variants_that_follow_and_they_do(guides, admin):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides FR")
    learn = section("Learn")
    url = reverse("wagtailadmin_pages:move_confirm", args=[guides.pk, learn.pk])
    said = messages_of(admin.get(url))
    assert "Moving this page also moves its page variants:" in said and "“Guides FR”" in said
    response = admin.post(url, follow=True)
    variant.refresh_from_db()
    assert variant.get_parent().pk == learn.pk
    assert "Its page variants moved too:" in messages_of(response)


def test_a_move_a_variant_cannot_follow_is_refused_with_its_reason(guides, admin):
    page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides FR")
    learn = section("Learn")
    learn.add_child(instance=ContentPage(title="Taken", slug="guides-fr", body=[]))
    url = reverse("wagtailadmin_pages:move_confirm", args=[guides.pk, learn.pk])
    response = admin.post(url, follow=True)
    guides.refresh_from_db()
    assert guides.get_parent().pk == home_page().pk
    said = messages_of(response)
    assert "cannot move to “Learn”" in said and "“guides-fr” is already used there" in said


def test_a_bulk_move_a_variant_cannot_follow_is_refused(guides, admin):
    page_variant(guides, "french", "Bonjour", slug="guides-fr")
    learn = section("Learn")
    learn.add_child(instance=ContentPage(title="Taken", slug="guides-fr", body=[]))
    url = reverse("wagtail_bulk_action", args=["wagtailcore", "page", "move"])
    response = admin.post(f"{url}?id={guides.pk}&next=/admin/", {"chooser": learn.pk}, follow=True)
    assert response.status_code == 200
    guides.refresh_from_db()
    assert guides.get_parent().pk == home_page().pk
    assert "is already used there" in messages_of(response)


# -- unpublish ------------------------------------------------------------------------------------
def test_unpublishing_unpublishes_the_variants_and_says_so(guides, admin):
    variant = page_variant(guides, "french", "Bonjour", slug="guides-fr", title="Guides FR")
    url = reverse("wagtailadmin_pages:unpublish", args=[guides.pk])
    usage = admin.get(url).content.decode()
    assert "referenced 1 time" in usage  # the variant, as a reference to the page
    response = admin.post(url, follow=True)
    variant.refresh_from_db()
    assert not variant.live
    assert "Its page variants were unpublished too:" in messages_of(response)


def test_an_editor_who_may_not_unpublish_a_variant_may_not_unpublish_its_page(guides):
    shop = section("Shop")
    deals = ContentPage(title="Deals", slug="deals", body=[paragraph("Deals")])
    shop.add_child(instance=deals)
    deals.save_revision().publish()
    variant = page_variant(deals, "french", "Affaires", slug="deals-fr", title="Deals FR")
    variant.move(home_page(), pos="last-child")
    client = limited_editor(shop, "add", "change", "publish")
    response = client.post(reverse("wagtailadmin_pages:unpublish", args=[deals.pk]), follow=True)
    deals.refresh_from_db()
    variant.refresh_from_db()
    assert deals.live and variant.live
    assert "was not unpublished" in messages_of(response)
