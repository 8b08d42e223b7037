"""The fast store's and the workers' health, for operators: stream statistics, the workers'
heartbeat, and the readiness checks the app registers with :mod:`tailored.health`."""

import logging
import time

from tailored.health import CheckFailed

from .backends import get_backend
from .conf import get_setting

logger = logging.getLogger("segments.operations")


def beat() -> None:
    """Called by the periodic sweep (every 5 s): record that a worker is alive and beat
    schedules it, and recreate consumer groups that went missing (a Redis emptied or replaced
    under running workers), so drains resume by themselves."""
    backend = get_backend()
    backend.set_heartbeat(time.time())
    _report_created(backend.ensure_consumer_groups())


def _report_created(created: list[int]) -> None:
    if created:
        logger.warning(
            "Consumer groups were missing and were created: partitions %s",
            created,
            extra={"event": "stream.groups_created", "partitions": created},
        )


def check_fast_store() -> dict:
    """Readiness: the fast store answers, and every partition has its stream and consumer
    group. A missing group (the store was emptied or replaced under running processes) is
    created on the spot, from the start of the stream, and reported: drains resume without
    skipping anything, and a site never stops serving because no drain ran yet."""
    backend = get_backend()
    if not backend.ping():
        raise CheckFailed("unreachable")
    created = backend.ensure_consumer_groups()
    _report_created(created)
    return {"groups_created": created} if created else {}


def check_partitions() -> dict:
    """Readiness: this process's PARTITIONS (and PREVIOUS_PARTITIONS) agree with the count the
    store was sealed with (:func:`segments.backends.base.partition_count_problem`). A process
    that disagrees records visitors' events to other partitions than the drains': it is taken
    out of the load balancer, and a rolling deploy with the wrong count stops at its first
    process. One small read per probe, never on the request path."""
    backend = get_backend()
    problem = backend.partition_problem()
    if problem:
        raise CheckFailed(f"PARTITIONS {backend.partitions}, store {backend.stored_partitions()}")
    return {"partitions": backend.partitions}


def check_worker_heartbeat() -> dict:
    """Readiness, reported but not critical: how long ago a worker ran the sweep."""
    last = get_backend().heartbeat()
    if last is None:
        return {"ok": False, "age_s": None}
    age = max(time.time() - last, 0.0)
    return {"ok": age <= float(get_setting("SEGMENTS_HEARTBEAT_MAX_AGE")), "age_s": round(age, 1)}
