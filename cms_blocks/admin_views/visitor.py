"""The visitor lookup: one visitor's feature values, now or as of a date, and their segments
with why they are in them or not, for editors who may see segments and privacy officers
(``segments.api.may_view_visitors``).

A visitor is named by the pseudonymous key (``GET ?key=``, shareable) or by the id in their
consent cookie (``POST``, so it stays out of URLs and logs; hashed at once, never shown).
"""

from datetime import UTC, datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from consent.api import validate_visitor_key, visitor_key
from segments.api import BackendUnavailable, explain_visitor, feature_values, may_view_visitors
from tailored.admin.permissions import AdminPermissionMixin


class VisitorLookupForm(forms.Form):
    key = forms.CharField(
        label=_l("Pseudonymous id"),
        validators=[validate_visitor_key],
        required=False,
        strip=True,
        help_text=_l("The key shown to the visitor and in the privacy screens."),
    )
    visitor_id = forms.RegexField(
        label=_l("Consent cookie id"),
        regex=r"\A[0-9a-fA-F]{32}\Z",
        max_length=32,
        required=False,
        strip=True,
        error_messages={"invalid": _l("A consent cookie id is 32 hexadecimal characters.")},
        help_text=_l("The id in the visitor's consent cookie; hashed at once, never stored."),
    )
    as_of = forms.DateField(
        label=_l("As of (optional)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_l(
            "The visitor as they stood at the start of that day (UTC), from the event log."
        ),
    )

    def clean_as_of(self):
        day = self.cleaned_data.get("as_of")
        if day is None:
            return None
        instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if instant > timezone.now():
            raise forms.ValidationError(_("The as-of date cannot be in the future."))
        return instant

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("key")) == bool(data.get("visitor_id")):
            raise forms.ValidationError(_("Give either a pseudonymous id or a consent cookie id."))
        return data

    def visitor_key(self) -> str:
        data = self.cleaned_data
        return data["key"].lower() if data.get("key") else visitor_key(data["visitor_id"].lower())


class VisitorLookupView(AdminPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    template_name = "cms_blocks/admin/visitor.html"
    page_title = _l("Visitor lookup")
    header_icon = "user"
    permission_denied_message = _l(
        "The visitor lookup needs the permission to view segments, or the privacy screens' "
        "permission. Ask an administrator to add you to a group that has one of them."
    )

    def has_permission(self) -> bool:
        return may_view_visitors(self.request.user)

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]

    def get(self, request, *args, **kwargs):
        data = request.GET.copy()
        data.pop("visitor_id", None)  # a raw id only by POST: never in a URL
        form = VisitorLookupForm(data if "key" in request.GET else None)
        return self.render_to_response(self.get_context_data(form=form))

    def post(self, request, *args, **kwargs):
        form = VisitorLookupForm(request.POST)
        return self.render_to_response(self.get_context_data(form=form))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = kwargs["form"] or VisitorLookupForm()
        context["form"] = form
        if form.is_bound and form.is_valid():
            key, as_of = form.visitor_key(), form.cleaned_data["as_of"]
            context.update(visitor_key=key, as_of=as_of)
            try:
                context["features"] = feature_values(key, as_of)
                context["segments"] = explain_visitor(key, as_of)
            except BackendUnavailable:
                context["unavailable"] = True
        return context
