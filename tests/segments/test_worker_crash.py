"""A worker killed in the middle of a batch loses no event and counts none twice."""

import json
import time

import pytest
from django.conf import settings
from django.db import connection

from consent.api import notice_version
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

VISITORS = [f"{n:032x}" for n in range(1, 201)]
PER_VISITOR = 100  # 20,000 events


@pytest.fixture
def live_queue():
    from demo.celery import app

    app.conf.task_always_eager = False
    yield app
    app.conf.task_always_eager = True
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


def test_kill_minus_nine_mid_batch_loses_nothing(backend, live_queue, tmp_path):
    for key in VISITORS:
        mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)
    now = time.time()
    by_partition: dict[int, list] = {}
    for n in range(PER_VISITOR):
        for key in VISITORS:
            event = events.Event(visitor_key=key, name="page_view", ts=now - 60 + n * 0.01)
            by_partition.setdefault(backend.partition_for(key), []).append(events.encode(event))
    for partition, fields in by_partition.items():
        backend.append_events(partition, fields)
    total = len(VISITORS) * PER_VISITOR

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

    for key in VISITORS:
        profile = json.loads(backend.visitor_data(key).profile)
        assert profile["t"] == {"page_view": PER_VISITOR}  # each counted exactly once
