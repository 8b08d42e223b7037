"""The editor's screens for model-driven segments in the Wagtail admin: models, their versions,
metrics as charts, drift, and the train / activate / rollback actions.

Viewing needs ``segments_ml.view_mlmodel`` (or change); the actions need
``segments_ml.change_mlmodel`` and POST with the CSRF token. Charts are inline SVG laid out
here; every text in them (cluster names come from data) is escaped by ``format_html``. Nothing
here imports scikit-learn: training happens in a worker.
"""

from django.contrib import messages
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.generic import TemplateView, View
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from segments.api import min_segment_size

from . import tasks
from . import versions as lifecycle
from .conf import get_setting
from .models import MLModel, ModelVersion

VIEW, CHANGE = "segments_ml.view_mlmodel", "segments_ml.change_mlmodel"


def can_view(user) -> bool:
    return user.has_perm(VIEW) or user.has_perm(CHANGE)


def can_change(user) -> bool:
    return user.has_perm(CHANGE)


def forbidden(request) -> TemplateResponse:
    title = _("Permission denied")
    return TemplateResponse(
        request,
        "segments/admin/forbidden.html",
        {"header_title": title, "page_title": title, "header_icon": "lock"},
        status=403,
    )


# -- charts ----------------------------------------------------------------------------------
W, H, PAD = 320, 240, 36


def _svg(title: str, body: SafeString, width: int = W, height: int = H) -> SafeString:
    return format_html(
        '<svg class="ml-chart" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        width,
        height,
        width,
        height,
        title,
        body,
    )


def _xy(x: float, y: float, width: int = W, height: int = H) -> tuple[str, str]:
    return f"{PAD + x * (width - 2 * PAD):.1f}", f"{height - PAD - y * (height - 2 * PAD):.1f}"


def _frame(x_label: str, y_label: str, width: int = W, height: int = H) -> SafeString:
    x0, y0 = _xy(0, 0, width, height)
    x1, y1 = _xy(1, 1, width, height)
    return format_html(
        '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="currentColor" '
        'stroke-opacity="0.4"/><text x="{}" y="{}" font-size="11" text-anchor="middle" '
        'fill="currentColor">{}</text><text x="12" y="{}" font-size="11" '
        'transform="rotate(-90 12 {})" text-anchor="middle" fill="currentColor">{}</text>',
        x0,
        y1,
        f"{float(x1) - float(x0):.1f}",
        f"{float(y0) - float(y1):.1f}",
        width / 2,
        height - 8,
        x_label,
        height / 2,
        height / 2,
        y_label,
    )


def roc_chart(points: list) -> SafeString:
    line = " ".join(",".join(_xy(fpr, tpr)) for fpr, tpr in points)
    a, b = _xy(0, 0), _xy(1, 1)
    body = format_html(
        '{}<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" stroke-dasharray="4 4" '
        'stroke-opacity="0.5"/><polyline fill="none" stroke="#2e7d32" stroke-width="2" '
        'points="{}"/>',
        _frame(_("false positive rate"), _("true positive rate")),
        *a,
        *b,
        line,
    )
    return _svg(_("ROC curve on held-out time"), body)


def lift_chart(deciles: list[float]) -> SafeString:
    top = max([*deciles, 1.0]) * 1.1
    bars = []
    for i, lift in enumerate(deciles):
        x, y = _xy(i / 10 + 0.01, lift / top)
        y0 = _xy(0, 0)[1]
        bars.append(
            (x, y, f"{(W - 2 * PAD) / 10 - 4:.1f}", f"{float(y0) - float(y):.1f}", f"{lift:.2f}")
        )
    one = _xy(0, 1 / top)[1]
    body = format_html(
        '{}<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-dasharray="4 4"/>{}',
        _frame(_("decile of score (highest first)"), _("lift")),
        PAD,
        W - PAD,
        one,
        one,
        format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" fill="#1565c0"><title>{}</title></rect>',
            bars,
        ),
    )
    return _svg(_("Lift by decile"), body)


def calibration_chart(bins: list) -> SafeString:
    a, b = _xy(0, 0), _xy(1, 1)
    dots = [(*_xy(p, o), f"{p:.2f} → {o:.2f} ({n})") for p, o, n in bins]
    body = format_html(
        '{}<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" stroke-dasharray="4 4" '
        'stroke-opacity="0.5"/>{}',
        _frame(_("predicted probability"), _("observed share")),
        *a,
        *b,
        format_html_join(
            "", '<circle cx="{}" cy="{}" r="4" fill="#c62828"><title>{}</title></circle>', dots
        ),
    )
    return _svg(_("Calibration on held-out time"), body)


def bar_chart(title: str, items: list[tuple[str, int]], width: int = 420) -> SafeString:
    height = 24 * len(items) + 20
    top = max([n for _label, n in items] + [1])
    rows = [
        (
            8 + 24 * i,
            f"{(width - 180) * n / top:.1f}",
            label,
            n,
            22 + 24 * i,
        )
        for i, (label, n) in enumerate(items)
    ]
    body = format_html_join(
        "",
        '<rect x="170" y="{0}" width="{1}" height="18" fill="#6a1b9a"/>'
        '<text x="164" y="{4}" font-size="12" text-anchor="end" fill="currentColor">{2}</text>'
        '<text x="174" y="{4}" font-size="11" fill="#fff">{3}</text>',
        rows,
    )
    return _svg(title, body, width, height)


def drift_chart(checks: list, threshold: float) -> SafeString:
    if not checks:
        return SafeString("")
    top = max([c.max_psi for c in checks] + [threshold]) * 1.2 or 1.0
    n = len(checks)
    points = " ".join(
        ",".join(_xy(i / max(n - 1, 1), c.max_psi / top)) for i, c in enumerate(checks)
    )
    line = _xy(0, threshold / top)[1]
    body = format_html(
        '{}<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#c62828" stroke-dasharray="6 3"/>'
        '<polyline fill="none" stroke="#ef6c00" stroke-width="2" points="{}"/>',
        _frame(_("checks, oldest to newest"), _("largest PSI")),
        PAD,
        W - PAD,
        line,
        line,
        points,
    )
    return _svg(_("Drift over time (dashed: retrain threshold)"), body)


# -- views -----------------------------------------------------------------------------------


def warnings_for(version: ModelVersion | None) -> list[str]:
    """Plain-language warnings an editor must see before relying on a version."""
    if version is None or version.status != ModelVersion.Status.READY:
        return []
    found = []
    metrics = version.metrics or {}
    if version.model.kind == MLModel.Kind.PROPENSITY:
        auc = metrics.get("roc_auc")
        weak = float(get_setting("SEGMENTS_ML_WEAK_AUC"))
        if auc is None or auc < weak:
            found.append(
                _(
                    "Weak model: ROC AUC %(auc)s on held-out time (below %(weak)s): its "
                    "scores barely separate who will and will not act."
                )
                % {"auc": "?" if auc is None else f"{auc:.3f}", "weak": weak}
            )
    else:
        share = float(get_setting("SEGMENTS_ML_MIN_CLUSTER_SHARE"))
        minimum = min_segment_size()
        for c in (version.details or {}).get("clusters", []):
            if c["size"] < minimum or c["share"] < share:
                found.append(
                    _("Cluster %(key)s is too small to act on: %(n)s visitors (%(p).1f%%).")
                    % {"key": c["key"], "n": c["size"], "p": 100 * c["share"]}
                )
    return found


class ModelDetailView(WagtailAdminTemplateMixin, TemplateView):
    template_name = "segments_ml/model_detail.html"
    header_icon = "cogs"

    def dispatch(self, request, *args, **kwargs):
        if not can_view(request.user):
            return forbidden(request)
        self.model_obj = get_object_or_404(MLModel, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_page_title(self):
        return self.model_obj.name

    def get_page_subtitle(self):
        return self.model_obj.get_kind_display()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        model = self.model_obj
        versions = list(model.versions.all()[:30])
        active = next((v for v in versions if v.is_active), None)
        shown = active or next((v for v in versions if v.status == "ready"), None)
        charts = []
        if shown is not None:
            m = shown.metrics or {}
            if model.kind == MLModel.Kind.PROPENSITY and "roc_curve" in m:
                charts = [
                    roc_chart(m["roc_curve"]),
                    lift_chart(m["lift_by_decile"]),
                    calibration_chart(m["calibration"]),
                ]
            elif model.kind == MLModel.Kind.CLUSTERING:
                clusters = (shown.details or {}).get("clusters", [])
                charts = [
                    bar_chart(_("Cluster sizes"), [(f"{c['key']}", c["size"]) for c in clusters])
                ]
        drift = list(shown.drift.order_by("at")[:60]) if shown else []
        threshold = model.drift_threshold
        if threshold is None:
            threshold = float(get_setting("SEGMENTS_ML_DRIFT_THRESHOLD"))
        last = model.activations.select_related("version", "previous").first()
        context.update(
            model=model,
            versions=[(v, lifecycle.comparison_verdict(v, active)) for v in versions],
            active=active,
            shown=shown,
            charts=charts,
            clusters=(shown.details or {}).get("clusters", []) if shown else [],
            drift_chart=drift_chart(drift, threshold),
            drift=drift[-5:],
            warnings=warnings_for(shown),
            can_change=can_change(self.request.user),
            busy=lifecycle.training_in_progress(model),
            can_rollback=bool(last and last.previous and active and last.version_id == active.pk),
            activations=model.activations.select_related("version", "previous")[:10],
        )
        return context


class _ActionView(View):
    """POST only, with the change permission; redirects back to the model's page."""

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_change(request.user):
            return forbidden(request)
        return super().dispatch(request, *args, **kwargs)

    def back(self, model: MLModel):
        return redirect(reverse("ml_models:detail", args=[model.pk]))


class TrainView(_ActionView):
    def post(self, request, pk):
        model = get_object_or_404(MLModel, pk=pk)
        if lifecycle.training_in_progress(model):
            messages.warning(request, _("A training of this model is already under way."))
        else:
            version = tasks.queue_training(model, user=request.user.get_username())
            messages.success(
                request,
                _("Training v%(n)s in a worker; progress shows below.") % {"n": version.number},
            )
        return self.back(model)


class ActivateView(_ActionView):
    def post(self, request, pk):
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        override = request.POST.get("override") == "1"
        try:
            lifecycle.activate(version, user=request.user.get_username(), override=override)
        except lifecycle.ActivationRefused as exc:
            messages.error(request, _("Not activated: %(why)s") % {"why": exc})
        else:
            messages.success(request, _("v%(n)s is now active.") % {"n": version.number})
        return self.back(version.model)


class RollbackView(_ActionView):
    def post(self, request, pk):
        model = get_object_or_404(MLModel, pk=pk)
        try:
            log = lifecycle.rollback(model, user=request.user.get_username())
        except lifecycle.ActivationRefused as exc:
            messages.error(request, _("Not rolled back: %(why)s") % {"why": exc})
        else:
            messages.success(request, _("Back to v%(n)s.") % {"n": log.version.number})
        return self.back(model)
