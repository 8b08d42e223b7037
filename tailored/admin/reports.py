"""Wagtail's ``ReportView`` with exports safe to open in a spreadsheet program.

- Every exported cell goes through :func:`tailored.spreadsheet.neutralise_formula`, in CSV and
  in XLSX alike (Wagtail's ``SpreadsheetExportMixin`` does not neutralise formulas).
- Exports are never cached (they hold what the screen shows, sometimes about visitors) and
  querysets are read in chunks, so a large log streams without being held in memory.
- An export is written straight from the filtered rows, without building the page around them.

Reports whose rows are aggregates rather than model instances (lists of dicts or objects)
compute them in ``get_queryset()`` from ``self.filters.form.cleaned_data`` and leave
``filter_queryset()`` to :class:`AggregateReportView`, the pattern of Wagtail's
``wagtail/admin/views/reports/page_types_usage.py``.
"""

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers
from wagtail.admin.views.mixins import SpreadsheetExportMixin
from wagtail.admin.views.reports import ReportView as WagtailReportView

from tailored.spreadsheet import neutralise_formula


class _Chunked:
    """A queryset that iterates in chunks (a server-side cursor on PostgreSQL) and still says
    which model it lists, which ``SpreadsheetExportMixin.get_heading`` reads."""

    def __init__(self, queryset: QuerySet, chunk_size: int):
        self.queryset, self.model, self.chunk_size = queryset, queryset.model, chunk_size

    def __iter__(self) -> Iterator:
        return self.queryset.iterator(chunk_size=self.chunk_size)


class SafeSpreadsheetExportMixin(SpreadsheetExportMixin):
    """``SpreadsheetExportMixin`` whose cells cannot run as formulas, never cached."""

    export_chunk_size = 2000

    def preprocess_field_value(self, field: str, value: Any, export_format: str) -> Any:
        value = super().preprocess_field_value(field, value, export_format)
        return neutralise_formula(value)

    def as_spreadsheet(self, queryset, spreadsheet_format: str) -> HttpResponse:
        if isinstance(queryset, QuerySet):
            queryset = _Chunked(queryset, self.export_chunk_size)
        response = super().as_spreadsheet(queryset, spreadsheet_format)
        add_never_cache_headers(response)
        return response


class ReportView(SafeSpreadsheetExportMixin, WagtailReportView):
    """A Wagtail report with safe exports (see the module docstring)."""

    def get(self, request, *args, **kwargs):
        if self.is_export:
            # Wagtail builds the whole page context first, which counts (and so loads) every
            # row of an unpaginated listing; an export needs only the rows.
            return self.as_spreadsheet(self.get_filtered_queryset(), request.GET["export"])
        return super().get(request, *args, **kwargs)


class AggregateReportView(ReportView):
    """A report of computed rows (a list), not of a queryset.

    ``get_queryset()`` returns the rows, already computed from the valid filters' cleaned data;
    the filters are not applied to them again. ``list_export`` names keys of the dicts returned
    by ``to_row_dict()``, and their names are the export's headings.
    """

    paginate_by = None  # aggregates: one row per segment or variant, and the chart shows them all
    # Wagtail announces "There are N matches" while filtering: rows of aggregates match nothing.
    is_filtering = False

    def filter_queryset(self, queryset):
        return queryset

    def get_heading(self, queryset, field: str) -> str:
        return str(self.export_headings.get(field, field))
