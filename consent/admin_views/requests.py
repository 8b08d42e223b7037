"""Data-subject requests for one pseudonymous id: access and portability (an export as JSON or
CSV, by POST) and erasure (a confirmation page by GET, the erasure itself by POST, as Wagtail's
generic ``DeleteView`` does)."""

import json
import logging

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin import messages

from ..hashing import KEY_LENGTH_HEX
from ..models import ErasureRequest
from ..privacy import erase_visitor, export_csv, export_visitor
from . import audit
from .base import PrivacyView, validate_visitor_key

logger = logging.getLogger(__name__)


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


class ExportForm(VisitorKeyForm):
    format = forms.ChoiceField(label=_("Format"), choices=[("json", "JSON"), ("csv", "CSV")])


class DataSubjectRequestsView(PrivacyView):
    """The form (an id, then download or erase) and the recent erasures."""

    template_name = "consent/admin/requests.html"
    page_title = _("Data-subject requests")
    header_icon = "user"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", ExportForm())
        # Both forms are on the page: distinct element ids, the same field name.
        kwargs.setdefault("erase_form", VisitorKeyForm(auto_id="erase_%s"))
        return super().get_context_data(
            erasures=ErasureRequest.objects.order_by("-requested_at")[:10], **kwargs
        )

    def refuse(self, **bound_forms: forms.Form) -> HttpResponse:
        """The requests page again, with the errors of ``form`` (the export form) or
        ``erase_form``."""
        return self.response_class(
            request=self.request,
            template=[DataSubjectRequestsView.template_name],
            context=self.get_context_data(**bound_forms),
            using=self.template_engine,
        )


class DataSubjectExportView(DataSubjectRequestsView):
    """``POST visitor_key, format``: everything held about the visitor, as a download."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        form = ExportForm(request.POST)
        if not form.is_valid():
            return self.refuse(form=form)
        key, fmt = form.cleaned_data["visitor_key"], form.cleaned_data["format"]
        data = export_visitor(key)
        rows = sum(len(rows) for rows in data.values())
        logger.info("Data-subject export (%s) by user %s: %d rows", fmt, request.user.pk, rows)
        audit.log_privacy_action(
            audit.DSR_EXPORT,
            request.user,
            title=_visitor_title(key),
            data={"format": fmt, "key": audit.short_key(key), "rows": rows},
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


class EraseVisitorView(DataSubjectRequestsView):
    """``GET ?visitor_key=``: what is held and a confirmation; ``POST visitor_key``: erase."""

    template_name = "consent/admin/confirm_erase.html"
    page_title = _("Erase a visitor's data")
    header_icon = "bin"
    http_method_names = ["get", "post"]

    def get(self, request, *args, **kwargs):
        form = VisitorKeyForm(request.GET, auto_id="erase_%s")
        if not form.is_valid():
            return self.refuse(erase_form=form)
        key = form.cleaned_data["visitor_key"]
        held = {table: len(rows) for table, rows in export_visitor(key).items()}
        held.pop("visitor_key", None)
        return self.render_to_response(
            self.get_context_data(form=form, key=key, held=held, holds_anything=any(held.values()))
        )

    def post(self, request, *args, **kwargs):
        form = VisitorKeyForm(request.POST, auto_id="erase_%s")
        if not form.is_valid():
            return self.refuse(erase_form=form)
        key = form.cleaned_data["visitor_key"]
        erasure = erase_visitor(key)
        logger.info("Erasure %s carried out by user %s", erasure.pk, request.user.pk)
        audit.log_privacy_action(
            audit.ERASE,
            request.user,
            title=_visitor_title(key),
            data={"key": audit.short_key(key), "erasure": erasure.pk, "removed": erasure.result},
        )
        removed = ", ".join(f"{name}: {count}" for name, count in sorted(erasure.result.items()))
        messages.success(
            request,
            _("The visitor's data was erased (%(removed)s). Consent records are kept as proof.")
            % {"removed": removed or _("nothing else was held")},
        )
        return redirect("consent_privacy:requests")

    def refuse(self, **bound_forms: forms.Form) -> HttpResponse:
        self.page_title, self.header_icon = DataSubjectRequestsView.page_title, "user"
        return super().refuse(**bound_forms)


def _visitor_title(key: str) -> str:
    return gettext("Data of pseudonymous id %(key)s") % {"key": audit.short_key(key)}
