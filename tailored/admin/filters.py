"""A reporting period as a Wagtail filter: the admin's date-range picker, validated once.

Reports over a period (decisions per day, segment results, block results) share the checks: the
period starts before it ends, spans at most ``max_days``, and lies within dates the reports can
compute with (a date such as 9999-12-31 would overflow the day after it, 0001-01-01 the days
before it, and either one overflows once turned into a time in another time zone). A broken
period is a form error shown on the page, never a server error.

Every filter of the admin over dates is a :class:`DateRangeFilter`: its field refuses a date
outside the computable range before anything turns it into a time.
"""

from datetime import date, datetime, timedelta
from types import SimpleNamespace

import django_filters
from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_filters.fields import DateRangeField as _DateRangeField
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet

EARLIEST = date(2000, 1, 1)
LATEST_AHEAD = timedelta(days=366)  # how far into the future a period may reach

# django-filter wants a queryset to tell its filters which model they belong to; the filters
# of a report of computed rows belong to none (their labels are given, nothing is filtered).
_NO_MODEL = SimpleNamespace(model=None)


def latest_date() -> date:
    """The last day a period may reach (a year ahead of today)."""
    return timezone.localdate() + LATEST_AHEAD


def _out_of_range() -> forms.ValidationError:
    return forms.ValidationError(
        _("Choose dates between %(earliest)s and %(latest)s."),
        code="out_of_range",
        params={"earliest": EARLIEST.isoformat(), "latest": latest_date().isoformat()},
    )


class DateRangeField(_DateRangeField):
    """django-filter's date range field, refusing dates out of :data:`EARLIEST` ..
    :func:`latest_date` before they become aware times (at 00:00 and 23:59:59.999999 of the
    site's time zone), which near year 1 or 9999 overflow in any arithmetic or query."""

    def compress(self, data_list):
        if data_list:
            latest = latest_date()
            if any(day is not None and not EARLIEST <= day <= latest for day in data_list):
                raise _out_of_range()
        return super().compress(data_list)


class DateRangeFilter(django_filters.DateFromToRangeFilter):
    """A ``DateFromToRangeFilter`` with :class:`DateRangeField`: use it for every date range
    of the admin's filters (``<name>_after``, ``<name>_before`` in the URL)."""

    field_class = DateRangeField


def _as_date(value: date | datetime | None) -> date | None:
    # DateFromToRangeFilter's field turns dates into aware datetimes at 00:00 and 23:59:59.
    return value.date() if isinstance(value, datetime) else value


class PeriodForm(forms.Form):
    """Completes and checks ``period``: a missing end is today, a missing start makes the
    period ``default_days`` long; the cleaned value is a ``slice`` of two dates."""

    max_days = 366
    default_days = 30

    def clean(self):
        data = super().clean()
        if "period" not in data:
            return data  # the field's own error (a date that is not one) is shown already
        value = data["period"]
        # The field has refused dates out of range already: the default start is computed
        # from an end within it (and may not reach back before EARLIEST).
        end = _as_date(value.stop if value else None) or timezone.localdate()
        start = _as_date(value.start if value else None) or max(
            EARLIEST, end - timedelta(days=self.default_days - 1)
        )
        if start > end:
            raise forms.ValidationError(_("The period must start before it ends."))
        if (end - start).days >= self.max_days:
            raise forms.ValidationError(
                _("Choose a period of at most %(days)d days."), params={"days": self.max_days}
            )
        data["period"] = slice(start, end)
        return data


class PeriodFilterSet(WagtailFilterSet):
    """Filters of a report over a period: ``period`` (``period_from``, ``period_to`` in the
    URL), at most ``max_days`` long, ``default_days`` by default. Subclasses add filters;
    without ``Meta.model`` the filter set only validates (the report computes its rows from
    :meth:`get_period` and the other cleaned values)."""

    max_days = 366
    default_days = 30

    period = DateRangeFilter(
        label=_("Period"), widget=DateRangePickerWidget, method="filter_period"
    )

    class Meta:
        form = PeriodForm
        fields = []

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        if queryset is None and self._meta.model is None:
            queryset = _NO_MODEL
        super().__init__(data, queryset, request=request, prefix=prefix)

    def get_form_class(self):
        return type(
            f"{type(self).__name__}Form",
            (super().get_form_class(),),
            {"max_days": self.max_days, "default_days": self.default_days},
        )

    def filter_period(self, queryset, name, value):
        """Reports of computed rows never filter a queryset; a subclass with a model may."""
        return queryset

    def get_period(self) -> tuple[date, date]:
        """The valid period (first and last day, inclusive), or the default one."""
        if self.is_valid():
            value = self.form.cleaned_data["period"]
            return value.start, value.stop
        end = timezone.localdate()
        return end - timedelta(days=self.default_days - 1), end
