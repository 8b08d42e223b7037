"""Every editor listing and report runs a fixed number of queries, however many segments,
days, variants or pages it shows."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from wagtail.models import Page

from segments.models import LoggedEvent, MembershipChange, Segment
from tests.builders import segment
from tests.cms_blocks.helpers import login
from tests.support.query_counts import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

PERIOD = {"period_from": "2026-01-01", "period_to": "2026-01-20", "conversions": "purchase"}


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=hour)


def event(key: str, name: str, when: datetime, **props) -> None:
    LoggedEvent.objects.create(
        event_id=uuid.uuid4(), visitor_key=key, name=name, occurred_at=when, properties=props
    )


@pytest.fixture
def analyst():
    return login("analyst", "cms_blocks.view_results")


def test_the_segment_dashboard(analyst):
    def build(n):
        for _ in range(n):
            i = Segment.objects.count()
            slug, key = f"seg-{i}", f"{i:032x}"
            segment(slug)
            MembershipChange.objects.create(visitor_key=key, segment=slug, entered=True, at=at(1))
            event(key, "purchase", at(2))

    assert_queries_do_not_grow(analyst, reverse("cms_blocks_results:index"), build, params=PERIOD)
    rows = analyst.get(reverse("cms_blocks_results:index"), PERIOD).context["rows"]
    assert len(rows) == 12 and {r["converted"] for r in rows} == {1}


def test_one_segments_results(analyst):
    segment("engaged")
    made = []

    def build(n):
        for _ in range(n):
            key = f"{len(made):032x}"
            made.append(key)
            day = len(made) % 19
            MembershipChange.objects.create(
                visitor_key=key, segment="engaged", entered=True, at=at(day)
            )
            event(key, "page_view", at(day, 11), path=f"/p{len(made)}/")
            event(key, "purchase", at(day, 12))

    url = reverse("cms_blocks_results:segment", args=["engaged"])
    assert_queries_do_not_grow(analyst, url, build, params=PERIOD)
    response = analyst.get(url, PERIOD)
    assert response.context["conversion"]["members"] == 12


def test_the_block_report(analyst):
    root = Page.get_first_root_node()
    pages = []

    def build(n):
        for _ in range(n):
            i = len(pages)
            page = root.add_child(instance=Page(title=f"Page {i}", slug=f"page-{i}"))
            pages.append(page)
            for variant in ("default", "v1"):
                props = {"page": page.pk, "block": f"b{i}", "variant": variant}
                event(f"{i:032x}", "impression", at(1), **props)
                event(f"{i:032x}", "click", at(1, 11), **props)

    url = reverse("cms_blocks_block_results:index")
    assert_queries_do_not_grow(analyst, url, build, params=PERIOD)
    rows = analyst.get(url, PERIOD).context["rows"]
    assert {r["page"] for r in rows} == {p.title for p in pages}  # titles, not ids


def test_the_segment_snippet_listing():
    manager = login("manager", "segments.add_segment", "segments.change_segment")

    def build(n):
        for _ in range(n):
            segment(f"seg-{Segment.objects.count()}")

    assert_queries_do_not_grow(manager, "/admin/snippets/segments/segment/", build)
