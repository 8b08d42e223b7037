"""Why a model placed a visitor where it did: the features that contributed most, cheap
enough to compute on demand in the admin (numpy and the loaded estimator only).

Propensity: for each feature, the visitor's score minus the average score when that feature
alone takes the values of a background sample of training rows (a permutation-style local
attribution; one vectorised call over features x background rows). Clustering: for each
feature, how much it pulls the visitor towards their cluster's centre rather than the next
nearest one (difference of squared standardised distances).
"""

import numpy as np

from segments.api import Profile

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


def _probability(scorer: Scorer, X: np.ndarray) -> np.ndarray:
    if scorer.probability is not None:
        return scorer.probability(X)
    return scorer.estimator.predict_proba(X)[:, 1]


def contributions(
    scorer: Scorer,
    profile: Profile,
    now: float,
    top: int = 3,
    *,
    wanted: str | None = None,
    member: bool = True,
) -> list[dict]:
    """The visitor's top contributing features for one model.

    Without ``wanted`` (a model alone): what pushes the visitor's output to where it is.
    With ``wanted``, the explanation of one segment's condition on the model, worded for a
    member or not (``member``): for a score, ``wanted`` is ``"high"`` (``gte``, ``gt``, top
    percent) or ``"low"``, and a non-member reads the features that keep the score on the
    wrong side ("lowers the score by 0.12, keeping it from the ≥ 0.6 required"); for a cluster,
    ``wanted`` is the required cluster's key, and a non-member reads the features that pull
    them towards their own cluster rather than the required one, never "typical of" it."""
    x = feature_matrix([profile], now, scorer.features)
    if scorer.kind == "propensity":
        background = scorer.background
        if background is None or not len(background):
            return []
        d, b = len(scorer.features), len(background)
        rows = np.repeat(x, d * b, axis=0)
        for j in range(d):
            rows[j * b : (j + 1) * b, j] = background[:, j]
        scores = _probability(scorer, np.vstack([x, rows]))
        own = scores[0]
        effects = own - scores[1:].reshape(d, b).mean(axis=1)
        if wanted is None or member:
            ranked = np.argsort(-np.abs(effects))[:top]
            suffix = ""
        else:
            # A non-member: the features pushing the score the wrong way, strongest first.
            sign = -1.0 if wanted == "high" else 1.0
            ranked = [j for j in np.argsort(-sign * effects)[:top] if sign * effects[j] > 0]
            suffix = (
                f", keeping it {'below' if wanted == 'high' else 'above'} what the segment needs"
            )
        return [
            _entry(
                scorer,
                x,
                j,
                effects[j],
                f"{'raises' if effects[j] > 0 else 'lowers'} the score by "
                f"{abs(effects[j]):.2f}{suffix}",
            )
            for j in ranked
            if abs(effects[j]) >= 0.005
        ]
    z = scorer.transform(x)[0]
    distances = ((scorer.centers - z) ** 2).sum(axis=1)
    order = np.argsort(distances)
    if len(order) < 2:
        return []
    nearest_index = int(order[0])
    required = scorer.keys.index(wanted) if wanted in scorer.keys else None
    if required is None or required == nearest_index:
        other_index = int(order[1])
        why = f"typical of {scorer.keys[nearest_index]} rather than {scorer.keys[other_index]}"
    else:  # not in the required cluster: what keeps them in their own one instead
        other_index = required
        why = (
            f"pulls towards {scorer.keys[nearest_index]}, away from the required "
            f"{scorer.keys[required]}"
        )
    own, other = scorer.centers[nearest_index], scorer.centers[other_index]
    pull = (z - other) ** 2 - (z - own) ** 2
    return [_entry(scorer, x, j, pull[j], why) for j in np.argsort(-pull)[:top] if pull[j] > 0.01]


def explain_models(profile: Profile, slugs: set[str], now: float) -> dict[str, list[dict]]:
    """Top contributing features of each active model among ``slugs`` for the profile."""
    return {
        scorer.slug: contributions(scorer, profile, now)
        for scorer in active_models().scorers
        if scorer.slug in slugs
    }


def _model_nodes(node, depth: int = 0):
    """The model and cluster conditions of a rule, as (node, negated) pairs."""
    if not isinstance(node, dict) or depth > 16:
        return
    kind = node.get("type")
    if kind in ("model", "cluster"):
        yield node, False
    elif kind == "not":
        for child, negated in _model_nodes(node.get("condition"), depth + 1):
            yield child, not negated
    elif isinstance(node.get("conditions"), list):
        for child in node["conditions"]:
            yield from _model_nodes(child, depth + 1)


def _condition_holds(node: dict, output) -> bool:
    if node.get("type") == "cluster":
        return output == node.get("cluster")
    if not isinstance(output, list) or len(output) != 2:
        return False
    if node.get("top_percent") is not None:
        return output[1] >= 100 - node["top_percent"]
    op, value = node.get("op"), node.get("value")
    compare = {
        "gte": output[0] >= value,
        "gt": output[0] > value,
        "lte": output[0] <= value,
        "lt": output[0] < value,
    }
    return compare.get(op, False)


def explain_segments(profile: Profile, rules: dict, now: float) -> dict[str, dict[str, list[dict]]]:
    """The explainer registered with :mod:`segments.extensions`: for each segment whose rule
    uses models, the visitor's top contributing features per model (only while some version is
    active: otherwise nothing is loaded), worded for whether the rule's condition on that model
    holds for this visitor (see :func:`contributions`): a visitor outside the segment never
    reads that they are "typical of" the required cluster."""

    uses = {slug: nodes for slug, rule in rules.items() if (nodes := list(_model_nodes(rule)))}
    if not uses or not ModelVersion.objects.filter(is_active=True).exists():
        return {}
    scorers = {s.slug: s for s in active_models().scorers}
    # What the rules read (the stored output), else the model's output now.
    outputs = {
        slug: profile.scores[slug]
        if slug in profile.scores
        else scorer.outputs(feature_matrix([profile], now, scorer.features))[0]
        for slug, scorer in scorers.items()
    }
    result: dict[str, dict[str, list[dict]]] = {}
    for slug, nodes in uses.items():
        factors: dict[str, list[dict]] = {}
        for node, negated in nodes:
            scorer = scorers.get(node.get("model"))
            if scorer is None or scorer.slug in factors:
                continue
            holds = _condition_holds(node, outputs[scorer.slug])
            if node.get("type") == "cluster":
                wanted = node.get("cluster")
            else:
                high = node.get("top_percent") is not None or node.get("op") in ("gte", "gt")
                wanted = "high" if high != negated else "low"
            factors[scorer.slug] = contributions(
                scorer, profile, now, wanted=wanted, member=holds != negated
            )
        result[slug] = dict(sorted(factors.items()))
    return result
