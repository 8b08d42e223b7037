"""Drift checks of the active versions against the visitors' current profiles."""

import json
import time

from segments.api import Profile, get_backend

from .conf import get_setting
from .dataset import feature_matrix
from .drift import psi
from .models import DriftCheck, ModelVersion
from .versions import training_in_progress


def check(version: ModelVersion, profiles: list[Profile], now: float) -> DriftCheck | None:
    """Record the PSI of each feature of ``version`` for ``profiles``, with the verdict
    ``retrain`` when the largest exceeds the threshold (the model's own, else
    SEGMENTS_ML_DRIFT_THRESHOLD) and no training is under way. Acting on it is the caller's."""

    reference = (version.details or {}).get("drift")
    if not reference or not profiles:
        return None
    X = feature_matrix(profiles, now, version.features)
    values = psi(reference, X, version.features)
    largest = max(values.values(), default=0.0)
    model = version.model
    threshold = model.drift_threshold
    if threshold is None:
        threshold = float(get_setting("SEGMENTS_ML_DRIFT_THRESHOLD"))
    retrain = largest > threshold and not training_in_progress(model)
    result = DriftCheck.objects.create(
        version=version,
        sampled=len(profiles),
        psi=values,
        max_psi=largest,
        threshold=threshold,
        retrain=retrain,
    )
    return result


def check_all(now: float | None = None) -> list[DriftCheck]:
    now = time.time() if now is None else now
    sample = get_backend().sample_profiles(int(get_setting("SEGMENTS_ML_DRIFT_SAMPLE")))
    profiles = [Profile.from_dict(json.loads(raw)) for raw in sample]
    done = []
    for version in ModelVersion.objects.filter(is_active=True).select_related("model"):
        population = profiles
        event = version.model.population_event
        if event:
            population = [p for p in profiles if event in p.totals]
        found = check(version, population, now)
        if found is not None:
            done.append(found)
    return done
