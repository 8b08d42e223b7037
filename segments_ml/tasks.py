"""Celery tasks of model-driven segments: training in a worker (never in a request), the weekly
retraining schedule, drift checks and the nightly re-scoring. Arguments are ids only."""

import logging
import time
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_init
from django.db import transaction
from django.utils import timezone

from segments.api import get_backend, reevaluate

from .models import MLModel, ModelVersion
from .preload import preload_for_workers
from .versions import activate_if_better, new_version, training_in_progress

logger = logging.getLogger(__name__)

worker_init.connect(preload_for_workers, weak=False, dispatch_uid="segments.ml.preload")


def queue_training(model, *, trigger: str = "manual", user: str = "", as_of=None):
    """Create a version (:func:`segments_ml.versions.new_version`) and hand its training to a
    worker once the transaction commits. ``as_of`` (an aware datetime): train on the data as
    it stood then; the task's argument stays the version's id (the instant is on the
    version)."""

    version = new_version(model, trigger=trigger, user=user, as_of=as_of)

    def send() -> None:
        try:
            train.delay(version.pk)
        except Exception as exc:  # the broker is down: say so on the version, never a 500
            logger.warning("Could not queue the training of %s: %s", version, type(exc).__name__)
            ModelVersion.objects.filter(pk=version.pk).update(
                status=ModelVersion.Status.FAILED,
                error=f"Could not reach the workers ({type(exc).__name__}); train again later.",
            )

    transaction.on_commit(send)
    return version


@shared_task(name="segments.ml.train", acks_late=True, ignore_result=True)
def train(version_id: int) -> str:
    """Train a queued version (progress is written to the version as it goes)."""
    # scikit-learn: only a worker that trains loads it (this module is imported by the admin)
    from .training import train_version

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.status not in ("queued", "training"):
        return "skipped"  # deleted, or already done (a redelivered task)
    version = train_version(version_id)
    if version.trigger in ("schedule", "drift"):
        activate_if_better(version)
    return version.status


@shared_task(name="segments.ml.retrain_due", ignore_result=True)
def retrain_due() -> list[str]:
    """Celery beat (daily): queue a retrain of each model in use whose newest version is older
    than its retraining interval (``retrain_days``, weekly by default)."""

    queued = []
    now = timezone.now()
    for model in MLModel.objects.filter(retrain_days__gt=0):
        newest = model.versions.order_by("-created_at").first()
        if newest is None or not model.versions.filter(is_active=True).exists():
            continue  # not in use yet: an editor trains and activates the first version
        if newest.created_at > now - timedelta(days=model.retrain_days):
            continue
        if training_in_progress(model):
            continue
        queue_training(model, trigger="schedule")
        queued.append(model.slug)
    return queued


@shared_task(name="segments.ml.check_drift", ignore_result=True)
def check_drift() -> dict[str, float]:
    """Celery beat (daily): population stability of each active model's features; a model
    whose drift exceeds its threshold is retrained."""
    # numpy: loaded by the worker that checks drift, not by the admin
    from .monitoring import check_all

    checks = check_all()
    retrain_drifted(checks)
    return {c.version.model.slug: c.max_psi for c in checks}


def retrain_drifted(checks) -> list:
    """Queue a retrain for each drift check whose verdict is "retrain" (the checks decide;
    queueing the work is the tasks' business). Returns the queued versions."""
    return [
        queue_training(check.version.model, trigger="drift") for check in checks if check.retrain
    ]


@shared_task(name="segments.ml.rescore", ignore_result=True)
def rescore() -> int:
    """Celery beat (nightly): every stored visitor scored again by the active models (scores
    move with time alone: recency grows), and their segments evaluated again."""

    total = 0
    now = time.time()
    for keys in get_backend().visitor_keys(1000):
        total += reevaluate(keys, now, rescore=True)
    logger.info("Re-scored %s visitors", total)
    return total
