"""The variant decision with experiments: segments + the visitor's experiment arm + holdouts.

For a consented visitor only (everyone else gets the usual segment choice, or default content,
and nothing is recorded about them), and without any extra round trip or query: the sticky
arms come back with the memberships in the request's one call to the fast store
(``Exchange.assignments``), the running experiments from a per-process copy
(:func:`experiments.api.running_experiments`). The arm is the drain's own function of the
same inputs, so what a visitor is shown is what the drain records them as.

1. While a global holdout runs, a visitor in it sees default content everywhere.
2. Else the first experiment on this block (or page) that the visitor is eligible for and
   enrolled in decides (:func:`experiments.api.decider`; one whose coverage or namespace
   leaves them out passes the block to the next, as a GrowthBook feature's experiment rules
   do): its own holdout and an arm showing ``"default"`` give the default content, an arm
   showing a variant's key that variant, any other arm (``"personalised"`` of a holdout
   experiment) the usual segment choice. Enrolled in none: the usual choice. The drain counts
   the visitor in exactly these experiments (``Running.served``).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.http import HttpRequest

from experiments.api import HOLDOUT_ARM, RunningExperiment, decider, running_experiments

from .choices import _consulted, choose_for, segments_for
from .decisions import Candidate

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to show: ``index`` of the candidate (None: the default content), and the
    experiment (its key) and arm (what it shows, or ``"holdout"``) that decided it, if any."""

    index: int | None
    experiment: str | None = None
    arm: str | None = None


def visitor_assignments(request: HttpRequest | None) -> tuple[str, dict[str, str]] | None:
    """(visitor key, sticky assignments) of a consented visitor, from this request's round
    trip (made now if it was not yet); None for anyone else."""
    visitor = getattr(request, "personalization", None) if request is not None else None
    state = getattr(visitor, "experiment_state", None)
    return state() if state is not None else None


def _note(request, experiment: RunningExperiment, arm: int | None) -> None:
    """Cache-safe mode: the page depends on this experiment's arm (personalization.cache)."""
    noted = getattr(request, "_tailored_arms", None)
    if noted is not None:
        noted[experiment.id] = arm


def decide(
    request: HttpRequest | None,
    candidates: Sequence[Candidate],
    *,
    keys: Sequence[str] | Callable[[], Sequence[str]] = (),
    page_id: int | None = None,
    block_id: str | None = None,
) -> Decision:
    """The decision for a personalised block (``block_id``: its StreamField id, on the page
    ``page_id``) or, without ``block_id``, for the variants of the page ``page_id``.
    ``keys`` are the candidates' keys (a block variant's key, a page variant's id as a
    string), which experiment arms name, or a function returning them (called only when an
    experiment's arm names a variant)."""
    base = choose_for(request, candidates)
    state = visitor_assignments(request)
    if state is None:
        return Decision(base)
    running = running_experiments()
    if not running:
        return Decision(base)
    visitor_key, assignments = state
    holdout = running.global_holdout
    if holdout is not None:
        arm = holdout.arm(visitor_key, assignments.get(holdout.id))
        _note(request, holdout, arm)
        if arm == 0:
            return Decision(None, holdout.key, holdout.arm_name(0))
    segments = segments_for(request)
    chain = (
        running.block_chain(page_id, block_id)
        if block_id is not None
        else running.page_chain(page_id)
    )
    examined: dict[RunningExperiment, int | None] = {}
    found = decider(chain, visitor_key, assignments, segments, examined)
    # Whether each experiment tried was eligible is part of the decision (cache-safe mode).
    tried = chain[: chain.index(found[0]) + 1] if found is not None else chain
    _consulted(request, tuple(e.segment for e in tried if e.segment is not None))
    for experiment, examined_arm in examined.items():
        _note(request, experiment, examined_arm)
    if found is None:
        return Decision(base)
    experiment, arm = found
    if arm == HOLDOUT_ARM:
        return Decision(None, experiment.key, "holdout")
    shows = experiment.arm_keys[arm]
    if shows == DEFAULT:
        return Decision(None, experiment.key, shows)
    keys = list(keys() if callable(keys) else keys)
    index = keys.index(shows) if shows in keys else base
    return Decision(index, experiment.key, shows)
