"""Sending without a transaction open: while a receiver is slow to answer, the destination's row
can be edited and no connection sits idle in a transaction; one worker at a time still sends to
a destination (a lease), and a worker killed mid-batch is taken over once its lease has expired,
the delivery it was sending sent again with the same ``webhook-id``. Against real PostgreSQL, a
real HTTP receiver and a real Celery worker process."""

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import ClassVar

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from tailored_channels.api import BaseBackend, Result
from tailored_channels.delivery import Busy, deliver, release, take
from tailored_channels.models import Delivery, Destination, Sender
from tests.support.worker import start_worker, stop_worker, wait_for

from .helpers import Receiver, webhook

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(120),
]

ITEM = {
    "type": "segment.entered",
    "segment": "high-intent",
    "identifier": {"type": "email", "value": "visitor1@example.com"},
    "at": "2026-12-01T00:00:00Z",
}


def pending(destination: Destination, count: int) -> list[Delivery]:
    return [
        Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=[ITEM],
            next_attempt_at=timezone.now(),
        )
        for _ in range(count)
    ]


def mailchimp(url: str) -> Destination:
    pytest.importorskip("mailchimp_marketing")
    return Destination.objects.create(
        name="Mailchimp",
        kind="mailchimp",
        segments=["high-intent"],
        purpose="marketing",
        identifier="email",
        options={"server": "us1", "list_id": "list1", "api_key": "k-us1", "host": url},
    )


BUILDERS = {
    "webhook": webhook,
    "mailchimp": lambda url: mailchimp(url.replace("/hook", "/3.0")),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_while_a_receiver_is_slow_no_transaction_is_open_and_the_destination_can_be_edited(kind):
    seen: dict[str, list] = {"idle": [], "edits": []}
    target: dict[str, int] = {}

    def handler(request, body):
        # Another connection, while the request is on its way: what an edit of the destination
        # in the admin (or a 410 disabling it, or an erasure) would meet.
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '1s'")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%%'"
                )
                seen["idle"].append(cursor.fetchone()[0])
            try:
                Destination.objects.filter(pk=target["pk"]).update(batch_size=F("batch_size"))
                seen["edits"].append("saved")
            except OperationalError as exc:
                seen["edits"].append(str(exc).strip())
        finally:
            connection.close()
        return 200, b'{"ok": true}'

    with Receiver(handler=handler) as receiver:
        destination = BUILDERS[kind](receiver.url)
        target["pk"] = destination.pk
        deliveries = pending(destination, 2)
        assert deliver(destination.pk) == (2, False)
    assert len(receiver.requests) == 2
    assert seen["edits"] == ["saved", "saved"]
    assert seen["idle"] == [0, 0]
    assert {d.status for d in Delivery.objects.filter(pk__in=[d.pk for d in deliveries])} == {
        "delivered"
    }


def test_of_two_workers_taking_the_lease_at_the_same_instant_one_wins():
    """The second UPDATE waits for the first's commit, then must see the lease taken (the
    condition checked again on the row the first wrote, not on what it read before)."""
    destination = webhook("http://127.0.0.1:9/hook")
    release(destination.pk, "")  # (nothing to release: the row does not exist yet)
    assert take(destination.pk, "first") and Sender.objects.filter(pk=destination.pk).exists()
    release(destination.pk, "first")
    holding, outcome = threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                outcome["first"] = take(destination.pk, "first")
                holding.set()
                time.sleep(0.5)  # the second one's UPDATE waits on this row meanwhile
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    outcome["second"] = take(destination.pk, "second")
    thread.join()
    assert outcome == {"first": True, "second": False}
    assert Sender.objects.get(pk=destination.pk).token == "first"


class Probing(BaseBackend):
    """A site's own backend that looks, from inside ``send``, at what the worker holds: whether
    its connection is in a transaction, and whether another connection can update the
    destination's row (a file export writing to remote storage, or any backend, is in the same
    place as a webhook waiting for its answer)."""

    seen: ClassVar[list] = []

    def send(self, message_id, kind, items, created=""):
        found = {"atomic": connection.in_atomic_block}

        def other():
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SET lock_timeout = '1s'")
                Destination.objects.filter(pk=self.destination.pk).update(name=F("name"))
                found["edit"] = "saved"
            except OperationalError as exc:
                found["edit"] = str(exc).strip()
            finally:
                connection.close()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        self.seen.append(found)
        return Result(ok=True, status=200, response="ok")


def test_any_backend_sends_outside_a_transaction():
    Probing.seen.clear()
    destination = Destination.objects.create(
        name="Own",
        kind="custom",
        segments=["high-intent"],
        purpose="marketing",
        options={"backend": f"{__name__}.Probing"},
    )
    pending(destination, 2)
    assert deliver(destination.pk) == (2, False)
    assert Probing.seen == [{"atomic": False, "edit": "saved"}] * 2


def test_two_workers_at_once_send_each_delivery_once_one_request_at_a_time():
    lock = threading.Lock()
    state = {"in_flight": 0, "most": 0}
    received: Counter = Counter()

    def handler(request, body):
        with lock:
            state["in_flight"] += 1
            state["most"] = max(state["most"], state["in_flight"])
            received[request.headers["webhook-id"]] += 1
        time.sleep(0.05)  # slow enough for the other worker to try meanwhile
        with lock:
            state["in_flight"] -= 1
        return 200, b"ok"

    with Receiver(handler=handler) as receiver:
        destination = webhook(receiver.url)
        deliveries = pending(destination, 12)
        start = threading.Barrier(2)
        outcomes: list = []

        def worker():
            try:
                start.wait()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        attempted, more = deliver(destination.pk)
                    except Busy:
                        outcomes.append("busy")
                        time.sleep(0.01)
                        continue
                    outcomes.append(attempted)
                    if not more:
                        return
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert received == Counter({d.message_id: 1 for d in deliveries})
    assert state["most"] == 1
    assert "busy" in outcomes and sum(o for o in outcomes if o != "busy") == 12
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert Sender.objects.get(pk=destination.pk).until is None  # released


@pytest.fixture
def worker_with_short_lease(transactional_db, tmp_path, settings):
    from demo.celery import app

    log_path = tmp_path / "worker.log"
    proc = start_worker(
        connection.settings_dict["NAME"],
        name="channels_lease",
        log_path=log_path,
        extra_env={"TAILORED_CHANNELS_SEND_LEASE": "5"},
    )
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = True
        stop_worker(proc, hard=True)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.mark.worker
def test_a_worker_killed_mid_batch_is_taken_over_when_its_lease_expires(worker_with_short_lease):
    from tailored_channels.tasks import deliver as deliver_task

    arrived = threading.Event()
    received: list[str] = []

    def handler(request, body):
        received.append(request.headers["webhook-id"])
        if len(received) == 1:
            arrived.set()
            time.sleep(8)  # the worker is killed while waiting for this answer
        return 200, b"ok"

    with Receiver(handler=handler) as receiver:
        destination = webhook(receiver.url)
        deliveries = pending(destination, 3)
        deliver_task.delay(destination.pk)
        assert arrived.wait(30)
        stop_worker(worker_with_short_lease, hard=True)
        killed_at = time.monotonic()
        assert Sender.objects.get(pk=destination.pk).token
        with pytest.raises(Busy):  # the dead worker's lease holds until it expires
            deliver(destination.pk)

        def taken_over():
            try:
                return deliver(destination.pk)
            except Busy:
                return None

        assert wait_for(taken_over, timeout=15, interval=0.2) == (3, False)
        waited = time.monotonic() - killed_at
    first, *rest = deliveries
    # The one the killed worker was sending went again, with its webhook-id; nothing was lost
    # and nothing else was sent twice.
    assert Counter(received) == Counter({first.message_id: 2, **{d.message_id: 1 for d in rest}})
    assert waited < 10
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in deliveries]):
        assert delivery.status == "delivered" and delivery.attempts == 1


def member_tags(count: int, *, exited: bool = False) -> list[dict]:
    """``count`` items for one Mailchimp member (one request each), the last an exit if asked."""
    items = [dict(ITEM) for _ in range(count)]
    if exited:
        items[-1] = {**ITEM, "type": "segment.exited"}
    return items


class SlowMailchimp:
    """The local Mailchimp API, each request taking ``pause`` seconds; counts the requests on
    their way at once and notes what each one said, in the order they arrived."""

    def __init__(self, pause: float, on_request=None):
        from .helpers import Mailchimp

        self.api = Mailchimp(["visitor1@example.com"])
        self.pause = pause
        self.on_request = on_request
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.said: list[str] = []

    def __call__(self, request, body):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.pause)
            with self.lock:
                self.said.append(json.loads(body or b"{}").get("tags", [{}])[0].get("status"))
                if self.on_request is not None:
                    self.on_request(len(self.said))
                return self.api(request, body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def tags(self) -> set[str]:
        (member,) = self.api.members.values()
        return member["tags"]


def test_a_send_longer_than_the_lease_keeps_it_and_no_second_worker_sends_meanwhile(settings):
    """Mailchimp sends a delivery as one request per member: 12 requests of 0.15 s outlast a
    1 s lease. The worker renews it between requests, so a second worker trying all along finds
    the destination taken until the first is done: the later exit is never overtaken by the
    older entries still on their way, and the member ends without the tag."""
    settings.CHANNELS_SEND_LEASE = 1.0
    slow = SlowMailchimp(pause=0.15)
    with Receiver(handler=slow) as server:
        destination = mailchimp(server.url.replace("/hook", "/3.0"))
        older = Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=member_tags(12),
            next_attempt_at=timezone.now(),
        )
        later = Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=member_tags(1, exited=True),
            next_attempt_at=timezone.now(),
        )
        outcome: dict = {}

        def first():
            try:
                outcome["first"] = deliver(destination.pk)
            finally:
                connection.close()

        thread = threading.Thread(target=first)
        thread.start()
        assert wait_for(lambda: slow.said, timeout=10)
        second = []
        while thread.is_alive():
            try:
                second.append(deliver(destination.pk))
            except Busy:
                second.append("busy")
            time.sleep(0.05)
        thread.join()
    assert slow.most == 1
    assert slow.said == ["active"] * 12 + ["inactive"]
    assert slow.tags() == set()
    assert outcome["first"] == (2, False)
    assert second and set(second) == {"busy"}
    assert set(
        Delivery.objects.filter(pk__in=[older.pk, later.pk]).values_list("status", flat=True)
    ) == {"delivered"}


def test_a_worker_that_lost_the_lease_mid_send_stops_and_records_a_failed_attempt(settings):
    """Another worker takes the destination over while the first is half-way through a
    Mailchimp delivery (what happens when a send outlasts the lease): the first stops before its
    next request, records a failed attempt that leaves the delivery due (not delivered, not put
    off), and sends nothing more; the worker holding the destination then sends it again, whole,
    before the later one."""
    settings.CHANNELS_SEND_LEASE = 1.0
    target: dict[str, int] = {}

    def take_over(count):
        if count == 3:
            try:
                Sender.objects.filter(pk=target["pk"]).update(
                    token="other", until=timezone.now() + timedelta(seconds=60)
                )
            finally:
                connection.close()

    slow = SlowMailchimp(pause=0.15, on_request=take_over)
    with Receiver(handler=slow) as server:
        destination = mailchimp(server.url.replace("/hook", "/3.0"))
        target["pk"] = destination.pk
        older = Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=member_tags(12),
            next_attempt_at=timezone.now(),
        )
        later = Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=member_tags(1, exited=True),
            next_attempt_at=timezone.now(),
        )
        assert deliver(destination.pk) == (1, False)
        assert slow.said == ["active"] * 3
        older.refresh_from_db()
        assert older.status == "pending" and older.delivered_at is None
        assert older.attempts == 1 and older.next_attempt_at <= timezone.now()
        assert older.response.startswith("stopped")
        later.refresh_from_db()
        assert later.attempts == 0
        assert Sender.objects.get(pk=destination.pk).token == "other"  # left to its holder
        with pytest.raises(Busy):
            deliver(destination.pk)
        # The other worker is done with it: the older delivery goes again, then the later one.
        release(destination.pk, "other")
        assert deliver(destination.pk) == (2, False)
    assert slow.said == ["active"] * 3 + ["active"] * 12 + ["inactive"]
    assert slow.tags() == set()
    older.refresh_from_db()
    assert older.status == "delivered" and older.attempts == 2


def test_a_file_export_is_not_rewritten_by_a_worker_that_lost_the_lease(settings):
    """The file backend reads the audience, then checks it still holds the destination before
    it writes: a worker that lost it leaves the file to the one holding it."""
    from django.core.files.storage import storages

    from tailored_channels.backends.files import FileBackend
    from tailored_channels.delivery import Lease

    settings.CHANNELS_SEND_LEASE = 0  # checked at every call
    destination = Destination.objects.create(
        name="Export", kind="file", segments=["high-intent"], purpose="marketing"
    )
    withdrawal = [{**ITEM, "type": "consent.withdrawn", "segment": None}]
    assert take(destination.pk, "other")  # another worker holds it
    backend = FileBackend(destination)
    path = backend.path()
    storage = storages["default"]
    if storage.exists(path):
        storage.delete(path)
    backend.lease_keeper = Lease(destination.pk, "mine")
    result = backend.send("m1", "segment.changes", withdrawal)
    assert not result.ok and result.response.startswith("stopped")
    assert not storage.exists(path)
    backend.lease_keeper = Lease(destination.pk, "other")
    assert backend.send("m1", "segment.changes", withdrawal).ok
    assert storage.exists(path)
    storage.delete(path)
