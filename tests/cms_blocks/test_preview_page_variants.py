"""Previews show what visitors get, whole-page variants included: for every combination of
segments an editor picks (with and without consent), the preview screen, Wagtail's own preview
modes and share links render the variant such a visitor is served at the page's URL, with its
personalised blocks decided for the same segments; real visitors get the same."""

import itertools

import pytest
from django.test import Client
from django.urls import reverse
from wagtail.models import GroupPagePermission

import segments.definitions
from cms_blocks.preview import VARIANT_HEADER
from demo.home.models import ContentPage, HomePage
from tests.builders import (
    browser,
    consenting_browser,
    demo_site,
    page_variant,
    personalised_block,
    segment,
)
from tests.cms_blocks.helpers import user

pytestmark = [pytest.mark.services, pytest.mark.django_db]

FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}
MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
CONTEXT_ONLY = ("french", "mobile")
ALL_SEGMENTS = ("engaged", "french", "mobile", "vip")  # vip: no variant is for it
TEXTS = ("ORIGINAL-PAGE", "BOTH-PAGE", "MOBILE-PAGE", "FRENCH-PAGE", "ENGAGED-PAGE")


@pytest.fixture
def guides():
    """The demo's Guides page with four whole-page variants. Segment priorities: engaged 10
    (the demo's), mobile 5, french 1; "both" (french AND mobile) comes before "mobile" in the
    page tree, so it wins their tie."""
    demo_site()
    segment("french", FRENCH, priority=1)
    segment("mobile", MOBILE, priority=5)
    segment("vip", {"type": "event_count", "event": "purchase", "min": 2, "window": "30d"})
    segments.definitions.forget_definitions()
    original = ContentPage.objects.get(slug="guides")
    original.body = [("paragraph", "<p>ORIGINAL-PAGE</p>")]
    original.save_revision().publish()
    page_variant(original, ["french", "mobile"], "BOTH-PAGE", match="all", slug="guides-both")
    page_variant(original, "mobile", "MOBILE-PAGE")
    french = page_variant(original, "french", "FRENCH-PAGE")
    # The French variant has a personalised block of its own, decided for the same visitor.
    french.body = [
        ("paragraph", "<p>FRENCH-PAGE</p>"),
        personalised_block("FR-BLOCK-DEFAULT", [("engaged", "FR-BLOCK-ENGAGED")]),
    ]
    french.save_revision().publish()
    page_variant(original, "engaged", "ENGAGED-PAGE")
    return ContentPage.objects.get(pk=original.pk)


def expected(chosen: frozenset[str], consented: bool = True) -> str:
    """The page a visitor in ``chosen`` is served (docs/delivery.md): variants tried by the
    highest priority among their segments, then in page-tree order; without consent only the
    context-only segments count."""
    if not consented:
        chosen = chosen & frozenset(CONTEXT_ONLY)
    if "engaged" in chosen:
        return "ENGAGED-PAGE"
    if {"french", "mobile"} <= chosen:
        return "BOTH-PAGE"
    if "mobile" in chosen:
        return "MOBILE-PAGE"
    if "french" in chosen:
        return "FRENCH-PAGE"
    return "ORIGINAL-PAGE"


def shown(html: str) -> list[str]:
    return [t for t in TEXTS if t in html]


@pytest.fixture
def editor(guides):
    """May edit the pages under the home page; not a superuser."""
    account = user("editor")
    GroupPagePermission.objects.create(
        group=account.groups.get(), page=HomePage.objects.get(), permission_type="change"
    )
    client = Client()
    client.force_login(account)
    return client


def combinations():
    for n in range(len(ALL_SEGMENTS) + 1):
        yield from itertools.combinations(ALL_SEGMENTS, n)


def render(client, page, chosen, consent="1", version="draft"):
    url = reverse("cms_blocks_admin:preview_render", args=[page.pk])
    response = client.get(url, {"segments": list(chosen), "consent": consent, "version": version})
    assert response.status_code == 200, response.content
    return response


@pytest.mark.parametrize("consent", ["1", "0"])
def test_every_combination_of_segments_previews_the_page_its_visitors_get(editor, guides, consent):
    variant_ids = {
        f"{slug.upper()}-PAGE": ContentPage.objects.get(slug=f"guides-{slug}").pk
        for slug in ("both", "mobile", "french", "engaged")
    }
    for chosen in combinations():
        for version in ("draft", "live"):
            response = render(editor, guides, chosen, consent, version)
            want = expected(frozenset(chosen), consent == "1")
            assert shown(response.content.decode()) == [want], (chosen, consent, version)
            if want == "ORIGINAL-PAGE":
                assert VARIANT_HEADER not in response
            else:
                assert response[VARIANT_HEADER] == str(variant_ids[want]), (chosen, version)
            # Still a preview: not cached, nothing sent from the page.
            assert response["Content-Security-Policy"] == "connect-src 'none'"
            assert "no-store" in response["Cache-Control"]


def test_previews_match_what_real_visitors_get(editor, guides):
    """For the segments a request carries itself (language, device), the preview of each
    combination and a real visit of the page's URL show the same page."""
    for chosen in itertools.chain.from_iterable(
        itertools.combinations(CONTEXT_ONLY, n) for n in range(3)
    ):
        headers = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr" if "french" in chosen else "en-GB"}
        if "mobile" in chosen:
            headers["HTTP_USER_AGENT"] = PHONE_UA
        visit = browser().get("/guides/", **headers).content.decode()
        preview = render(editor, guides, chosen).content.decode()
        assert shown(visit) == shown(preview) == [expected(frozenset(chosen))], chosen


def test_blocks_inside_the_variant_are_decided_for_the_same_segments(editor, guides):
    french = render(editor, guides, ["french"]).content.decode()
    assert "FR-BLOCK-DEFAULT" in french and "FR-BLOCK-ENGAGED" not in french
    # engaged AND french: the engaged variant outranks the French one...
    assert shown(render(editor, guides, ["french", "engaged"]).content.decode()) == ["ENGAGED-PAGE"]
    # ...so the French variant's engaged block shows once the engaged variant is unpublished.
    ContentPage.objects.get(slug="guides-engaged").unpublish()
    html = render(editor, guides, ["french", "engaged"]).content.decode()
    assert "FRENCH-PAGE" in html and "FR-BLOCK-ENGAGED" in html


def test_wagtail_preview_modes_and_share_links_show_the_variant(editor, guides):
    revision = guides.latest_revision
    url = reverse("wagtailadmin_pages:revisions_view", args=[guides.pk, revision.pk])
    assert shown(editor.get(url, {"mode": "segments:mobile"}).content.decode()) == ["MOBILE-PAGE"]
    both = editor.get(url, {"mode": "segments:french,mobile"}).content.decode()
    assert shown(both) == ["BOTH-PAGE"]
    assert shown(editor.get(url, {"mode": "no-consent:engaged"}).content.decode()) == [
        "ORIGINAL-PAGE"
    ]

    share = editor.post(
        reverse("cms_blocks_admin:preview_as", args=[guides.pk]),
        {"segments": ["french"], "consent": "1", "version": "draft", "days": "1"},
    ).context["share_url"]
    reviewer = consenting_browser()
    assert shown(reviewer.get(share).content.decode()) == ["FRENCH-PAGE"]


def test_only_live_variants_are_previewed_as_visitors_get_them(editor, guides):
    french = ContentPage.objects.get(slug="guides-french")
    draft = ContentPage.objects.get(pk=french.pk)
    draft.body = [("paragraph", "<p>FRENCH-DRAFT</p>")]
    draft.save_revision()  # not published: visitors still get the published French page
    html = render(editor, guides, ["french"]).content.decode()
    assert "FRENCH-PAGE" in html and "FRENCH-DRAFT" not in html
    french.unpublish()
    assert shown(render(editor, guides, ["french"]).content.decode()) == ["ORIGINAL-PAGE"]


def test_a_variant_previewed_itself_shows_itself(editor, guides):
    mobile = ContentPage.objects.get(slug="guides-mobile")
    for chosen in ([], ["french"], ["engaged"]):
        assert shown(render(editor, mobile, chosen).content.decode()) == ["MOBILE-PAGE"]


def test_the_preview_screen_names_the_variant_shown_and_lists_the_variants(editor, guides):
    url = reverse("cms_blocks_admin:preview_as", args=[guides.pk])
    html = editor.get(url, {"segments": ["mobile"], "consent": "1", "version": "draft"})
    html = html.content.decode()
    assert 'data-testid="preview-variant"' in html
    assert "served the page variant “Guides (guides-mobile)”" in html
    listed = html[html.index('data-testid="page-variants"') :]
    order = [listed.index(f"(guides-{s})") for s in ("engaged", "both", "mobile", "french")]
    assert order == sorted(order)  # in the order they are tried
    nobody = editor.get(url, {"consent": "1", "version": "draft"}).content.decode()
    assert 'data-testid="preview-variant"' not in nobody
