"""The {% segment %} template tag: the right branch, the else branch whenever in doubt."""

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory

from consent.policy import UNDECIDED


def render(source: str, segments=None, request=True, **context) -> str:
    template = Template("{% load tailored_tags %}" + source)
    if request:
        req = RequestFactory().get("/")
        if segments is not None:
            req.segments = frozenset(segments)
        context["request"] = req
    return template.render(Context(context)).strip()


TAG = '{% segment "vip" %}yes{% else %}no{% endsegment %}'


def test_in_the_segment_renders_the_first_branch():
    assert render(TAG, {"vip"}) == "yes"


def test_else_branch_without_request_without_segments_or_outside_them():
    assert render(TAG, request=False) == "no"
    assert render(TAG) == "no"  # no middleware ran: no request.segments
    assert render(TAG, set()) == "no"  # e.g. no consent and no context-only segment
    assert render(TAG, {"other"}) == "no"


def test_without_else_nothing_is_rendered_outside():
    assert render('{% segment "vip" %}yes{% endsegment %}', {"x"}) == ""


@pytest.mark.parametrize(
    "source, segments, expected",
    [
        ('{% segment "a" "b" %}y{% else %}n{% endsegment %}', {"b"}, "y"),
        ('{% segment "a" "b" match="any" %}y{% else %}n{% endsegment %}', {"a"}, "y"),
        ('{% segment "a" "b" match="all" %}y{% else %}n{% endsegment %}', {"a"}, "n"),
        ('{% segment "a" "b" match="all" %}y{% else %}n{% endsegment %}', {"a", "b"}, "y"),
        ("{% segment slug %}y{% else %}n{% endsegment %}", {"from-var"}, "y"),
    ],
)
def test_several_slugs_any_or_all_and_variables(source, segments, expected):
    assert render(source, segments, slug="from-var") == expected


def test_a_failing_segment_lookup_renders_the_else_branch():
    class Broken:
        def __iter__(self):
            raise ConnectionError("store down")

    request = RequestFactory().get("/")
    request.segments = Broken()
    request.consent = UNDECIDED
    html = Template("{% load tailored_tags %}" + TAG).render(Context({"request": request}))
    assert html == "no"


def test_nested_and_branch_content_is_rendered_with_the_context():
    source = (
        '{% segment "a" %}{% segment "b" %}ab{% else %}a-{{ name }}{% endsegment %}'
        "{% else %}none{% endsegment %}"
    )
    assert render(source, {"a"}, name="x<y") == "a-x&lt;y"


@pytest.mark.parametrize(
    "source",
    [
        "{% segment %}x{% endsegment %}",
        '{% segment "a" match="all" match="any" %}x{% endsegment %}',
        '{% segment "a" %}x',
    ],
)
def test_syntax_errors_are_reported_when_the_template_is_compiled(source):
    with pytest.raises(TemplateSyntaxError):
        Template("{% load tailored_tags %}" + source)
