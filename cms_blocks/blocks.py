"""StreamField blocks that show each visitor the variant meant for their segments."""

from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from personalization.api import Candidate, choose_for
from segments.api import segment_choices


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
    """

    default = ContentBlock(help_text=_("Shown to everyone not matched by a variant."))
    variants = blocks.ListBlock(VariantBlock(), help_text=_("The first matching variant wins."))

    class Meta:
        icon = "user"
        label = _("Personalised content")
        template = "cms_blocks/personalised_block.html"

    @staticmethod
    def _candidates(value) -> list[Candidate[int]]:
        return [
            Candidate(frozenset(v["segments"] or ()), n, v["match"] == "all")
            for n, v in enumerate(value["variants"])
        ]

    def decide(self, value, context=None) -> int | None:
        request = (context or {}).get("request")
        return choose_for(request, self._candidates(value))

    def get_context(self, value, parent_context=None):
        context = super().get_context(value, parent_context=parent_context)
        chosen = self.decide(value, parent_context)
        context["variant_index"] = chosen
        context["content"] = (
            value["default"] if chosen is None else value["variants"][chosen]["content"]
        )
        return context

    def get_api_representation(self, value, context=None):
        chosen = self.decide(value, context)
        content = value["default"] if chosen is None else value["variants"][chosen]["content"]
        return {
            "variant": chosen,
            "content": self.child_blocks["default"].get_api_representation(content, context),
        }
