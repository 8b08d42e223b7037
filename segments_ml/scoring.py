"""Scoring in the workers: the active models, loaded once per process, score a batch's visitors
in one vectorised call per model, and write their outputs into the profiles (numpy only here;
unpickling a propensity model imports scikit-learn in the worker, once).

Each batch asks the database which versions are active (one small query); when that changes the
models are loaded again, so an activation or rollback reaches every worker with its next batch.
Outputs: ``profile.scores[slug] = [score, percentile rank]`` for a propensity model (the rank
against the scores of the population it was validated on), or the stable cluster key.
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segments.api import Profile

from .artifacts import load_artifact
from .dataset import check_features, feature_matrix
from .models import ModelVersion
from .transform import Transform, nearest

logger = logging.getLogger(__name__)


@dataclass
class Scorer:
    slug: str
    kind: str
    version: int
    features: list[str]
    estimator: object = None  # propensity, or a Gaussian mixture
    quantiles: np.ndarray | None = None
    transform: Transform | None = None
    centers: np.ndarray | None = None
    keys: list[str] = field(default_factory=list)
    background: np.ndarray | None = None  # training rows, for explanations
    probability: Callable[[np.ndarray], np.ndarray] | None = None  # X -> P(target)

    def outputs(self, X: np.ndarray) -> list:
        if self.kind == "propensity":
            X = np.nan_to_num(X)
            if self.probability is not None:
                scores = self.probability(X)
            else:
                scores = self.estimator.predict_proba(X)[:, 1]
            ranks = np.clip(np.searchsorted(self.quantiles, scores, side="right") - 1, 0, 100)
            return [
                [s, r] for s, r in zip(np.round(scores, 3).tolist(), ranks.tolist(), strict=True)
            ]
        Z = self.transform(X)
        if self.estimator is not None:  # a Gaussian mixture: its own posterior
            labels = self.estimator.predict(Z)
        else:
            labels = nearest(Z, self.centers)
        return [self.keys[i] for i in labels.tolist()]


@dataclass
class ActiveModels:
    fingerprint: tuple
    scorers: list[Scorer]
    # Slugs of active versions that could not be loaded (a corrupt or missing artifact, a
    # feature no longer in the catalog...): they score no one, and the outputs they wrote
    # before are kept, so their segments' members do not leave by accident.
    held: frozenset[str] = frozenset()

    @property
    def slugs(self) -> set[str]:
        return {s.slug for s in self.scorers}

    def score(self, profiles: list[Profile], now: float, known: set[str] | None = None) -> None:
        """Write every active model's output into each profile, and drop outputs of models
        that are no longer active (``known``: the slugs of all models, active or not)."""
        if not profiles:
            return
        # Every feature any active model uses, computed once for the batch; each model takes
        # its columns.
        names = list(dict.fromkeys(n for s in self.scorers for n in s.features))
        column = {n: j for j, n in enumerate(names)}
        try:
            everything = feature_matrix(profiles, now, names) if names else None
        except Exception:
            logger.exception("Could not compute model features; outputs are left as they were")
            everything = None
        for scorer in self.scorers if everything is not None else ():
            try:
                X = everything[:, [column[n] for n in scorer.features]]
                for profile, value in zip(profiles, scorer.outputs(X), strict=True):
                    profile.scores[scorer.slug] = value
            except Exception:
                if (scorer.slug, scorer.version) not in _failed:  # once, not every batch
                    _failed.add((scorer.slug, scorer.version))
                    logger.exception(
                        "Scoring with %s failed; its outputs are left as they were", scorer.slug
                    )
        active = self.slugs | self.held
        for profile in profiles:
            if profile.scores and not profile.scores.keys() <= active:
                for slug in [s for s in profile.scores if s not in active]:
                    del profile.scores[slug]


_failed: set[tuple[str, int]] = set()  # (model, version) whose scoring raised, logged once
_lock = threading.Lock()
_cache: ActiveModels | None = None
NONE = ActiveModels((), [])


_checked_at = -math.inf
CHECK_SECONDS = 2.0  # how soon an activation or rollback reaches a busy worker


def active_models() -> ActiveModels:
    """The active versions, ready to score (reloaded when the set of active versions changes).
    A version that cannot be loaded (its artifact missing, altered or unreadable, its details
    incomplete, a feature no longer in the catalog) is skipped and logged once, never loaded,
    and its earlier outputs are kept in the profiles (``held``); the others score. The
    database is asked at most every CHECK_SECONDS (not once per batch: a busy worker drains
    dozens of batches a second)."""
    global _cache, _checked_at

    cached = _cache
    if cached is not None and time.monotonic() - _checked_at < CHECK_SECONDS:
        return cached
    _checked_at = time.monotonic()
    rows = tuple(
        ModelVersion.objects.filter(is_active=True, status=ModelVersion.Status.READY)
        .order_by("pk")
        .values_list("pk", "artifact_digest")
    )
    cached = _cache
    if cached is not None and cached.fingerprint == rows:
        return cached
    if not rows:
        _cache = ActiveModels(rows, [])
        return _cache
    with _lock:
        scorers, held = [], set()
        for version in ModelVersion.objects.filter(pk__in=[pk for pk, _ in rows]).select_related(
            "model"
        ):
            try:
                scorers.append(_load(version))
            except Exception:
                logger.exception("Could not load %s; it does not score", version)
                held.add(version.model.slug)
        _cache = ActiveModels(rows, scorers, frozenset(held))
        return _cache


def _load(version) -> Scorer:

    details = version.details or {}
    scorer = Scorer(version.model.slug, version.model.kind, version.pk, list(version.features))
    check_features(scorer.features)  # a feature removed from the catalog: not loadable
    if scorer.kind == "propensity":
        scorer.estimator = load_artifact(version)
        scorer.quantiles = np.asarray(details["quantiles"], dtype=np.float64)
        scorer.background = np.asarray(details.get("background") or [], dtype=np.float64)
        scorer.probability = platt_shortcut(scorer.estimator, scorer.background, scorer.features)
    else:
        clusters = details["clusters"]
        scorer.transform = Transform.from_dict(details["transform"])
        scorer.centers = np.asarray([c["center"] for c in clusters], dtype=np.float64)
        scorer.keys = [c["key"] for c in clusters]
        if version.params.get("algorithm") == "gmm":
            scorer.estimator = load_artifact(version)
    return scorer


def platt_shortcut(estimator, rows: np.ndarray, features: list[str]):
    """For a classifier calibrated by scikit-learn's CalibratedClassifierCV with one sigmoid
    (propensity.fit's models), the probability computed directly: the fitted classifier's
    decision function through the fitted sigmoid ``1 / (1 + exp(a * d + b))``, without the wrapper's
    per-call checks (a quarter of the scoring time of a batch). Used only if it gives the same
    probabilities as ``predict_proba`` on the model's own training rows; otherwise None."""
    try:
        (calibrated,) = estimator.calibrated_classifiers_
        (sigmoid,) = calibrated.calibrators
        decision = calibrated.estimator.decision_function
        a, b = float(sigmoid.a_), float(sigmoid.b_)
    except (AttributeError, TypeError, ValueError):
        return None

    from scipy.special import expit  # loaded with scikit-learn already

    def probability(X: np.ndarray) -> np.ndarray:
        return expit(-(a * decision(X) + b))

    check = rows[:200] if rows.ndim == 2 and len(rows) else np.zeros((1, len(features)))
    try:
        check = np.nan_to_num(check)
        same = np.allclose(probability(check), estimator.predict_proba(check)[:, 1], atol=1e-9)
    except Exception:
        logger.exception("Could not check the calibrated shortcut; predict_proba is used")
        return None
    return probability if same else None


def forget() -> None:
    global _cache, _checked_at
    _cache = None
    _failed.clear()
    _checked_at = -math.inf


def score_profiles(profiles: list[Profile], now: float) -> None:
    """Score the profiles with the active models (nothing to do, and no numpy work, when no
    model is active)."""
    models = active_models()
    if models.scorers or any(p.scores for p in profiles):
        models.score(profiles, now)
