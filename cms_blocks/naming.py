"""Variants as editors know them: by their label, else by the segments they are for.

Events and reports key a personalised block's variants by stable ids (``"default"`` or the
list item's id) so that a name changed or a variant reordered never splits its figures; screens
show names instead. :func:`block_variant_names` reads them from the pages themselves (their
published content), wherever a personalised block sits in a StreamField.
"""

from collections.abc import Iterable

from django.utils.translation import gettext as _
from wagtail import blocks
from wagtail.fields import StreamField

from segments.api import segment_choices

from .blocks import DEFAULT_VARIANT, PersonalisedBlock


def segments_name(slugs: Iterable[str], match_all: bool, names: dict[str, str]) -> str:
    """ "French speakers or Phones" ("and" when every segment is needed)."""
    words = [names.get(s, s) for s in slugs]
    if not words:
        return _("no segment")
    return (_(" and ") if match_all else _(" or ")).join(words)


def variant_name(value, index: int | None, names: dict[str, str]) -> str:
    """The name of the variant at ``index`` of a personalised block's value (``None``: the
    default): its label when the editor gave one, else its segments."""
    if index is None:
        return _("Default")
    variant = value["variants"][index]
    label = variant.get("label") if hasattr(variant, "get") else None
    if label:
        return str(label)
    return segments_name(variant["segments"] or (), variant["match"] == "all", names)


def _personalised(block, value, block_id=None):
    """(block, value, id) of every personalised block within ``value``, however nested."""
    if isinstance(block, PersonalisedBlock):
        yield block, value, block_id
    if isinstance(block, blocks.StreamBlock):
        for child in value or ():
            yield from _personalised(child.block, child.value, child.id)
    elif isinstance(block, blocks.ListBlock):
        for bound in getattr(value, "bound_blocks", ()):
            yield from _personalised(block.child_block, bound.value, bound.id)
    elif isinstance(block, blocks.StructBlock):
        for name, child in block.child_blocks.items():
            if value is not None and name in value:
                yield from _personalised(child, value[name])


def page_variant_names(page, names: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``{block key: {variant key: name}}`` of every personalised block on ``page`` (a specific
    page), keyed as the markup and the events key them."""
    names = dict(segment_choices()) if names is None else names
    found: dict[str, dict[str, str]] = {}
    for field in page._meta.get_fields():
        if not isinstance(field, StreamField):
            continue
        for block, value, block_id in _personalised(field.stream_block, getattr(page, field.name)):
            key = block.block_key(value, {"id": block_id} if block_id else None)
            found[key] = {DEFAULT_VARIANT: variant_name(value, None, names)} | {
                block.variant_key(value, n): variant_name(value, n, names)
                for n in range(len(value["variants"]))
            }
    return found


def block_variant_names(pages: Iterable) -> dict[tuple[str, str, str], str]:
    """``{(page id, block key, variant key): name}`` for the personalised blocks of ``pages``
    (specific pages)."""
    names = dict(segment_choices())
    return {
        (str(page.pk), block, variant): name
        for page in pages
        for block, variants in page_variant_names(page, names).items()
        for variant, name in variants.items()
    }


def unknown_variant_name(variant_key: str) -> str:
    """A variant the page no longer has (removed since its events were recorded), or of a
    page that is gone."""
    if variant_key == DEFAULT_VARIANT:
        return _("Default")
    return _("removed variant %(key)s") % {"key": variant_key[:8]}
