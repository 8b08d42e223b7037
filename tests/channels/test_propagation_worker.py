"""Point 4's timing, end to end: consent withdrawals and erasures reach a webhook destination
within 15 minutes at p99 with the default beat schedule and retry schedule, measured with both
run 60 times faster (a minute of the schedule is a second here), against real PostgreSQL,
Redis, a real Celery worker process and a real HTTP receiver that refuses every first attempt
(and every fifth message's second one too)."""

import statistics
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from consent.models import ErasureRequest
from consent.privacy import erase_visitor
from tailored_channels.conf import BEAT_SCHEDULE
from tailored_channels.defaults import CHANNELS_RETRY_SCHEDULE
from tailored_channels.delivery import Busy, deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import Propagation
from tests.support.worker import start_worker, stop_worker

from .helpers import Receiver, change, grant, key, webhook, withdraw

pytestmark = [
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(240),
]

SPEEDUP = 60.0
TARGET_SECONDS = 15 * 60


@pytest.fixture
def fast_worker(transactional_db, tmp_path, settings):
    from demo.celery import app

    schedule = ",".join(f"{s / SPEEDUP:.4f}" for s in CHANNELS_RETRY_SCHEDULE)
    log_path = tmp_path / "worker.log"
    proc = start_worker(
        connection.settings_dict["NAME"],
        name="tailored_channels",
        log_path=log_path,
        extra_env={"TAILORED_CHANNELS_RETRY_SCHEDULE": schedule},
    )
    proc.log_path = log_path
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = True
        stop_worker(proc)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


def deliver_all(destination_id: int) -> None:
    """Send the destination's due deliveries here, waiting while the worker (which the
    commits woke) holds the destination."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if not deliver(destination_id)[1]:
                return
        except Busy:
            time.sleep(0.1)
    raise AssertionError("the destination's deliveries were not sent within 60 s")


def test_withdrawals_and_erasures_reach_the_destination_within_15_minutes_at_p99(fast_worker):
    from tailored_channels.tasks import deliver_due

    seen: Counter = Counter()
    accepted: dict[str, float] = {}
    lock = threading.Lock()

    def handler(request, body):
        message = request.headers["webhook-id"]
        with lock:
            seen[message] += 1
            attempt = seen[message]
        refusals = 2 if int(message[-2:], 16) % 5 == 0 else 1
        if attempt <= refusals:
            return 503, b"busy"
        with lock:
            accepted.setdefault(message, time.monotonic())
        return 200, b"ok"

    with Receiver(handler=handler) as receiver:
        destination = webhook(receiver.url)
        visitors = [key(n) for n in range(1, 61)]
        fan_out()
        grant(visitors)
        for k in visitors:
            change(k)
        fan_out()
        deliver_all(destination.pk)
        accepted.clear()
        seen.clear()
        started: dict[str, float] = {}
        for n, k in enumerate(visitors):
            started[k] = time.monotonic()
            if n % 3 == 0:
                erase_visitor(k)
            else:
                withdraw(k, keep=("personalization",))
        # The beat schedule, 60 times faster: deliver_due every minute -> every second.
        every = BEAT_SCHEDULE["channels-deliver-due"]["schedule"].total_seconds() / SPEEDUP
        deadline = time.monotonic() + 120
        while Propagation.objects.filter(done_at=None).exists() and time.monotonic() < deadline:
            deliver_due.delay()
            time.sleep(every)
        assert not Propagation.objects.filter(done_at=None).exists(), (
            fast_worker.log_path.read_text()[-3000:]
        )
        latencies = []
        for p in Propagation.objects.select_related("delivery"):
            latencies.append((accepted[p.delivery.message_id] - started[p.visitor_key]) * SPEEDUP)
        # One withdrawal each, and for the erased a delete call besides (erasure records a
        # withdrawal of every purpose first).
        assert len(latencies) == 60 + 20
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(
            f"propagation at the default schedule: p50 {statistics.median(latencies):.0f} s, "
            f"p99 {p99:.0f} s, max {max(latencies):.0f} s (target p99 <= {TARGET_SECONDS} s)"
        )
        assert p99 <= TARGET_SECONDS
        # Every delivery needed a retry: the failed removals were retried until they succeeded.
        removals = {p.delivery.message_id for p in Propagation.objects.select_related("delivery")}
        assert all(seen[m] >= 2 for m in removals)
        for k in visitors[::3]:
            result = ErasureRequest.objects.get(visitor_key=k).result
            assert result["tailored_channels"] == "deleted at 1 of 1 destinations (CRM)"
