"""Experiments in the Wagtail admin: an "Experiments" menu item (a ModelViewSet with arms and
goals edited inline), the actions and the results screen under the same URL prefix, the
audit-log actions and the two permissions in the group editor."""

from django.contrib.auth.models import Permission
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.components import Component
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.log_actions import LogFormatter

from . import actions
from .admin_views import (
    ExperimentCreateView,
    ExperimentDeleteView,
    ExperimentEditView,
    ExperimentIndexView,
    ExperimentResultsView,
    PauseView,
    PromoteView,
    RerandomiseView,
    StartView,
    StopView,
    may_view_results,
)
from .forms import ExperimentForm
from .models import Experiment
from .results import personalization_lift


class ExperimentViewSet(ModelViewSet):
    model = Experiment
    name = "experiments"
    url_prefix = "experiments"
    icon = "pick"
    menu_label = _("Experiments")
    menu_order = 258
    add_to_admin_menu = True
    inspect_view_enabled = True
    # A copy would share the key (the hashing seed, unique) and lose the arms and goals.
    copy_view_enabled = False
    index_view_class = ExperimentIndexView
    delete_view_class = ExperimentDeleteView
    add_view_class = ExperimentCreateView
    edit_view_class = ExperimentEditView
    list_display = ["name", "kind", "status", "mode", "page", "segment", "started_at"]
    list_filter = ["status", "kind", "mode"]
    search_fields = ["name", "key"]
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("key"),
            FieldPanel("description"),
            MultiFieldPanel(
                [
                    FieldPanel("kind"),
                    FieldPanel("page"),
                    FieldPanel("block_id"),
                    FieldPanel("segment"),
                ],
                heading=_("What is tested"),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("mode"),
                    FieldRowPanel([FieldPanel("coverage"), FieldPanel("holdout_percent")]),
                    FieldRowPanel(
                        [
                            FieldPanel("namespace"),
                            FieldPanel("namespace_start"),
                            FieldPanel("namespace_end"),
                        ]
                    ),
                    FieldPanel("hash_version"),
                ],
                heading=_("How visitors are split"),
            ),
            MultiFieldPanel(
                [
                    FieldRowPanel([FieldPanel("sequential"), FieldPanel("sequential_tuning")]),
                    FieldRowPanel([FieldPanel("alpha"), FieldPanel("minimum_detectable_effect")]),
                    FieldPanel("minimum_sample"),
                ],
                heading=_("How results are read"),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("bandit_floor"),
                    FieldPanel("bandit_minimum"),
                    FieldPanel("bandit_discount"),
                ],
                heading=_("Bandit"),
                classname="collapsed",
            ),
        ],
        base_form_class=ExperimentForm,
    )

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/start/", StartView.as_view(), name="start"),
            path("<int:pk>/pause/", PauseView.as_view(), name="pause"),
            path("<int:pk>/stop/", StopView.as_view(), name="stop"),
            path("<int:pk>/rerandomise/", RerandomiseView.as_view(), name="rerandomise"),
            path("<int:pk>/promote/", PromoteView.as_view(), name="promote"),
            path("<int:pk>/results/", ExperimentResultsView.as_view(), name="results"),
        ]


@hooks.register("register_admin_viewset")
def register_viewset():
    return ExperimentViewSet()


@hooks.register("register_permissions")
def register_permissions():
    return Permission.objects.filter(
        content_type__app_label="experiments",
        codename__in=["run_experiment", "view_experiment_results"],
    )


@hooks.register("register_log_actions")
def register_log_actions(registry):
    registry.register_action(actions.START, _("Start experiment"), _("Started the experiment"))
    registry.register_action(actions.PAUSE, _("Pause experiment"), _("Paused the experiment"))
    registry.register_action(actions.STOP, _("Stop experiment"), _("Stopped the experiment"))

    @registry.register_action(actions.RERANDOMISE)
    class Rerandomised(LogFormatter):
        label = _("Re-randomise experiment")

        def format_message(self, log_entry):
            data = log_entry.data or {}
            return _("Re-randomised: assignment version %(before)s to %(after)s") % {
                "before": data.get("from", "?"),
                "after": data.get("to", "?"),
            }

    @registry.register_action(actions.CHANGE)
    class SplitChanged(LogFormatter):
        label = _("Change experiment split")

        def format_message(self, log_entry):
            parts = [
                f"{c.get('field', '?')} from “{c.get('before', '')}” to “{c.get('after', '')}”"
                for c in (log_entry.data or {}).get("changes", [])
            ]
            return _("Changed %(changes)s") % {"changes": "; ".join(parts)} if parts else ""

    @registry.register_action(actions.PROMOTE)
    class Promoted(LogFormatter):
        label = _("Promote the winner")

        def format_message(self, log_entry):
            data = log_entry.data or {}
            return _("Promoted “%(arm)s” (%(key)s): published revision(s) %(revisions)s") % {
                "arm": data.get("name", "?"),
                "key": data.get("key", "?"),
                "revisions": ", ".join(str(r) for r in data.get("revisions", [])) or "-",
            }


class PersonalizationLiftPanel(Component):
    """The admin dashboard's figure for the total lift of personalization (the global
    holdout's primary goal, personalised against held out), for those who may read results."""

    name = "personalization_lift"
    order = 150
    template_name = "experiments/admin/lift_panel.html"

    def __init__(self, lift: dict):
        self.lift = lift

    def get_context_data(self, parent_context=None):
        return {
            "lift": self.lift,
            "results_url": reverse("experiments:results", args=[self.lift["experiment"]]),
        }


@hooks.register("construct_homepage_panels")
def add_personalization_lift_panel(request, panels):
    if not may_view_results(request.user):
        return
    lift = personalization_lift()
    if lift is not None:
        panels.append(PersonalizationLiftPanel(lift))
