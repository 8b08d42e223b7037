"""Results: segment sizes over time, entries and exits, top pages, conversion rates, the
per-block/per-variant report with its attribution, the admin screens and their CSV exports."""

import csv
import io
import itertools
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from segments.models import LoggedEvent, MembershipChange
from segments.reporting import results as reports
from tests.builders import segment
from tests.cms_blocks.helpers import XSS, consent, login, visit

pytestmark = pytest.mark.django_db

A, B, C = "a1" * 16, "b2" * 16, "c3" * 16
CONVERSIONS = ["purchase", "signup"]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=hour, minutes=minute)


def change(key, entered, when, slug="engaged"):
    MembershipChange.objects.create(visitor_key=key, segment=slug, entered=entered, at=when)


def event(key, name, when, **props):
    LoggedEvent.objects.create(
        event_id=uuid.uuid4(), visitor_key=key, name=name, occurred_at=when, properties=props
    )


@pytest.fixture
def history():
    """A member on days 1-3, B from day 2 on, C until early on day 1."""
    segment("engaged")
    change(C, True, at(-5, 9))
    change(A, True, at(1, 10))
    change(C, False, at(1, 8))
    change(B, True, at(2, 12))
    change(A, False, at(3, 10))
    event(A, "page_view", at(1, 11), path="/guides/")
    event(A, "page_view", at(4, 11), path="/about/")  # no longer a member
    event(B, "page_view", at(2, 11), path="/shop/")  # not yet a member
    event(B, "page_view", at(2, 13), path="/guides/")
    event(A, "purchase", at(2, 9), value=20.0)
    event(B, "signup", at(1, 9))  # before B entered
    event(C, "purchase", at(1, 7), value=5.0)
    # Blocks: B sees the default before entering, then the engaged variant.
    page = {"page": 42, "block": "b1"}
    event(A, "impression", at(1, 11), variant="v-eng", **page)
    event(A, "click", at(1, 11, 1), variant="v-eng", **page)
    event(B, "impression", at(2, 11), variant="default", **page)
    event(B, "impression", at(2, 13), variant="v-eng", **page)
    event(B, "purchase", at(2, 14), value=9.0)
    event(C, "impression", at(4, 9), variant="default", block="b2", page=42)


def test_sizes_entries_and_exits(history):
    assert reports.size_over_time("engaged", date(2026, 1, 2), date(2026, 1, 5)) == [
        (date(2026, 1, 2), 1),
        (date(2026, 1, 3), 2),
        (date(2026, 1, 4), 1),
        (date(2026, 1, 5), 1),
    ]
    assert reports.entries_and_exits("engaged", date(2026, 1, 2), date(2026, 1, 5)) == [
        (date(2026, 1, 2), 1, 1),
        (date(2026, 1, 3), 1, 0),
        (date(2026, 1, 4), 0, 1),
        (date(2026, 1, 5), 0, 0),
    ]


def test_top_pages_count_views_while_members(history):
    assert reports.top_pages("engaged", date(2026, 1, 2), date(2026, 1, 5)) == [("/guides/", 2)]


def test_conversion_rate_counts_conversions_while_members(history):
    rate = reports.conversion_rate("engaged", date(2026, 1, 2), date(2026, 1, 5), CONVERSIONS)
    assert rate == {"members": 3, "converted": 3, "rate": 1.0}
    only_signups = reports.conversion_rate(
        "engaged", date(2026, 1, 2), date(2026, 1, 5), ["signup"]
    )
    assert only_signups == {"members": 3, "converted": 0, "rate": 0.0}
    assert reports.conversion_rate("engaged", date(2025, 1, 1), date(2025, 1, 2), CONVERSIONS) == {
        "members": 0,
        "converted": 0,
        "rate": None,
    }


def _rows(result):
    return {
        (r.page, r.block, r.variant, r.segment): (
            r.impressions,
            r.clicks,
            len(r.visitors),
            r.conversions,
        )
        for r in result
    }


def test_block_report_attributes_to_segments_at_impression_time(history):
    result = reports.block_report(date(2026, 1, 2), date(2026, 1, 5), CONVERSIONS)
    assert _rows(result) == {
        ("42", "b1", "default", ""): (1, 0, 1, 0),
        ("42", "b1", "v-eng", ""): (2, 1, 2, 2),
        ("42", "b1", "v-eng", "engaged"): (2, 1, 2, 2),
        ("42", "b2", "default", ""): (1, 0, 1, 0),
    }
    eng = next(r for r in result if r.segment == "engaged")
    assert eng.click_rate == 0.5 and eng.conversion_rate == 1.0
    # A conversion more than the attribution window after the impression does not count.
    narrow = reports.block_report(date(2026, 1, 2), date(2026, 1, 5), CONVERSIONS, window=3600)
    assert _rows(narrow)[("42", "b1", "v-eng", "")] == (2, 1, 2, 1)  # only B's, an hour later
    assert (
        _rows(reports.block_report(date(2026, 1, 2), date(2026, 1, 5), CONVERSIONS, page="7")) == {}
    )


@pytest.mark.services
def test_block_report_from_events_recorded_through_the_pipeline(backend):
    """Impressions recorded with segments.api.record_events, drained by the real pipeline."""
    segment("engaged")
    consent(A, B)
    visit(A, *[("page_view", {"path": "/"})] * 3)  # A enters engaged
    visit(B, ("page_view", {"path": "/"}))
    block = {"block": "hero", "page": 3}
    visit(A, ("impression", {**block, "variant": "v1"}), ("click", {**block, "variant": "v1"}))
    visit(B, ("impression", {**block, "variant": "default"}))
    visit(A, ("purchase", {"value": 30.0}))
    today = datetime.now(UTC).date()
    assert MembershipChange.objects.filter(visitor_key=A, segment="engaged").exists()
    rows = _rows(reports.block_report(today, today, CONVERSIONS))
    assert rows == {
        ("3", "hero", "default", ""): (1, 0, 1, 0),
        ("3", "hero", "v1", ""): (1, 1, 1, 1),
        ("3", "hero", "v1", "engaged"): (1, 1, 1, 1),
    }


# -- the screens ---------------------------------------------------------------------------------
PERIOD = {
    "period_from": "2026-01-02",
    "period_to": "2026-01-05",
    "conversions": "purchase, signup",
}


@pytest.fixture
def analyst():
    return login("analyst", "cms_blocks.view_results")


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_dashboard_lists_segments_with_their_figures(analyst, history):
    response = analyst.get(reverse("cms_blocks_results:index"), PERIOD)
    assert response.status_code == 200
    (row,) = [r for r in response.context["rows"] if r["slug"] == "engaged"]
    assert (row["members"], row["entries"], row["exits"], row["converted"]) == (3, 2, 2, 3)
    assert row["rate_shown"] == "100.0%"
    html = response.content.decode()
    assert "<svg" in html and "Conversion rate by segment" in html
    rows = _csv(analyst.get(reverse("cms_blocks_results:index"), {**PERIOD, "export": "csv"}))
    assert rows[0][:4] == ["segment", "name", "size_now", "members"]
    assert rows[1][0] == "engaged" and rows[1][3:8] == ["3", "2", "2", "3", "1.0000"]


def test_segment_detail_has_charts_top_pages_and_csv(analyst, history):
    url = reverse("cms_blocks_results:segment", args=["engaged"])
    response = analyst.get(url, PERIOD)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<polyline") == 3  # members; entries and exits
    assert "/guides/" in html and "3 of 3 members converted (100.0%)" in html
    rows = _csv(analyst.get(url, {**PERIOD, "export": "csv"}))
    assert rows == [
        ["day", "members", "entries", "exits"],
        ["2026-01-02", "1", "1", "1"],
        ["2026-01-03", "2", "1", "0"],
        ["2026-01-04", "1", "0", "1"],
        ["2026-01-05", "1", "0", "0"],
    ]
    assert analyst.get(reverse("cms_blocks_results:segment", args=["nope"])).status_code == 404


def test_block_report_screen_and_csv(analyst, history):
    url = reverse("cms_blocks_block_results:index")
    response = analyst.get(url, PERIOD)
    assert response.status_code == 200
    table = response.context["rows"]
    assert [
        (r["variant"], r["segment"], r["impressions"]) for r in table if r["block"] == "b1"
    ] == [
        ("Default", "All visitors", 1),
        ("removed variant v-eng", "All visitors", 2),  # (page 42 does not exist)
        ("removed variant v-eng", "Engaged", 2),
    ]
    assert "<rect" in response.content.decode()
    rows = _csv(analyst.get(url, {**PERIOD, "export": "csv"}))
    assert rows[0][:8] == [
        "page",
        "block",
        "variant",
        "variant_key",
        "segment",
        "impressions",
        "clicks",
        "click_rate",
    ]
    assert rows[3][:11] == [
        "42",
        "b1",
        "removed variant v-eng",
        "v-eng",
        "engaged",
        "2",
        "1",
        "0.5000",
        "2",
        "2",
        "1.0000",
    ]


def test_bad_periods_are_refused_with_a_message(analyst):
    url = reverse("cms_blocks_results:index")
    response = analyst.get(url, {"period_from": "2026-02-01", "period_to": "2026-01-01"})
    assert response.status_code == 400
    assert "The period must start before it ends." in response.content.decode()
    assert (
        analyst.get(url, {"period_from": "2020-01-01", "period_to": "2026-01-01"}).status_code
        == 400
    )
    assert analyst.get(url, {"conversions": "DROP TABLE"}).status_code == 400
    assert analyst.get(url, {"period_from": "yesterday"}).status_code == 400


def test_csv_export_neutralises_formulas_and_pages_escape_names(analyst):
    segment("evil", name='=HYPERLINK("http://x")')
    segment("xss", name=XSS)
    rows = _csv(analyst.get(reverse("cms_blocks_results:index"), {"export": "csv"}))
    names = {r[0]: r[1] for r in rows[1:]}
    assert names["evil"] == '\'=HYPERLINK("http://x")'
    html = analyst.get(reverse("cms_blocks_results:index")).content.decode()
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    detail = analyst.get(reverse("cms_blocks_results:segment", args=["xss"])).content.decode()
    assert XSS not in detail and "&lt;script&gt;" in detail


@pytest.mark.services
def test_the_block_report_names_variants_by_label_or_segments(analyst, backend):
    """Events key variants by stable ids; the report names them as editors know them."""
    from demo.home.models import ContentPage
    from tests.builders import personalised_page

    segment("engaged")
    segment(
        "french",
        {"type": "context", "attribute": "language", "op": "eq", "value": "fr"},
        name="French speakers",
    )
    page = personalised_page(
        variants=[("engaged", "Welcome back"), (["engaged", "french"], "Both", "all")]
    )
    block = page.body[0]
    engaged_key, both_key = (str(b.id) for b in block.value["variants"].bound_blocks)
    consent(A)
    at_page = {"page": page.pk, "block": str(block.id)}
    visit(
        A,
        ("impression", {**at_page, "variant": "default"}),
        ("impression", {**at_page, "variant": engaged_key}),
        ("impression", {**at_page, "variant": both_key}),
        ("impression", {**at_page, "variant": "gone-since"}),
    )
    response = analyst.get(reverse("cms_blocks_block_results:index"))
    names = {r["variant"] for r in response.context["rows"] if r["page_id"] == str(page.pk)}
    assert names == {
        "Default",
        "Engaged",
        "Engaged and French speakers",
        "removed variant gone-sin",
    }
    html = response.content.decode()
    assert f"Offers · {str(block.id)[:8]} · Engaged and French speakers" in html  # the chart
    assert engaged_key not in html.replace(f'"{engaged_key}"', "")  # no id shown as a name
    assert ContentPage.objects.filter(pk=page.pk).exists()


def test_a_labelled_variant_is_named_by_its_label():
    from cms_blocks.naming import variant_name

    value = {"variants": [{"label": "Spring promo", "segments": ["x"], "match": "any"}]}
    assert variant_name(value, 0, {"x": "X"}) == "Spring promo"
    value["variants"][0]["label"] = ""
    assert variant_name(value, 0, {"x": "X"}) == "X"
    assert variant_name(value, None, {}) == "Default"


def _steps(labels: list[str]) -> set[float]:
    values = [float(label.rstrip("%")) for label in labels]
    return {round(b - a, 9) for a, b in itertools.pairwise(values)}


def test_the_screens_axes_step_evenly(analyst, history):
    """The results screens as rendered (not only the chart module): every axis steps evenly
    from zero (the issue saw 0, 1, 2, 3, 5) and says each value once."""
    for n in range(5):  # five more members on day 2: the size axis goes past 5
        change(f"{n + 10:02d}" + "a" * 30, True, at(2, 15))
    detail = analyst.get(reverse("cms_blocks_results:segment", args=["engaged"]), PERIOD)
    html = detail.content.decode()
    charts = [svg for svg in html.split("<svg")[1:] if "<polyline" in svg]  # not the icons
    assert len(charts) == 2
    for chart in charts:
        labels = re.findall(r'<text x="[^"]+" y="[^"]+" dy="4">([^<]+)</text>', chart)
        assert labels and labels[0] == "0" and len(set(labels)) == len(labels), labels
        assert len(_steps(labels)) == 1, labels
    dashboard = analyst.get(reverse("cms_blocks_results:index"), PERIOD).content.decode()
    (bars,) = [svg for svg in dashboard.split("<svg")[1:] if "<rect" in svg and "%<" in svg]
    labels = re.findall(r'aria-hidden="true">([^<]+%)</text>', bars)
    assert labels[0] == "0%" and len(set(labels)) == len(labels), labels
    assert len(_steps(labels)) == 1, labels
