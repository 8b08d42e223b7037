"""The recommendations block: rendering with the tracker's data attributes, the heading per
segment in a preview, the business rules, the headless representation, and a real page."""

import pytest
from django.test import RequestFactory

from cms_blocks.recommendation_blocks import RecommendationsBlock
from personalization.api import preview_as
from recommendations import api
from recommendations.models import Popularity
from tests.builders import consenting_browser, home_page, segment
from tests.recommendations.helpers import product

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    api.forget()
    yield
    api.forget()


@pytest.fixture
def shop():
    pages = [
        product("Mug", "A1", "kitchen"),
        product("Apron", "A2", "kitchen"),
        product("Bowl", "A3", "kitchen"),
        product("Trowel", "G1", "garden"),
    ]
    for n, page in enumerate(pages):  # most popular first: Mug, Apron, Bowl, Trowel
        Popularity.objects.create(segment="", item=page.pk, weight=10.0 - n)
    Popularity.objects.create(segment="gardeners", item=pages[3].pk, weight=50.0)
    api.forget()
    return pages


def _value(block, **overrides):
    raw = {
        "strategy": "popular",
        "count": 3,
        "template": "cards",
        "heading": "Popular now",
        "segment_headings": [{"segment": "gardeners", "heading": "For gardeners"}],
        "pinned": [],
        "excluded": [],
        "max_per_category": 0,
        "diversify": False,
        **overrides,
    }
    return block.to_python(raw)


def _request(segments=()):
    request = RequestFactory().get("/")
    preview_as(request, segments)
    return request


def test_renders_popular_with_the_strategy_as_the_variant_for_click_through(shop):
    block = RecommendationsBlock()
    html = block.render(_value(block), {"request": _request(), "id": "rec1"})
    assert 'data-tailored-block="rec1"' in html and 'data-tailored-variant="popular"' in html
    assert "Popular now" in html
    assert [t for t in ("Mug", "Apron", "Bowl", "Trowel") if f">{t}<" in html] == [
        "Mug",
        "Apron",
        "Bowl",
    ]


def test_preview_as_a_segment_gives_its_heading_and_its_popular_list(shop):
    segment("gardeners")
    block = RecommendationsBlock()
    html = block.render(_value(block), {"request": _request({"gardeners"}), "id": "rec1"})
    assert "For gardeners" in html and html.index(">Trowel<") < html.index(">Mug<")


def test_business_rules_and_the_current_page_is_never_recommended_on_itself(shop):
    mug, apron, bowl, trowel = shop
    block = RecommendationsBlock()
    value = _value(block, pinned=[trowel.pk], excluded=[apron.pk], max_per_category=1)
    rep = block.get_api_representation(value, {"request": _request(), "page": bowl})
    assert [i["id"] for i in rep["items"]] == [trowel.pk, mug.pk]
    assert rep["strategy"] == "popular" and rep["requested_strategy"] == "popular"
    assert rep["items"][1]["title"] == "Mug" and rep["items"][1]["url"]


def test_for_you_without_consent_falls_back_and_says_so(shop):
    block = RecommendationsBlock()
    rep = block.get_api_representation(
        _value(block, strategy="for_you"), {"request": _request(), "page": shop[0]}
    )
    assert rep["requested_strategy"] == "for_you" and rep["strategy"] == "popular"


def test_renders_nothing_without_a_request_or_items():
    block = RecommendationsBlock()
    assert block.render(_value(block), {}).strip() == ""
    assert block.render(_value(block), None).strip() == ""


def test_a_product_page_shows_its_recommendations(shop):
    mug = shop[0]
    mug.body = [("recommendations", {"strategy": "together", "count": 2, "heading": "Also"})]
    mug.save_revision().publish()
    home_page()
    response = consenting_browser().get(mug.url)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-tailored-variant="popular"' in html  # nothing bought together yet
    assert ">Apron<" in html and ">Mug<" not in html.split("recommendation-cards")[1]


def test_the_headless_api_returns_the_list_with_its_strategy(shop):
    mug, apron, bowl, _trowel = shop
    mug.body = [("recommendations", {"strategy": "similar", "count": 2, "heading": "Like it"})]
    mug.save_revision().publish()
    response = consenting_browser().get(f"/api/personalization/pages/{mug.pk}/")
    assert response.status_code == 200, response.content
    [block] = [b for b in response.json()["fields"]["body"] if b["type"] == "recommendations"]
    value = block["value"]
    assert value["requested_strategy"] == "similar" and value["strategy"] == "popular"
    assert [i["id"] for i in value["items"]] == [apron.pk, bowl.pk]
    assert value["heading"] == "Like it" and value["block"] == block["id"]


@pytest.mark.services
def test_click_through_per_strategy_and_segment_in_the_block_report(shop, backend):
    import re
    from datetime import UTC, datetime

    from segments.reporting import results as reports
    from tests.experiments.engine import consented, drain, send

    segment("engaged")
    block = RecommendationsBlock()
    html = block.render(_value(block), {"request": _request(), "id": "recs", "page": shop[2]})
    props = dict(
        zip(
            ("block", "variant", "page"),
            re.search(
                r'data-tailored-block="(\w+)" data-tailored-variant="(\w+)" '
                r'data-tailored-page="(\d+)"',
                html,
            ).groups(),
            strict=True,
        )
    )
    assert props["variant"] == "popular"
    engaged, other = consented("ctr-engaged"), consented("ctr-other")
    for _ in range(3):
        send(engaged, path="/")  # three page views: "engaged"
    drain(engaged)
    send(engaged, "impression", **props)
    send(engaged, "click", **props)
    send(other, "impression", **props)
    drain(engaged)
    drain(other)
    today = datetime.now(UTC).date()
    rows = {
        (r.variant, r.segment): (r.impressions, r.clicks)
        for r in reports.block_report(today, today, ["purchase"])
        if r.block == "recs"
    }
    assert rows == {("popular", ""): (2, 1), ("popular", "engaged"): (1, 1)}


def test_strategies_as_the_variants_of_a_personalised_block(shop):
    """How strategies are compared (per segment, or as a block experiment's arms): a
    personalised block whose default and variant are recommendations blocks."""
    from demo.home.models import BodyBlock

    segment("gardeners")
    personalised = BodyBlock().child_blocks["personalised"]

    def recs(strategy):
        return [{"type": "recommendations", "value": {"strategy": strategy, "count": 2}}]

    value = personalised.to_python(
        {
            "default": recs("popular"),
            "variants": [
                {
                    "type": "item",
                    "id": "g",
                    "value": {
                        "segments": ["gardeners"],
                        "match": "any",
                        "content": recs("similar"),
                    },
                }
            ],
        }
    )
    everyone = personalised.render(value, {"request": _request(), "page": shop[0]})
    gardener = personalised.render(value, {"request": _request({"gardeners"}), "page": shop[0]})
    assert 'data-tailored-variant="default"' in everyone
    assert 'data-recommendation-strategy="popular"' in everyone
    assert 'data-tailored-variant="g"' in gardener
    # "similar" has no lists yet: its fallback, popular in the gardeners' segment, fills in
    assert gardener.index(">Trowel<") < gardener.index(">Apron<")


def test_popular_asks_about_segments_and_never_lists_them(shop):
    """Cache-safe mode shares a page only if the render never lists the visitor's segments."""

    class AskOnly:
        asked = []

        def __contains__(self, slug):
            self.asked.append(slug)
            return slug == "gardeners"

        def __iter__(self):
            raise AssertionError("the visitor's segments were listed")

    got = api.recommend("popular", count=2, segments=AskOnly())
    assert got.items == [shop[3].pk, shop[0].pk] and AskOnly.asked == ["gardeners"]


def test_two_blocks_of_one_page_never_show_the_same_item_twice_unless_pinned(shop):
    """Blocks falling back on the same list: the later one shows the next items. A block
    resolved again (the API, a second render) keeps its own list; a pinned item stays."""
    block = RecommendationsBlock()
    request = RequestFactory().get("/")
    first = _value(block, count=2)
    second = _value(block, count=2, heading="Other")

    def ids(value, block_id, on=request):
        return [p.pk for p in block.resolve(value, {"request": on, "id": block_id})["pages"]]

    a = ids(first, "a")
    b = ids(second, "b")
    assert a == [shop[0].pk, shop[1].pk] and b == [shop[2].pk, shop[3].pk]
    assert ids(first, "a") == a  # resolved again: its own list, not excluded by itself
    assert ids(_value(block, count=2, pinned=[a[0]]), "c")[0] == a[0]
    assert ids(second, "b", on=RequestFactory().get("/")) == a  # another request: afresh
