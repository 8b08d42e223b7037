"""Periodic work of the recommendations app (Celery beat: its ``conf.BEAT_SCHEDULE``)."""

import logging

from celery import shared_task

from . import items, lists, rebuild, similar

logger = logging.getLogger(__name__)


@shared_task(name="recommendations.rebuild", ignore_result=True, acks_late=True)
def rebuild_all(sums: bool = True) -> dict[str, int]:
    """Sync the items with their pages, then build the co-occurrence and popularity sums
    afresh from the durable log (unless not ``sums``) and the "similar pages" lists from the
    pages' text."""
    synced = items.sync_items()
    counts = rebuild.rebuild() if sums else {}
    counts.update(items=synced, similar=similar.build_similar())
    lists.forget()
    return counts


@shared_task(name="recommendations.train", ignore_result=True, acks_late=True)
def train() -> int | None:
    """Train, evaluate and (when it beats popular) activate a new "for you" factorisation
    model; returns the version's id (None: nothing to train on, or no [ml] extra)."""
    from . import factorisation

    version = factorisation.train()
    return version.pk if version is not None else None


def queue_training() -> bool:
    """Hand a training of the "for you" model to a worker (from the admin); False when the
    broker cannot be reached (the caller says so: never a 500)."""
    try:
        train.delay()
    except Exception as exc:
        logger.warning("Could not queue a training of the factorisation model: %s", exc)
        return False
    return True
