"""Preview as segments (any combination, or without consent) for editors with page permission,
and share links for reviewers: the right variant, nothing recorded, nobody's memberships
touched."""

import time

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from wagtail.models import GroupPagePermission, PageLogEntry

from cms_blocks.preview import SHARE_SALT, PreviewAs, ShareLink, make_token, read_token
from demo.home.models import HomePage
from segments.models import LoggedEvent
from tests.builders import consenting_browser, demo_site, personalised_page, segment
from tests.cms_blocks.helpers import login, user

pytestmark = [pytest.mark.services, pytest.mark.django_db]

MOBILE = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}


@pytest.fixture
def page():
    demo_site()
    segment("vip", {"type": "event_count", "event": "purchase", "min": 2, "window": "30d"})
    segment("mobile", MOBILE, name="Mobile visitors")
    return personalised_page(
        default="DEFAULT-OFFER",
        variants=[
            (["engaged", "vip"], "BOTH-OFFER", "all"),
            ("engaged", "ENGAGED-OFFER"),
            ("mobile", "MOBILE-OFFER"),
        ],
    )


@pytest.fixture
def editor(page):
    """Not a superuser: may edit pages under the home page, nothing else."""
    account = user("editor", "wagtailadmin.access_admin")
    group = account.groups.get()
    GroupPagePermission.objects.create(
        group=group, page=HomePage.objects.get(), permission_type="change"
    )
    client = consenting_browser()  # the editor consented on the site: still nothing recorded
    client.force_login(account)
    return client


def _render(client, page, **params):
    url = reverse("cms_blocks_admin:preview_render", args=[page.pk])
    return client.get(url, params)


def _stored(backend):
    return LoggedEvent.objects.count(), sorted(backend.client.keys(f"{backend.prefix}:*"))


@pytest.mark.parametrize(
    "segments, expected",
    [
        ([], "DEFAULT-OFFER"),
        (["engaged"], "ENGAGED-OFFER"),
        (["vip"], "DEFAULT-OFFER"),
        (["engaged", "vip"], "BOTH-OFFER"),  # a combination
        (["mobile"], "MOBILE-OFFER"),
    ],
)
def test_preview_as_segments_shows_their_variant(editor, page, backend, segments, expected):
    before = _stored(backend)
    response = _render(editor, page, segments=segments, consent="1", version="draft")
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html
    assert sum(t in html for t in ("DEFAULT-", "BOTH-", "ENGAGED-", "MOBILE-")) == 1
    assert response["Content-Security-Policy"] == "connect-src 'none'"
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # shown in the admin's frame
    assert _stored(backend) == before  # no event, no key touched


def test_preview_without_consent_keeps_only_context_segments_and_shows_the_banner(
    editor, page, backend
):
    before = _stored(backend)
    html = _render(editor, page, segments=["engaged"], consent="0", version="draft")
    html = html.content.decode()
    assert "DEFAULT-OFFER" in html and "ENGAGED-OFFER" not in html
    assert "consent-banner" in html
    html = _render(editor, page, segments=["engaged", "mobile"], consent="0", version="live")
    assert "MOBILE-OFFER" in html.content.decode()
    assert _stored(backend) == before


def test_draft_and_live_versions(editor, page):
    draft = page.specific
    draft.title = "Offers (draft)"
    draft.save_revision()
    assert "Offers (draft)" in _render(editor, page, consent="1", version="draft").content.decode()
    live = _render(editor, page, consent="1", version="live").content.decode()
    assert "Offers (draft)" not in live and "DEFAULT-OFFER" in live


def test_the_preview_screen(editor, page):
    url = reverse("cms_blocks_admin:preview_as", args=[page.pk])
    response = editor.get(url, {"segments": ["engaged", "vip"], "consent": "1", "version": "draft"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "A visitor in: Engaged, Vip" in html
    assert "segments=engaged&amp;segments=vip&amp;consent=1&amp;version=draft" in html
    assert "Mobile visitors" in html  # every segment is offered
    # The page's header offers the screen.
    edit = editor.get(reverse("wagtailadmin_pages:edit", args=[page.pk])).content.decode()
    assert url in edit


def test_wagtail_preview_modes_and_revision_preview(editor, page, backend):
    modes = dict(page.specific.preview_modes)
    assert set(modes) == {
        "",
        "segments:engaged",
        "segments:regular",
        "segments:vip",
        "segments:mobile",
        "no-consent",
    }
    assert PreviewAs.from_mode("segments:vip,engaged") == PreviewAs(frozenset({"engaged", "vip"}))
    assert PreviewAs.from_mode("no-consent:mobile").consented is False
    assert PreviewAs(frozenset({"vip", "engaged"})).mode == "segments:engaged,vip"
    revision = page.latest_revision
    url = reverse("wagtailadmin_pages:revisions_view", args=[page.pk, revision.pk])
    before = _stored(backend)
    html = editor.get(url, {"mode": "segments:engaged,vip"}).content.decode()
    assert "BOTH-OFFER" in html
    assert "ENGAGED-OFFER" in editor.get(url, {"mode": "segments:engaged"}).content.decode()
    assert "DEFAULT-OFFER" in editor.get(url, {"mode": "no-consent"}).content.decode()
    assert _stored(backend) == before


def test_people_who_may_not_edit_the_page_cannot_preview(page):
    outsider = login("outsider", "cms_blocks.view_results", "segments.change_segment")
    assert outsider.get(reverse("cms_blocks_admin:preview_as", args=[page.pk])).status_code == 403
    assert _render(outsider, page, consent="1", version="draft").status_code == 403
    post = outsider.post(reverse("cms_blocks_admin:preview_as", args=[page.pk]), {"consent": "1"})
    assert post.status_code == 403
    assert Client().get(reverse("cms_blocks_admin:preview_as", args=[page.pk])).status_code == 302


def test_bad_choices_are_refused(editor, page):
    assert _render(editor, page, segments=["nope"], consent="1", version="draft").status_code == 400
    assert _render(editor, page, consent="maybe", version="draft").status_code == 400


# -- share links -------------------------------------------------------------------------------
def _share(editor, page, **data):
    url = reverse("cms_blocks_admin:preview_as", args=[page.pk])
    response = editor.post(url, {"version": "draft", "days": "3", **data})
    assert response.status_code == 200, response.content
    return response.context["share_url"]


def test_a_share_link_shows_the_latest_draft_to_anyone_and_records_nothing(editor, page, backend):
    link = _share(editor, page, segments=["engaged", "vip"], consent="1")
    assert "/tailored/share/" in link
    entry = PageLogEntry.objects.get(action="cms_blocks.preview.share")
    assert entry.user.username == "editor" and entry.data["segments"] == ["engaged", "vip"]

    draft = page.specific
    draft.title = "Offers, reworded"
    draft.save_revision()

    before = _stored(backend)
    reviewer = consenting_browser()  # a consenting visitor of the site, not an admin user
    response = reviewer.get(link)
    assert response.status_code == 200
    html = response.content.decode()
    assert "BOTH-OFFER" in html and "Offers, reworded" in html
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Content-Security-Policy"] == "connect-src 'none'"
    assert "no-store" in response["Cache-Control"]
    assert _stored(backend) == before
    assert reviewer.post(link).status_code == 405  # read-only


def test_a_share_link_without_consent(editor, page):
    link = _share(editor, page, segments=["engaged"], consent="0")
    html = Client().get(link).content.decode()
    assert "DEFAULT-OFFER" in html and "consent-banner" in html


def test_expired_and_tampered_links_are_refused(editor, page):
    past = ShareLink(page.pk, PreviewAs(frozenset({"engaged"})), time.time() - 1)
    response = Client().get(reverse("cms_blocks:share", args=[make_token(past)]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()

    link = _share(editor, page, segments=["engaged"], consent="1")
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert read_token(token).who.segments == {"engaged"}
    tampered = token[:-3] + ("aaa" if token[-3:] != "aaa" else "bbb")
    assert Client().get(reverse("cms_blocks:share", args=[tampered])).status_code == 404
    # A payload re-signed with another key is no better.
    forged = signing.dumps(
        {"p": page.pk, "s": ["vip"], "c": 1, "e": int(time.time()) + 99, "u": None},
        salt=SHARE_SALT,
        key="not-the-secret-key",
        compress=True,
    )
    assert Client().get(reverse("cms_blocks:share", args=[forged])).status_code == 404
    assert Client().get("/tailored/share/garbage/").status_code == 404
    with pytest.raises(signing.BadSignature):
        read_token(tampered)


def test_a_share_link_to_a_deleted_page_is_gone(editor, page):
    link = _share(editor, page, segments=[], consent="1")
    page.delete()
    assert Client().get(link).status_code == 404
