"""The experiments' admin screens: create and edit with arms and goals (inline formsets), the
actions (start, pause, stop, re-randomise, promote the winner: permission
``experiments.run_experiment``, each confirmed on a page of its own and logged), and the
results report (permission ``experiments.view_experiment_results`` or ``run_experiment``)."""

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import TemplateView
from wagtail.admin.ui.menus import MenuItem
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.generic import CreateView, DeleteView, EditView, IndexView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import Button
from wagtail.log_actions import log

from tailored.admin.charts import PALETTE, Series, line_chart
from tailored.admin.permissions import AdminPermissionMixin
from tailored.admin.reports import AggregateReportView

from . import actions, targets
from .forms import ArmFormSet, GoalFormSet, arm_options
from .models import Experiment

RUN = "experiments.run_experiment"
VIEW_RESULTS = "experiments.view_experiment_results"
RUN_HINT = _l(
    "Starting, pausing, stopping and promoting experiments needs the permission “Can start, "
    "pause and stop experiments and promote a winner”. Ask an administrator for it."
)
RESULTS_HINT = _l(
    "Experiment results need the permission “Can view experiment results”. Ask an "
    "administrator for it."
)


def may_run(user) -> bool:
    return user.has_perm(RUN)


def may_view_results(user) -> bool:
    return user.has_perm(VIEW_RESULTS) or user.has_perm(RUN)


# -- listing ------------------------------------------------------------------------------------
class ExperimentIndexView(IndexView):
    """Each experiment's menu also leads to its results (for those who may read them)."""

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        if may_view_results(self.request.user):
            buttons.append(
                MenuItem(
                    _("Results"),
                    url=reverse("experiments:results", args=[instance.pk]),
                    icon_name="table",
                    priority=15,
                )
            )
        return buttons


class ExperimentDeleteView(DeleteView):
    """A running experiment is stopped before it is deleted: deleting it would drop the
    statistics of visitors still being served its arms."""

    def _refused(self):
        if self.object.status != Experiment.Status.RUNNING:
            return None
        messages.error(self.request, _("Stop this experiment before deleting it."))
        return redirect(reverse("experiments:edit", args=[self.object.pk]))

    # After the permission check (dispatch), before anything is shown or deleted.
    def get(self, request, *args, **kwargs):
        return self._refused() or super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        return self._refused() or super().post(request, *args, **kwargs)


# -- create and edit -----------------------------------------------------------------------------
class FormsetsMixin:
    """Arms and goals edited with the experiment, validated and saved with it."""

    template_name = "experiments/admin/form.html"

    def get_instance_for_formsets(self):
        return self.object if getattr(self, "object", None) else Experiment()

    @cached_property
    def formsets(self) -> dict:
        instance = self.get_instance_for_formsets()
        data = self.request.POST if self.request.method == "POST" else None
        locked = bool(instance.pk) and instance.status != Experiment.Status.DRAFT
        options, segment = None, instance.segment.slug if instance.segment_id else None
        if instance.pk:
            options = arm_options(instance.kind, instance.page, instance.block_id)
        if data is not None and not locked:
            # The kind, page, block and segment as submitted decide what the arms may show.
            form = self.form if hasattr(self, "form") else None
            if form is not None and form.is_valid():
                cleaned = form.cleaned_data
                options = arm_options(cleaned["kind"], cleaned.get("page"), cleaned.get("block_id"))
                segment = cleaned["segment"].slug if cleaned.get("segment") else None
        return {
            "arms": ArmFormSet(
                data,
                instance=instance,
                prefix="arms",
                options=options,
                locked=locked,
                segment=segment,
            ),
            "goals": GoalFormSet(data, instance=instance, prefix="goals"),
        }

    def get_form(self, form_class=None):
        self.form = super().get_form(form_class)
        return self.form

    def is_valid(self, form):
        valid = super().is_valid(form)
        formsets_valid = all(fs.is_valid() for fs in self.formsets.values())
        if valid and not formsets_valid:
            self.produced_error_code = "validation_error"
            self.produced_error_message = self.get_error_message()
        return valid and formsets_valid

    def save_instance(self):
        # One transaction: another process's freshness check never sees the experiment's new
        # updated_at before its arms (it would keep the old arms under the new stamp).
        with transaction.atomic():
            instance = super().save_instance()
            for formset in self.formsets.values():
                formset.instance = instance
                formset.save()
        return instance

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        instance = self.get_instance_for_formsets()
        context["formsets"] = self.formsets
        context["options"] = self.available(instance, self._submitted_page())
        return context

    def _submitted_page(self):
        """The page chosen in a form shown again with errors (a new experiment's block
        cannot be named before its page's blocks are listed: they are listed then)."""
        form = getattr(self, "form", None)
        if form is None or not form.is_bound:
            return None
        form.is_valid()  # cleaned once; the page is cleaned even when other fields are not
        return getattr(form, "cleaned_data", {}).get("page")

    @staticmethod
    def available(instance: Experiment, submitted=None) -> dict | None:
        """What the chosen page offers to test: its personalised blocks and page variants
        (the page just submitted, else the saved experiment's)."""
        if submitted is not None:
            page = submitted.specific
        elif not instance.pk or instance.page_id is None:
            return None
        else:
            page = instance.page.specific
        blocks = [
            {"id": block_id, "options": targets.block_options(page, block_id)}
            for block_id in targets.personalised_blocks(page)
        ]
        return {"page": page, "blocks": blocks, "pages": targets.page_options(page)[1:]}


class ExperimentCreateView(FormsetsMixin, CreateView):
    def save_instance(self):
        self.form.instance.created_by = self.request.user
        return super().save_instance()


TRACKED_FIELDS = ("coverage", "holdout_percent", "namespace", "segment_id", "page_id", "block_id")


def split_of(experiment: Experiment) -> dict:
    """What decides who is enrolled and in which arm, to log what an edit changed."""
    split = {field: getattr(experiment, field) for field in TRACKED_FIELDS}
    for arm in experiment.arms.all():
        split[f"weight of {arm.name}"] = arm.weight
    return split


class ExperimentEditView(FormsetsMixin, EditView):
    """Besides Wagtail's "Edited", logs which of the split's settings changed (coverage,
    holdout, weights...) from what to what (``tailored.experiment.change``): a running
    experiment's split may change, and its results are read knowing when."""

    def save_instance(self):
        before = split_of(Experiment.objects.get(pk=self.object.pk))
        instance = super().save_instance()
        after = split_of(instance)
        changes = [
            {"field": field, "before": before.get(field), "after": value}
            for field, value in after.items()
            if before.get(field) != value
        ]
        if changes:
            log(instance, actions.CHANGE, user=self.request.user, data={"changes": changes})
        return instance

    @cached_property
    def header_more_buttons(self):
        buttons = list(super().header_more_buttons)
        experiment, user = self.object, self.request.user
        if may_view_results(user):
            buttons.append(
                Button(
                    _("Results"),
                    url=reverse("experiments:results", args=[experiment.pk]),
                    icon_name="table",
                    priority=10,
                )
            )
        if may_run(user):
            for name, label, icon in available_actions(experiment):
                buttons.append(
                    Button(
                        label,
                        url=reverse(f"experiments:{name}", args=[experiment.pk]),
                        icon_name=icon,
                        priority=20,
                    )
                )
        return buttons


def available_actions(experiment: Experiment) -> list[tuple[str, str, str]]:
    """(url name, label, icon) of the actions the experiment's status allows."""
    Status = Experiment.Status
    found = []
    if experiment.status in (Status.DRAFT, Status.PAUSED):
        found.append(
            ("start", _("Start") if experiment.status == Status.DRAFT else _("Resume"), "play")
        )
    if experiment.status == Status.RUNNING:
        found.append(("pause", _("Pause"), "pause"))
    if experiment.status in (Status.RUNNING, Status.PAUSED):
        found.append(("stop", _("Stop"), "cross"))
    if experiment.status != Status.STOPPED:
        found.append(("rerandomise", _("Re-randomise"), "repeat"))
    if experiment.promoted_at is None and experiment.status != Status.DRAFT and experiment.page_id:
        found.append(("promote", _("Promote the winner"), "success"))
    return found


# -- actions -------------------------------------------------------------------------------------
class ExperimentActionView(AdminPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    """GET: a confirmation page; POST: do it, say so, back to the experiment."""

    required_permissions = [RUN]
    permission_denied_message = RUN_HINT
    template_name = "experiments/admin/confirm.html"
    header_icon = "pick"
    action = None  # one of experiments.actions' functions
    verb = ""
    question = ""
    warning = ""

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.experiment = get_object_or_404(Experiment, pk=kwargs["pk"])

    def get_page_title(self):
        return f"{self.verb}: {self.experiment.name}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            experiment=self.experiment,
            verb=self.verb,
            question=self.question,
            warning=self.warning,
            cancel_url=self.edit_url(),
        )
        return context

    def edit_url(self) -> str:
        return reverse("experiments:edit", args=[self.experiment.pk])

    def perform(self) -> str:
        type(self).action(self.experiment, user=self.request.user)
        return _("%(verb)s: “%(name)s”.") % {"verb": self.verb, "name": self.experiment.name}

    def post(self, request, *args, **kwargs):
        try:
            message = self.perform()
        except actions.ExperimentActionError as exc:
            for error in exc.messages:
                messages.error(request, error)
            return redirect(self.edit_url())
        messages.success(request, message)
        return redirect(self.edit_url())


class StartView(ExperimentActionView):
    action = actions.start
    verb = _l("Started")
    question = _l("Start this experiment? Consented visitors are enrolled from now on.")


class PauseView(ExperimentActionView):
    action = actions.pause
    verb = _l("Paused")
    question = _l(
        "Pause this experiment? Everyone sees what they would without it until it is resumed."
    )


class StopView(ExperimentActionView):
    action = actions.stop
    verb = _l("Stopped")
    question = _l("Stop this experiment for good? Its results stay; it cannot be restarted.")


class RerandomiseView(ExperimentActionView):
    action = actions.rerandomise
    verb = _l("Re-randomised")
    question = _l("Re-randomise everyone enrolled?")
    warning = _l(
        "Every visitor is assigned an arm afresh, so some will see another arm than before. "
        "Results mix both assignments: do it only to start over on purpose."
    )


class PromoteView(ExperimentActionView):
    verb = _l("Promoted the winner")
    template_name = "experiments/admin/promote.html"
    question = _l(
        "Publish the chosen arm as what this experiment's visitors get? A new revision of the "
        "page is published and the experiment stops."
    )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        from .results import analyse  # numpy and scipy: only on screens that need them

        result = analyse(self.experiment)
        failing = {a["index"] for a in result["arms"] if a["guardrail_failing"]}
        arms = list(self.experiment.arms.all())
        for arm in arms:
            arm.guardrail_failing = arm.index in failing
        context.update(
            arms=arms,
            suggested=result["winner_arm"],
            verdict=result["verdict"],
        )
        return context

    def perform(self) -> str:
        arm = self.experiment.arms.filter(index=self.request.POST.get("arm") or -1).first()
        if arm is None:
            raise actions.ExperimentActionError(_("Choose the arm to promote."))
        actions.promote(self.experiment, arm, user=self.request.user)
        return _("Published “%(arm)s” as the content of “%(name)s”.") % {
            "arm": arm.name,
            "name": self.experiment.name,
        }


# -- results -------------------------------------------------------------------------------------
def _percent(value) -> str:
    return "" if value is None else f"{value * 100:+.1f}%"


def _goal_note(goal: dict) -> str:
    """ " (guardrail, lower is better)": what a goal's figures are read against."""
    notes = []
    if goal["role"] == "guardrail":
        notes.append(_("guardrail"))
    if goal.get("direction") == "lower":
        notes.append(_("lower is better"))
    return f" ({', '.join(notes)})" if notes else ""


def _p(value: float) -> str:
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


class ExperimentResultsView(AdminPermissionMixin, AggregateReportView):
    """Arms x goals (x segments): lift, interval, p-value, chance to win; the SRM status,
    progress, the cumulative lift over time with its band, bandit weights over time; CSV and
    XLSX exports of the table."""

    permission_denied_message = RESULTS_HINT
    template_name = "experiments/admin/results.html"
    results_template_name = "experiments/admin/results_results.html"
    header_icon = "table"
    filterset_class = None
    columns = [
        Column("goal_name", label=_l("Goal")),
        Column("segment_name", label=_l("Segment")),
        Column("arm_name", label=_l("Arm")),
        Column("n", label=_l("Visitors")),
        Column("mean_shown", label=_l("Rate / mean")),
        Column("lift_shown", label=_l("Lift")),
        Column("interval_shown", label=_l("Interval")),
        Column("p_shown", label=_l("p-value (Holm)")),
        Column("chance_shown", label=_l("Chance to win")),
        Column("status_shown", label=_l("Guardrail")),
    ]
    list_export = [
        "goal",
        "segment",
        "arm",
        "arm_key",
        "visitors",
        "mean",
        "lift",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "p_bh",
        "chance_to_win",
        "risk",
        "cuped",
        "guardrail_failing",
    ]

    def has_permission(self):
        return may_view_results(self.request.user)

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.experiment = Experiment.objects.filter(pk=kwargs["pk"]).first()

    def dispatch(self, request, *args, **kwargs):
        if self.experiment is None and self.has_permission():
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def get_page_title(self):
        return _("Results: %(name)s") % {"name": self.experiment.name}

    def get_index_url(self):
        return reverse("experiments:results", args=[self.experiment.pk])

    def get_index_results_url(self):
        return reverse("experiments:results", args=[self.experiment.pk])

    def get_filename(self) -> str:
        return f"experiment-{self.experiment.key}"

    @cached_property
    def result(self) -> dict:
        from .results import analyse  # numpy and scipy: only on screens that need them
        from .snapshots import snapshot_if_due

        result = analyse(self.experiment)
        snapshot_if_due(self.experiment, result)  # a site without beat: the charts fill
        return result

    @cached_property
    def segment_names(self) -> dict[str, str]:
        model = Experiment._meta.get_field("segment").related_model
        slugs = [s for s in self.result["segments"] if s]
        names = dict(model.objects.filter(slug__in=slugs).values_list("slug", "name"))
        return {"": _("All visitors"), **{s: names.get(s, s) for s in slugs}}

    def get_queryset(self):
        result = self.result
        goals = {g["id"]: g for g in result["goals"]}
        arms = {a["index"]: a for a in result["arms"]}
        rows = []
        for cell in result["cells"]:
            goal, arm = goals[cell["goal"]], arms[cell["arm"]]
            shown = cell["shown"]
            conversion = goal["metric"] == "conversion"
            mean = cell["mean"]
            guardrail = goal["role"] == "guardrail"
            rows.append(
                {
                    **cell,
                    "goal_name": goal["name"] + _goal_note(goal),
                    "segment_name": self.segment_names.get(cell["segment"], cell["segment"]),
                    "arm_name": arm["name"] + (" " + _("(control)") if cell["control"] else ""),
                    "arm_key": arm["key"],
                    "n": int(cell["n"]),
                    "mean_shown": ""
                    if mean is None
                    else (f"{mean * 100:.2f}%" if conversion else f"{mean:.3f}"),
                    "lift_shown": _percent(cell.get("lift")) if shown else "",
                    "interval_shown": (
                        f"{_percent(cell.get('ci_low'))} … {_percent(cell.get('ci_high'))}"
                        if shown and cell.get("ci_low") is not None
                        else ""
                    ),
                    "p_shown": (
                        f"{_p(cell['p_value'])} ({_p(cell.get('p_holm', cell['p_value']))})"
                        if shown and cell.get("p_value") is not None
                        else ""
                    ),
                    "chance_shown": (
                        f"{cell['chance_to_win'] * 100:.1f}%"
                        if shown and cell.get("chance_to_win") is not None
                        else ""
                    ),
                    "not_enough": not cell["control"] and not shown,
                    "status_shown": (
                        (_("Failing: significantly worse") if cell["harm"] else _("OK"))
                        if guardrail and shown
                        else ""
                    ),
                }
            )
        return rows

    def to_row_dict(self, item: dict) -> dict:
        return {
            "goal": item["goal_name"],
            "segment": item["segment"] or "(all visitors)",
            "arm": item["arm_name"],
            "arm_key": item["arm_key"],
            "visitors": item["n"],
            "mean": item["mean"],
            "lift": item.get("lift"),
            "ci_low": item.get("ci_low"),
            "ci_high": item.get("ci_high"),
            "p_value": item.get("p_value"),
            "p_holm": item.get("p_holm"),
            "p_bh": item.get("p_bh"),
            "chance_to_win": item.get("chance_to_win"),
            "risk": item.get("risk"),
            "cuped": item.get("cuped"),
            "guardrail_failing": item.get("harm", False),
        }

    def lift_chart(self):
        """The primary goal's cumulative lift of each arm, with its interval, over the
        snapshots (everyone), ending with the figures of now."""
        goal = self.result["progress"]["goal"]
        if goal is None:
            return None
        points = [
            (s.computed_at.strftime("%m-%d %H:%M"), s.data)
            for s in self.experiment.snapshots.order_by("-computed_at")[:500]
        ][::-1]
        points.append((_("now"), self.result))
        labels = [label for label, _data in points]
        series = []
        others = [arm for arm in self.result["arms"] if not arm["control"]]
        for position, arm in enumerate(others):
            lifts, lows, highs = [], [], []
            for _label, data in points:
                cell = next(
                    (
                        c
                        for c in data.get("cells", [])
                        if c["goal"] == goal and c["segment"] == "" and c["arm"] == arm["index"]
                    ),
                    None,
                )
                shown = cell is not None and cell.get("shown") and cell.get("lift") is not None
                lifts.append(cell["lift"] * 100 if shown else 0.0)
                lows.append((cell.get("ci_low") or 0.0) * 100 if shown else 0.0)
                highs.append((cell.get("ci_high") or 0.0) * 100 if shown else 0.0)
            colour = PALETTE[position % len(PALETTE)]
            name = arm["name"]
            series += [
                Series(_("%(arm)s: lift") % {"arm": name}, lifts, colour, "", "lift"),
                Series(_("%(arm)s: lower bound") % {"arm": name}, lows, colour, "2 3", "low"),
                Series(_("%(arm)s: upper bound") % {"arm": name}, highs, colour, "2 3", "high"),
            ]
        return line_chart(
            labels,
            series,
            title=_("Cumulative lift of the primary goal (%), with its interval"),
            integer=False,
            signed=True,
            reference=(0.0, _("No effect")),
            table=True,
        )

    def weights_chart(self):
        history = list(self.experiment.weight_history.order_by("computed_at")[:500])
        if not history:
            return None
        arms = self.result["arms"]
        labels = [h.computed_at.strftime("%m-%d %H:%M") for h in history]
        series = []
        for position, arm in enumerate(a for a in arms if a["weight"] is not None):
            values = []
            for h in history:
                weights = h.weights
                if isinstance(weights, dict):
                    value = weights.get(str(arm["index"]), 0.0)
                else:
                    value = weights[position] if position < len(weights) else 0.0
                values.append(float(value or 0.0))
            series.append(Series(arm["name"], values))
        return line_chart(
            labels, series, title=_("Bandit weights over time"), integer=False, table=True
        )

    def get_context_data(self, **kwargs):
        from .results import failing_guardrails

        context = super().get_context_data(**kwargs)
        result = self.result
        progress = result["progress"]
        failing = [
            {
                "arm": arm["name"],
                "goals": [
                    {**g, "interval": f"{_percent(g['ci_low'])} … {_percent(g['ci_high'])}"}
                    for g in failing_guardrails(result, arm["index"])
                ],
            }
            for arm in result["arms"]
            if arm["guardrail_failing"]
        ]
        context.update(
            experiment=self.experiment,
            result=result,
            guardrails_failing=failing,
            rows=context["object_list"],
            srm=result["srm"],
            progress=progress,
            progress_percent=None
            if progress["fraction"] is None
            else round(progress["fraction"] * 100, 1),
            lift_chart=self.lift_chart(),
            weights_chart=self.weights_chart(),
            may_run=may_run(self.request.user),
            edit_url=reverse("experiments:edit", args=[self.experiment.pk]),
        )
        return context
