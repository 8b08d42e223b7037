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
  refers to (a model that does not exist, say), shown to the editor when a segment is saved.

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


@dataclass
class _Extensions:
    scorers: dict[str, ProfileScorer] = field(default_factory=dict)
    explainers: dict[str, Explainer] = field(default_factory=dict)
    reference_validators: dict[str, ReferenceValidator] = field(default_factory=dict)


extensions = _Extensions()


def register_profile_scorer(name: str, scorer: ProfileScorer) -> None:
    extensions.scorers[name] = scorer


def register_explainer(name: str, explainer: Explainer) -> None:
    extensions.explainers[name] = explainer


def register_rule_reference_validator(name: str, validator: ReferenceValidator) -> None:
    extensions.reference_validators[name] = validator


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
