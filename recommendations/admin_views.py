"""The "For you" model screen of the Wagtail admin: every version of the factorisation model
(when it was trained, how long that took, on how many visitors and items, its leave-last-out
evaluation against popular, which one is active), and the actions: activate a version, roll
back to the previous one, train a new one.

Viewing needs ``recommendations.view_factormodel`` (or change); the actions need
``recommendations.change_factormodel``, and each is confirmed on a page of its own and done by
POST with the CSRF token (the pattern of the experiments' actions). The lifecycle itself is
:mod:`recommendations.factorisation`'s, the same from here, a shell or a task. Nothing here
imports numpy: training happens in a worker.
"""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import TemplateView
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton

from tailored.admin.permissions import AdminPermissionMixin
from tailored.admin.reports import ReportView

from . import factorisation, tasks
from .models import FactorModel

VIEW, CHANGE = "recommendations.view_factormodel", "recommendations.change_factormodel"
VIEW_HINT = _l(
    "The “For you” model screen needs the permission to view (or change) factor models. Ask "
    "an administrator for it."
)
CHANGE_HINT = _l(
    "Activating, rolling back and training the “For you” model needs the permission to change "
    "factor models. Ask an administrator for it."
)
ACTIVATABLE = (FactorModel.Status.READY, FactorModel.Status.RETIRED)


class _NotDone(Exception):
    """An action this screen refuses itself (the lifecycle's own refusals are
    :class:`recommendations.factorisation.ActivationRefused`)."""


def can_view(user) -> bool:
    return user.has_perm(VIEW) or user.has_perm(CHANGE)


def can_change(user) -> bool:
    return user.has_perm(CHANGE)


def _figure(metrics: dict, name: str) -> str:
    """The model's figure and popular's on the same visitors: ``0.412 (popular 0.180)``."""
    mine, popular = metrics.get(name), metrics.get(f"popular_{name}")
    if mine is None:
        return "—"
    if popular is None:
        return f"{mine:.3f}"
    return _("%(mine).3f (popular %(popular).3f)") % {"mine": mine, "popular": popular}


class ActivateColumn(Column):
    """An "Activate" button (to the confirmation page) on versions that may become active, for
    those who may change the model."""

    cell_template_name = "recommendations/admin/activate_cell.html"

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        request = parent_context.get("request")
        allowed = request is not None and can_change(request.user)
        context["url"] = (
            reverse("recommendation_model:activate", args=[instance.pk])
            if allowed and instance.status in ACTIVATABLE
            else ""
        )
        return context


class VersionsView(AdminPermissionMixin, ReportView):
    """The versions, newest first (the factors themselves are never read here)."""

    permission_denied_message = VIEW_HINT
    template_name = "recommendations/admin/versions.html"
    page_title = _l("“For you” model")
    header_icon = "cogs"
    index_url_name = "recommendation_model:index"
    index_results_url_name = "recommendation_model:index_results"
    paginate_by = 30
    default_ordering = "-created_at"
    columns = [
        Column(
            "version",
            label=_l("Version"),
            accessor=lambda v: f"v{v.pk}" + (" ✓ " + _("active") if v.status == "active" else ""),
        ),
        Column("status", label=_l("Status"), accessor="get_status_display"),
        Column("created_at", label=_l("Trained")),
        Column(
            "training_seconds",
            label=_l("Training took"),
            accessor=lambda v: f"{v.training_seconds:.1f} s",
        ),
        Column(
            "data",
            label=_l("Visitors / items"),
            accessor=lambda v: f"{v.visitors} / {len(v.item_ids or ())}",
        ),
        Column(
            "evaluated",
            label=_l("Evaluated visitors"),
            accessor=lambda v: (v.metrics or {}).get("evaluated", "—"),
        ),
        Column(
            "recall",
            label=_l("Recall@10"),
            accessor=lambda v: _figure(v.metrics or {}, "recall_at_10"),
        ),
        Column(
            "ndcg", label=_l("nDCG@10"), accessor=lambda v: _figure(v.metrics or {}, "ndcg_at_10")
        ),
        Column("activated_at", label=_l("Last activated")),
        Column("note", label=_l("Note")),
        ActivateColumn("activate", label=""),
    ]
    list_export = [
        "pk",
        "status",
        "created_at",
        "activated_at",
        "training_seconds",
        "visitors",
        "metrics",
        "note",
    ]

    def has_permission(self) -> bool:
        return can_view(self.request.user)

    def get_queryset(self):
        return FactorModel.objects.defer("factors").order_by("-created_at", "-pk")

    @property
    def header_buttons(self):
        if not can_change(self.request.user):
            return []
        buttons = [
            HeaderButton(
                _("Train now"),
                url=reverse("recommendation_model:train"),
                icon_name="repeat",
                priority=10,
            )
        ]
        if FactorModel.objects.filter(status=FactorModel.Status.ACTIVE).exists():
            buttons.append(
                HeaderButton(
                    _("Roll back"),
                    url=reverse("recommendation_model:rollback"),
                    icon_name="undo",
                    priority=20,
                )
            )
        return buttons

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["available"] = factorisation.available()
        return context


# -- actions -------------------------------------------------------------------------------------
class ActionView(AdminPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    """GET: a confirmation page; POST: do it, say so, back to the versions."""

    permission_denied_message = CHANGE_HINT
    template_name = "recommendations/admin/confirm.html"
    header_icon = "cogs"
    question = ""

    def has_permission(self) -> bool:
        return can_change(self.request.user)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(question=self.question, cancel_url=reverse("recommendation_model:index"))
        return context

    def perform(self) -> str:
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        try:
            message = self.perform()
        except (factorisation.ActivationRefused, _NotDone) as exc:
            messages.error(request, self.refused % {"why": exc})
        else:
            messages.success(request, message)
        return redirect("recommendation_model:index")

    def by(self) -> str:
        return _("by %(user)s") % {"user": self.request.user.get_username()}


class ActivateView(ActionView):
    refused = _l("Not activated: %(why)s")

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.version = get_object_or_404(FactorModel.objects.defer("factors"), pk=kwargs["pk"])

    def get_page_title(self):
        return _("Activate v%(n)s") % {"n": self.version.pk}

    @property
    def question(self):
        return _(
            "Make v%(n)s the active “For you” model? Visitors' lists are built with it from "
            "their next events on (within a minute in every worker); the active version is "
            "retired and can be rolled back to."
        ) % {"n": self.version.pk}

    def perform(self) -> str:
        factorisation.activate(self.version, note=_("activated %(by)s") % {"by": self.by()})
        return _("v%(n)s is now the active “For you” model.") % {"n": self.version.pk}


class RollbackView(ActionView):
    page_title = _l("Roll back the “For you” model")
    question = _l(
        "Activate again the version that was active before the current one? The current one is "
        "retired."
    )
    refused = _l("Not rolled back: %(why)s")

    def perform(self) -> str:
        version = factorisation.rollback(note=_("rolled back %(by)s") % {"by": self.by()})
        return _("Back to v%(n)s.") % {"n": version.pk}


class TrainView(ActionView):
    page_title = _l("Train the “For you” model")
    question = _l(
        "Train a new version now, in a worker, on the consented visitors' events? It is "
        "evaluated against popular and activated if it beats it; it shows here when done."
    )
    refused = _l("Not trained: %(why)s")

    def perform(self) -> str:
        if not factorisation.available():
            raise _NotDone(_("the [ml] extra (numpy, scipy, implicit) is not installed."))
        if not tasks.queue_training():
            raise _NotDone(_("the workers cannot be reached; try later."))
        return _("Training queued: the new version shows here when a worker has trained it.")
