"""The stream's state for operators: each partition's backlog, and the dead letters (entries
the drain gave up on after ``SEGMENTS_DEAD_LETTER_ATTEMPTS`` failed attempts), with the two
ways to repair one: requeue it (once the cause is fixed) or discard it.

The admin's dead-letter report and :mod:`segments.api` call these; nothing here logs an event's
properties."""

import logging

from .backends import get_backend
from .backends.base import DeadLetter, PartitionStats

logger = logging.getLogger(__name__)


def stream_stats(now: float | None = None) -> list[PartitionStats]:
    """One :class:`~segments.backends.base.PartitionStats` per partition, in partition order:

    - ``partition``: its number;
    - ``length``: entries accepted and not yet acknowledged (delivered or not);
    - ``pending``: of those, entries delivered to a drain and not acknowledged yet;
    - ``lag``: of those, entries no drain has read yet (``length - pending``);
    - ``dead_letters``: entries in its dead-letter stream;
    - ``shed``: events refused at intake because the partition was over its cap (since the
      fast store was last emptied);
    - ``oldest_age``: seconds since its oldest unacknowledged entry was recorded (at ``now``;
      0 when nothing waits): how far behind the workers are;
    - ``group``: whether its consumer group exists (``None``: no stream yet, which is fine).

    One pipelined round trip (two when entries wait undelivered); raises the backend's
    ``BackendUnavailable`` when the fast store cannot be reached.
    """
    return get_backend().stream_stats(now)


def dead_letters(partition: int | None = None, limit: int = 500) -> list[DeadLetter]:
    """Dead-lettered entries (of one partition, or all), oldest first."""
    return get_backend().dead_letters(partition, limit)


def requeue_dead_letter(partition: int, entry_id: str) -> bool:
    """Put a dead letter back at the end of its partition's stream and schedule a drain; False
    if there is no such dead letter (already requeued or discarded)."""
    backend = get_backend()
    if not backend.requeue_dead_letter(partition, entry_id):
        return False
    logger.info("Dead letter %s of partition %d requeued", entry_id, partition)
    if backend.set_drain_flag(partition):
        # Celery loads with the first drain needed, not at start-up (as in recording).
        from .tasks import drain

        try:
            drain.delay(partition)
        except Exception as exc:  # the periodic sweep drains it
            logger.warning("Could not schedule a drain: %s", type(exc).__name__)
    return True


def discard_dead_letter(partition: int, entry_id: str) -> bool:
    """Delete a dead letter for good; False if there is no such dead letter."""
    removed = get_backend().discard_dead_letter(partition, entry_id)
    if removed:
        logger.info("Dead letter %s of partition %d discarded", entry_id, partition)
    return removed
