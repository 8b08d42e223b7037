"""The editors' forms: an experiment (what, where, how visitors are split, how results are read)
with its arms and goals as inline formsets.

Once an experiment has started, its key (the hashing seed) and its arms' number, order and
content are fixed (the statistics are per arm): names and weights may change, and coverage may
ramp, because assignment is sticky (enrolled visitors keep their arm).
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F
from django.forms.models import BaseInlineFormSet, inlineformset_factory
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm

from tailored.forms import StrictJSONField

from . import targets
from .models import DEFAULT_KEY, Arm, Experiment, Goal

__all__ = ["ArmFormSet", "ExperimentForm", "GoalFormSet", "arm_options"]

HOLDOUT_KINDS = (Experiment.Kind.HOLDOUT, Experiment.Kind.GLOBAL_HOLDOUT)


def arm_options(kind: str, page, block_id: str) -> list[targets.Option] | None:
    """What the arms may show for this kind, page and block (None: not known yet)."""
    if kind in HOLDOUT_KINDS:
        return targets.holdout_options()
    if page is None:
        return None
    if kind == Experiment.Kind.BLOCK:
        return targets.block_options(page, block_id) if block_id else None
    if kind == Experiment.Kind.PAGE:
        return targets.page_options(page)
    return None


# What a started experiment keeps: what is tested, where, and how visitors are hashed (the
# statistics are per arm of this one test). Coverage, the holdout, weights and the analysis
# settings may change.
FIXED_ONCE_STARTED = (
    "key",
    "kind",
    "mode",
    "page",
    "block_id",
    "segment",
    "hash_version",
    "namespace",
    "namespace_start",
    "namespace_end",
)


class ExperimentForm(WagtailAdminModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        started = self.instance.pk and self.instance.status != Experiment.Status.DRAFT
        if started:
            for name in FIXED_ONCE_STARTED:
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].help_text = _("Fixed once the experiment has started.")

    def _between(self, name: str, low: float, high: float, *, open_low: bool = False) -> None:
        value = self.cleaned_data.get(name)
        if value is None:
            return
        if value < low or value > high or (open_low and value == low):
            self.add_error(
                name,
                _("Must be between %(low)s and %(high)s.") % {"low": low, "high": high},
            )

    def clean(self):
        cleaned = super().clean()
        self._between("coverage", 0.0, 1.0)
        self._between("holdout_percent", 0.0, 100.0)
        self._between("alpha", 0.0, 0.5, open_low=True)
        self._between("bandit_floor", 0.0, 0.5)
        self._between("bandit_discount", 0.0, 1.0, open_low=True)
        self._between("namespace_start", 0.0, 1.0)
        self._between("namespace_end", 0.0, 1.0)
        if cleaned.get("sequential_tuning") is not None and cleaned["sequential_tuning"] <= 0:
            self.add_error("sequential_tuning", _("Must be positive."))
        if cleaned.get("minimum_detectable_effect") is not None and not (
            0 < cleaned["minimum_detectable_effect"] <= 10
        ):
            self.add_error(
                "minimum_detectable_effect", _("A relative lift such as 0.1 (10%), above 0.")
            )
        if cleaned.get("hash_version") not in (None, 1, 2):
            self.add_error("hash_version", _("GrowthBook's hash versions are 1 and 2."))
        kind, page, block_id = cleaned.get("kind"), cleaned.get("page"), cleaned.get("block_id")
        if kind == Experiment.Kind.BLOCK:
            if page is None:
                self.add_error("page", _("Choose the page that holds the block."))
            elif not block_id:
                self.add_error("block_id", _("Choose the personalised block to test."))
        elif kind == Experiment.Kind.PAGE and page is None:
            self.add_error("page", _("Choose the page whose variants are tested."))
        elif kind == Experiment.Kind.HOLDOUT and page is None:
            self.add_error("page", _("Choose the page (and optionally its block) held out."))
        if (
            page is not None
            and block_id
            and kind != Experiment.Kind.GLOBAL_HOLDOUT
            and targets.block_options(page, block_id) is None
        ):
            self.add_error("block_id", _("This page has no personalised block with this id."))
        return cleaned


def suggested_arms(options: list[targets.Option], segment: str | None) -> list[targets.Option]:
    """The arms an editor who leaves them empty gets: the default content (the control) then
    every variant meant for the segment (every variant, without a segment); for a holdout,
    the default against the personalised choice."""
    default = [o for o in options if o.key == DEFAULT_KEY]
    variants = [
        o
        for o in options
        if o.key != DEFAULT_KEY
        and (segment is None or segment in o.segments or o.key == targets.PERSONALISED_KEY)
    ]
    return default + variants


class ArmFormSetBase(BaseInlineFormSet):
    """At least two arms, positive weights, keys the block or page offers; a started
    experiment's arms keep their number, order and keys. Left empty before the start, the arms
    are the default against each variant for the segment (:func:`suggested_arms`)."""

    options: list[targets.Option] | None = None

    def __init__(self, *args, options=None, locked=False, segment=None, **kwargs):
        self.options, self.locked, self.segment = options, locked, segment
        self.suggested: list[targets.Option] = []
        super().__init__(*args, **kwargs)
        if locked:
            self.can_delete = False
            self.extra = 0
            self.max_num = self.initial_form_count()
            self.validate_max = True
        for form in self.forms:
            self._configure(form)

    @property
    def empty_form(self):
        form = super().empty_form
        self._configure(form)
        return form

    def _configure(self, form):
        if self.options is not None:
            choices = [(o.key, f"{o.name} ({o.key})") for o in self.options]
            if form.initial.get("key") and form.initial["key"] not in {o.key for o in self.options}:
                choices.append((form.initial["key"], form.initial["key"]))
            form.fields["key"] = forms.ChoiceField(
                choices=choices, label=_("Shows"), initial=form.initial.get("key", DEFAULT_KEY)
            )
        if self.locked:
            form.fields["key"].disabled = True

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        arms = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not arms and not self.locked and self.options is not None:
            self.suggested = suggested_arms(self.options, self.segment)
            if len(self.suggested) >= 2:
                return
        if len(arms) < 2:
            raise ValidationError(_("An experiment needs at least two arms."))
        if any((arm.get("weight") or 0) <= 0 for arm in arms):
            raise ValidationError(_("Every arm needs a positive weight."))
        keys = [arm["key"] for arm in arms]
        if len(set(keys)) != len(keys):
            raise ValidationError(_("Two arms show the same thing."))
        if self.options is not None:
            known = {o.key for o in self.options}
            unknown = [k for k in keys if k not in known]
            if unknown:
                raise ValidationError(
                    _("Unknown variant: %(keys)s.") % {"keys": ", ".join(unknown)}
                )

    def save(self, commit=True):
        """Arms get their indices in the order shown (the first is the control)."""
        if self.suggested:
            return [
                Arm.objects.create(
                    experiment=self.instance, index=index, name=option.name[:100], key=option.key
                )
                for index, option in enumerate(self.suggested)
            ]
        super().save(commit=False)
        for arm in self.deleted_objects:
            arm.delete()
        deleted = set(self.deleted_forms)
        kept = [
            form.instance
            for form in self.forms
            if form not in deleted and (form.instance.pk or form.has_changed())
        ]
        if not self.locked:
            # Free the indices first: they are unique per experiment.
            Arm.objects.filter(pk__in=[a.pk for a in kept if a.pk]).update(index=F("index") + 10000)
        for index, arm in enumerate(kept):
            if not self.locked:
                arm.index = index
            arm.experiment = self.instance
            arm.save()
        return kept


class GoalFormSetBase(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        goals = [
            f.cleaned_data
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        if not goals:
            raise ValidationError(_("An experiment needs at least one goal."))
        for goal in goals:
            if not isinstance(goal.get("match") or {}, dict):
                raise ValidationError(_("“Where” is a JSON object of property: value."))


ArmFormSet = inlineformset_factory(
    Experiment,
    Arm,
    formset=ArmFormSetBase,
    fields=("name", "key", "weight"),
    extra=2,
    can_delete=True,
)
GoalFormSet = inlineformset_factory(
    Experiment,
    Goal,
    formset=GoalFormSetBase,
    fields=(
        "name",
        "event",
        "match",
        "metric",
        "value_property",
        "window_seconds",
        "role",
        "direction",
    ),
    field_classes={"match": StrictJSONField},
    extra=1,
    can_delete=True,
)
