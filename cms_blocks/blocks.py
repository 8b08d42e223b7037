"""StreamField blocks that show each visitor the variant meant for their segments.

Decision rule (see docs/delivery.md): a block's variants are tried in the order the editor put
them in (drag to reorder in the editor), and the first one the visitor qualifies for wins; there
are no ties to break, and a segment's own ``priority`` does not reorder them. A visitor who
qualifies for none, has not consented (only context-only segments apply then), or whose
segments cannot be read (fast store down, no request in the context) sees the default.
"""

import hashlib
import json
import logging

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from personalization.api import Candidate, choose_for
from segments.api import segment_choices

logger = logging.getLogger(__name__)

DEFAULT_VARIANT = "default"


def _without_ids(data):
    """Stored block data minus the ids Wagtail generates for items that had none."""
    if isinstance(data, dict):
        return {k: _without_ids(v) for k, v in data.items() if k != "id"}
    if isinstance(data, list):
        return [_without_ids(v) for v in data]
    return data


class ContentBlock(blocks.StreamBlock):
    """What a variant (or the default) consists of."""

    heading = blocks.CharBlock(max_length=200)
    paragraph = blocks.RichTextBlock()

    class Meta:
        icon = "doc-full"


class SegmentsBlock(blocks.MultipleChoiceBlock):
    """Segment slugs. The editing form offers existing segments (validated on save); reading a
    stored value takes the slugs as they are, so rendering a page never queries segments."""

    def to_python(self, value):
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    def bulk_to_python(self, values):
        return [self.to_python(v) for v in values]


class VariantBlock(blocks.StructBlock):
    segments = SegmentsBlock(
        choices=segment_choices, help_text=_("Visitors in these segments see this variant.")
    )
    match = blocks.ChoiceBlock(
        choices=[("any", _("in any of them")), ("all", _("in all of them"))],
        default="any",
        help_text=_("Whether a visitor must be in any or all of the segments."),
    )
    content = ContentBlock()

    class Meta:
        icon = "group"
        label = _("Variant")


class PersonalisedBlock(blocks.StructBlock):
    """Default content plus variants, each for one or more segments, in priority order.

    Renders the first variant the visitor qualifies for, else the default: also when there is no
    request in the context, no consent, or the fast store cannot be reached.

    Keys, as used in the markup (``data-tailored-block`` / ``data-tailored-variant``), in the
    API representation and in impression and click events:

    - the *block key* is the StreamField id of the block (``{{ block.id }}``), stable across
      edits and publications; outside a StreamField (no id in the context) a short hash of the
      block's content stands in for it;
    - the *variant key* is ``"default"`` or the id Wagtail gives the variant's list item, which
      stays the same when variants are edited or reordered.
    """

    default = ContentBlock(help_text=_("Shown to everyone not matched by a variant."))
    variants = blocks.ListBlock(VariantBlock(), help_text=_("The first matching variant wins."))

    class Meta:
        icon = "user"
        label = _("Personalised content")
        # No template by default: render_basic writes the wrapper directly (a template per
        # block costs a context copy and a render each). Set Meta.template in a subclass to
        # use one; get_context gives it the same values (see cms_blocks/personalised_block.html).

    @staticmethod
    def _candidates(value) -> list[Candidate[int]]:
        return [
            Candidate(frozenset(v["segments"] or ()), n, v["match"] == "all")
            for n, v in enumerate(value["variants"])
        ]

    def decide(self, value, context=None) -> int | None:
        """Index of the variant to show, or ``None`` for the default. Never raises."""
        try:
            request = context.get("request") if context is not None else None
            return choose_for(request, self._candidates(value))
        except Exception as exc:  # a block must render whatever goes wrong: default content
            logger.warning("Personalised block fell back to default: %s", type(exc).__name__)
            return None

    @staticmethod
    def variant_key(value, index: int | None) -> str:
        if index is None:
            return DEFAULT_VARIANT
        bound = value["variants"].bound_blocks[index]
        return str(bound.id) if bound.id else str(index)

    def block_key(self, value, context=None) -> str:
        block_id = context.get("id") if context is not None else None
        if block_id:
            return str(block_id)
        raw = json.dumps(_without_ids(self.get_prep_value(value)), sort_keys=True, default=str)
        return "h" + hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()

    def resolve(self, value, context=None) -> dict:
        """The decision for this visitor: index, keys and the content to show."""
        index = self.decide(value, context)
        return {
            "index": index,
            "variant": self.variant_key(value, index),
            "block": self.block_key(value, context),
            "content": value["default"] if index is None else value["variants"][index]["content"],
        }

    def get_context(self, value, parent_context=None):
        context = super().get_context(value, parent_context=parent_context)
        decision = self.resolve(value, parent_context)
        page = parent_context.get("page") if parent_context is not None else None
        context.update(
            variant_index=decision["index"],
            variant_key=decision["variant"],
            block_key=decision["block"],
            content=decision["content"],
            page_id=getattr(page, "pk", None),
        )
        return context

    def render_basic(self, value, context=None):
        decision = self.resolve(value, context)
        page = context.get("page") if context is not None else None
        page_id = getattr(page, "pk", None)
        content = decision["content"]
        inner = content.render_as_block(context) if hasattr(content, "render_as_block") else ""
        return format_html(
            '<div class="personalised" data-tailored-block="{}" data-tailored-variant="{}"{}>'
            "{}</div>",
            decision["block"],
            decision["variant"],
            format_html(' data-tailored-page="{}"', page_id) if page_id else "",
            inner,
        )

    def get_api_representation(self, value, context=None):
        decision = self.resolve(value, context)
        return {
            "block": decision["block"],
            "variant": decision["variant"],
            "index": decision["index"],
            "content": self.child_blocks["default"].get_api_representation(
                decision["content"], context
            ),
        }
