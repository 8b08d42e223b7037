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
                    "id": "x",
                    "value": {
                        "segments": ["vip", "engaged"],
                        "match": "all",
                        "content": [{"type": "paragraph", "value": "<p>both</p>"}],
                    },
                },
                {
                    "type": "item",
                    "id": "x",
                    "value": {
                        "segments": ["engaged"],
                        "match": "any",
                        "content": [{"type": "heading", "value": "engaged only"}],
                    },
                },
                {
                    "type": "item",
                    "id": "x",
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
    rep = block.get_api_representation(_value(block), {"request": _request("engaged")})
    assert rep["variant"] == 1
    assert [(c["type"], c["value"]) for c in rep["content"]] == [("heading", "engaged only")]
    assert block.get_api_representation(_value(block))["variant"] is None


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
