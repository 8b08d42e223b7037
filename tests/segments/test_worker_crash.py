"""A worker killed in the middle of a batch loses no event and counts none twice."""

import json
import time

import pytest
from django.conf import settings
from django.db import connection
from redis.exceptions import ResponseError

from consent.api import notice_version
from consent.api import visitor_key as consent_visitor_key
from segments import events
from segments.api import mirror_consent
from segments.models import LoggedEvent
from segments.tasks import drain, sweep
from tests.support.worker import start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PER_VISITOR = 100  # 20,000 events


def visitors() -> list[str]:
    """Keys as production makes them (keyed hashes), so they spread over every partition (keys
    like ``f"{n:032x}"`` for small ``n`` would all land in partition 0)."""
    return [consent_visitor_key(f"kill-{n}") for n in range(1, 201)]


@pytest.fixture
def live_queue():
    from demo.celery import app

    app.conf.task_always_eager = False
    yield app
    app.conf.task_always_eager = True
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


def test_kill_minus_nine_mid_batch_loses_nothing(backend, live_queue, tmp_path):
    keys = visitors()
    assert len({backend.partition_for(k) for k in keys}) == backend.partitions
    for key in keys:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    by_partition: dict[int, list] = {}
    for n in range(PER_VISITOR):
        for key in keys:
            event = events.Event(visitor_key=key, name="page_view", ts=now - 60 + n * 0.01)
            by_partition.setdefault(backend.partition_for(key), []).append(events.encode(event))
    for partition, fields in by_partition.items():
        backend.append_events(partition, fields)
    total = len(keys) * PER_VISITOR

    db = connection.settings_dict["NAME"]
    env = {"TAILORED_LOCK_TTL_MS": "2000"}
    first = start_worker(db, name="doomed", log_path=tmp_path / "w1.log", extra_env=env)
    for partition in range(backend.partitions):
        drain.delay(partition)
    assert wait_for(lambda: LoggedEvent.objects.exists(), timeout=60), "the worker never started"
    stop_worker(first, hard=True)  # SIGKILL while it works through the stream
    done_before = LoggedEvent.objects.count()
    assert done_before < total, "the worker finished before it could be killed; make it bigger"

    second = start_worker(db, name="heir", log_path=tmp_path / "w2.log", extra_env=env)
    try:

        def all_done():
            sweep.delay()  # what Celery beat does every few seconds
            return LoggedEvent.objects.count() == total and not backend.pending_partitions()

        assert wait_for(all_done, timeout=120, interval=1.0), (
            f"{LoggedEvent.objects.count()} of {total} events logged"
        )
    finally:
        stop_worker(second)

    for key in keys:
        profile = json.loads(backend.visitor_data(key).profile)
        assert profile["t"] == {"page_view": PER_VISITOR}  # each counted exactly once


def test_a_killed_drain_is_taken_over_within_seconds_with_realistic_keys(
    backend, live_queue, tmp_path
):
    """Keyed-hash visitor keys spread over every partition; the worker is killed mid-batch
    with the default (short) drain lock. Another worker claims the dead one's unacknowledged
    entries within seconds, and every event reaches the durable log exactly once."""
    keys = [consent_visitor_key(f"crash-{n}") for n in range(400)]
    assert len({backend.partition_for(k) for k in keys}) == backend.partitions
    for key in keys:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    by_partition: dict[int, list] = {}
    for n in range(50):
        for key in keys:
            event = events.Event(visitor_key=key, name="page_view", ts=now - 60 + n * 0.01)
            by_partition.setdefault(backend.partition_for(key), []).append(events.encode(event))
    for partition, fields in by_partition.items():
        backend.append_events(partition, fields)
    total = len(keys) * 50

    db = connection.settings_dict["NAME"]
    first = start_worker(db, name="doomed", log_path=tmp_path / "w1.log")
    drain.delay(0)  # one task serves every partition

    streams = [f"{backend.prefix}:e:{p}" for p in range(backend.partitions)]

    def orphans() -> dict[str, int]:
        """Unacknowledged entries per consumer, over every partition."""
        held: dict[str, int] = {}
        for stream in streams:
            try:
                summary = backend.client.xpending(stream, "segments")
            except ResponseError:  # no drain has read this partition yet
                continue
            for c in summary["consumers"]:
                held[c["name"]] = held.get(c["name"], 0) + c["pending"]
        return held

    # SIGKILL in the middle of a batch: some entries read, not acknowledged.
    mid_batch = wait_for(
        lambda: LoggedEvent.objects.exists() and sum(orphans().values()) > 0,
        timeout=60,
        interval=0.01,
    )
    stop_worker(first, hard=True)
    assert mid_batch, "the worker never started"
    assert LoggedEvent.objects.count() < total, "the worker finished before it was killed"
    dead = orphans()
    assert sum(dead.values()) > 0, "the killed worker left nothing pending"

    second = start_worker(db, name="heir", log_path=tmp_path / "w2.log")
    ready = time.monotonic()
    try:

        def claimed():
            sweep.delay()  # what Celery beat does every few seconds
            now = orphans()
            return all(now.get(name, 0) == 0 for name in dead)

        assert wait_for(claimed, timeout=30, interval=0.5), (
            "nobody claimed the dead drain's entries"
        )
        taken_over = time.monotonic() - ready

        def all_done():
            sweep.delay()
            return LoggedEvent.objects.count() == total and not backend.pending_partitions()

        assert wait_for(all_done, timeout=120, interval=0.5), (
            f"{LoggedEvent.objects.count()} of {total} events logged"
        )
    finally:
        stop_worker(second)
    assert LoggedEvent.objects.values("event_id").distinct().count() == total  # once each
    # The dead drain's lock lives 5 s (SEGMENTS_LOCK_TTL_MS), then the sweep's drain claims.
    assert taken_over < 12, f"taken over after {taken_over:.1f} s"
