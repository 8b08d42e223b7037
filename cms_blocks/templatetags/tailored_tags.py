"""Template tags for personalised content in any template.

``{% segment "slug" %}…{% else %}…{% endsegment %}`` shows its first part to visitors in the
segment and the ``else`` part to everyone else: also without a request in the context, without
consent (only context-only segments apply then) or when the fast store is unreachable. Several
slugs mean "in any of them"; ``match="all"`` means "in all of them". Slugs may be literals or
variables. The tag never raises while rendering.
"""

import logging
from functools import lru_cache

from django import template
from django.template.base import FilterExpression
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from personalization.api import cache_safe, in_segments, segments_for

register = template.Library()
logger = logging.getLogger(__name__)


class SegmentNode(template.Node):
    child_nodelists = ("nodelist_true", "nodelist_false")

    def __init__(
        self,
        slugs: list[FilterExpression],
        match: FilterExpression | None,
        nodelist_true: template.NodeList,
        nodelist_false: template.NodeList,
    ):
        self.slugs = slugs
        self.match = match
        self.nodelist_true = nodelist_true
        self.nodelist_false = nodelist_false

    def _matches(self, context: template.Context) -> bool:
        try:
            slugs = [str(s.resolve(context)) for s in self.slugs]
            match_all = self.match is not None and self.match.resolve(context) == "all"
            return in_segments(context.get("request"), slugs, match_all)
        except Exception as exc:  # a template tag must not break the page: the else branch
            logger.warning("{%% segment %%} fell back to its else branch: %s", type(exc).__name__)
            return False

    def render(self, context: template.Context) -> str:
        nodelist = self.nodelist_true if self._matches(context) else self.nodelist_false
        return nodelist.render(context)


@register.tag("segment")
def do_segment(parser: template.base.Parser, token: template.base.Token) -> SegmentNode:
    bits = token.split_contents()
    tag = bits.pop(0)
    slugs, match = [], None
    for bit in bits:
        if bit.startswith("match="):
            if match is not None:
                raise template.TemplateSyntaxError(f"'{tag}' takes match= only once.")
            match = parser.compile_filter(bit[len("match=") :])
        else:
            slugs.append(parser.compile_filter(bit))
    if not slugs:
        raise template.TemplateSyntaxError(f"'{tag}' needs at least one segment slug.")
    nodelist_true = parser.parse(("else", "endsegment"))
    token = parser.next_token()
    if token.contents == "else":
        nodelist_false = parser.parse(("endsegment",))
        parser.delete_first_token()
    else:
        nodelist_false = template.NodeList()
    return SegmentNode(slugs, match, nodelist_true, nodelist_false)


@register.simple_tag(takes_context=True)
def visitor_segments(context: template.Context) -> str:
    """The visitor's segments as ``<b>slug</b>`` items (or ``none``). In cache-safe mode the
    page is shared between visitors, so it holds an empty placeholder instead, which
    ``cms_blocks/visitor.js`` fills from the visitor endpoint."""
    request = context.get("request")
    if cache_safe(request):
        return mark_safe('<span data-tailored-visitor-segments="">…</span>')
    try:
        slugs = segments_for(request)
    except Exception as exc:
        logger.warning("Could not list segments: %s", type(exc).__name__)
        slugs = frozenset()
    return _segment_list(slugs)


@lru_cache(maxsize=4096)
def _segment_list(slugs: frozenset[str]) -> str:
    # A visitor's set of segments repeats from page to page: escaped and joined once per set.
    if not slugs:
        return "none"
    return format_html_join(" ", "<b>{}</b>", ((s,) for s in sorted(slugs)))
