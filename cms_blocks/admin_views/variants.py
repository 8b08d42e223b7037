"""Page variants in the admin: a report of the pages that can have variants (Reports → Page
variants), showing which have variants and for which segments, with a "Create variant" action;
and that action, which copies a page as a draft variant for the segments an editor picks.

The report lists the pages the editor may edit, of every page type that can have variants
(:class:`cms_blocks.models.PageVariantMixin`), never the variants themselves (each shows under
its page). It runs a fixed number of queries per screen: the pages, then their variants for
each page type.
"""

import django_filters
from django import forms
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import FormView
from wagtail.actions.copy_page import CopyPageAction
from wagtail.admin import messages
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.ui.tables import Column, TitleColumn
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.models import Page
from wagtail.permission_policies.pages import PagePermissionPolicy

from segments.api import segment_choices
from tailored.admin.permissions import AdminPermissionMixin
from tailored.admin.reports import ReportView

from ..models import PageVariantMixin
from ..variants import segments_words, variant_models


def can_create_variant(user, page) -> bool:
    """Whether ``user`` may copy ``page`` as a variant beside it (a page that can have
    variants and is not one)."""
    if not isinstance(page, PageVariantMixin) or page.is_variant:
        return False
    parent = page.get_parent()
    return (
        parent is not None
        and page.permissions_for_user(user).can_copy()
        and parent.permissions_for_user(user).can_add_subpage()
    )


def _any_of(subqueries) -> Q:
    """``pk`` in any of the subqueries (none: no page)."""
    condition = Q(pk__in=[])
    for subquery in subqueries:
        condition |= Q(pk__in=subquery)
    return condition


def _pages_that_can_have_variants():
    return Page.objects.filter(
        _any_of(m.objects.filter(variant_of__isnull=True).values("pk") for m in variant_models())
    )


class PageVariantsFilterSet(WagtailFilterSet):
    has_variants = django_filters.ChoiceFilter(
        label=_l("Variants"),
        choices=[("yes", _l("With variants")), ("no", _l("Without variants"))],
        empty_label=_l("All pages"),
        method="filter_has_variants",
    )

    class Meta:
        model = Page
        fields = []

    def filter_has_variants(self, queryset, name, value):
        having = _any_of(
            m.objects.filter(variant_of__isnull=False).values("variant_of_id")
            for m in variant_models()
        )
        if value == "yes":
            return queryset.filter(having)
        if value == "no":
            return queryset.exclude(having)
        return queryset


class VariantsColumn(Column):
    cell_template_name = "cms_blocks/admin/variants_cell.html"


class CreateVariantColumn(Column):
    cell_template_name = "cms_blocks/admin/create_variant_cell.html"


class PageVariantsReportView(AdminPermissionMixin, ReportView):
    """Which pages have variants, for which segments, and a "Create variant" action."""

    page_title = _l("Page variants")
    header_icon = "user"
    index_url_name = "cms_blocks_variants:index"
    index_results_url_name = "cms_blocks_variants:index_results"
    filterset_class = PageVariantsFilterSet
    permission_denied_message = _l(
        "The page variants report lists pages you may edit: ask an administrator for "
        "permission to edit pages."
    )
    columns = [
        TitleColumn(
            "title",
            label=_l("Page"),
            accessor="get_admin_display_title",
            get_url=lambda page: reverse("wagtailadmin_pages:edit", args=[page.pk]),
        ),
        Column("url_path", label=_l("Path"), accessor="tailored_path"),
        VariantsColumn("variants", label=_l("Variants")),
        Column("segments", label=_l("Segments"), accessor="tailored_segments"),
        CreateVariantColumn("actions", label=_l("Actions")),
    ]
    list_export = ["id", "title", "tailored_path", "tailored_variant_list", "tailored_segments"]
    export_headings = {
        "tailored_path": _l("Path"),
        "tailored_variant_list": _l("Variants"),
        "tailored_segments": _l("Segments"),
    }

    def has_permission(self) -> bool:
        return PagePermissionPolicy().user_has_any_permission(self.request.user, ["change"])

    def get_filename(self) -> str:
        return "page-variants"

    def as_spreadsheet(self, queryset, spreadsheet_format):
        # (the export is written from every filtered page: each needs its variants too)
        return super().as_spreadsheet(
            self.decorate_paginated_queryset(queryset), spreadsheet_format
        )

    def get_queryset(self):
        editable = PagePermissionPolicy().instances_user_has_permission_for(
            self.request.user, "change"
        )
        return (
            _pages_that_can_have_variants()
            .filter(pk__in=editable.values("pk"))
            .order_by("path")
            .specific(defer=True)
        )

    def decorate_paginated_queryset(self, object_list):
        pages = list(object_list)
        ids = [p.pk for p in pages]
        names = dict(segment_choices())
        found: dict[int, list] = {}
        for model in variant_models():
            for variant in model.objects.filter(variant_of_id__in=ids).order_by("path"):
                found.setdefault(variant.variant_of_id, []).append(variant)
        for page in pages:
            variants = found.get(page.pk, [])
            page.tailored_variants = [
                {
                    "page": v,
                    "for": segments_words(v, names),
                    "url": reverse("wagtailadmin_pages:edit", args=[v.pk]),
                }
                for v in variants
            ]
            slugs = dict.fromkeys(
                s for v in variants for s in (v.variant_segments or []) if isinstance(s, str)
            )
            page.tailored_segments = ", ".join(names.get(s, s) for s in slugs)
            page.tailored_variant_list = "; ".join(
                f"{v['page'].title} ({v['for']})" for v in page.tailored_variants
            )
            page.tailored_path = page.get_url(self.request) or page.url_path
            page.tailored_can_create = can_create_variant(self.request.user, page)
            page.tailored_create_url = reverse("cms_blocks_variants:create", args=[page.pk])
        return pages


# -- create a variant -----------------------------------------------------------------------------
class CreateVariantForm(forms.Form):
    segments = forms.MultipleChoiceField(
        label=_l("Segments"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_l("Visitors in these segments see the variant instead of the page."),
    )
    match = forms.ChoiceField(
        label=_l("Match"),
        choices=[("any", _l("in any of them")), ("all", _l("in all of them"))],
        initial="any",
        widget=forms.RadioSelect,
    )
    title = forms.CharField(label=_l("Title"), max_length=255, required=False)
    slug = forms.SlugField(
        label=_l("Slug"),
        max_length=255,
        required=False,
        help_text=_l("The variant's own address, which redirects to the page's."),
    )

    def __init__(self, *args, page, **kwargs):
        super().__init__(*args, **kwargs)
        self.page = page
        self.fields["segments"].choices = segment_choices()

    def clean(self):
        data = super().clean()
        slugs = data.get("segments") or []
        data["slug"] = data.get("slug") or slugify(f"{self.page.slug}-{'-'.join(slugs)}")[:255]
        names = dict(segment_choices())
        data["title"] = data.get("title") or _("%(title)s (%(segments)s)") % {
            "title": self.page.title,
            "segments": ", ".join(names.get(s, s) for s in slugs),
        }
        if slugs and not Page._slug_is_available(data["slug"], self.page.get_parent()):
            self.add_error(
                "slug",
                _("The slug “%(slug)s” is already used beside this page; choose another.")
                % {"slug": data["slug"]},
            )
        return data


class CreateVariantView(AdminPermissionMixin, WagtailAdminTemplateMixin, FormView):
    """Copy a page as a draft variant for the chosen segments, beside it, then edit it."""

    template_name = "cms_blocks/admin/create_variant.html"
    page_title = _l("Create a page variant")
    header_icon = "user"
    form_class = CreateVariantForm
    permission_denied_message = _l(
        "Creating a variant copies the page beside it: it needs permission to edit the page and "
        "to add pages where it is. Ask an administrator."
    )

    def has_permission(self) -> bool:
        self.page = get_object_or_404(Page, pk=self.kwargs["page_id"]).specific
        if not isinstance(self.page, PageVariantMixin) or self.page.is_variant:
            raise Http404("This page cannot have variants.")
        return can_create_variant(self.request.user, self.page)

    def get_page_subtitle(self):
        return self.page.get_admin_display_title()

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "page": self.page}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "page": self.page}

    def form_valid(self, form):
        data = form.cleaned_data
        variant = CopyPageAction(
            self.page,
            to=self.page.get_parent(),
            update_attrs={
                "title": data["title"],
                "slug": data["slug"],
                "variant_of": self.page,
                "variant_segments": list(data["segments"]),
                "variant_match": data["match"],
                "show_in_menus": False,
            },
            keep_live=False,  # a draft: the editor changes its content, then publishes it
            copy_revisions=False,
            user=self.request.user,
        ).execute()
        messages.success(
            self.request,
            _(
                "Variant “%(title)s” created as a draft for %(segments)s. Change its content, "
                "then publish it: visitors in those segments then see it at “%(page)s”."
            )
            % {
                "title": variant.title,
                "segments": segments_words(variant),
                "page": self.page.get_admin_display_title(),
            },
        )
        return redirect("wagtailadmin_pages:edit", variant.pk)
