"""The consent log: every record, filtered and paginated, and its CSV and XLSX exports."""

import logging

import django_filters
from django import forms
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.admin.ui.tables import Column

from tailored.admin.filters import DateRangeFilter
from tailored.admin.reports import ReportView

from ..conf import get_setting
from ..identity import validate_visitor_key
from ..models import ConsentRecord
from ..policy import NECESSARY
from . import audit
from .base import PrivacyPermissionMixin

logger = logging.getLogger(__name__)

Method = ConsentRecord.Method

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
    created_at = DateRangeFilter(label=_("Date"), widget=DateRangePickerWidget)
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


def _words(values: list[str]) -> str:
    return " ".join(values)


def _isoformat(value) -> str:
    return value.isoformat()


class ConsentLogView(PrivacyPermissionMixin, ReportView):
    """The consent log, filtered and paginated, and its exports (``?export=csv`` or ``xlsx``)
    with every field, hashes included, under the field names as headings."""

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
    # The field names are the headings: the export is read by tools as much as by people.
    export_headings = {field: field for field in list_export}
    custom_field_preprocess = {
        "created_at": {ReportView.FORMAT_CSV: _isoformat},
        "expires_at": {ReportView.FORMAT_CSV: _isoformat},
        "granted": {ReportView.FORMAT_CSV: _words, ReportView.FORMAT_XLSX: _words},
        "denied": {ReportView.FORMAT_CSV: _words, ReportView.FORMAT_XLSX: _words},
    }

    def get_filtered_queryset(self):
        return self.get_queryset()  # get_queryset() already applies the filters

    def filter_queryset(self, queryset):
        # An invalid filter (a mistyped id) shows nothing, never the unfiltered log.
        if self.filters and not self.filters.is_valid():
            return queryset.none()
        return super().filter_queryset(queryset)

    def get_filename(self) -> str:
        return f"consent-log-{timezone.now():%Y-%m-%d}"

    def as_spreadsheet(self, queryset, spreadsheet_format: str) -> HttpResponse:
        logger.info(
            "Consent log exported as %s by user %s", spreadsheet_format, self.request.user.pk
        )
        audit.log_privacy_action(
            audit.EXPORT_LOG,
            self.request.user,
            title=str(_("Consent log")),
            data={"format": spreadsheet_format, "filters": self.filters_in_force()},
        )
        return super().as_spreadsheet(queryset, spreadsheet_format)

    def filters_in_force(self) -> dict[str, str]:
        """The filters of this export as typed, for the audit log: a pseudonymous id only as
        its first characters."""
        if not self.filters:
            return {}
        found = {}
        for bound in self.filters.form:
            value = bound.value()
            values = value if isinstance(value, list | tuple) else [value]
            shown = " to ".join(str(v) for v in values if v not in (None, ""))[:64]
            if shown:
                found[bound.name] = audit.short_key(shown) if bound.name == "visitor_key" else shown
        return found
