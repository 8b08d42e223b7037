"""What editors do to an experiment, in one place for the admin, the API and code: start,
pause, stop, re-randomise, and promote the winner. Each is logged in Wagtail's audit log
(the experiment's history) under the user who did it.

Promoting the winner (:func:`promote`) publishes, through a new page revision, the content
the winning arm showed as what the experiment's visitors get from now on:

- **a block experiment** (variants of a personalised block, inside a segment or for
  everyone): the losing arms' variants stop being shown to the segment (the segment is taken
  out of their segments; a variant left with no segment, or any losing variant when the
  experiment has no segment, is removed from the block) and the winning variant moves to the
  top of the block's variants, so it is the first the segment's visitors match (the segment
  is added to it if it was not named). An experiment on everyone (no segment) makes the
  winning variant's content the block's default content instead (the variant itself goes).
  When the default content (or the holdout) wins, only the losers are taken out: the segment
  sees the default.
- **a holdout experiment** (default content against the usual personalised choice): when
  personalization wins nothing changes (no revision: the content already personalises); when
  the default wins on a block, the block's variants for the segment stop being shown to it
  (the rule above, with every variant the segment matches as a loser); a whole-page holdout
  that the default wins is refused (too much to change at once: edit the page).
- **a page experiment** (a page against its whole-page variants):

  - **inside a segment**: the losing variants stop being served to the segment (the segment
    is taken out of their ``variant_segments``; a variant that named only that segment is
    unpublished instead, not deleted); when a variant wins and does not already list the
    segment (and matches *any* of its segments), the segment is added to it. Each changed
    variant gets a published revision;
  - **on everyone** (no segment): a winning variant's content (its title, its own fields and
    child objects: everything but the page's place, address and variant settings) becomes
    the page's own content, in a new published revision of the page; then every variant
    that was an arm (the winner included) is unpublished, through Wagtail's unpublish action,
    so that no visitor, whatever their segments, is served another arm's page any more. When
    the page itself (``default``) wins, only the losing variants are unpublished. Variants
    that were not arms keep being served to their segments.

  Each page the promotion changes also gets an entry ``tailored.experiment.promote`` in its
  history (the experiment, the arm, the revision).

An arm that fails a guardrail (:func:`experiments.results.failing_guardrails`: a guardrail
goal significantly worse than the control, for everyone) is never published: promoting it is
refused with the guardrails it harms, whoever asks (there is no override; stop the experiment
and edit the content by hand if you must).

Promoting publishes pages, so besides ``experiments.run_experiment`` it needs Wagtail's
permission to publish the page. The revision starts from the live page (what visitors saw
during the test), not from an unpublished draft, so promoting never publishes an editor's
unfinished changes. The experiment then stops, with its winner and the time of promotion.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.actions.unpublish_page import UnpublishPageAction
from wagtail.log_actions import log
from wagtail.models import Page

from . import targets
from .models import DEFAULT_KEY, Arm, Experiment

__all__ = [
    "CHANGE",
    "PAUSE",
    "PROMOTE",
    "RERANDOMISE",
    "START",
    "STOP",
    "ExperimentActionError",
    "pause",
    "problems",
    "promote",
    "rerandomise",
    "start",
    "stop",
]

START = "tailored.experiment.start"
PAUSE = "tailored.experiment.pause"
STOP = "tailored.experiment.stop"
RERANDOMISE = "tailored.experiment.rerandomise"
PROMOTE = "tailored.experiment.promote"
CHANGE = "tailored.experiment.change"  # the split changed (logged by the admin's edit view)


class ExperimentActionError(ValidationError):
    """The action is not possible in the experiment's state (the message says why)."""


def problems(experiment: Experiment) -> list[str]:
    """Why ``experiment`` cannot run as it is ([] when it can)."""
    found = []
    arms = list(experiment.arms.all())
    if len(arms) < 2:
        found.append(_("An experiment needs at least two arms."))
    if any(arm.weight <= 0 for arm in arms):
        found.append(_("Every arm needs a positive weight."))
    if not experiment.goals.exists():
        found.append(_("An experiment needs at least one goal."))
    kind = experiment.kind
    if kind == Experiment.Kind.BLOCK and (experiment.page_id is None or not experiment.block_id):
        found.append(_("Choose the page and the personalised block to test."))
    elif kind in (Experiment.Kind.PAGE, Experiment.Kind.HOLDOUT) and experiment.page_id is None:
        found.append(_("Choose the page to test."))
    elif kind in (Experiment.Kind.HOLDOUT, Experiment.Kind.GLOBAL_HOLDOUT):
        if kind == Experiment.Kind.GLOBAL_HOLDOUT and (
            Experiment.objects.filter(kind=kind, status=Experiment.Status.RUNNING)
            .exclude(pk=experiment.pk)
            .exists()
        ):
            found.append(_("Another global holdout is running: stop it first."))
        known = {o.key for o in targets.holdout_options()}
        found += _unknown(arms, known)
        if (
            experiment.block_id
            and targets.block_options(experiment.page, experiment.block_id) is None
        ):
            found.append(_("The page has no personalised block with this id."))
    elif kind == Experiment.Kind.BLOCK:
        options = targets.block_options(experiment.page, experiment.block_id)
        if options is None:
            found.append(_("The page has no personalised block with this id."))
        else:
            found += _unknown(arms, {o.key for o in options})
    elif kind == Experiment.Kind.PAGE:
        found += _unknown(arms, {o.key for o in targets.page_options(experiment.page)})
    return found


def _unknown(arms: list[Arm], known: set[str]) -> list[str]:
    unknown = [a.key for a in arms if a.key not in known]
    if not unknown:
        return []
    return [_("Nothing to show for the arm key %(keys)s.") % {"keys": ", ".join(unknown)}]


def _transition(experiment: Experiment, allowed: tuple[str, ...], verb: str) -> None:
    if experiment.status not in allowed:
        raise ExperimentActionError(
            _("A %(status)s experiment cannot be %(verb)s.")
            % {"status": experiment.get_status_display().lower(), "verb": verb}
        )


@transaction.atomic
def start(experiment: Experiment, user=None) -> None:
    """Start (or resume) a draft or paused experiment; refused while :func:`problems` finds
    any."""
    _transition(experiment, (Experiment.Status.DRAFT, Experiment.Status.PAUSED), _("started"))
    found = problems(experiment)
    if found:
        raise ExperimentActionError(found)
    resumed = experiment.status == Experiment.Status.PAUSED
    experiment.status = Experiment.Status.RUNNING
    experiment.started_at = experiment.started_at or timezone.now()
    experiment.save(update_fields=["status", "started_at", "updated_at"])
    log(experiment, START, user=user, data={"resumed": resumed})


@transaction.atomic
def pause(experiment: Experiment, user=None) -> None:
    """Pause a running experiment: everyone sees what they would without it; nothing is
    counted until it is started again. Enrolled visitors keep their arm."""
    _transition(experiment, (Experiment.Status.RUNNING,), _("paused"))
    experiment.status = Experiment.Status.PAUSED
    experiment.save(update_fields=["status", "updated_at"])
    log(experiment, PAUSE, user=user)


@transaction.atomic
def stop(experiment: Experiment, user=None) -> None:
    """Stop a running or paused experiment for good (its results stay)."""
    _transition(experiment, (Experiment.Status.RUNNING, Experiment.Status.PAUSED), _("stopped"))
    experiment.status = Experiment.Status.STOPPED
    experiment.stopped_at = timezone.now()
    experiment.save(update_fields=["status", "stopped_at", "updated_at"])
    log(experiment, STOP, user=user)


@transaction.atomic
def rerandomise(experiment: Experiment, user=None) -> None:
    """Bump the assignment version: every enrolled visitor is assigned afresh."""
    _transition(
        experiment,
        (Experiment.Status.DRAFT, Experiment.Status.RUNNING, Experiment.Status.PAUSED),
        _("re-randomised"),
    )
    before = experiment.assignment_version
    experiment.assignment_version = before + 1
    experiment.save(update_fields=["assignment_version", "updated_at"])
    log(
        experiment,
        RERANDOMISE,
        user=user,
        data={"from": before, "to": experiment.assignment_version},
    )


def _without_segment(segments: list[str], slug: str | None) -> list[str] | None:
    """A losing variant's segments without the experiment's; None: remove the variant."""
    if slug is None:
        return None
    kept = [s for s in segments if s != slug]
    return kept or None


def _promote_block(
    experiment: Experiment, winner: Arm, slug: str | None, losers: set[str] | None = None
) -> tuple[str, list]:
    """``losers``: the variant keys that lose (by default the other arms' variants)."""
    page = experiment.page.specific
    found = targets.personalised_blocks(page).get(experiment.block_id)
    if found is None:
        raise ExperimentActionError(_("The page has no personalised block with this id."))
    field_name = found[0]
    if losers is None:
        losers = {a.key for a in experiment.arms.all() if a.key not in (winner.key, DEFAULT_KEY)}
    stream = getattr(page, field_name).get_prep_value()
    for item in stream:
        if str(item.get("id")) != experiment.block_id:
            continue
        variants = item["value"].get("variants") or []
        kept, first = [], []
        for n, variant in enumerate(variants):
            key = str(variant.get("id") or n)
            value = variant["value"]
            if key in losers:
                segments = _without_segment(list(value.get("segments") or []), slug)
                if segments is None:
                    continue
                value["segments"] = segments
            if key == winner.key and slug is None:
                # Tested on everyone: the winner's content becomes the default content.
                item["value"]["default"] = value.get("content")
            elif key == winner.key:
                segments = value.get("segments") or []
                if slug not in segments and value.get("match", "any") == "any":
                    value["segments"] = [*segments, slug]
                first.append(variant)
            else:
                kept.append(variant)
        item["value"]["variants"] = first + kept
    setattr(page, field_name, stream)
    return field_name, [page]


# What a page experiment's winning variant does not hand over to its page: where the page is
# and what it is (Page's own fields), and what makes a page a variant.
_PAGE_CONTENT_FROM_PAGE = ("title", "seo_title", "search_description")
_VARIANT_FIELDS = ("variant_of", "variant_segments", "variant_match")


def _with_variant_content(page: Page, variant: Page) -> Page:
    """``page`` (live) carrying ``variant``'s content: its title and search texts, the fields of
    its own model and its child objects (as new objects: the variant keeps its own)."""
    content = page.serializable_data()
    kept = {f.name for f in Page._meta.get_fields()} - set(_PAGE_CONTENT_FROM_PAGE)
    kept |= set(_VARIANT_FIELDS)
    for name, value in variant.serializable_data().items():
        if name in kept:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            # A child relation (ClusterableModel): copies, attached to the page.
            value = [{k: v for k, v in child.items() if k not in ("pk", "id")} for child in value]
        content[name] = value
    return page.with_content_json(content)


def _promote_page(experiment: Experiment, winner: Arm, slug: str | None) -> tuple[list, list]:
    """(pages to publish with a new revision, variants to unpublish)."""
    changed, unpublish = [], []
    arms = {a.key: a for a in experiment.arms.all()}
    variants = targets.page_variants(experiment.page)
    if slug is None:
        page = experiment.page.specific
        for variant in variants:
            key = str(variant.pk)
            if key not in arms:
                continue
            if key == winner.key:
                changed.append(_with_variant_content(page, variant))
            if variant.live:
                unpublish.append(variant)
        return changed, unpublish
    for variant in variants:
        key = str(variant.pk)
        if key not in arms:
            continue
        segments = list(variant.variant_segments or [])
        if key == winner.key:
            if slug not in segments and variant.variant_match == "any":
                variant.variant_segments = [*segments, slug]
                changed.append(variant)
        elif slug in segments:
            kept = [s for s in segments if s != slug]
            if kept:
                variant.variant_segments = kept
                changed.append(variant)
            elif variant.live:  # a variant must name a segment: it is served to no one now
                unpublish.append(variant)
    return changed, unpublish


@transaction.atomic
def promote(experiment: Experiment, arm: Arm, user=None) -> list[int]:
    """Publish ``arm`` as what the experiment's visitors get (see the module docstring), stop
    the experiment, record its winner. Returns the ids of the page revisions published."""
    if arm.experiment_id != experiment.pk:
        raise ExperimentActionError(_("This arm belongs to another experiment."))
    if experiment.promoted_at is not None:
        raise ExperimentActionError(_("This experiment's winner was already promoted."))
    if experiment.status == Experiment.Status.DRAFT:
        raise ExperimentActionError(_("A draft has no results: start the experiment first."))
    if experiment.kind == Experiment.Kind.GLOBAL_HOLDOUT or experiment.page_id is None:
        raise ExperimentActionError(_("This experiment tests no page: nothing to publish."))
    if user is not None and not experiment.page.permissions_for_user(user).can_publish():
        raise ExperimentActionError(
            _("Promoting publishes the page: you need permission to publish it.")
        )
    _refuse_failing_guardrails(experiment, arm)
    slug = experiment.segment.slug if experiment.segment_id else None
    unpublish = []
    if experiment.kind == Experiment.Kind.PAGE:
        pages, unpublish = _promote_page(experiment, arm, slug)
    elif experiment.kind == Experiment.Kind.BLOCK:
        _field, pages = _promote_block(experiment, arm, slug)
    elif arm.key != DEFAULT_KEY:
        pages = []  # personalization won its holdout: the content stays as it is
    elif experiment.block_id:
        # The default beat personalization on this block: the segment's variants go.
        options = targets.block_options(experiment.page, experiment.block_id) or []
        losers = {
            o.key for o in options if o.key != DEFAULT_KEY and (slug is None or slug in o.segments)
        }
        _field, pages = _promote_block(experiment, arm, slug, losers)
    else:
        raise ExperimentActionError(
            _(
                "The default content won this whole-page holdout: edit the page's blocks and "
                "variants yourself (promoting changes one block or the page variants only)."
            )
        )
    if user is not None:
        refused = [p for p in pages if not p.permissions_for_user(user).can_publish()]
        refused += [p for p in unpublish if not p.permissions_for_user(user).can_unpublish()]
        if refused:
            raise ExperimentActionError(
                _("Promoting changes “%(pages)s”: you need permission to publish it.")
                % {"pages": "”, “".join(str(p.title) for p in refused)}
            )
    revisions = []
    data = {"experiment": experiment.pk, "arm": arm.index, "name": arm.name, "key": arm.key}
    for page in pages:
        try:
            revision = page.save_revision(user=user, log_action=True)
        except ValidationError as exc:  # the page's own rules refuse the change: say why
            raise ExperimentActionError(
                [_("“%(page)s” cannot be saved:") % {"page": page.title}, *exc.messages]
            ) from exc
        revision.publish(user=user)
        revisions.append(revision.pk)
        log(page, PROMOTE, user=user, data={**data, "revisions": [revision.pk]})
    for variant in unpublish:
        UnpublishPageAction(variant, user=user).execute(skip_permission_checks=True)
        log(variant, PROMOTE, user=user, data={**data, "revisions": [], "unpublished": True})
    now = timezone.now()
    if experiment.status != Experiment.Status.STOPPED:
        experiment.status = Experiment.Status.STOPPED
        experiment.stopped_at = now
    experiment.winner = arm
    experiment.promoted_at = now
    experiment.save(update_fields=["status", "stopped_at", "winner", "promoted_at", "updated_at"])
    log(
        experiment,
        PROMOTE,
        user=user,
        data={"arm": arm.index, "name": arm.name, "key": arm.key, "revisions": revisions},
    )
    return revisions


def _refuse_failing_guardrails(experiment: Experiment, arm: Arm) -> None:
    from .results import analyse, failing_guardrails  # numpy and scipy: only when promoting

    failing = failing_guardrails(analyse(experiment), arm.index)
    if not failing:
        return
    raise ExperimentActionError(
        _(
            "“%(arm)s” fails the guardrail %(goals)s (significantly worse than the control): "
            "it cannot be promoted. Promote another arm, or stop the experiment."
        )
        % {
            "arm": arm.name,
            "goals": ", ".join(
                f"“{f['name']}” ({_signed(f['ci_low'])} … {_signed(f['ci_high'])})" for f in failing
            ),
        }
    )


def _signed(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:+.1f}%"
