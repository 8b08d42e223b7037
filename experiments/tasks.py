"""Periodic work of the experiments app (Celery beat, ``experiments.conf.BEAT_SCHEDULE``)."""

from celery import shared_task

from . import reweighting
from .snapshots import snapshot_results

__all__ = ["reweight", "snapshot_results"]  # snapshot_results: registered by autodiscovery


@shared_task(name="experiments.reweight", ignore_result=True)
def reweight() -> int:
    """Recompute the weights of every running bandit; returns how many were reweighted."""
    return reweighting.reweight_all()
