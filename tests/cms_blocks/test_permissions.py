"""Separate permissions for managing segments, viewing results and the privacy screens, checked
on every editor view; user-provided text escaped everywhere it is shown."""

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from wagtail.models import GroupPagePermission

from demo.home.models import ContentPage, HomePage
from segments.models import LoggedEvent, Segment
from tests.builders import demo_site, segment
from tests.cms_blocks.helpers import XSS, login, user

pytestmark = pytest.mark.django_db

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
RESULTS = ["cms_blocks_results:index", "cms_blocks_block_results:index"]
SEGMENT_PERMS = ["segments.add_segment", "segments.change_segment", "segments.view_segment"]


@pytest.fixture
def people():
    return {
        "manager": login("manager", *SEGMENT_PERMS),
        "analyst": login("analyst", "cms_blocks.view_results"),
        "officer": login("officer", "consent.view_consent_log"),
        "nobody": login("nobody"),
    }


def _results_urls():
    segment("engaged")
    urls = [reverse(name) for name in RESULTS]
    urls.append(reverse("cms_blocks_results:segment", args=["engaged"]))
    return urls + [f"{u}?export=csv" for u in urls]


def test_results_need_the_view_results_permission(people):
    for url in _results_urls():
        assert people["analyst"].get(url).status_code == 200, url
        for who in ("manager", "officer", "nobody"):
            assert people[who].get(url).status_code == 403, (who, url)
        assert Client().get(url).status_code == 302  # to the login page


def test_superusers_have_every_permission():
    admin = login("admin", superuser=True)
    for url in _results_urls():
        assert admin.get(url).status_code == 200, url


def test_rule_checks_need_segment_permissions(people):
    url = reverse("cms_blocks_admin:rule_check")
    body = json.dumps({"rule": {"type": "visited", "path": "/"}})
    assert people["manager"].post(url, body, content_type="application/json").status_code == 200
    for who in ("analyst", "officer", "nobody"):
        assert people[who].post(url, body, content_type="application/json").status_code == 403
    assert Client().post(url, body, content_type="application/json").status_code in (302, 403)


def test_segment_snippets_need_segment_permissions(people):
    seg = segment("engaged")
    edit = f"/admin/snippets/segments/segment/edit/{seg.pk}/"
    assert people["manager"].get(edit).status_code == 200
    for who in ("analyst", "officer", "nobody"):
        assert people[who].get(edit).status_code in (302, 403), who


def test_privacy_screens_stay_with_the_privacy_permission(people):
    url = reverse("consent_privacy:log")
    assert people["officer"].get(url).status_code == 200
    for who in ("manager", "analyst"):
        assert people[who].get(url).status_code == 403


def test_menus_follow_the_permissions(people):
    analyst = people["analyst"].get("/admin/").content.decode()
    manager = people["manager"].get("/admin/").content.decode()
    assert reverse("cms_blocks_results:index") in analyst
    assert reverse("cms_blocks_results:index") not in manager
    assert "/admin/snippets/segments/segment/" in manager


@pytest.mark.services
def test_user_text_is_escaped_in_every_editor_view(backend):
    demo_site()
    segment("xss", {"type": "visited", "path": "/<script>alert(1)</script>"}, name=XSS)
    home = HomePage.objects.get()
    page = home.add_child(instance=ContentPage(title=XSS, slug="xss-page"))
    page.save_revision().publish()
    LoggedEvent.objects.create(
        event_id=uuid.uuid4(),
        visitor_key="a" * 32,
        name="impression",
        occurred_at=timezone.now(),
        properties={"block": XSS, "variant": XSS, "page": page.pk},
    )
    admin = user("root", superuser=True)
    client = Client()
    client.force_login(admin)
    seg_pk = Segment.objects.get(slug="xss").pk
    views = [
        reverse("cms_blocks_results:index"),
        reverse("cms_blocks_results:segment", args=["xss"]),
        reverse("cms_blocks_block_results:index"),
        reverse("cms_blocks_admin:preview_as", args=[page.pk])
        + "?segments=xss&consent=1&version=draft",
        f"/admin/snippets/segments/segment/edit/{seg_pk}/",
        "/admin/snippets/segments/segment/",
    ]
    for url in views:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert XSS not in html, url
        assert ESCAPED in html or "&lt;script&gt;" in html, url
    check = client.post(
        reverse("cms_blocks_admin:rule_check"),
        json.dumps({"rule": {"type": "visited", "path": XSS}}),
        content_type="application/json",
    )
    assert check["Content-Type"] == "application/json"  # the builder sets it as text, never HTML


def test_editors_with_page_permission_preview_without_being_superusers():
    demo_site()
    home = HomePage.objects.get()
    editor = user("pageeditor")
    GroupPagePermission.objects.create(
        group=editor.groups.get(), page=home, permission_type="change"
    )
    client = Client()
    client.force_login(editor)
    assert client.get(reverse("cms_blocks_admin:preview_as", args=[home.pk])).status_code == 200
    other = login("nopages")
    assert other.get(reverse("cms_blocks_admin:preview_as", args=[home.pk])).status_code == 403
