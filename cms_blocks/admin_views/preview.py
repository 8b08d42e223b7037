"""Previews of a page as segments (any combination, with or without consent) and share links."""

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.utils.translation import ngettext_lazy
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.log_actions import log
from wagtail.models import Page
from wagtail.utils.decorators import xframe_options_sameorigin_override

from segments.api import segment_choices
from tailored.admin.permissions import AdminPermissionMixin

from ..conf import get_setting
from ..permissions import can_preview_page
from ..preview import (
    PreviewAs,
    ShareLink,
    apply,
    make_token,
    protect,
    shown_page,
    supports_segment_preview,
)

SHARE_ACTION = "cms_blocks.preview.share"
SHARE_DAYS = [1, 3, 7, 14, 30]


class PreviewAsForm(forms.Form):
    segments = forms.MultipleChoiceField(
        label=_l("Segments"), required=False, widget=forms.CheckboxSelectMultiple
    )
    consent = forms.ChoiceField(
        label=_l("Consent"),
        choices=[("1", _l("Consented")), ("0", _l("Without consent"))],
        initial="1",
        widget=forms.RadioSelect,
    )
    version = forms.ChoiceField(
        label=_l("Version"),
        choices=[("draft", _l("Latest draft")), ("live", _l("Live"))],
        initial="draft",
        widget=forms.RadioSelect,
    )
    days = forms.TypedChoiceField(
        label=_l("Link valid for"),
        choices=[(d, ngettext_lazy("%(n)d day", "%(n)d days", d) % {"n": d}) for d in SHARE_DAYS],
        coerce=int,
        initial=7,
        required=False,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segments"].choices = segment_choices()
        longest = int(get_setting("CMS_BLOCKS_SHARE_MAX_DAYS"))
        self.fields["days"].choices = [
            (d, label) for d, label in self.fields["days"].choices if d <= longest
        ] or [(longest, ngettext_lazy("%(n)d day", "%(n)d days", longest) % {"n": longest})]

    def who(self) -> PreviewAs:
        data = self.cleaned_data
        return PreviewAs(frozenset(data["segments"]), data["consent"] == "1")


class PagePreviewMixin(AdminPermissionMixin):
    """Find the page and refuse (403) anyone who may not edit it."""

    permission_denied_message = _l(
        "Previewing a page as segments needs permission to edit that page. Ask an "
        "administrator to add you to a group that may edit it."
    )

    def has_permission(self) -> bool:
        self.page = get_object_or_404(Page, id=self.kwargs["page_id"]).specific
        return can_preview_page(self.request.user, self.page)

    def version(self, name: str):
        if name == "live":
            if not self.page.live:
                raise Http404("The page is not live.")
            return self.page
        return self.page.get_latest_revision_as_object()


class PreviewAsView(PagePreviewMixin, WagtailAdminTemplateMixin, TemplateView):
    """Choose segments (any combination) and consent, see the draft or live page as such a
    visitor, and make a share link for reviewers."""

    template_name = "cms_blocks/admin/preview_as.html"
    page_title = _l("Preview as segments")
    header_icon = "view"

    def get_page_subtitle(self):
        return self.page.get_admin_display_title()

    def get_context_data(self, **kwargs):
        form = kwargs.pop("form", None) or PreviewAsForm(self.request.GET or None)
        context = super().get_context_data(**kwargs)
        context.update(
            preview_page=self.page,
            form=form,
            supported=supports_segment_preview(self.page),
            frame_url=None,
            share_url=kwargs.get("share_url"),
        )
        if context["supported"] and (not form.is_bound or form.is_valid()):
            who = form.who().known() if form.is_bound else PreviewAs()
            version = form.cleaned_data["version"] if form.is_bound else "draft"
            query = urlencode(
                {
                    "segments": sorted(who.segments),
                    "consent": int(who.consented),
                    "version": version,
                },
                doseq=True,
            )
            context["frame_url"] = (
                reverse("cms_blocks_admin:preview_render", args=[self.page.pk]) + "?" + query
            )
            context["who"] = who.label()
            context["variant"] = self.variant_shown(who)
        context["variants"] = self.variants()
        return context

    def variant_shown(self, who: PreviewAs):
        """The whole-page variant such a visitor is served instead of this page, if any."""
        probe = HttpRequest()
        apply(probe, who)
        shown = shown_page(self.page, probe)
        return shown if shown is not self.page else None

    def variants(self) -> list[dict]:
        """This page's live variants, in the order they are tried, with their segments' names."""
        live_variants = getattr(self.page, "live_variants", None)
        if live_variants is None or getattr(self.page, "is_variant", False):
            return []
        rows = live_variants()
        pages = Page.objects.in_bulk([pk for pk, _s, _m in rows])
        names = dict(segment_choices())
        return [
            {
                "page": pages[pk],
                "segments": ", ".join(names.get(s, s) for s in sorted(segments)),
                "all": match_all,
            }
            for pk, segments, match_all in rows
            if pk in pages
        ]

    def post(self, request, *args, **kwargs):
        """Make a share link for the chosen visitor (logged in the page's history)."""
        form = PreviewAsForm(request.POST)
        if not supports_segment_preview(self.page) or not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        who = form.who().known()
        days = form.cleaned_data.get("days") or 7
        expires = time.time() + days * 86400
        token = make_token(ShareLink(self.page.pk, who, expires, request.user.pk))
        url = request.build_absolute_uri(reverse("cms_blocks:share", args=[token]))
        log(
            self.page,
            SHARE_ACTION,
            user=request.user,
            data={
                "segments": sorted(who.segments),
                "consented": who.consented,
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            },
        )
        context = self.get_context_data(form=form, share_url=url)
        context["share_expires"] = datetime.fromtimestamp(expires, UTC)
        return self.render_to_response(context)


@method_decorator(xframe_options_sameorigin_override, name="get")
class PreviewRenderView(PagePreviewMixin, View):
    """The page, drafted or live, as the chosen visitor sees it (shown in the frame)."""

    http_method_names = ["get"]

    def get(self, request, *args, **kwargs):
        form = PreviewAsForm(request.GET)
        if not supports_segment_preview(self.page) or not form.is_valid():
            return HttpResponseBadRequest(_("Choose existing segments and a version."))
        obj = self.version(form.cleaned_data["version"])
        return protect(obj.make_preview_request(request, form.who().mode))
