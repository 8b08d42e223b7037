"""The recommendations block: a list of pages chosen for the visitor by a strategy.

Editors choose the strategy (:func:`recommendations.api.strategy_choices`), how many items,
the card template, a heading (and a heading per segment), and the business rules (pinned and
excluded pages, a maximum per category, diversity across categories). The list comes from
what the workers keep (:mod:`recommendations.lists`): the visitor's own "for you" list is read
by the request's one round trip; everyone else gets lists that need nothing about them.

Markup carries ``data-tailored-block`` (the block key) and ``data-tailored-variant`` (the
strategy that produced the list), so the tracker's impression and click events give the
click-through per strategy and per segment in the block report (cms_blocks/admin_views).
"""

import hashlib
import json
import logging

from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from personalization.api import visitor_recommendations
from recommendations.api import Recommendations, item_pages, recommend, strategy_choices
from segments.api import segment_choices

from .conf import get_setting

logger = logging.getLogger(__name__)


def template_choices() -> list[tuple[str, str]]:
    return [(k, str(v[0])) for k, v in get_setting("CMS_BLOCKS_RECOMMENDATION_TEMPLATES").items()]


class SegmentHeadingBlock(blocks.StructBlock):
    segment = blocks.ChoiceBlock(choices=segment_choices, label=_("Segment"))
    heading = blocks.CharBlock(max_length=200, label=_("Heading"))

    class Meta:
        icon = "group"


class RecommendationsBlock(blocks.StructBlock):
    """Recommended pages for this visitor. Renders nothing when there is nothing to show
    (never raises: no request, no consent, the fast store or the database unavailable)."""

    strategy = blocks.ChoiceBlock(
        choices=strategy_choices,
        default="popular",
        label=_("Strategy"),
        help_text=_(
            "For you: from what the visitor did lately. Bought or viewed together: what "
            "others took with this page's item. Similar pages: by their text. Popular: in "
            "the visitor's segment."
        ),
    )
    count = blocks.IntegerBlock(default=4, min_value=1, max_value=24, label=_("Items"))
    template = blocks.ChoiceBlock(choices=template_choices, default="cards", label=_("Cards"))
    heading = blocks.CharBlock(
        required=False, max_length=200, default="You may also like", label=_("Heading")
    )
    segment_headings = blocks.ListBlock(
        SegmentHeadingBlock(),
        default=[],
        label=_("Heading per segment"),
        help_text=_("The first segment the visitor is in gives the heading."),
    )
    pinned = blocks.ListBlock(blocks.PageChooserBlock(), default=[], label=_("Always show first"))
    excluded = blocks.ListBlock(blocks.PageChooserBlock(), default=[], label=_("Never show"))
    max_per_category = blocks.IntegerBlock(
        default=0, min_value=0, label=_("At most per category"), help_text=_("0: no limit.")
    )
    diversify = blocks.BooleanBlock(
        required=False,
        default=False,
        label=_("Mix categories"),
        help_text=_("One item of each category in turn."),
    )

    class Meta:
        icon = "list-ul"
        label = _("Recommendations")

    def block_key(self, value, context=None) -> str:
        block_id = context.get("id") if context is not None else None
        if block_id:
            return str(block_id)
        raw = json.dumps(self.get_prep_value(value), sort_keys=True, default=str)
        return "r" + hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()

    def resolve(self, value, context=None) -> dict:
        """The list for this visitor: pages (specific, in order), the strategy that produced
        it, the heading, the block key and the current page's id. Never raises."""
        request = context.get("request") if context is not None else None
        page = context.get("page") if context is not None else None
        page_id = getattr(request, "_tailored_page_id", None) or getattr(page, "pk", None)
        key = self.block_key(value, context)
        try:
            fields, segments = visitor_recommendations(request)
            pin = [p.pk for p in value["pinned"] if p is not None]
            exclude = {p.pk for p in value["excluded"] if p is not None}
            # Not what another recommendations block of this page shows already (unless the
            # editor pinned it here): two blocks falling back on the same list show it once.
            for other, ids in _shown(request).items():
                if other != key:
                    exclude.update(ids)
            exclude.difference_update(pin)
            result = recommend(
                value["strategy"],
                count=int(value["count"] or 4),
                page_id=page_id,
                fields=fields,
                segments=segments,
                exclude=exclude,
                pin=pin,
                max_per_category=int(value["max_per_category"] or 0),
                diversify=bool(value["diversify"]),
            )
            pages = item_pages(result.items)
            if request is not None:
                _shown(request)[key] = [p.pk for p in pages]
        except Exception as exc:  # a block must render whatever goes wrong: nothing
            logger.warning("Recommendations block shows nothing: %s", type(exc).__name__)
            segments, pages = frozenset(), []
            result = Recommendations([], "", value["strategy"])
        heading = value["heading"]
        for entry in value["segment_headings"]:
            if entry["segment"] in segments:
                heading = entry["heading"]
                break
        return {
            "pages": pages,
            "strategy": result.strategy,
            "requested": result.requested,
            "heading": heading,
            "block_key": key,
            "page_id": page_id,
        }

    def get_context(self, value, parent_context=None):
        context = super().get_context(value, parent_context=parent_context)
        context.update(self.resolve(value, parent_context))
        return context

    def render(self, value, context=None):
        """The chosen card template with the list, the page's request and the block's value
        (not a copy of the whole page context: a block rendered on every page stays cheap)."""
        templates = get_setting("CMS_BLOCKS_RECOMMENDATION_TEMPLATES")
        chosen = templates.get(value["template"]) or next(iter(templates.values()))
        own = self.resolve(value, context)
        own.update(
            value=value,
            self=value,
            request=context.get("request") if context is not None else None,
            page=context.get("page") if context is not None else None,
        )
        return render_to_string(chosen[1], own)

    def get_api_representation(self, value, context=None):
        resolved = self.resolve(value, context)
        return {
            "block": resolved["block_key"],
            "strategy": resolved["strategy"],
            "requested_strategy": resolved["requested"],
            "heading": resolved["heading"],
            "items": [
                {"id": p.pk, "title": p.title, "url": p.get_url()} for p in resolved["pages"]
            ],
        }

    def get_searchable_content(self, value):
        return []


def _shown(request) -> dict[str, list[int]]:
    """The items each recommendations block has shown in this request, by block key (a block
    resolved twice excludes only the others')."""
    if request is None:
        return {}
    shown = getattr(request, "_tailored_recommended", None)
    if shown is None:
        shown = request._tailored_recommended = {}
    return shown
