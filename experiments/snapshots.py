"""Result snapshots: the analysis of every running experiment, stored as time passes (the
results screen's charts over time). Run by Celery beat (``experiments.conf.BEAT_SCHEDULE``,
merged into a project's ``CELERY_BEAT_SCHEDULE``), every ``EXPERIMENTS_RESULTS_SECONDS``
(hourly by default); :mod:`experiments.tasks` imports it so that workers register it.

A site without beat (the embedded demo) sets ``EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS``: then
results read on the screen or over REST are also kept (:func:`snapshot_if_due`) when the last
snapshot is that old. Each snapshot is the analysis of the statistics as they were when it was
taken, whoever took it: nothing is filled in between."""

from typing import Any

from celery import shared_task
from django.utils import timezone

from .conf import get_setting
from .models import Experiment, ResultSnapshot
from .results import analyse

__all__ = ["snapshot_experiment", "snapshot_if_due", "snapshot_results"]


def snapshot_experiment(experiment: Experiment) -> ResultSnapshot:
    """Analyse ``experiment`` now and store the result."""
    data = analyse(experiment)
    return ResultSnapshot.objects.create(
        experiment=experiment, computed_at=timezone.now(), data=data
    )


def snapshot_if_due(experiment: Experiment, result: dict[str, Any]) -> ResultSnapshot | None:
    """Keep ``result`` (:func:`analyse` of ``experiment`` just now) as a snapshot when
    ``EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS`` is set, the experiment runs and its last snapshot
    is at least that old; ``None`` otherwise."""
    seconds = get_setting("EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS")
    if seconds is None or experiment.status != Experiment.Status.RUNNING:
        return None
    now = timezone.now()
    last = (
        experiment.snapshots.order_by("-computed_at").values_list("computed_at", flat=True).first()
    )
    if last is not None and (now - last).total_seconds() < float(seconds):
        return None
    return ResultSnapshot.objects.create(experiment=experiment, computed_at=now, data=result)


@shared_task(name="experiments.snapshots.snapshot_results", acks_late=True)
def snapshot_results() -> int:
    """One snapshot per running experiment; returns how many were stored. A redelivery only
    adds one more point to the charts."""
    count = 0
    for experiment in Experiment.objects.filter(status=Experiment.Status.RUNNING):
        snapshot_experiment(experiment)
        count += 1
    return count
