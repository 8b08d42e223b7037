"""Why a model placed a visitor where it did: the features that contributed most, cheap
enough to compute on demand in the admin (numpy and the loaded estimator only).

Propensity: for each feature, the visitor's score minus the average score when that feature
alone takes the values of a background sample of training rows (a permutation-style local
attribution; one vectorised call over features x background rows). Clustering: for each
feature, how much it pulls the visitor towards their cluster's centre rather than the next
nearest one (difference of squared standardised distances).
"""

import numpy as np

from segments.api import Profile, model_references

from .dataset import MODEL_FEATURES, feature_matrix
from .models import ModelVersion
from .scoring import Scorer, active_models


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def _entry(scorer: Scorer, x: np.ndarray, j: int, effect: float, why: str) -> dict:
    name = scorer.features[j]
    value = float(x[0, j])
    return {
        "feature": name,
        "value": round(value, 3),
        "effect": round(float(effect), 3),
        "words": f"{MODEL_FEATURES[name].label} is {_fmt(value)}: {why}",
    }


def contributions(scorer: Scorer, profile: Profile, now: float, top: int = 3) -> list[dict]:
    x = feature_matrix([profile], now, scorer.features)
    if scorer.kind == "propensity":
        background = scorer.background
        if background is None or not len(background):
            return []
        d, b = len(scorer.features), len(background)
        rows = np.repeat(x, d * b, axis=0)
        for j in range(d):
            rows[j * b : (j + 1) * b, j] = background[:, j]
        scores = scorer.estimator.predict_proba(np.vstack([x, rows]))[:, 1]
        own = scores[0]
        effects = own - scores[1:].reshape(d, b).mean(axis=1)
        ranked = np.argsort(-np.abs(effects))[:top]
        return [
            _entry(
                scorer,
                x,
                j,
                effects[j],
                f"{'raises' if effects[j] > 0 else 'lowers'} the score by {abs(effects[j]):.2f}",
            )
            for j in ranked
            if abs(effects[j]) >= 0.005
        ]
    z = scorer.transform(x)[0]
    distances = ((scorer.centers - z) ** 2).sum(axis=1)
    order = np.argsort(distances)
    if len(order) < 2:
        return []
    own, other = scorer.centers[order[0]], scorer.centers[order[1]]
    pull = (z - other) ** 2 - (z - own) ** 2
    why = f"typical of {scorer.keys[order[0]]} rather than {scorer.keys[order[1]]}"
    return [_entry(scorer, x, j, pull[j], why) for j in np.argsort(-pull)[:top] if pull[j] > 0.01]


def explain_models(profile: Profile, slugs: set[str], now: float) -> dict[str, list[dict]]:
    """Top contributing features of each active model among ``slugs`` for the profile."""
    return {
        scorer.slug: contributions(scorer, profile, now)
        for scorer in active_models().scorers
        if scorer.slug in slugs
    }


def explain_segments(profile: Profile, rules: dict, now: float) -> dict[str, dict[str, list[dict]]]:
    """The explainer registered with :mod:`segments.extensions`: for each segment whose rule
    uses models, the visitor's top contributing features per model (only while some version is
    active: otherwise nothing is loaded)."""

    uses = {
        slug: refs
        for slug, rule in rules.items()
        if (refs := {r["model"] for r in model_references(rule)})
    }
    if not uses or not ModelVersion.objects.filter(is_active=True).exists():
        return {}
    by_model = explain_models(profile, set().union(*uses.values()), now)
    return {
        slug: {m: by_model[m] for m in sorted(models) if m in by_model}
        for slug, models in uses.items()
    }
