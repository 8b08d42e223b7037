"""The privacy officer's screens in the Wagtail admin (registered in ``wagtail_hooks``).

The consent log, the decision counts over time, verification of the log's hash chain,
data-subject requests (export, erasure) and the record of processing activities (Art. 30).
Each view parses its input, calls one function of :mod:`consent.privacy` or reads the models,
and shapes the output. Every view requires the permission ``consent.view_consent_log`` and
answers 403 without it.
"""

import csv
import json
import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.views.mixins import Echo
from wagtail.admin.views.reports import ReportView
from wagtail.admin.widgets import AdminDateInput
from wagtail.admin.widgets.button import Button

from .conf import get_setting
from .hashing import KEY_LENGTH_HEX
from .models import ChainHead, ConsentRecord, ConsentTally, ErasureRequest
from .policy import NECESSARY
from .privacy import csv_safe_cell as csv_cell
from .privacy import erase_visitor, export_csv, export_visitor, verify_log
from .processing import processing_record

logger = logging.getLogger(__name__)

PERMISSION = "consent.view_consent_log"
Method = ConsentRecord.Method

_KEY_RE = re.compile(rf"^[0-9a-fA-F]{{{KEY_LENGTH_HEX}}}$")


def can_view_privacy(user) -> bool:
    """Whether ``user`` may use the privacy screens (superusers may)."""
    return user.has_perm(PERMISSION)


def validate_visitor_key(value: str) -> None:
    if not _KEY_RE.match(value):
        raise ValidationError(
            _("A pseudonymous id is %(n)d hexadecimal characters."),
            code="invalid",
            params={"n": KEY_LENGTH_HEX},
        )


def forbidden(request) -> TemplateResponse:
    """A 403 page in the admin's furniture. (Raising ``PermissionDenied`` would not do: the
    admin's ``require_admin_access`` turns it into a redirect to the dashboard.)"""
    title = _("Permission denied")
    return TemplateResponse(
        request,
        "consent/admin/forbidden.html",
        {"header_title": title, "page_title": title, "header_icon": "lock"},
        status=403,
    )


class PrivacyPermissionMixin:
    """Refuse (403) anyone without ``consent.view_consent_log``, whatever the HTTP method."""

    def dispatch(self, request, *args, **kwargs):
        if not can_view_privacy(request.user):
            return forbidden(request)
        return super().dispatch(request, *args, **kwargs)


class PrivacyView(PrivacyPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    header_icon = "lock"

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]


# -- 1. the consent log ----------------------------------------------------------------------
# Without JSON containment (SQLite, the embedded demo) the purpose filter matches in Python
# over at most this many of the newest records that pass the other filters.
PURPOSE_SCAN_LIMIT = 10_000


def with_purpose(queryset: QuerySet, purpose: str, fields: list[str]) -> QuerySet:
    """Records whose ``granted`` or ``denied`` list (``fields``) contains ``purpose``."""
    if connections[queryset.db].features.supports_json_field_contains:
        condition = Q()
        for field in fields:
            condition |= Q(**{f"{field}__contains": [purpose]})
        return queryset.filter(condition)
    rows = queryset.order_by("-seq").values_list("pk", *fields)[:PURPOSE_SCAN_LIMIT]
    matching = [pk for pk, *lists in rows if any(purpose in (items or []) for items in lists)]
    return queryset.filter(pk__in=matching)


def _optional_purposes() -> list[tuple[str, str]]:
    return [(p, p) for p in get_setting("CONSENT_PURPOSES") if p != NECESSARY]


class ConsentLogFilterSet(WagtailFilterSet):
    visitor_key = django_filters.CharFilter(
        label=_("Pseudonymous id"),
        method="filter_visitor_key",
        max_length=64,
        validators=[validate_visitor_key],
    )
    created_at = django_filters.DateFromToRangeFilter(label=_("Date"), widget=DateRangePickerWidget)
    method = django_filters.ChoiceFilter(
        label=_("Method"),
        choices=Method.choices,
        widget=forms.RadioSelect,
        empty_label=_("All"),
    )
    purpose = django_filters.ChoiceFilter(
        label=_("Purpose"),
        choices=_optional_purposes,
        method="filter_purpose",
        widget=forms.RadioSelect,
        empty_label=_("All"),
    )
    decision = django_filters.ChoiceFilter(
        label=_("Decision on that purpose"),
        choices=[("granted", _("Granted")), ("denied", _("Denied"))],
        method="filter_nothing",  # read by filter_purpose
        widget=forms.RadioSelect,
        empty_label=_("Granted or denied"),
    )

    class Meta:
        model = ConsentRecord
        fields = []

    def filter_visitor_key(self, queryset, name, value):
        return queryset.filter(visitor_key=value.lower())

    def filter_purpose(self, queryset, name, value):
        decision = self.form.cleaned_data.get("decision")
        return with_purpose(queryset, value, [decision] if decision else ["granted", "denied"])

    def filter_nothing(self, queryset, name, value):
        return queryset


def _timestamp(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


class ConsentLogView(PrivacyPermissionMixin, ReportView):
    """The consent log, filtered and paginated, and its CSV export (``?export=csv``)."""

    model = ConsentRecord
    page_title = _("Consent log")
    header_icon = "list-ul"
    index_url_name = "consent_privacy:log"
    index_results_url_name = "consent_privacy:log_results"
    filterset_class = ConsentLogFilterSet
    default_ordering = "-seq"
    paginate_by = 50
    verbose_name_plural = _("consent records")
    columns = [
        Column("seq", label="#", sort_key="seq"),
        Column(
            "created_at",
            label=_("Time"),
            accessor=lambda r: _timestamp(r.created_at),
            sort_key="created_at",
        ),
        Column("visitor_key", label=_("Pseudonymous id")),
        Column("method", label=_("Method"), accessor="get_method_display"),
        Column("granted", label=_("Granted"), accessor=lambda r: ", ".join(r.granted)),
        Column("denied", label=_("Denied"), accessor=lambda r: ", ".join(r.denied)),
        Column("notice_version", label=_("Notice")),
        Column("language", label=_("Language")),
        Column("gpc", label=_("GPC"), accessor=lambda r: _("sent") if r.gpc else ""),
    ]
    FORMATS = (ReportView.FORMAT_CSV,)
    list_export = [
        "seq",
        "created_at",
        "expires_at",
        "visitor_key",
        "method",
        "granted",
        "denied",
        "notice_version",
        "notice_hash",
        "language",
        "gpc",
        "prev_hash",
        "record_hash",
    ]

    def get(self, request, *args, **kwargs):
        if self.is_export:
            return self.export_csv(self.get_queryset())
        return super().get(request, *args, **kwargs)

    def get_filtered_queryset(self):
        return self.get_queryset()  # get_queryset() already applies the filters

    def filter_queryset(self, queryset):
        # An invalid filter (a mistyped id) shows nothing, never the unfiltered log.
        if self.filters and not self.filters.is_valid():
            return queryset.none()
        return super().filter_queryset(queryset)

    @cached_property
    def header_more_buttons(self):
        return [
            Button(_("Download CSV"), url=self.csv_export_url, icon_name="download", priority=100)
        ]

    def export_csv(self, queryset: QuerySet) -> StreamingHttpResponse:
        logger.info("Consent log exported as CSV by user %s", self.request.user.pk)
        response = StreamingHttpResponse(self._csv_rows(queryset), content_type="text/csv")
        filename = f"consent-log-{timezone.now():%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        add_never_cache_headers(response)
        return response

    def _csv_rows(self, queryset: QuerySet):
        writer = csv.writer(Echo())
        yield writer.writerow(self.list_export)
        for record in queryset.iterator(chunk_size=2000):
            yield writer.writerow(
                [csv_cell(self._export_value(record, f)) for f in self.list_export]
            )

    @staticmethod
    def _export_value(record: ConsentRecord, field: str):
        value = getattr(record, field)
        if field in ("created_at", "expires_at"):
            return value.isoformat()
        if field in ("granted", "denied"):
            return " ".join(value)
        return value


# -- 2. decisions over time --------------------------------------------------------------------
# Colour and dash pattern per method: the dash tells the lines apart without colour.
_SERIES_STYLE = {
    Method.BANNER_ACCEPT_ALL: ("#007a5a", ""),
    Method.BANNER_REJECT_ALL: ("#c2410c", "7 4"),
    Method.WITHDRAW: ("#a21caf", "2 3"),
    Method.BANNER_CUSTOM: ("#1d4ed8", "9 3 2 3"),
    Method.SETTINGS_PAGE: ("#a16207", "4 2"),
    Method.API: ("#0e7490", "1 3"),
    Method.GPC: ("#57534e", "12 4"),
}
_OTHER_STYLE = ("#6b7280", "3 3")
# Longer periods are counted per week (starting on Monday) to keep the chart readable.
MAX_DAILY_BUCKETS = 92
MAX_PERIOD_DAYS = 731


@dataclass(frozen=True)
class Series:
    method: str
    label: str
    colour: str
    dash: str
    counts: list[int]
    points: str
    markers: list[tuple[str, str]]


@dataclass(frozen=True)
class Chart:
    """An SVG line chart laid out on the server: coordinates are preformatted strings, so
    templates never localise them."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    weekly: bool
    buckets: list[date]
    series: list[Series]
    y_ticks: list[tuple[int, str]]
    x_ticks: list[tuple[str, str]]
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


def _nice_ceiling(value: int) -> tuple[int, int]:
    """(axis maximum, tick step): about four steps of 1, 2 or 5 times a power of ten."""
    value = max(value, 1)
    raw = value / 4
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    return -(-value // step) * step, step


def decision_chart(start: date, end: date, width: int = 760, height: int = 300) -> Chart:
    """Counts of decisions per method between ``start`` and ``end`` (inclusive), from the
    anonymous daily tallies, laid out as an SVG line chart."""
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
    totals = [sum(counts[m][i] for m in methods) for i in range(len(buckets))]
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max, y_step = _nice_ceiling(max((max(c) for c in counts.values()), default=0))

    def x(i: int) -> float:
        return left + (i + 0.5) * plot_w / len(buckets)

    def y(v: int) -> float:
        return top + plot_h * (1 - v / y_max)

    series = []
    for method in methods:
        colour, dash = _SERIES_STYLE.get(method, _OTHER_STYLE)
        points = [(f"{x(i):.1f}", f"{y(v):.1f}") for i, v in enumerate(counts[method])]
        series.append(
            Series(
                method=method,
                label=str(labels.get(method, method)),
                colour=colour,
                dash=dash,
                counts=counts[method],
                points=" ".join(f"{px},{py}" for px, py in points),
                markers=points if len(buckets) <= 62 else [],
            )
        )
    tick_every = max(1, -(-len(buckets) // 8))
    return Chart(
        width=width,
        height=height,
        left=left,
        right=width - right,
        top=top,
        bottom=height - bottom,
        weekly=weekly,
        buckets=buckets,
        series=series,
        y_ticks=[(v, f"{y(v):.1f}") for v in range(0, y_max + 1, y_step)],
        x_ticks=[
            (b.isoformat(), f"{x(i):.1f}") for i, b in enumerate(buckets) if i % tick_every == 0
        ],
        totals=totals,
    )


class PeriodForm(forms.Form):
    start = forms.DateField(label=_("From"), widget=AdminDateInput)
    end = forms.DateField(label=_("To"), widget=AdminDateInput)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                raise ValidationError(_("The period must start before it ends."))
            if (end - start).days >= MAX_PERIOD_DAYS:
                raise ValidationError(
                    _("Choose a period of at most %(days)d days."), params={"days": MAX_PERIOD_DAYS}
                )
        return cleaned


class DecisionsView(PrivacyView):
    """Accept / reject / withdraw (and other) counts over time: inline SVG and a table."""

    template_name = "consent/admin/decisions.html"
    page_title = _("Decisions over time")
    header_icon = "tasks"
    presets = ((30, _("Last 30 days")), (90, _("Last 90 days")), (365, _("Last 12 months")))

    def get_context_data(self, **kwargs):
        today = timezone.now().date()
        start, end = today - timedelta(days=29), today
        form = PeriodForm(self.request.GET if self.request.GET else None)
        if form.is_bound and form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        elif not form.is_bound:
            form = PeriodForm(initial={"start": start, "end": end})
        presets = [
            {"label": label, "start": (today - timedelta(days=days - 1)).isoformat()}
            for days, label in self.presets
        ]
        return super().get_context_data(
            form=form,
            start=start,
            end=end,
            today=today.isoformat(),
            presets=presets,
            chart=decision_chart(start, end),
            media=form.media,
            **kwargs,
        )


# -- 3. verification of the hash chain -----------------------------------------------------------
class VerifyView(PrivacyView):
    """Run :func:`consent.privacy.verify_log` on request (POST) and show the outcome."""

    template_name = "consent/admin/verify.html"
    page_title = _("Verify the consent log")
    header_icon = "success"

    def post(self, request, *args, **kwargs):
        checked, problems = verify_log()
        head = ChainHead.objects.filter(pk=1).first()
        logger.info(
            "Consent log verified by user %s: %d records, %d problems",
            request.user.pk,
            checked,
            len(problems),
        )
        context = self.get_context_data(
            verified=True, checked=checked, problems=[str(p) for p in problems], head=head
        )
        return self.render_to_response(context)


# -- 4. data-subject requests -----------------------------------------------------------------
class VisitorKeyForm(forms.Form):
    visitor_key = forms.CharField(
        label=_("Pseudonymous id"),
        max_length=64,
        validators=[validate_visitor_key],
        help_text=_(
            "The visitor's pseudonymous id: %(n)d hexadecimal characters, shown to them on "
            "their privacy settings page."
        )
        % {"n": KEY_LENGTH_HEX},
    )

    def clean_visitor_key(self) -> str:
        return self.cleaned_data["visitor_key"].lower()


class DataSubjectRequestsView(PrivacyView):
    """Access, portability and erasure for one pseudonymous id, all by POST: ``action`` is
    ``json`` or ``csv`` (download), ``erase`` (the confirmation step) or ``confirm_erase``."""

    template_name = "consent/admin/requests.html"
    confirm_template_name = "consent/admin/confirm_erase.html"
    page_title = _("Data-subject requests")
    header_icon = "user"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", VisitorKeyForm())
        return super().get_context_data(
            erasures=ErasureRequest.objects.order_by("-requested_at")[:10], **kwargs
        )

    def post(self, request, *args, **kwargs):
        form = VisitorKeyForm(request.POST)
        action = request.POST.get("action")
        if not form.is_valid() or action not in ("json", "csv", "erase", "confirm_erase"):
            return self.render_to_response(self.get_context_data(form=form))
        key = form.cleaned_data["visitor_key"]
        if action == "erase":
            return self.confirm_erasure(form, key)
        if action == "confirm_erase":
            return self.erase(key)
        return self.export(key, action)

    def export(self, key: str, fmt: str) -> HttpResponse:
        data = export_visitor(key)
        logger.info(
            "Data-subject export (%s) by user %s: %d rows",
            fmt,
            self.request.user.pk,
            sum(len(rows) for rows in data.values()),
        )
        if fmt == "csv":
            response = HttpResponse(export_csv(data), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(
                json.dumps(data, indent=2, default=str), content_type="application/json"
            )
        response["Content-Disposition"] = f'attachment; filename="privacy-export-{key}.{fmt}"'
        add_never_cache_headers(response)
        return response

    def confirm_erasure(self, form: VisitorKeyForm, key: str) -> HttpResponse:
        held = {table: len(rows) for table, rows in export_visitor(key).items()}
        held.pop("visitor_key", None)
        self.page_title = _("Erase a visitor's data")
        self.header_icon = "bin"
        return self.response_class(
            request=self.request,
            template=[self.confirm_template_name],
            context=self.get_context_data(
                form=form, key=key, held=held, holds_anything=any(held.values())
            ),
            using=self.template_engine,
        )

    def erase(self, key: str) -> HttpResponse:
        erasure = erase_visitor(key)
        logger.info("Erasure %s carried out by user %s", erasure.pk, self.request.user.pk)
        removed = ", ".join(f"{name}: {count}" for name, count in sorted(erasure.result.items()))
        messages.success(
            self.request,
            _("The visitor's data was erased (%(removed)s). Consent records are kept as proof.")
            % {"removed": removed or _("nothing else was held")},
        )
        return redirect("consent_privacy:requests")


# -- 5. record of processing activities (Art. 30) ------------------------------------------------
class ProcessingRecordView(PrivacyView):
    """The record of processing activities (GDPR Art. 30), generated from configuration."""

    template_name = "consent/admin/processing.html"
    page_title = _("Record of processing")
    header_icon = "doc-full"

    def get_context_data(self, **kwargs):
        return super().get_context_data(record=processing_record(), **kwargs)
