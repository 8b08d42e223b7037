"""StreamField blocks that show each visitor the variant meant for their segments.

Decision rule (see docs/delivery.md): a block's variants are tried in the order the editor put
them in (drag to reorder in the editor), and the first one the visitor qualifies for wins; there
are no ties to break, and a segment's own ``priority`` does not reorder them. A visitor who
qualifies for none, has not consented (only context-only segments apply then), or whose
segments cannot be read (fast store down, no request in the context) sees the default.
"""

import copy
import hashlib
import json
import logging
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from personalization.api import Candidate, Decision, decide
from segments.api import segment_choices

from .references import segment_references

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
    """The content of ``PersonalisedBlock()`` built without child blocks: headings and
    paragraphs (the block's only content before it took a site's own blocks)."""

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

    def extract_references(self, value):
        """The segments named, for Wagtail's reference index (their usage screens)."""
        yield from segment_references(value or ())


def _copy(block: blocks.Block) -> blocks.Block:
    """A copy of a site's block definition to hold under a name of ours.

    Wagtail names a child block after the key it is declared under (``set_name``; a stream
    child's type *is* that name), so the instance a site passes in, which the site may also
    use elsewhere under its own name, is never renamed: the default and each variant's content
    get a shallow copy each (same children, same settings), with a definition id of its own
    for the editor's scripts.
    """
    clone = copy.copy(block)
    clone.meta = copy.copy(block.meta)
    clone.creation_counter = blocks.Block.creation_counter
    blocks.Block.creation_counter += 1
    clone.definition_prefix = f"blockdef-{clone.creation_counter}"
    blocks.Block.definition_registry[clone.definition_prefix] = clone
    return clone


def content_block(child_blocks=None) -> blocks.Block:
    """The block a variant's content (and the default) is, from what a site passes to
    :class:`PersonalisedBlock`, the way Wagtail's ``ListBlock`` and ``StreamBlock`` take theirs:

    - a list of ``(name, block)`` pairs: a stream of those blocks (like ``StreamBlock([...])``);
    - one block, instance or class: exactly that block (a ``StructBlock`` such as a call to
      action, an ``ImageChooserBlock``, a ``ListBlock``, or a whole ``StreamBlock`` section);
    - nothing: headings and paragraphs (:class:`ContentBlock`).
    """
    if child_blocks is None:
        return ContentBlock()
    if isinstance(child_blocks, type) and issubclass(child_blocks, blocks.Block):
        return child_blocks()
    if isinstance(child_blocks, blocks.Block):
        return child_blocks
    if isinstance(child_blocks, list | tuple) and all(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], blocks.Block)
        for pair in child_blocks
    ):
        return blocks.StreamBlock(list(child_blocks))
    raise TypeError(
        "PersonalisedBlock takes a block (instance or class) or a list of (name, block) "
        f"pairs, not {child_blocks!r}"
    )


class VariantBlock(blocks.StructBlock):
    """One variant: a label for reports, the segments it is for, and its content."""

    label = blocks.CharBlock(
        required=False,
        max_length=100,
        label=_("Label"),
        help_text=_("A name for this variant in reports, e.g. “Spring campaign”. Optional."),
    )
    segments = SegmentsBlock(
        choices=segment_choices, help_text=_("Visitors in these segments see this variant.")
    )
    match = blocks.ChoiceBlock(
        choices=[("any", _("in any of them")), ("all", _("in all of them"))],
        default="any",
        help_text=_("Whether a visitor must be in any or all of the segments."),
    )

    def __init__(self, content=None, **kwargs):
        super().__init__(
            [("content", content if content is not None else ContentBlock())], **kwargs
        )

    def bulk_to_python(self, values):
        """Stream content stays as stored until it is shown: most visitors see the default, so
        the variants' images, pages and rich text are not loaded for them (Wagtail's
        ``StreamBlock.to_python`` keeps raw data and converts it when first iterated, as it does
        for a page's own StreamField). Other kinds of content are converted in bulk."""
        content = self.child_blocks["content"]
        if not isinstance(content, blocks.BaseStreamBlock):
            return super().bulk_to_python(values)
        values = list(values)
        settings = super().bulk_to_python(
            [{k: v for k, v in value.items() if k != "content"} for value in values]
        )
        for struct, value in zip(settings, values, strict=True):
            if "content" in value:
                struct["content"] = content.to_python(value["content"])
        return settings

    class Meta:
        icon = "group"
        label = _("Variant")


@dataclass(frozen=True)
class Variant:
    """What a personalised block offers, as other apps (reports, experiments) read it.

    ``key`` is stable across edits and reordering (``"default"`` or the variant's list-item
    id), ``label`` the editor's name for it (``""`` when none was given), ``index`` its place
    in the block (``None`` for the default). :attr:`name` is what to show people."""

    key: str
    label: str
    segments: frozenset[str]
    match_all: bool
    index: int | None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.index is None:
            return str(_("Default"))
        return ", ".join(sorted(self.segments)) or str(_("No segment"))


class PersonalisedBlock(blocks.StructBlock):
    """Default content plus variants, each for one or more segments, in priority order.

    Takes the blocks its content is made of the way Wagtail's ``ListBlock`` and ``StreamBlock``
    take theirs (see :func:`content_block`)::

        PersonalisedBlock([("text", RichTextBlock()), ("image", ImageChooserBlock())])
        PersonalisedBlock(CallToActionBlock())   # one block of the site's own
        PersonalisedBlock(SectionBlock())        # a whole StreamBlock section
        PersonalisedBlock()                      # headings and paragraphs

    The default and every variant hold content of that one kind. Renders the first variant the
    visitor qualifies for, else the default: also when there is no request in the context, no
    consent, or the fast store cannot be reached.

    Keys, as used in the markup (``data-tailored-block`` / ``data-tailored-variant``), in the
    API representation and in impression and click events:

    - the *block key* is the StreamField id of the block (``{{ block.id }}``), stable across
      edits and publications; outside a StreamField (no id in the context) a short hash of the
      block's content stands in for it;
    - the *variant key* is ``"default"`` or the id Wagtail gives the variant's list item, which
      stays the same when variants are edited or reordered.
    """

    def __init__(self, child_blocks=None, search_index=True, **kwargs):
        content = content_block(child_blocks)
        default, variant_content = _copy(content), _copy(content)
        super().__init__(
            [
                ("default", default),
                (
                    "variants",
                    blocks.ListBlock(
                        VariantBlock(variant_content),
                        help_text=_("The first matching variant wins."),
                    ),
                ),
            ],
            search_index=search_index,
            **kwargs,
        )
        if not content.meta.label:
            default.label = str(_("Default content"))
            variant_content.label = str(_("Content"))
        if not getattr(content.meta, "help_text", None):
            default.meta.help_text = _("Shown to everyone not matched by a variant.")

    class Meta:
        icon = "user"
        label = _("Personalised content")
        # No template by default: render_basic writes the wrapper directly (a template per
        # block costs a context copy and a render each). Set Meta.template in a subclass to
        # use one; get_context gives it the same values (see cms_blocks/personalised_block.html).

    @property
    def default_block(self) -> blocks.Block:
        """The block the default content is (a copy of the one the site passed in)."""
        return self.child_blocks["default"]

    @property
    def variant_block(self) -> blocks.Block:
        """The block each variant's content is."""
        return self.child_blocks["variants"].child_block.child_blocks["content"]

    @staticmethod
    def _candidates(value) -> list[Candidate[int]]:
        return [
            Candidate(frozenset(v["segments"] or ()), n, v["match"] == "all")
            for n, v in enumerate(value["variants"])
        ]

    def decide(self, value, context=None) -> int | None:
        """Index of the variant to show, or ``None`` for the default. Never raises."""
        return self.decision(value, context).index

    def decision(self, value, context=None) -> Decision:
        """The decision for this visitor: the variant's index (``None``: the default) and,
        when an experiment decided it, the experiment's key and the arm. Never raises."""
        try:
            request = context.get("request") if context is not None else None
            page = context.get("page") if context is not None else None
            page_id = getattr(request, "_tailored_page_id", None) or getattr(page, "pk", None)
            return decide(
                request,
                self._candidates(value),
                keys=lambda: [self.variant_key(value, n) for n in range(len(value["variants"]))],
                page_id=page_id,
                # The StreamField id, which experiments name (a block without one has none).
                block_id=str(context.get("id") or "") if context is not None else "",
            )
        except Exception as exc:  # a block must render whatever goes wrong: default content
            logger.warning("Personalised block fell back to default: %s", type(exc).__name__)
            return Decision(None)

    @staticmethod
    def variant_key(value, index: int | None) -> str:
        if index is None:
            return DEFAULT_VARIANT
        bound = value["variants"].bound_blocks[index]
        return str(bound.id) if bound.id else str(index)

    def variants(self, value) -> list[Variant]:
        """The default then each variant of ``value``, in the editor's order (the order they
        are tried in), with their stable keys, labels and segments."""
        out = [Variant(DEFAULT_VARIANT, "", frozenset(), False, None)]
        for n, v in enumerate(value["variants"]):
            out.append(
                Variant(
                    self.variant_key(value, n),
                    str(v.get("label") or ""),
                    frozenset(v["segments"] or ()),
                    v["match"] == "all",
                    n,
                )
            )
        return out

    def block_key(self, value, context=None) -> str:
        block_id = context.get("id") if context is not None else None
        if block_id:
            return str(block_id)
        raw = json.dumps(_without_ids(self.get_prep_value(value)), sort_keys=True, default=str)
        return "h" + hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()

    def resolve(self, value, context=None) -> dict:
        """The decision for this visitor: index, keys, the content to show and its block, and
        the experiment and arm that decided it (``None`` when none did)."""
        decision = self.decision(value, context)
        index = decision.index
        if index is None:
            content, block = value["default"], self.default_block
        else:
            content, block = value["variants"][index]["content"], self.variant_block
        return {
            "index": index,
            "variant": self.variant_key(value, index),
            "block": self.block_key(value, context),
            "content": content,
            "content_block": block,
            "experiment": decision.experiment,
            "arm": decision.arm,
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
            # The content with its block, for {% include_block %}: renders any kind of content
            # (an image, a call to action, a stream) the way its block renders it.
            chosen=decision["content_block"].bind(decision["content"]),
            page_id=getattr(page, "pk", None),
        )
        return context

    def render_basic(self, value, context=None):
        decision = self.resolve(value, context)
        page = context.get("page") if context is not None else None
        page_id = getattr(page, "pk", None)
        inner = decision["content_block"].render(decision["content"], context)
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
        representation = {
            "block": decision["block"],
            "variant": decision["variant"],
            "index": decision["index"],
            "content": decision["content_block"].get_api_representation(
                decision["content"], context
            ),
        }
        if decision["experiment"] is not None:  # the visitor's arm, for the client's analytics
            representation["experiment"] = decision["experiment"]
            representation["arm"] = decision["arm"]
        return representation

    def get_searchable_content(self, value):
        # Only what everyone may see: a variant's text (a discount code for one segment) must
        # not make the page a search hit for visitors who are never shown it.
        if not self.search_index:
            return []
        return self.default_block.get_searchable_content(value["default"])
