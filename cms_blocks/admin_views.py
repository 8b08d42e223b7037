"""The editors' admin screens (registered in ``wagtail_hooks``): the rule builder's check
endpoint, previews as segments and share links, and the results (segment dashboard, block
reports, CSV). Each view checks its permission (see :mod:`cms_blocks.permissions`), parses its
input, calls one function and shapes the output.
"""

import csv
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.utils.translation import ngettext_lazy
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.widgets import AdminDateInput
from wagtail.log_actions import log
from wagtail.models import Page
from wagtail.utils.decorators import xframe_options_sameorigin_override

from consent.privacy import csv_safe_cell
from segments.api import (
    BackendUnavailable,
    describe_rule,
    estimate_rule_size,
    report,
    rule_problems,
    segment_choices,
)

from .charts import bar_chart, line_chart
from .conf import get_setting
from .forms import readable_path
from .permissions import can_edit_segments, can_preview_page, can_view_results
from .preview import (
    PreviewAs,
    ShareLink,
    make_token,
    protect,
    supports_segment_preview,
)

logger = logging.getLogger(__name__)

MAX_RULE_BYTES = 64 * 1024
SHARE_ACTION = "cms_blocks.preview.share"
EVENT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def forbidden(request) -> TemplateResponse:
    """A 403 page in the admin's furniture (the admin turns ``PermissionDenied`` into a
    redirect to the dashboard, which would hide the refusal)."""
    title = _("Permission denied")
    return TemplateResponse(
        request,
        "cms_blocks/admin/forbidden.html",
        {"header_title": title, "page_title": title, "header_icon": "lock"},
        status=403,
    )


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class RuleCheckView(View):
    """``POST {"rule": <tree>}`` → the rule's problems (with their paths), its description and,
    when it is valid, its estimated size from a sample of stored profiles. Needs permission to
    add or change segments. The builder calls it, debounced, while the editor works."""

    http_method_names = ["post"]

    def post(self, request):
        if not can_edit_segments(request.user):
            return _json_error(_("You may not edit segments."), 403)
        if len(request.body) > MAX_RULE_BYTES:
            return _json_error(_("The rule is too large."), 413)
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            return _json_error(_("The request is not valid JSON."), 400)
        if not isinstance(payload, dict) or "rule" not in payload:
            return _json_error(_('Send {"rule": ...}.'), 400)
        rule = payload["rule"]
        problems = rule_problem_list(rule)
        result = {"problems": problems, "description": describe_rule(rule), "estimate": None}
        if not problems:
            try:
                result["estimate"] = estimate_rule_size(rule)
            except BackendUnavailable:
                result["estimate_error"] = _("The profile store cannot be reached right now.")
        return JsonResponse(result)


def rule_problem_list(rule) -> list[dict]:
    return [
        {"path": path, "where": readable_path(path), "message": message}
        for path, message in rule_problems(rule)
    ]


# -- preview as segments, share links -------------------------------------------------------------
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


class PagePreviewMixin:
    """Find the page and refuse (403) anyone who may not edit it."""

    def dispatch(self, request, page_id, *args, **kwargs):
        page = get_object_or_404(Page, id=page_id).specific
        if not can_preview_page(request.user, page):
            return forbidden(request)
        self.page = page
        return super().dispatch(request, *args, **kwargs)

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
        return context

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

    def get(self, request):
        form = PreviewAsForm(request.GET)
        if not supports_segment_preview(self.page) or not form.is_valid():
            return HttpResponseBadRequest(_("Choose existing segments and a version."))
        obj = self.version(form.cleaned_data["version"])
        return protect(obj.make_preview_request(request, form.who().mode))


# -- results -------------------------------------------------------------------------------------
MAX_PERIOD_DAYS = 366


class PeriodForm(forms.Form):
    start = forms.DateField(label=_l("From"), required=False, widget=AdminDateInput)
    end = forms.DateField(label=_l("To"), required=False, widget=AdminDateInput)
    conversions = forms.CharField(
        label=_l("Conversion events"),
        required=False,
        max_length=300,
        help_text=_l("Event names, separated by commas (e.g. purchase, signup)."),
    )

    def clean_conversions(self):
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

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=29)
        if start > end:
            raise forms.ValidationError(_("The period must start before it ends."))
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise forms.ValidationError(
                _("The period can be at most %(n)d days."), params={"n": MAX_PERIOD_DAYS}
            )
        data["start"], data["end"] = start, end
        return data


def _percent(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def csv_response(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    add_never_cache_headers(response)
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_safe_cell(v) for v in row])
    return response


class ResultsView(WagtailAdminTemplateMixin, TemplateView):
    """Base of the results screens: permission ``cms_blocks.view_results`` and a period."""

    header_icon = "table"

    def dispatch(self, request, *args, **kwargs):
        if not can_view_results(request.user):
            return forbidden(request)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        self.form = PeriodForm(request.GET or None)
        if self.form.is_bound and not self.form.is_valid():
            return self.render_to_response(self.get_context_data(invalid=True), status=400)
        if not self.form.is_bound:
            self.form = PeriodForm({})
            self.form.is_valid()
        self.period = self.form.cleaned_data
        if request.GET.get("export") == "csv":
            return self.export()
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["form"] = self.form
        if getattr(self, "period", None):
            context["conversions"] = ", ".join(self.period["conversions"])
        context["csv_url"] = "?" + urlencode({**self.request.GET.dict(), "export": "csv"})
        return context

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]


class SegmentResultsIndexView(ResultsView):
    """Every segment: size now, members, entries, exits and conversion rate in the period."""

    template_name = "cms_blocks/admin/results_index.html"
    page_title = _l("Segment results")

    def rows(self) -> list[dict]:
        reports = report()
        start, end = self.period["start"], self.period["end"]
        sizes = reports.current_sizes()
        rows = []
        for slug, name in segment_choices():
            flows = reports.entries_and_exits(slug, start, end)
            conv = reports.conversion_rate(slug, start, end, self.period["conversions"])
            rows.append(
                {
                    "slug": slug,
                    "name": name,
                    "size": None if sizes is None else sizes.get(slug, 0),
                    "members": conv["members"],
                    "entries": sum(f[1] for f in flows),
                    "exits": sum(f[2] for f in flows),
                    "converted": conv["converted"],
                    "rate": conv["rate"],
                    "rate_shown": _percent(conv["rate"]),
                }
            )
        return rows

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not kwargs.get("invalid"):
            rows = self.rows()
            context["rows"] = rows
            context["chart"] = bar_chart(
                [(r["name"], r["rate"] or 0, r["rate_shown"]) for r in rows]
            )
            context["query"] = self.request.GET.urlencode()
        return context

    def export(self):
        header = ["segment", "name", "size_now", "members", "entries", "exits"]
        header += ["converted", "conversion_rate", "start", "end"]
        rows = (
            [
                r["slug"],
                r["name"],
                "" if r["size"] is None else r["size"],
                r["members"],
                r["entries"],
                r["exits"],
                r["converted"],
                "" if r["rate"] is None else f"{r['rate']:.4f}",
                self.period["start"].isoformat(),
                self.period["end"].isoformat(),
            ]
            for r in self.rows()
        )
        return csv_response(f"segment-results-{self.period['end']}.csv", header, rows)


class SegmentResultsDetailView(ResultsView):
    """One segment: size over time, entries and exits, top pages, conversion rate."""

    template_name = "cms_blocks/admin/results_segment.html"

    def dispatch(self, request, slug, *args, **kwargs):
        names = dict(segment_choices())
        if slug not in names:
            raise Http404
        self.slug, self.name = slug, names[slug]
        return super().dispatch(request, *args, **kwargs)

    def get_page_title(self):
        return _("Results: %(name)s") % {"name": self.name}

    def series(self):
        reports = report()
        start, end = self.period["start"], self.period["end"]
        sizes = reports.size_over_time(self.slug, start, end)
        flows = reports.entries_and_exits(self.slug, start, end)
        return [
            (day, size, entries, exits)
            for (day, size), (_d, entries, exits) in zip(sizes, flows, strict=True)
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if kwargs.get("invalid"):
            return context
        reports = report()
        start, end = self.period["start"], self.period["end"]
        series = self.series()
        labels = [d.strftime("%m-%d") for d, *_rest in series]
        context.update(
            segment_name=self.name,
            series=series,
            size_chart=line_chart(labels, {_("Members"): [s[1] for s in series]}),
            flow_chart=line_chart(
                labels,
                {_("Entries"): [s[2] for s in series], _("Exits"): [s[3] for s in series]},
            ),
            top_pages=reports.top_pages(self.slug, start, end),
            conversion=reports.conversion_rate(self.slug, start, end, self.period["conversions"]),
        )
        context["conversion"]["rate_shown"] = _percent(context["conversion"]["rate"])
        return context

    def export(self):
        rows = ([d.isoformat(), size, entries, exits] for d, size, entries, exits in self.series())
        return csv_response(
            f"segment-{self.slug}-{self.period['end']}.csv",
            ["day", "members", "entries", "exits"],
            rows,
        )


class BlockReportView(ResultsView):
    """Impressions, clicks and conversions per block, variant and segment."""

    template_name = "cms_blocks/admin/results_blocks.html"
    page_title = _l("Block and variant results")

    def rows(self):
        return report().block_report(
            self.period["start"],
            self.period["end"],
            self.period["conversions"],
            window=float(get_setting("CMS_BLOCKS_ATTRIBUTION_DAYS")) * 86400,
            page=self.request.GET.get("page") or None,
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if kwargs.get("invalid"):
            return context
        names = dict(segment_choices())
        pages = {}
        rows = self.rows()
        for r in rows:
            if r.page.isdigit() and r.page not in pages:
                found = Page.objects.filter(pk=int(r.page)).first()
                pages[r.page] = found.get_admin_display_title() if found else r.page
        table = [
            {
                "page": pages.get(r.page, r.page),
                "block": r.block,
                "variant": r.variant,
                "segment": names.get(r.segment, r.segment) if r.segment else _("All visitors"),
                "all": not r.segment,
                "impressions": r.impressions,
                "clicks": r.clicks,
                "conversions": r.conversions,
                "visitors": len(r.visitors),
                "click_rate": _percent(r.click_rate),
                "conversion_rate": _percent(r.conversion_rate),
            }
            for r in rows
        ]
        context["rows"] = table
        context["chart"] = bar_chart(
            [
                (
                    f"{t['page']} · {t['block'][:8]} · {t['variant'][:12]}",
                    r.click_rate or 0,
                    t["click_rate"],
                )
                for t, r in zip(table, rows, strict=True)
                if t["all"]
            ]
        )
        return context

    def export(self):
        header = ["page", "block", "variant", "segment", "impressions", "clicks", "click_rate"]
        header += ["visitors", "converted_visitors", "conversion_rate", "start", "end"]
        rows = (
            [
                r.page,
                r.block,
                r.variant,
                r.segment or "(all visitors)",
                r.impressions,
                r.clicks,
                "" if r.click_rate is None else f"{r.click_rate:.4f}",
                len(r.visitors),
                r.conversions,
                "" if r.conversion_rate is None else f"{r.conversion_rate:.4f}",
                self.period["start"].isoformat(),
                self.period["end"].isoformat(),
            ]
            for r in self.rows()
        )
        return csv_response(f"block-results-{self.period['end']}.csv", header, rows)
