"""The drain's scheduling, locks, bad entries, missing consent mirrors and the stream's cap,
against real Redis and PostgreSQL (issue #12)."""

import threading
import time

import orjson
import pytest
from django.db import connections
from django.test import override_settings

from consent.api import grant_imported, notice_version, visitor_key
from segments import api, events
from segments.api import exchange, mirror_consent
from segments.models import LoggedEvent
from segments.stream import drain as pipeline
from segments.stream.rebuild import rebuild

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def keys_in_partitions(backend, per_partition: int = 1) -> list[str]:
    """Keyed-hash visitor keys, as production makes them, covering every partition."""
    found: dict[int, list[str]] = {}
    n = 0
    while any(len(found.get(p, [])) < per_partition for p in range(backend.partitions)):
        key = visitor_key(f"drain-test-{n}")
        found.setdefault(backend.partition_for(key), []).append(key)
        n += 1
    return [k for p in range(backend.partitions) for k in found[p][:per_partition]]


def _consent(key: str) -> None:
    mirror_consent(key, frozenset({"personalization"}), notice_version(), time.time() + 3600)


def _event(key: str, name: str = "page_view", **properties) -> dict[str, str]:
    return events.encode(
        events.Event(visitor_key=key, name=name, ts=time.time(), properties=properties)
    )


def _raw_event(key: str, name: str = "page_view", **properties) -> dict[str, str]:
    """Stream fields written past every intake gate (an entry an older release, another
    writer or a bug left in the stream): what the drain must survive whatever it holds."""
    event = events.Event(visitor_key=key, name=name, ts=time.time())
    body = {"n": name, "t": round(event.ts, 3), "i": event.event_id, "p": properties}
    return {"k": key, "d": orjson.dumps(body).decode()}


def test_one_drain_task_serves_every_partition_in_turn(backend):
    keys = keys_in_partitions(backend)
    for key in keys:
        _consent(key)
        exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))
    # One task, asked for partition 0, leaves no partition waiting for another task.
    assert pipeline.drain_partition(0).processed == len(keys)
    assert backend.pending_partitions() == []
    assert LoggedEvent.objects.count() == len(keys)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(SEGMENTS_DRAIN_LINGER_MS=250)  # as in production: the drain stays on
def test_a_partition_receiving_events_non_stop_does_not_starve_the_others(backend):
    """With more busy partitions than worker processes, a drain that kept one partition while
    its events kept coming made the others wait up to SEGMENTS_DRAIN_MAX_SECONDS."""
    keys = keys_in_partitions(backend)
    busy, quiet = keys[0], keys[-1]
    for key in (busy, quiet):
        _consent(key)
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            backend.append_events(backend.partition_for(busy), [_event(busy)])
            time.sleep(0.001)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()

    failure: list[BaseException] = []

    def drain():  # one worker process, busy with the flooded partition first
        try:
            pipeline.drain_partition(backend.partition_for(busy), max_seconds=5)
        except BaseException as exc:
            failure.append(exc)
        finally:
            connections.close_all()

    drainer = threading.Thread(target=drain, daemon=True)
    try:
        time.sleep(0.2)
        drainer.start()
        time.sleep(0.3)
        sent = time.monotonic()
        backend.append_events(backend.partition_for(quiet), [_event(quiet, "signup")])

        def quiet_done():
            return LoggedEvent.objects.filter(visitor_key=quiet).exists()

        deadline = sent + 3.0
        while not quiet_done() and time.monotonic() < deadline:
            time.sleep(0.02)
        waited = time.monotonic() - sent
    finally:
        stop.set()
        flooder.join()
        drainer.join(timeout=30)
    assert not failure, failure
    assert waited < 1.0, f"the quiet partition waited {waited:.1f} s behind a busy one"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_missing_consent_mirror_is_rebuilt_from_the_record_not_read_as_withdrawn(backend):
    keys = keys_in_partitions(backend, per_partition=2)
    grant_imported(keys, frozenset({"personalization"}))
    for key in keys:
        _consent(key)
        for _ in range(2):
            exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))
    rebuild()  # removes every consent mirror (the visitors are not in the log yet)
    assert all(not backend.visitor_data(k).fields for k in keys)
    pipeline.drain_partition(0)
    assert LoggedEvent.objects.count() == 2 * len(keys)  # none dropped
    assert backend.pending_partitions() == []
    # The mirrors are back, so the next request records without asking the database.
    assert all(backend.visitor_data(k).fields.get("_nv") == notice_version() for k in keys)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_visitor_without_any_consent_record_still_has_their_events_dropped(backend):
    key = keys_in_partitions(backend)[0]
    _consent(key)
    exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))
    backend.client.delete(backend._m(key))  # mirror lost, and no record in the database
    pipeline.drain_partition(0)
    assert LoggedEvent.objects.count() == 0
    assert backend.pending_partitions() == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_entry_the_log_refuses_goes_to_the_dead_letters_and_the_rest_is_logged(backend):
    keys = keys_in_partitions(backend, per_partition=3)
    for key in keys:
        _consent(key)
    victim = keys[0]
    partition = backend.partition_for(victim)
    same = [k for k in keys if backend.partition_for(k) == partition]
    # Straight into the stream, past intake validation: PostgreSQL refuses "\u0000" in JSON.
    batch = [_event(k) for k in same[:2]] + [_raw_event(victim, note="a\u0000b")]
    batch += [_event(k) for k in same]
    backend.append_events(partition, batch)

    pipeline.drain_partition(partition)

    assert LoggedEvent.objects.count() == len(batch) - 1
    [dead] = api.dead_letters()
    assert dead.partition == partition
    assert dead.fields == batch[2]  # the original fields, kept whole
    assert dead.attempts == 3  # SEGMENTS_DEAD_LETTER_ATTEMPTS
    assert dead.error == "DataError"
    assert backend.pending_partitions() == []
    stats = {s.partition: s for s in api.stream_stats()}
    assert stats[partition].dead_letters == 1
    assert stats[partition].length == 0

    # The partition keeps draining.
    backend.append_events(partition, [_event(victim)])
    assert pipeline.drain_partition(partition).processed == 1

    # Requeued, it is appended again and a drain scheduled (run at once here: the tests'
    # Celery is eager): it fails again, so it comes back; discarded, it is gone.
    assert api.requeue_dead_letter(partition, dead.entry_id)
    [again] = api.dead_letters()
    assert again.original_id != dead.original_id and again.fields == dead.fields
    assert not api.requeue_dead_letter(partition, dead.entry_id)  # already done
    assert api.discard_dead_letter(partition, again.entry_id)
    assert api.dead_letters() == [] and backend.pending_partitions() == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_outage_costs_no_entry(backend, monkeypatch):
    """A failure while the database does not answer is not a bad entry: nothing is
    dead-lettered, everything waits for the next drain."""
    key = keys_in_partitions(backend)[0]
    _consent(key)
    partition = backend.partition_for(key)
    backend.append_events(partition, [_event(key) for _ in range(4)])
    monkeypatch.setattr(pipeline, "_store_healthy", lambda backend: False)
    monkeypatch.setattr(
        pipeline.eventlog, "write", lambda rows: (_ for _ in ()).throw(OSError("down"))
    )
    with pytest.raises(OSError):
        pipeline.drain_partition(partition)
    monkeypatch.undo()
    assert api.dead_letters() == []
    assert pipeline.drain_partition(partition).processed == 4


def test_a_partition_over_its_cap_sheds_page_views_and_keeps_everything_else(backend):
    config = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {**backend.options, "MAX_LENGTH": 3},
    }
    with override_settings(SEGMENTS_BACKEND=config):
        from segments.api import get_backend

        capped = get_backend()
        key = keys_in_partitions(capped)[0]
        _consent(key)
        partition = capped.partition_for(key)
        for name in ["page_view"] * 5 + ["purchase", "add_to_cart", "page_view"]:
            exchange(key, events.Event(visitor_key=key, name=name, ts=time.time()))
        fields = [f for _, f in capped.client.xrange(capped._stream(partition))]
        names = [events.decode(f).name for f in fields]
        # Accepted entries are never trimmed; only page views are refused over the cap.
        assert names == ["page_view"] * 3 + ["purchase", "add_to_cart"]
        stats = {s.partition: s for s in api.stream_stats()}
        assert stats[partition].shed == 3
        assert stats[partition].length == 5 and stats[partition].lag == 5
        pipeline.drain_partition(partition)
        assert LoggedEvent.objects.count() == 5
        assert {s.partition: s for s in api.stream_stats()}[partition].length == 0
        # Below the cap again, page views are accepted.
        exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))
        assert {s.partition: s for s in api.stream_stats()}[partition].length == 1


def test_a_live_drain_keeps_its_short_lock_and_a_dead_ones_expires_within_it(backend):
    with override_settings(SEGMENTS_LOCK_TTL_MS=300):
        keeper = pipeline.LockKeeper(backend)
        with keeper:
            assert keeper.take(1)
            time.sleep(1.0)  # three lifetimes: renewed meanwhile
            assert keeper.holds(1)
            assert not backend.lock_partition(1, "other", 300)
            # The process dies: nothing renews or releases the lock any more.
            keeper._stop.set()
            keeper._thread.join()
            keeper._held.clear()
            time.sleep(0.4)
            assert backend.lock_partition(1, "other", 300)


def test_a_partition_whose_drain_died_is_claimed_again_once_its_lock_expires(backend):
    """A drain dies mid-batch (issue #17, point 3): it holds its partition's lock, has read
    entries it never acknowledged, and the partition's drain flag stays set. While the lock
    lives no other drain touches the partition (one consumer at a time); once it has expired
    (SEGMENTS_LOCK_TTL_MS, seconds), the sweep schedules the partition again although its flag
    is set, and the next drain claims the dead one's entries: each applied once, in order."""
    order: list[int] = []

    def step(visitors, now):
        order.extend(e.properties["n"] for v in visitors for e in v.events)
        return {}

    api.register_batch_step("claim-order", step)
    try:
        with override_settings(SEGMENTS_LOCK_TTL_MS=600):
            key = keys_in_partitions(backend)[0]
            _consent(key)
            partition = backend.partition_for(key)
            for n in range(3):
                props = {"n": n}
                event = events.Event(key, "page_view", time.time(), properties=props)
                exchange(key, event)
            assert backend.lock_partition(partition, "dead-drain", 600)
            assert len(backend.read_batch(partition, "dead-consumer", 2)) == 2
            assert pipeline.to_schedule([partition]) == []  # its drain is on it
            assert pipeline.drain_partition(partition, max_seconds=0.3).processed == 0
            time.sleep(0.7)  # nothing renews the dead drain's lock
            assert pipeline.to_schedule([partition]) == [partition]
            assert pipeline.drain_partition(partition).processed == 3
        assert order == [0, 1, 2]
        assert LoggedEvent.objects.filter(visitor_key=key).count() == 3
        assert backend.pending_partitions() == []
    finally:
        api.unregister_batch_step("claim-order")


def test_the_default_lock_lifetime_is_seconds():
    from segments import defaults

    assert defaults.SEGMENTS_LOCK_TTL_MS <= 5000


def _admin_client(username: str, perms: list[str]):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.test import Client

    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    for dotted in perms:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_dead_letter_screen_lists_requeues_and_discards_behind_its_permission(backend):
    from django.urls import reverse

    key = keys_in_partitions(backend)[0]
    _consent(key)
    partition = backend.partition_for(key)
    backend.append_events(partition, [_raw_event(key, secret="x\u0000y"), _event(key, "signup")])
    pipeline.drain_partition(partition)
    [dead] = api.dead_letters()

    editor = _admin_client("editor", ["wagtailadmin.access_admin"])
    url = reverse("segments_dead_letters")
    action = reverse("segments_dead_letter_action")
    assert editor.get(url).status_code == 403
    form = {"partition": partition, "entry_id": dead.entry_id, "action": "discard"}
    assert editor.post(action, form).status_code == 403
    assert api.dead_letters() == [dead]

    operator = _admin_client("operator", ["wagtailadmin.access_admin", "segments.manage_stream"])
    page = operator.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert dead.entry_id in html and "DataError" in html and "page_view" in html
    assert "x\\u0000y" not in html and "secret" not in html  # no property is shown
    assert operator.get(action).status_code == 405
    assert operator.post(action, {**form, "action": "explode"}).status_code == 302
    assert api.dead_letters() == [dead]
    assert operator.post(action, form).status_code == 302
    assert api.dead_letters() == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_erasing_a_visitor_removes_their_dead_letters_too(backend):
    from segments.privacy import erase

    key, other = keys_in_partitions(backend, per_partition=2)[:2]
    partition = backend.partition_for(key)
    for k in (key, other):
        _consent(k)
        backend.append_events(partition, [_raw_event(k, note="\u0000")])
    pipeline.drain_partition(partition)
    assert len(api.dead_letters()) == 2
    erase(key, frozenset({"personalization"}))
    assert [d.fields["k"] for d in api.dead_letters()] == [other]


def test_events_shed_over_the_cap_are_not_reported_as_recorded(backend):
    """Accepted means durable: record_events (what POST /api/events/ answers with) counts only
    the events the stream took, never those refused by back-pressure."""
    config = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {**backend.options, "MAX_LENGTH": 2},
    }
    with override_settings(SEGMENTS_BACKEND=config):
        from segments.api import get_backend, record_events

        capped = get_backend()
        key = keys_in_partitions(capped)[0]
        _consent(key)
        partition = capped.partition_for(key)
        for _ in range(2):  # the partition reaches its cap (no drain runs meanwhile)
            exchange(key, events.Event(visitor_key=key, name="page_view", ts=time.time()))
        before = capped.client.xlen(capped._stream(partition))
        recorded = record_events(key, [("page_view", None, None), ("purchase", None, None)])
        assert recorded == 1  # the purchase; the page view was shed
        assert (
            LoggedEvent.objects.filter(name="purchase").count()
            + capped.client.xlen(capped._stream(partition))
            >= 1
            and before == 2
        )
