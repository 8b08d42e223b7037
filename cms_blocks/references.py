"""Where segments are used, through Wagtail's reference index (``ReferenceIndex``).

Wagtail records, for every indexed object, the objects its fields and StreamField blocks refer
to; the segment's usage screen, its usage count and its delete confirmation read that index.
Content names segments by slug, so the fields and blocks that hold slugs declare the segments
they refer to (``extract_references``): a page variant's segments
(:class:`cms_blocks.models.SegmentSlugsField`) and a personalised block's variants
(:class:`cms_blocks.blocks.SegmentsBlock`, wherever the block sits in a StreamField).

Any other model that refers to a segment with a ``ForeignKey``, ``OneToOneField`` or (from an
inline child) a ``ParentalKey``'s parent is indexed too: :func:`index_segment_referrers`
registers every such model at start-up, so an app that adds one (experiments, say) is counted
without doing anything. A StreamField block of a site's own that refers to segments declares
them the same way (``SnippetChooserBlock("segments.Segment")`` already does).

The index is kept up to date as objects are saved and deleted. Existing content is indexed by
``manage.py rebuild_references_index`` (run it once after installing or upgrading).
"""

from collections.abc import Iterable, Iterator

from django.apps import apps
from modelcluster.fields import ParentalKey
from wagtail.models import ReferenceIndex

from segments.api import segment_model


def segment_references(slugs: Iterable[str]) -> Iterator[tuple[type, str, str, str]]:
    """``extract_references`` entries for segments named by slug (those that exist): the
    segment model, its primary key, and empty model and content paths (the field or block
    holding them adds its own)."""
    wanted = sorted({s for s in slugs if isinstance(s, str) and s})
    if not wanted:
        return
    model = segment_model()
    for pk in model.objects.filter(slug__in=wanted).values_list("pk", flat=True):
        yield model, str(pk), "", ""


def _refers_to_segments(model) -> bool:
    target = segment_model()
    return any(
        field.is_relation
        and (field.many_to_one or field.one_to_one)
        and not field.auto_created
        and field.related_model is target
        for field in model._meta.get_fields()
    )


def index_segment_referrers(registry=None) -> list[type]:
    """Register with the reference index every model (of ``registry``, the project's apps by
    default) that refers to a segment by a relation (or, for an inline child model, its
    parent: the index records a child's references under its parent). Returns the models
    registered."""
    registered = []
    for model in (registry or apps).get_models():
        if getattr(model, "wagtail_reference_index_ignore", False):
            continue
        if not _refers_to_segments(model):
            continue
        parents = [f.related_model for f in model._meta.get_fields() if isinstance(f, ParentalKey)]
        for indexed in parents or [model]:
            if not ReferenceIndex.is_indexed(indexed):
                ReferenceIndex.register_model(indexed)
            if ReferenceIndex.is_indexed(indexed):
                registered.append(indexed)
    return registered


def usage_of(segment):
    """Everything that uses ``segment``: Wagtail's ``ReferenceGroups``, grouped by the object
    it is used on."""
    return ReferenceIndex.get_grouped_references_to(segment)
