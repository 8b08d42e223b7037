"""The personalised block: the right variant, the default otherwise, never a crash."""

import pytest
from django.test import RequestFactory

from cms_blocks.blocks import PersonalisedBlock
from tests.builders import segment

pytestmark = pytest.mark.django_db


def _value(block):
    return block.to_python(
        {
            "default": [{"type": "paragraph", "value": "<p>default</p>"}],
            "variants": [
                {
                    "type": "item",
                    "id": "v0",
                    "value": {
                        "segments": ["vip", "engaged"],
                        "match": "all",
                        "content": [{"type": "paragraph", "value": "<p>both</p>"}],
                    },
                },
                {
                    "type": "item",
                    "id": "v1",
                    "value": {
                        "segments": ["engaged"],
                        "match": "any",
                        "content": [{"type": "heading", "value": "engaged only"}],
                    },
                },
                {
                    "type": "item",
                    "id": "v2",
                    "value": {
                        "segments": ["vip", "new"],
                        "match": "any",
                        "content": [{"type": "paragraph", "value": "<p>vip or new</p>"}],
                    },
                },
            ],
        }
    )


def _request(*segments):
    request = RequestFactory().get("/")
    request.segments = frozenset(segments)
    return request


@pytest.mark.parametrize(
    "segments, expected",
    [
        ((), "default"),
        (("engaged",), "engaged only"),
        (("vip", "engaged"), "both"),  # several segments per variant, all required
        (("new",), "vip or new"),
        (("vip",), "vip or new"),
        (("unrelated",), "default"),
    ],
)
def test_first_matching_variant_wins(segments, expected):
    block = PersonalisedBlock()
    html = block.render(_value(block), {"request": _request(*segments)})
    assert expected in html
    assert html.count("<p>") + html.count("<h2") <= 1


def test_renders_default_without_a_request_or_context():
    block = PersonalisedBlock()
    assert "default" in block.render(_value(block))
    assert "default" in block.render(_value(block), {})
    request = RequestFactory().get("/")  # no middleware ran: no segments attribute
    assert "default" in block.render(_value(block), {"request": request})


def test_api_representation_carries_the_decision():
    block = PersonalisedBlock()
    value = _value(block)
    rep = block.get_api_representation(value, {"request": _request("engaged"), "id": "b1"})
    assert rep["index"] == 1
    assert rep["variant"] == "v1"  # the list item's stable id
    assert rep["block"] == "b1"
    assert [(c["type"], c["value"]) for c in rep["content"]] == [("heading", "engaged only")]
    default = block.get_api_representation(value)
    assert default["index"] is None and default["variant"] == "default"
    assert [c["value"] for c in default["content"]] == ["<p>default</p>"]


def test_rendering_does_not_query_the_database(django_assert_num_queries):
    block = PersonalisedBlock()
    raw = block.get_prep_value(_value(block))
    with django_assert_num_queries(0):
        block.render(block.to_python(raw), {"request": _request("engaged")})


def test_variant_segments_must_exist():
    segment("engaged")
    block = PersonalisedBlock()
    child = block.child_blocks["variants"].child_block.child_blocks["segments"]
    assert child.clean(["engaged"]) == ["engaged"]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        child.clean(["no-such-segment"])


@pytest.mark.parametrize(
    "segments, key",
    [((), "default"), (("vip", "engaged"), "v0"), (("engaged",), "v1"), (("new",), "v2")],
)
def test_markup_names_block_variant_and_page(segments, key):
    block = PersonalisedBlock()

    class Page:
        pk = 42

    html = block.render(_value(block), {"request": _request(*segments), "id": "blk", "page": Page})
    assert f'data-tailored-variant="{key}"' in html
    assert 'data-tailored-block="blk"' in html
    assert 'data-tailored-page="42"' in html


def test_priority_is_the_editors_order():
    """The first matching variant wins even when a later one matches more segments."""
    block = PersonalisedBlock()
    value = _value(block)
    # "vip" + "new" + "engaged": variant 0 (all of vip, engaged) comes first and wins.
    assert block.decide(value, {"request": _request("vip", "new", "engaged")}) == 0
    value["variants"].bound_blocks.reverse()
    assert block.decide(value, {"request": _request("vip", "new", "engaged")}) == 0  # now v2
    assert block.resolve(value, {"request": _request("vip", "new", "engaged")})["variant"] == "v2"


def test_block_key_outside_a_stream_is_stable():
    block = PersonalisedBlock()
    first = block.resolve(_value(block))["block"]
    assert first == block.resolve(_value(block))["block"]
    assert first.startswith("h")


def test_a_failing_segment_lookup_renders_the_default():
    class Broken:
        def __iter__(self):
            raise RuntimeError("store exploded")

    request = RequestFactory().get("/")
    request.segments = Broken()
    block = PersonalisedBlock()
    html = block.render(_value(block), {"request": request})
    assert "default" in html
    assert 'data-tailored-variant="default"' in html


def test_an_empty_variant_segment_list_never_matches():
    block = PersonalisedBlock()
    value = block.to_python(
        {
            "default": [{"type": "paragraph", "value": "<p>default</p>"}],
            "variants": [
                {
                    "type": "item",
                    "id": "e",
                    "value": {
                        "segments": [],
                        "match": "all",
                        "content": [{"type": "heading", "value": "nobody"}],
                    },
                },
            ],
        }
    )
    assert block.decide(value, {"request": _request("vip")}) is None


def test_a_subclass_can_render_through_a_template():
    class Templated(PersonalisedBlock):
        class Meta:
            template = "cms_blocks/personalised_block.html"

    block = Templated()
    html = block.render(_value(block), {"request": _request("engaged"), "id": "b"})
    assert 'data-tailored-variant="v1"' in html and 'data-tailored-block="b"' in html
    assert "engaged only" in html
    assert block.render(_value(block)).count('data-tailored-variant="default"') == 1
