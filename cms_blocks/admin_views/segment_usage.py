"""Where a segment is used, in the segment screens: a usage count in the listing, the delete
confirmation listing every page, block, page variant and other object using it (Wagtail's
reference index, see :mod:`cms_blocks.references`), and a segment in use protected from
deletion, one at a time or in bulk, until it is used nowhere.

Why protected rather than deleted with the rest: content names segments by slug, so a deleted
segment's variants silently stop being shown (and a new segment given the same slug would
revive them for other visitors). An editor who wants the segment out of the way at once
disables it.
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from wagtail.admin.admin_url_finder import AdminURLFinder
from wagtail.admin.messages import render
from wagtail.admin.ui.tables import Column
from wagtail.models import Page, ReferenceIndex
from wagtail.snippets.views.snippets import DeleteView, IndexView

from segments.api import segment_model

from ..references import usage_of


def usage_rows(segment, user=None) -> list[dict]:
    """One row per object using ``segment``: its name, what it is (a page, a page variant of
    which page, or the model's name), the fields or blocks naming the segment, and the admin
    URL where it is edited (``None`` when there is none)."""
    finder = AdminURLFinder(user)
    rows = []
    for obj, references in usage_of(segment):
        if isinstance(obj, Page):
            obj = obj.specific_deferred
            name = obj.get_admin_display_title()
            original = getattr(obj, "variant_of", None)
            kind = (
                _("page variant of “%(page)s”") % {"page": original.get_admin_display_title()}
                if original is not None
                else _("page")
            )
        else:
            name, kind = str(obj), str(obj._meta.verbose_name)
        fields = dict.fromkeys(str(r.describe_source_field()) for r in references)
        rows.append(
            {
                "name": name,
                "kind": kind,
                "fields": ", ".join(fields),
                "url": finder.get_edit_url(obj),
            }
        )
    return rows


class SegmentDeleteView(DeleteView):
    """Wagtail's delete confirmation, listing what uses the segment; a segment in use is
    protected (no delete button, and a POST is refused)."""

    def get_template_names(self):
        # (the viewset passes Wagtail's own template to as_view(), which an attribute loses to)
        return ["cms_blocks/admin/segment_confirm_delete.html"]

    def get_usage(self):
        usage = super().get_usage()
        if usage is not None and usage.count():
            usage.is_protected = True  # however the referring field or block would unset it
        return usage

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["usage_rows"] = usage_rows(self.object, self.request.user) if self.usage else []
        return context


class UsageCountColumn(Column):
    """How many objects use the segment, linked to its usage screen."""

    cell_template_name = "wagtailadmin/tables/usage_count_column_cell.html"

    def __init__(self, **kwargs):
        super().__init__("usage_count", label=_l("Used"), sort_key="usage_count", **kwargs)

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        viewset = type(instance).snippet_viewset
        instance.usage_url = reverse(viewset.get_url_name("usage"), args=[instance.pk])
        return context


class SegmentIndexView(IndexView):
    """The segment listing, with each segment's usage count (one subquery, not one query per
    row)."""

    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .annotate(usage_count=ReferenceIndex.usage_count_subquery(segment_model()))
        )


def refuse_bulk_delete(request, instances):
    """``before_delete_snippet``: refuse to delete segments in use, naming them (the one-by-one
    delete screen lists their usage and shows no delete button)."""
    model = segment_model()
    if request.method != "POST" or not instances or not isinstance(instances[0], model):
        return None
    counts = ReferenceIndex.get_count_references_to_in_bulk(instances)
    used = [segment for segment in instances if counts.get(segment)]
    if not used:
        return None
    names = ", ".join(f"“{segment}”" for segment in used)
    messages.error(
        request,
        render(
            _(
                "Nothing was deleted: %(segments)s used by content. A segment in use cannot be "
                "deleted; remove it from that content first (see its usage), or disable it."
            )
            % {"segments": names},
            None,
        ),
    )
    return redirect(reverse(model.snippet_viewset.get_url_name("list")))
