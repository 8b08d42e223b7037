"""Training a model version in a worker: data from the event log, fit, held-out metrics,
comparison with the active version on the same holdout, artifact, and what scoring, drift and
explanations need later (imports scikit-learn: workers and commands only)."""

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.utils import timezone
from sklearn.metrics import silhouette_score

from . import clustering, propensity
from . import dataset as ds
from .artifacts import load_artifact, save_artifact
from .drift import reference_bins
from .models import MLModel, ModelVersion
from .transform import Transform, nearest

logger = logging.getLogger(__name__)
DAY = ds.DAY
BACKGROUND_ROWS = 40


@dataclass
class PropensityResult:
    estimator: object
    metrics: dict
    baseline: dict
    quantiles: list[float]
    train_rows: int
    holdout_rows: int
    holdout: ds.Dataset
    background: np.ndarray


def fit_propensity(
    data: ds.Dataset,
    split: ds.TimeSplit,
    *,
    algorithm: str = "hgb",
    params: dict | None = None,
    baseline: str | None = "logistic",
    progress=None,
) -> PropensityResult:
    """Fit on the training cut-offs, judge on the held-out one; also fit the baseline
    (logistic regression) on the same rows, for comparison."""
    train, holdout = data.at(split.train_cutoffs), data.at(split.holdout_cutoff)
    if len(holdout) == 0 or len(train) == 0:
        raise ValueError("not enough history: no visitors before the training or held-out cut-off.")
    if progress:
        progress(0.35, f"fitting {algorithm} on {len(train)} rows")
    estimator = propensity.fit(train, algorithm, params)
    scores = propensity.predict(estimator, holdout.X)
    metrics = propensity.evaluate(holdout.y, scores)
    base_metrics: dict = {}
    if baseline and baseline != algorithm:
        if progress:
            progress(0.6, f"fitting the {baseline} baseline")
        base = propensity.fit(train, baseline)
        base_metrics = propensity.evaluate(holdout.y, propensity.predict(base, holdout.X))
        base_metrics["algorithm"] = baseline
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train), min(BACKGROUND_ROWS, len(train)), replace=False)
    return PropensityResult(
        estimator,
        metrics,
        base_metrics,
        propensity.quantiles(scores),
        len(train),
        len(holdout),
        holdout,
        train.X[pick],
    )


def _progress(version: ModelVersion):
    def report(fraction: float, message: str) -> None:
        ModelVersion.objects.filter(pk=version.pk).update(
            progress=round(min(max(fraction, 0.0), 1.0), 3), message=message[:300]
        )

    return report


def train_version(
    version_id: int,
    *,
    as_of: datetime | None = None,
    source=None,
    data_end: datetime | None = None,
    holdout_cutoff=None,
) -> ModelVersion:
    """Train a queued version; on failure the version is marked failed with the error.

    ``as_of``: train as the data stood at that instant (reproducible figures for a past date):
    the durable log is read up to it (events at or after it are ignored), features are
    computed at it, and for a propensity model the held-out cut-off leaves one horizon of
    labels before it. Without it, the instant the version was queued for
    (:func:`segments_ml.versions.new_version`'s ``as_of``), else now. The same as-of on a log
    that holds later events gives the same model and figures as on a log without them.
    ``source`` (visitors' events) replaces the event log (evaluations); ``data_end`` is the
    former name of ``as_of``."""
    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    as_of = as_of or data_end or version.data_end
    model = version.model
    report = _progress(version)
    version.status = ModelVersion.Status.TRAINING
    version.started_at = timezone.now()
    version.save(update_fields=["status", "started_at"])
    try:
        _train(version, model, report, source, as_of, holdout_cutoff)
    except Exception as exc:
        logger.exception("Training %s failed", version)
        version.status = ModelVersion.Status.FAILED
        version.error = f"{type(exc).__name__}: {exc}"[:2000]
        version.message = "failed"
        version.finished_at = timezone.now()
        version.save(update_fields=["status", "error", "message", "finished_at"])
        logger.debug("%s", traceback.format_exc())
        return version
    return version


def _train(version, model, report, source, as_of, holdout_cutoff) -> None:
    started = time.perf_counter()
    end = as_of or timezone.now()
    start = end - timedelta(days=model.training_days)
    features = ds.check_features(model.features or _default_features(model))
    params = dict(model.params or {})
    if source is None:
        report(0.05, f"reading the event log as of {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        source = ds.event_log(since=start, until=end)
    else:
        source = ds.events_before(source, end.timestamp())
    active = model.versions.filter(is_active=True).exclude(pk=version.pk).first()
    require = model.population_event or None
    version.data_start, version.data_end, version.features = start, end, features
    if model.kind == MLModel.Kind.PROPENSITY:
        target = ds.Target.from_dict(model.target)
        if holdout_cutoff is not None:
            hold = holdout_cutoff.timestamp()
            first = hold - target.horizon
            split = ds.TimeSplit(
                tuple(first - i * 30 * DAY for i in range(int(params.pop("windows", 4)))),
                hold,
                target.horizon,
            )
        else:
            split = ds.TimeSplit.ending_at(
                end.timestamp(), target.horizon, windows=int(params.pop("windows", 4))
            )
        report(0.1, "building features as of each cut-off")
        data = ds.build(source, split.cutoffs, features, target, require=require)
        algorithm = model.algorithm or "hgb"
        result = fit_propensity(data, split, algorithm=algorithm, params=params, progress=report)
        version.metrics = {**result.metrics, "algorithm": algorithm, "baseline": result.baseline}
        version.train_rows, version.holdout_rows = result.train_rows, result.holdout_rows
        version.split = {
            **split.as_dict(),
            "target": target.as_dict(),
            "as_of": end.astimezone(UTC).isoformat(),
        }
        version.params = {"algorithm": algorithm, **params}
        if active is not None and active.features == features:
            report(0.8, f"scoring the held-out rows with the active v{active.number}")

            old_scores = propensity.predict(load_artifact(active), result.holdout.X)
            version.comparison = {
                "version": active.pk,
                "number": active.number,
                "metrics": propensity.evaluate(result.holdout.y, old_scores),
            }
        version.details = {
            "quantiles": result.quantiles,
            "background": np.round(result.background, 4).tolist(),
            "drift": reference_bins(result.holdout.X, features),
            "target": target.describe(),
        }
        artifact = result.estimator
    else:
        report(0.1, "building features")
        data = ds.build(source, [end.timestamp()], features, require=require)
        if len(data) < 10:
            raise ValueError(f"only {len(data)} visitors to cluster; at least 10 are needed.")
        ks = range(int(params.get("k_min", 3)), int(params.get("k_max", 8)) + 1)
        method = model.algorithm or "kmeans"
        previous = (active.details or {}).get("clusters") if active else None
        fitted = clustering.train(
            data.X,
            features,
            ks=ks,
            method=method,
            log=bool(params.get("log", True)),
            previous=previous,
            progress=lambda f, m: report(0.15 + 0.7 * f, m),
        )
        version.metrics = {
            "silhouette": fitted["silhouette"],
            "silhouette_by_k": fitted["silhouette_by_k"],
            "k": fitted["k"],
            "sizes": {c["key"]: c["size"] for c in fitted["clusters"]},
            "rows": len(data),
        }
        version.train_rows, version.holdout_rows = len(data), 0
        version.split = {"as_of": end.astimezone(UTC).isoformat()}
        version.params = {"algorithm": method, "k_range": [ks.start, ks.stop - 1], **params}
        if active is not None and active.features == features and previous:
            report(0.9, f"silhouette of the active v{active.number} on the same visitors")
            version.comparison = {
                "version": active.pk,
                "number": active.number,
                "metrics": {
                    "silhouette": _silhouette_of(
                        active, data.X, Transform.from_dict(fitted["transform"])
                    )
                },
            }
        version.details = {
            "clusters": fitted["clusters"],
            "transform": fitted["transform"],
            "drift": reference_bins(data.X, features),
        }
        artifact = fitted["estimator"]

    report(0.95, "saving the artifact")
    save_artifact(version, artifact)
    version.status = ModelVersion.Status.READY
    version.progress, version.message = 1.0, f"trained in {time.perf_counter() - started:.1f} s"
    version.metrics["seconds"] = round(time.perf_counter() - started, 2)
    version.finished_at = timezone.now()
    version.save()


def _silhouette_of(version: ModelVersion, X: np.ndarray, space: Transform) -> float | None:
    """Silhouette of an older clustering's assignment of the given visitors (by its own
    standardisation and centres), measured in the new version's space on the same sample: the
    same-data comparison."""

    details = version.details or {}
    clusters = details.get("clusters") or []
    if "transform" not in details or len(clusters) < 2:
        return None
    own = Transform.from_dict(details["transform"])
    labels = nearest(own(X), np.array([c["center"] for c in clusters]))
    if len(set(labels.tolist())) < 2:
        return None
    Z = space(X)
    if len(Z) > 6_000:  # the sample clustering.choose_k scores on
        rows = np.random.default_rng(0).choice(len(Z), clustering.SILHOUETTE_SAMPLE, replace=False)
        Z, labels = Z[rows], labels[rows]
    return round(float(silhouette_score(Z, labels)), 4)


def _default_features(model: MLModel) -> list[str]:
    if model.kind == MLModel.Kind.CLUSTERING:
        return list(ds.RFM)
    return list(ds.DEFAULT_PROPENSITY_FEATURES)
