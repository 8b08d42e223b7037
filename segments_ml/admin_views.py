"""The editor's screens for model-driven segments in the Wagtail admin: models, their versions,
metrics as charts, drift, and the train / activate / rollback actions.

Viewing needs ``segments_ml.view_mlmodel`` (or change); the actions need
``segments_ml.change_mlmodel`` and POST with the CSRF token. Charts come from
:mod:`tailored.admin.charts` (every text in them, cluster names included, is escaped). Nothing
here imports scikit-learn: training happens in a worker.
"""

from django.contrib import messages
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import TemplateView, View
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from segments.api import min_segment_size
from tailored.admin.charts import Bar, Chart, Series, XYSeries, bar_chart, line_chart, xy_chart
from tailored.admin.permissions import AdminPermissionMixin

from . import tasks
from . import versions as lifecycle
from .conf import get_setting
from .models import MLModel, ModelVersion

VIEW, CHANGE = "segments_ml.view_mlmodel", "segments_ml.change_mlmodel"


def can_view(user) -> bool:
    return user.has_perm(VIEW) or user.has_perm(CHANGE)


def can_change(user) -> bool:
    return user.has_perm(CHANGE)


# -- charts ----------------------------------------------------------------------------------
def roc_chart(points: list) -> Chart:
    return xy_chart(
        [XYSeries(_("ROC curve"), [(fpr, tpr) for fpr, tpr in points])],
        title=_("ROC curve on held-out time"),
        x_label=_("false positive rate"),
        y_label=_("true positive rate"),
        table=True,
    )


def lift_chart(deciles: list[float]) -> Chart:
    return bar_chart(
        [
            Bar(_("decile %(n)d") % {"n": i + 1}, lift, f"{lift:.2f}")
            for i, lift in enumerate(deciles)
        ],
        title=_("Lift by decile"),
        width=420,
        label_width=90,
        reference=(1.0, _("no lift (1.0)")),
        table=True,
    )


def calibration_chart(bins: list) -> Chart:
    return xy_chart(
        [
            XYSeries(
                _("observed share by predicted probability"),
                [(p, o) for p, o, _n in bins],
                dots=True,
                notes=[f"{p:.2f} → {o:.2f} ({n})" for p, o, n in bins],
            )
        ],
        title=_("Calibration on held-out time"),
        x_label=_("predicted probability"),
        y_label=_("observed share"),
        table=True,
    )


def cluster_chart(clusters: list[dict]) -> Chart:
    return bar_chart(
        [Bar(str(c["key"]), c["size"]) for c in clusters],
        title=_("Cluster sizes"),
        width=420,
        label_width=120,
        integer=True,
    )


def drift_chart(checks: list, threshold: float) -> Chart | None:
    if not checks:
        return None
    return line_chart(
        [c.at.strftime("%m-%d") for c in checks],
        [Series(_("largest PSI"), [c.max_psi for c in checks])],
        title=_("Drift over time (dashed: retrain threshold)"),
        width=420,
        height=240,
        reference=(threshold, _("retrain threshold")),
        integer=False,
        table=True,
    )


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


class ModelPermissionMixin(AdminPermissionMixin):
    permission_denied_message = _l(
        "You need the permission to view models (or to change them) for this page."
    )

    def has_permission(self) -> bool:
        return can_view(self.request.user)


class ModelDetailView(ModelPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    template_name = "segments_ml/model_detail.html"
    header_icon = "cogs"

    def dispatch(self, request, *args, **kwargs):
        self.model_obj = get_object_or_404(MLModel, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_page_title(self):
        return self.model_obj.name

    def get_breadcrumbs_items(self):
        return [
            *self.breadcrumbs_items,
            {"url": reverse("ml_models:index"), "label": _("Models")},
            {"url": "", "label": self.model_obj.name, "sublabel": self.get_page_subtitle()},
        ]

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
                charts = [cluster_chart(clusters)]
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


class _ActionView(ModelPermissionMixin, View):
    """POST only, with the change permission; redirects back to the model's page."""

    permission_denied_message = _l("You need the permission to change models for this action.")

    def has_permission(self) -> bool:
        return can_change(self.request.user)

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return super().dispatch(request, *args, **kwargs)

    def back(self, model: MLModel):
        return redirect(reverse("ml_models:detail", args=[model.pk]))


class TrainView(_ActionView):
    """``POST [as_of]``: queue a training; with ``as_of`` (a date, or date and time) on the
    data as it stood at that instant."""

    def post(self, request, pk):
        model = get_object_or_404(MLModel, pk=pk)
        as_of = None
        if request.POST.get("as_of", "").strip():
            try:
                as_of = lifecycle.parse_as_of(request.POST["as_of"])
            except ValueError as exc:
                messages.error(request, _("Not trained: %(why)s") % {"why": exc})
                return self.back(model)
        if lifecycle.training_in_progress(model):
            messages.warning(request, _("A training of this model is already under way."))
        else:
            version = tasks.queue_training(model, user=request.user.get_username(), as_of=as_of)
            if as_of is None:
                message = _("Training v%(n)s in a worker; progress shows below.")
            else:
                message = _(
                    "Training v%(n)s in a worker on the data as of %(as_of)s; progress shows below."
                )
            messages.success(
                request, message % {"n": version.number, "as_of": as_of and as_of.isoformat()}
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
