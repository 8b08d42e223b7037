"""Where optional parts plug into the segments pipeline, so the pipeline never names them.

An app (model-driven segments today; experiments and recommendations next) registers, in its
``AppConfig.ready()``:

- a **profile scorer** ``f(profiles, now) -> None``: called by the stream drain with the
  batch's touched profiles before rules are evaluated; it may write model outputs into them
  (:attr:`Profile.scores`), which rule conditions then read. It must be fast, batch-wise, and
  must not raise for one bad profile;
- an **explainer** ``f(profile, rules, now) -> {segment slug: {name: [factor, ...]}}``: extra
  "why" for a visitor's explanation, given ``{slug: rule}`` of the enabled segments;
- a **rule reference validator** ``f(rule) -> [message, ...]``: problems with what a rule
  refers to (a model that does not exist, say), shown to the editor when a segment is saved;
- a **batch step** ``f(visitors, now) -> {visitor key: FieldChanges}``: called by the stream
  drain once per batch, after the visitors' memberships are settled and before anything is
  written to the fast store, with one :class:`BatchVisitor` per consented visitor of the batch
  (their profile, memberships, the events of the batch newly written to the durable log, and
  the fields of their hash in the fast store). It may write to the database and returns the
  hash fields to set or delete for some visitors (committed with the batch). Only events newly
  written to the log reach it, so an event is never seen twice (a batch delivered again brings
  none). Field names must start with a prefix the step owns (``x:`` for experiments), never
  ``s:`` or ``_``: the drain keeps those. A rebuild of the fast store from the durable log
  calls the steps too, with each visitor's events empty and ``fields`` empty (the store was
  emptied): a step restores there what it keeps in the hashes from its own tables;
- a **restore step** ``f(visitors, now) -> {visitor key: FieldChanges}``: called by a rebuild
  of the fast store from the durable log (``rebuild_fast_store``), after the batch steps, with
  one :class:`BatchVisitor` per restored visitor whose ``events`` are *every* event the log
  holds for them, in time order (``fields`` empty). For what a step keeps in the hashes that
  only the events can give back (recommendations: a visitor's recent items and their list). It
  must only compute hash fields, never count the events again anywhere: they were counted when
  they were first drained;
- **definition tables** (:func:`register_definitions`): models whose rows a process caches as
  definitions (experiments: the running experiments and their arms). The segments' freshness
  check (one small query at most every ``SEGMENTS_DEFINITIONS_CHECK_SECONDS`` per process,
  :func:`segments.definitions.definitions_stamps`) covers them too, so a cache of them learns
  of another process's change within that time without a query of its own.

Rule condition types themselves register with :func:`segments.rules.register_condition`.
Registration is by name, so registering again replaces (``ready()`` may run twice in tests).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
ProfileScorer = Callable[[list, float], None]
Explainer = Callable[[Any, dict[str, Any], float], dict[str, dict[str, list[dict]]]]
ReferenceValidator = Callable[[Any], list[str]]


@dataclass(slots=True)
class BatchEvent:
    """One event of a batch, newly written to the durable log: its name, time (epoch
    seconds) and properties."""

    name: str
    ts: float
    properties: dict


@dataclass(slots=True)
class BatchVisitor:
    """A consented visitor of a drained batch, as a batch step sees them: ``memberships``
    (slug -> end, epoch seconds) are those after settling the batch (context-only segments
    without ``persist`` are not among them: a step decides those from the page views'
    recorded context), ``events`` the batch's events newly written to the log in time order,
    ``fields`` the visitor's hash in the fast store as it was before the batch."""

    key: str
    profile: Any
    memberships: dict[str, float]
    events: list[BatchEvent]
    fields: dict[str, str]


@dataclass(slots=True)
class FieldChanges:
    """Hash fields a batch step sets and deletes for one visitor."""

    set: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)


BatchStep = Callable[[list[BatchVisitor], float], dict[str, FieldChanges]]
STEP_FIELD_RESERVED = ("s:", "_")


@dataclass
class _Extensions:
    scorers: dict[str, ProfileScorer] = field(default_factory=dict)
    explainers: dict[str, Explainer] = field(default_factory=dict)
    reference_validators: dict[str, ReferenceValidator] = field(default_factory=dict)
    batch_steps: dict[str, BatchStep] = field(default_factory=dict)
    restore_steps: dict[str, BatchStep] = field(default_factory=dict)
    definitions: dict[str, tuple[Any, ...]] = field(default_factory=dict)


extensions = _Extensions()


def register_profile_scorer(name: str, scorer: ProfileScorer) -> None:
    extensions.scorers[name] = scorer


def register_explainer(name: str, explainer: Explainer) -> None:
    extensions.explainers[name] = explainer


def register_rule_reference_validator(name: str, validator: ReferenceValidator) -> None:
    extensions.reference_validators[name] = validator


def register_batch_step(name: str, step: BatchStep) -> None:
    extensions.batch_steps[name] = step


def unregister_batch_step(name: str) -> None:
    extensions.batch_steps.pop(name, None)


def register_restore_step(name: str, step: BatchStep) -> None:
    extensions.restore_steps[name] = step


def unregister_restore_step(name: str) -> None:
    extensions.restore_steps.pop(name, None)


def register_definitions(name: str, *models) -> None:
    """Have the definitions freshness check cover ``models`` (their row count, and the latest
    ``updated_at``, or the highest primary key of a model without one), under ``name`` in
    :func:`segments.definitions.definitions_stamps`. A write that must reach other processes
    adds or deletes a row or moves ``updated_at``."""
    extensions.definitions[name] = tuple(models)


def unregister_definitions(name: str) -> None:
    extensions.definitions.pop(name, None)


def run_batch_steps(visitors: list[BatchVisitor], now: float) -> dict[str, FieldChanges]:
    """Every registered batch step over a batch's visitors; their field changes merged per
    visitor (nothing registered, or no visitor: nothing runs). A step that raises is logged
    and skipped, like a profile scorer: the batch goes on without its changes (one broken
    step must not stall the stream). Changes to reserved fields are dropped."""
    return _run_steps(extensions.batch_steps, visitors, now)


def run_restore_steps(visitors: list[BatchVisitor], now: float) -> dict[str, FieldChanges]:
    """Every registered restore step over rebuilt visitors (their whole logged history in
    ``events``), merged and guarded as :func:`run_batch_steps` does."""
    return _run_steps(extensions.restore_steps, visitors, now)


def _run_steps(
    steps: dict[str, BatchStep], visitors: list[BatchVisitor], now: float
) -> dict[str, FieldChanges]:
    merged: dict[str, FieldChanges] = {}
    if not visitors:
        return merged
    for name, step in steps.items():
        try:
            changes = step(visitors, now) or {}
        except Exception as exc:
            if (name, type(exc)) not in _failed:
                _failed.add((name, type(exc)))
                logger.exception("Batch step %r failed; the batch goes on without it", name)
            continue
        for key, change in changes.items():
            into = merged.setdefault(key, FieldChanges())
            into.set.update(
                (f, v) for f, v in change.set.items() if not f.startswith(STEP_FIELD_RESERVED)
            )
            into.delete.extend(f for f in change.delete if not f.startswith(STEP_FIELD_RESERVED))
    return merged


def score_profiles(profiles: list, now: float) -> None:
    """Run every registered scorer over a batch's profiles (nothing registered: nothing runs).
    A scorer that raises is logged and skipped: the profiles keep the outputs they had, and
    the batch goes on (one broken model must not stall the stream)."""
    for name, scorer in extensions.scorers.items():
        try:
            scorer(profiles, now)
        except Exception as exc:
            if (name, type(exc)) not in _failed:  # once per kind of failure, not every batch
                _failed.add((name, type(exc)))
                logger.exception(
                    "Profile scorer %r failed; the batch keeps its previous outputs", name
                )


_failed: set[tuple[str, type]] = set()


def explain(profile, rules: dict[str, Any], now: float) -> dict[str, dict[str, list[dict]]]:
    """Every registered explainer's factors, merged per segment slug."""
    merged: dict[str, dict[str, list[dict]]] = {}
    for explainer in extensions.explainers.values():
        for slug, factors in explainer(profile, rules, now).items():
            merged.setdefault(slug, {}).update(factors)
    return merged


def reference_problems(rule) -> list[str]:
    """Problems every registered validator finds in what ``rule`` refers to."""
    return [
        msg for validator in extensions.reference_validators.values() for msg in validator(rule)
    ]
