"""Decisions over time: accept / reject / withdraw (and other) counts per day or week, from the
anonymous daily tallies, as a chart with a table of the same numbers, and as CSV or XLSX."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from tailored.admin.charts import Chart, Series, line_chart
from tailored.admin.filters import PeriodFilterSet
from tailored.admin.reports import AggregateReportView

from ..models import ConsentRecord, ConsentTally
from .base import PrivacyPermissionMixin

Method = ConsentRecord.Method

# Colour and dash pattern per method: the dash tells the lines apart without colour.
_SERIES_STYLE = {
    Method.BANNER_ACCEPT_ALL: ("#007a5a", ""),
    Method.BANNER_REJECT_ALL: ("#c2410c", "7 4"),
    Method.WITHDRAW: ("#a21caf", "2 3"),
    Method.BANNER_CUSTOM: ("#1d4ed8", "9 3 2 3"),
    Method.SETTINGS_PAGE: ("#a16207", "4 2"),
    Method.API: ("#0e7490", "1 3"),
    # Through the API: the banner's colour for the same choice, a dotted line.
    Method.API_ACCEPT_ALL: ("#007a5a", "1 2"),
    Method.API_REJECT_ALL: ("#c2410c", "1 2"),
    Method.API_WITHDRAW: ("#a21caf", "1 2"),
    Method.GPC: ("#57534e", "12 4"),
}
_OTHER_STYLE = ("#6b7280", "3 3")
# Longer periods are counted per week (starting on Monday) to keep the chart readable.
MAX_DAILY_BUCKETS = 92
MAX_PERIOD_DAYS = 731


@dataclass(frozen=True)
class MethodCounts:
    method: str
    label: str
    colour: str
    dash: str
    counts: list[int]


@dataclass(frozen=True)
class DecisionChart:
    """Counts of decisions per method and bucket (day or week), and their chart."""

    start: date
    end: date
    weekly: bool
    buckets: list[date]
    series: list[MethodCounts]
    totals: list[int]

    @property
    def rows(self) -> list[tuple[date, list[int], int]]:
        return [
            (bucket, [s.counts[i] for s in self.series], self.totals[i])
            for i, bucket in enumerate(self.buckets)
        ]

    @property
    def method_totals(self) -> list[int]:
        return [sum(s.counts) for s in self.series]

    @property
    def grand_total(self) -> int:
        return sum(self.totals)

    @cached_property
    def svg(self) -> Chart:
        return line_chart(
            [b.isoformat() for b in self.buckets],
            [Series(s.label, s.counts, s.colour, s.dash, key=s.method) for s in self.series],
            title=str(_("Consent decisions over time, by method")),
        )


def decision_chart(start: date, end: date) -> DecisionChart:
    """Counts of decisions per method between ``start`` and ``end`` (inclusive), from the
    anonymous daily tallies."""
    weekly = (end - start).days + 1 > MAX_DAILY_BUCKETS
    first = start - timedelta(days=start.weekday()) if weekly else start
    step = 7 if weekly else 1
    buckets = [first + timedelta(days=d) for d in range(0, (end - first).days + 1, step)]
    index = {b: i for i, b in enumerate(buckets)}

    counts: dict[str, list[int]] = {}
    tallies = ConsentTally.objects.filter(day__range=(start, end))
    for day, method, total in tallies.values_list("day", "method", "count"):
        bucket = day - timedelta(days=day.weekday()) if weekly else day
        counts.setdefault(method, [0] * len(buckets))[index[bucket]] += total

    order = list(_SERIES_STYLE)
    methods = sorted(counts, key=lambda m: (order.index(m) if m in order else len(order), m))
    labels = dict(Method.choices)
    series = [
        MethodCounts(method, str(labels.get(method, method)), *_style(method), counts[method])
        for method in methods
    ]
    totals = [sum(counts[m][i] for m in methods) for i in range(len(buckets))]
    return DecisionChart(start, end, weekly, buckets, series, totals)


def _style(method: str) -> tuple[str, str]:
    return _SERIES_STYLE.get(method, _OTHER_STYLE)


class DecisionsFilterSet(PeriodFilterSet):
    max_days = MAX_PERIOD_DAYS
    default_days = 30


class DecisionsView(PrivacyPermissionMixin, AggregateReportView):
    """Accept / reject / withdraw (and other) counts over time: inline SVG and a table, the
    period as a filter. An invalid period falls back to the last 30 days and says why."""

    template_name = "consent/admin/report.html"
    results_template_name = "consent/admin/decisions_results.html"
    page_title = _("Decisions over time")
    header_icon = "tasks"
    index_url_name = "consent_privacy:decisions"
    index_results_url_name = "consent_privacy:decisions_results"
    filterset_class = DecisionsFilterSet
    presets = ((30, _("Last 30 days")), (90, _("Last 90 days")), (365, _("Last 12 months")))
    list_export = ["day", "total"]  # the methods in the period are added between them

    @cached_property
    def chart(self) -> DecisionChart:
        start, end = self.filters.get_period()
        chart = decision_chart(start, end)
        self.list_export = ["week" if chart.weekly else "day"]
        self.list_export += [s.method for s in chart.series] + ["total"]
        return chart

    def get_queryset(self):
        return self.chart.rows

    def to_row_dict(self, item) -> dict:
        bucket, counts, total = item
        row = {self.list_export[0]: bucket}
        row.update(zip((s.method for s in self.chart.series), counts, strict=True))
        row["total"] = total
        return row

    def get_filename(self) -> str:
        return f"consent-decisions-{self.chart.start}-{self.chart.end}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        today = timezone.localdate()
        context.update(
            chart=self.chart,
            start=self.chart.start,
            end=self.chart.end,
            today=today.isoformat(),
            presets=[
                {"label": label, "start": (today - timedelta(days=days - 1)).isoformat()}
                for days, label in self.presets
            ],
        )
        return context
