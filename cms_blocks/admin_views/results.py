"""Results for editors: the segment dashboard, one segment over time, and impressions, clicks
and conversions per block and variant. Wagtail reports over a period and conversion events
(filters), each with a chart above its table and CSV / XLSX exports of the same rows.

Every report runs a fixed number of queries however many segments, days or variants it shows
(the segment reports read the membership history once, page titles come in one query).
"""

import re

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.http import Http404
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from wagtail.admin.ui.tables import Column, Table, TitleColumn
from wagtail.models import Page

from segments.api import report, segment_choices
from tailored.admin.charts import Bar, Series, bar_chart, line_chart, percent_tick
from tailored.admin.filters import PeriodFilterSet, PeriodForm
from tailored.admin.permissions import AdminPermissionMixin
from tailored.admin.reports import AggregateReportView

from ..conf import get_setting
from ..naming import block_variant_names, unknown_variant_name
from ..permissions import VIEW_RESULTS

EVENT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_PERIOD_DAYS = 366


class ResultsForm(PeriodForm):
    def clean_conversions(self) -> list[str]:
        raw = self.cleaned_data.get("conversions") or ""
        names = [n.strip() for n in raw.split(",") if n.strip()]
        if not names:
            return list(get_setting("CMS_BLOCKS_CONVERSION_EVENTS"))
        for name in names:
            if not EVENT_NAME_RE.fullmatch(name):
                raise forms.ValidationError(
                    _("“%(name)s” is not an event name (lowercase letters, digits, _)."),
                    params={"name": name},
                )
        return names[:10]


class ResultsFilterSet(PeriodFilterSet):
    max_days = MAX_PERIOD_DAYS
    default_days = 30

    conversions = django_filters.CharFilter(
        label=_l("Conversion events"),
        method="filter_period",  # read by the report, never a queryset filter
        max_length=300,
        help_text=_l("Event names, separated by commas (e.g. purchase, signup)."),
    )

    class Meta:
        form = ResultsForm
        fields = []

    def get_conversions(self) -> list[str]:
        if self.is_valid():
            return self.form.cleaned_data["conversions"]
        return list(get_setting("CMS_BLOCKS_CONVERSION_EVENTS"))


class BlockResultsFilterSet(ResultsFilterSet):
    page = django_filters.CharFilter(
        label=_l("Page id"),
        method="filter_period",  # read by the report, never a queryset filter
        validators=[RegexValidator(r"\A[0-9]{1,10}\Z", _l("A page id is a number."))],
        help_text=_l("Only the blocks of this page."),
    )

    class Meta:
        form = ResultsForm
        fields = []

    def get_page(self) -> str | None:
        return (self.form.cleaned_data.get("page") or None) if self.is_valid() else None


def _percent(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _ratio(value) -> str:
    return "" if value is None else f"{value:.4f}"


class ResultsView(AdminPermissionMixin, AggregateReportView):
    """Base of the results reports: permission ``cms_blocks.view_results``, a period and
    conversion events. An invalid filter answers 400 with the reasons on the page (and no
    rows, nor an export)."""

    required_permissions = [VIEW_RESULTS]
    template_name = "cms_blocks/admin/results_report.html"
    header_icon = "table"
    filterset_class = ResultsFilterSet
    # Rates in CSV as ratios with four decimals (XLSX keeps the number).
    custom_field_preprocess = {
        "conversion_rate": {AggregateReportView.FORMAT_CSV: _ratio},
        "click_rate": {AggregateReportView.FORMAT_CSV: _ratio},
    }

    @cached_property
    def valid(self) -> bool:
        return self.filters.is_valid()

    @cached_property
    def period(self) -> tuple:
        return self.filters.get_period()

    @cached_property
    def conversions(self) -> list[str]:
        return self.filters.get_conversions()

    def get(self, request, *args, **kwargs):
        if not self.valid:
            self.is_export = False  # the page with the reasons instead
        return super().get(request, *args, **kwargs)

    def render_to_response(self, context, **response_kwargs):
        if not self.valid:
            response_kwargs.setdefault("status", 400)
        return super().render_to_response(context, **response_kwargs)

    @cached_property
    def query(self) -> str:
        """The filters as a query string, for links to another report over the same period."""
        params = self.request.GET.copy()
        for name in ("export", "_w_filter_fragment", self.page_kwarg):
            params.pop(name, None)
        return params.urlencode()

    def get_queryset(self):
        return self.rows() if self.valid else []

    def rows(self) -> list[dict]:
        raise NotImplementedError

    def export_row(self, row: dict) -> dict:
        """The period as the last two columns of every exported row."""
        return {"start": self.period[0], "end": self.period[1]}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            rows=context["object_list"],
            valid=self.valid,
            start=self.period[0],
            end=self.period[1],
            conversions=", ".join(self.conversions),
            query=self.query,
        )
        return context


# -- every segment -------------------------------------------------------------------------------
class SegmentTable(Table):
    def get_row_attrs(self, instance):
        return {**super().get_row_attrs(instance), "data-segment": instance["slug"]}


class SegmentResultsIndexView(ResultsView):
    """Every segment: size now, members, entries, exits and conversion rate in the period."""

    results_template_name = "cms_blocks/admin/results_index.html"
    page_title = _l("Segment results")
    index_url_name = "cms_blocks_results:index"
    index_results_url_name = "cms_blocks_results:index_results"
    table_class = SegmentTable
    columns = [
        TitleColumn("name", label=_l("Segment"), get_url=lambda row: row["url"]),
        Column(
            "size",
            label=_l("Size now"),
            accessor=lambda row: _("unavailable") if row["size"] is None else row["size"],
        ),
        Column("members", label=_l("Members")),
        Column("entries", label=_l("Entries")),
        Column("exits", label=_l("Exits")),
        Column("converted", label=_l("Converted")),
        Column("rate_shown", label=_l("Conversion rate")),
    ]
    list_export = [
        "segment",
        "name",
        "size_now",
        "members",
        "entries",
        "exits",
        "converted",
        "conversion_rate",
        "start",
        "end",
    ]

    def rows(self) -> list[dict]:
        reports = report()
        start, end = self.period
        sizes = reports.current_sizes()
        flows = reports.entries_and_exits_by_segment(start, end)
        rates = reports.conversion_rates(start, end, self.conversions)
        query = self.query
        rows = []
        for slug, name in segment_choices():
            entries, exits = flows.get(slug, (0, 0))
            conv = rates.get(slug, {"members": 0, "converted": 0, "rate": None})
            url = reverse("cms_blocks_results:segment", args=[slug])
            rows.append(
                {
                    "slug": slug,
                    "name": name,
                    "url": f"{url}?{query}" if query else url,
                    "size": None if sizes is None else sizes.get(slug, 0),
                    "members": conv["members"],
                    "entries": entries,
                    "exits": exits,
                    "converted": conv["converted"],
                    "rate": conv["rate"],
                    "rate_shown": _percent(conv["rate"]),
                }
            )
        return rows

    def to_row_dict(self, item: dict) -> dict:
        return {
            "segment": item["slug"],
            "name": item["name"],
            "size_now": "" if item["size"] is None else item["size"],
            "members": item["members"],
            "entries": item["entries"],
            "exits": item["exits"],
            "converted": item["converted"],
            "conversion_rate": item["rate"],
            **self.export_row(item),
        }

    def get_filename(self) -> str:
        return f"segment-results-{self.period[1]}"

    def get_table_kwargs(self):
        return {**super().get_table_kwargs(), "caption": _("Segment results")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["chart"] = bar_chart(
            [Bar(r["name"], r["rate"] or 0, r["rate_shown"]) for r in context["rows"]],
            title=_("Conversion rate by segment"),
            tick_label=percent_tick,
        )
        return context


# -- one segment ---------------------------------------------------------------------------------
class SegmentResultsDetailView(ResultsView):
    """One segment: size over time, entries and exits, top pages, conversion rate."""

    results_template_name = "cms_blocks/admin/results_segment.html"
    columns = [
        Column("day", label=_l("Day"), accessor=lambda row: row["day"].isoformat()),
        Column("members", label=_l("Members")),
        Column("entries", label=_l("Entries")),
        Column("exits", label=_l("Exits")),
    ]
    list_export = ["day", "members", "entries", "exits"]

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.slug = kwargs["slug"]

    @cached_property
    def name(self) -> str:
        names = dict(segment_choices())
        if self.slug not in names:
            raise Http404
        return names[self.slug]

    def get(self, request, *args, **kwargs):
        self.name  # noqa: B018 (an unknown segment is a 404 before anything is computed)
        return super().get(request, *args, **kwargs)

    def get_page_title(self):
        return _("Results: %(name)s") % {"name": self.name}

    def get_index_url(self):
        return reverse("cms_blocks_results:segment", args=[self.slug])

    def get_index_results_url(self):
        return reverse("cms_blocks_results:segment_results", args=[self.slug])

    def get_breadcrumbs_items(self):
        index = {"url": reverse("cms_blocks_results:index"), "label": _("Segment results")}
        return [*self.breadcrumbs_items, index, {"url": "", "label": self.name}]

    def rows(self) -> list[dict]:
        reports = report()
        start, end = self.period
        sizes = reports.size_over_time(self.slug, start, end)
        flows = reports.entries_and_exits(self.slug, start, end)
        return [
            {"day": day, "members": size, "entries": entries, "exits": exits}
            for (day, size), (_d, entries, exits) in zip(sizes, flows, strict=True)
        ]

    def to_row_dict(self, item: dict) -> dict:
        return item

    def get_filename(self) -> str:
        return f"segment-{self.slug}-{self.period[1]}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["segment_name"] = self.name
        if not self.valid:
            return context
        reports = report()
        start, end = self.period
        series = context["rows"]
        labels = [row["day"].strftime("%m-%d") for row in series]
        conversion = reports.conversion_rate(self.slug, start, end, self.conversions)
        conversion["rate_shown"] = _percent(conversion["rate"])
        context.update(
            size_chart=line_chart(
                labels,
                [Series(_("Members"), [row["members"] for row in series])],
                title=_("Members at the end of each day"),
            ),
            flow_chart=line_chart(
                labels,
                [
                    Series(_("Entries"), [row["entries"] for row in series]),
                    Series(_("Exits"), [row["exits"] for row in series]),
                ],
                title=_("Visitors entering and leaving the segment each day"),
            ),
            top_pages=reports.top_pages(self.slug, start, end),
            conversion=conversion,
        )
        return context


# -- blocks and variants -------------------------------------------------------------------------
class VariantTable(Table):
    def get_row_classname(self, instance):
        return "tailored-results__all" if instance["all"] else ""


class BlockReportView(ResultsView):
    """Impressions, clicks and conversions per block, variant and segment."""

    results_template_name = "cms_blocks/admin/results_blocks.html"
    page_title = _l("Block and variant results")
    filterset_class = BlockResultsFilterSet
    index_url_name = "cms_blocks_block_results:index"
    index_results_url_name = "cms_blocks_block_results:index_results"
    table_class = VariantTable
    columns = [
        Column("page", label=_l("Page")),
        Column("block", label=_l("Block"), accessor=lambda row: row["block"][:12]),
        Column("variant", label=_l("Variant")),
        Column("segment", label=_l("Segment")),
        Column("impressions", label=_l("Impressions")),
        Column("clicks", label=_l("Clicks")),
        Column("click_rate", label=_l("Click rate")),
        Column("visitors", label=_l("Visitors")),
        Column("conversions", label=_l("Converted")),
        Column("conversion_rate", label=_l("Conversion rate")),
    ]
    list_export = [
        "page",
        "block",
        "variant",
        "variant_key",
        "segment",
        "impressions",
        "clicks",
        "click_rate",
        "visitors",
        "converted_visitors",
        "conversion_rate",
        "start",
        "end",
    ]

    def rows(self) -> list[dict]:
        start, end = self.period
        found = report().block_report(
            start,
            end,
            self.conversions,
            window=float(get_setting("CMS_BLOCKS_ATTRIBUTION_DAYS")) * 86400,
            page=self.filters.get_page(),
        )
        names = dict(segment_choices())
        # Every page in one query per page type (events name pages by id), and the names of
        # their blocks' variants (events key them by stable ids).
        ids = {int(r.page) for r in found if r.page.isdigit()}
        pages = {p.pk: p for p in Page.objects.filter(pk__in=ids).specific()}
        variant_names = block_variant_names(pages.values())
        return [
            {
                "page_id": r.page,
                "page": pages[int(r.page)].get_admin_display_title()
                if r.page.isdigit() and int(r.page) in pages
                else r.page,
                "block": r.block,
                "variant_key": r.variant,
                "variant": variant_names.get((r.page, r.block, r.variant))
                or unknown_variant_name(r.variant),
                "segment_slug": r.segment,
                "segment": names.get(r.segment, r.segment) if r.segment else _("All visitors"),
                "all": not r.segment,
                "impressions": r.impressions,
                "clicks": r.clicks,
                "conversions": r.conversions,
                "visitors": len(r.visitors),
                "click_rate": _percent(r.click_rate),
                "conversion_rate": _percent(r.conversion_rate),
                "click_ratio": r.click_rate,
                "conversion_ratio": r.conversion_rate,
            }
            for r in found
        ]

    def to_row_dict(self, item: dict) -> dict:
        return {
            "page": item["page_id"],
            "block": item["block"],
            "variant": item["variant"],
            "variant_key": item["variant_key"],
            "segment": item["segment_slug"] or "(all visitors)",
            "impressions": item["impressions"],
            "clicks": item["clicks"],
            "click_rate": item["click_ratio"],
            "visitors": item["visitors"],
            "converted_visitors": item["conversions"],
            "conversion_rate": item["conversion_ratio"],
            **self.export_row(item),
        }

    def get_filename(self) -> str:
        return f"block-results-{self.period[1]}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["chart"] = bar_chart(
            [
                Bar(
                    f"{r['page']} · {r['block'][:8]} · {r['variant']}",
                    r["click_ratio"] or 0,
                    r["click_rate"],
                )
                for r in context["rows"]
                if r["all"]
            ],
            title=_("Click rate per variant (all visitors)"),
            tick_label=percent_tick,
        )
        return context
