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
from ..identity import validate_visitor_key
from ..models import ErasureRequest
from ..privacy import UnknownSubject, erase_subject, export_csv, export_subject, find_subject
from . import audit
from .base import PrivacyView

logger = logging.getLogger(__name__)


class VisitorKeyForm(forms.Form):
    """Who the request is about: a pseudonymous id (the default), or the identifier in the
    visitor's cookie, a customer id of an import source, or a linked site account. Resolved
    to the pseudonymous keys it covers (``cleaned_data["subject"]``)."""

    KINDS = [
        ("key", _("Pseudonymous id")),
        ("cookie", _("Identifier in the visitor's cookie")),
        ("external", _("Customer id in an import source")),
        ("user", _("Site account: user id")),
        ("username", _("Site account: username")),
    ]

    id_kind = forms.ChoiceField(label=_("Identified by"), choices=KINDS, required=False)
    visitor_key = forms.CharField(
        label=_("Identifier"),
        max_length=254,
        help_text=_(
            "A pseudonymous id is %(n)d hexadecimal characters, shown to the visitor on their "
            "privacy settings page."
        )
        % {"n": KEY_LENGTH_HEX},
    )
    source = forms.CharField(
        label=_("Import source"),
        max_length=100,
        required=False,
        help_text=_("For a customer id: the source named when the events were imported."),
    )

    def clean(self):
        data = super().clean()
        value, kind = data.get("visitor_key"), data.get("id_kind") or "key"
        if value is None:
            return data
        if kind == "key":
            try:
                validate_visitor_key(value.strip())
            except forms.ValidationError as exc:
                self.add_error("visitor_key", exc)
                return data
            data["visitor_key"] = value.strip().lower()
        if kind == "external" and not (data.get("source") or "").strip():
            self.add_error("source", _("A customer id needs the import source it comes from."))
            return data
        try:
            subject = find_subject(
                key=value if kind == "key" else None,
                raw_id=value if kind == "cookie" else None,
                source=data.get("source") if kind == "external" else None,
                external_id=value if kind == "external" else None,
                user_id=value if kind == "user" else None,
                username=value if kind == "username" else None,
            )
        except UnknownSubject as exc:
            self.add_error("visitor_key", str(exc))
            return data
        if not subject.keys:
            self.add_error("visitor_key", _("No visitor profile is linked to this account."))
            return data
        data["subject"] = subject
        return data


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
        subject, fmt = form.cleaned_data["subject"], form.cleaned_data["format"]
        key = subject.keys[0]
        data = export_subject(subject)
        rows = sum(len(rows) for rows in data.values())
        logger.info("Data-subject export (%s) by user %s: %d rows", fmt, request.user.pk, rows)
        audit.log_privacy_action(
            audit.DSR_EXPORT,
            request.user,
            title=_visitor_title(key),
            data={
                "format": fmt,
                "key": audit.short_key(key),
                "keys": len(subject.keys),
                "by": form.cleaned_data.get("id_kind") or "key",  # the kind, never the value
                "rows": rows,
            },
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
    """``GET ?visitor_key=`` or ``POST … preview=1``: what is held and a confirmation (by POST
    when the identifier is not a pseudonymous id, so a customer id or a username never lands
    in a URL or an access log); ``POST`` without ``preview``: erase."""

    template_name = "consent/admin/confirm_erase.html"
    page_title = _("Erase a visitor's data")
    header_icon = "bin"
    http_method_names = ["get", "post"]

    def get(self, request, *args, **kwargs):
        return self.confirm(VisitorKeyForm(request.GET, auto_id="erase_%s"))

    def confirm(self, form: VisitorKeyForm) -> HttpResponse:
        if not form.is_valid():
            return self.refuse(erase_form=form)
        subject = form.cleaned_data["subject"]
        held = {
            table: len(rows)
            for table, rows in export_subject(subject).items()
            if table != "visitor_key"
        }
        return self.render_to_response(
            self.get_context_data(
                form=form,
                key=subject.keys[0],
                keys=subject.keys,
                held=held,
                holds_anything=any(held.values()),
            )
        )

    def post(self, request, *args, **kwargs):
        form = VisitorKeyForm(request.POST, auto_id="erase_%s")
        if request.POST.get("preview"):
            return self.confirm(form)
        if not form.is_valid():
            return self.refuse(erase_form=form)
        subject = form.cleaned_data["subject"]
        key = subject.keys[0]
        erasures = erase_subject(subject)
        result: dict[str, int] = {}
        for erasure in erasures:
            for name, count in erasure.result.items():
                result[name] = result.get(name, 0) + count
        logger.info(
            "Erasure %s carried out by user %s",
            ", ".join(str(e.pk) for e in erasures),
            request.user.pk,
        )
        audit.log_privacy_action(
            audit.ERASE,
            request.user,
            title=_visitor_title(key),
            data={
                "key": audit.short_key(key),
                "keys": len(erasures),
                "by": form.cleaned_data.get("id_kind") or "key",
                "erasure": erasures[0].pk if erasures else None,
                "removed": result,
            },
        )
        removed = ", ".join(f"{name}: {count}" for name, count in sorted(result.items()))
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
