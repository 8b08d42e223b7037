"""Celery tasks of the segments app: arguments are partition numbers, never personal data."""

from celery import shared_task

from . import health
from .consent_mirror import sync_pending_mirrors
from .reporting.insights import take_snapshots
from .stream import drain as pipeline
from .stream import static


@shared_task(name="segments.drain", acks_late=True, ignore_result=True)
def drain(partition: int) -> int:
    """Drain the event stream in batches, every partition in turn starting with ``partition``
    (one task per burst, not per event; see :mod:`segments.stream.drain`)."""
    result = pipeline.drain_partition(int(partition))
    if result.more:
        drain.delay(partition)
    return result.processed


@shared_task(name="segments.sweep", ignore_result=True)
def sweep() -> list[int]:
    """Periodic safety net (Celery beat): drain partitions holding unacknowledged events, such
    as those a crashed worker left behind. Also the workers' heartbeat (readiness, metrics)."""
    health.beat()
    partitions = pipeline.pending_partitions()
    scheduled = pipeline.to_schedule(partitions)
    for partition in scheduled:
        drain.delay(partition)
    return scheduled


@shared_task(name="segments.sync_consent_mirrors", ignore_result=True)
def sync_consent_mirrors() -> int:
    """Celery beat (every 5 s): copy into the fast store the consent decisions made while it
    was unreachable (the outbox), so a withdrawal takes effect there once it is back."""
    total = 0
    while True:
        done = sync_pending_mirrors(limit=1000)
        total += done
        if done < 1000:
            return total


@shared_task(name="segments.reevaluate", ignore_result=True)
def reevaluate() -> int:
    """Celery beat (every 30 s): visitors leave time-window segments on time, and enter
    time-based ones ("not seen for 30 days"), without sending anything."""
    total = 0
    while True:
        done = pipeline.reevaluate_due()
        total += done
        if done < 1000:
            return total


@shared_task(name="segments.reevaluate_everyone", ignore_result=True)
def reevaluate_everyone() -> int:
    """Enqueued when a segment's rule, enabled state or slug changes (on commit): every stored
    visitor's memberships follow the new definition before their next request, not after
    their next event."""
    return pipeline.reevaluate_everyone()


@shared_task(name="segments.snapshot", ignore_result=True)
def snapshot() -> int:
    """Celery beat (daily): record each segment's size with its rule version."""

    return len(take_snapshots())


@shared_task(name="segments.compute_static_members", acks_late=True, ignore_result=True)
def compute_static_members(segment_id: int) -> int | None:
    """Compute a static segment's members once (:mod:`segments.stream.static`); run again
    (a redelivery), it does nothing."""
    return static.compute_members(int(segment_id))
