"""Raising PARTITIONS on a live site (issue #17, point 3): a visitor whose partition changes
keeps their events in order and loses none (docs/operations.md, "Raising PARTITIONS on a live
site")."""

import io
import time

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from consent.api import visitor_key
from segments import events
from segments.api import exchange, get_backend, register_batch_step, unregister_batch_step
from segments.checks import check_partitions, stream_option_problem
from segments.models import LoggedEvent
from segments.stream import drain as pipeline
from tests.builders import browser
from tests.segments.test_drain import _consent

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _config(**options) -> dict:
    base = django_settings.SEGMENTS_BACKEND
    return {"BACKEND": base["BACKEND"], "OPTIONS": {**base["OPTIONS"], **options}}


@pytest.fixture
def applied():
    """The order in which the drain applies each visitor's events (a batch step sees them)."""
    order: dict[str, list[int]] = {}

    def step(visitors, now):
        for v in visitors:
            order.setdefault(v.key, []).extend(e.properties["n"] for e in v.events)
        return {}

    register_batch_step("order", step)
    yield order
    unregister_batch_step("order")


def _moving_visitor(old: int, new: int) -> str:
    """A keyed-hash visitor key whose partition changes from p to p + old."""
    n = 0
    while True:
        key = visitor_key(f"resize-{n}")
        if int(key[:8], 16) % new >= old:
            return key
        n += 1


def _click(key: str, n: int) -> None:
    event = events.Event(visitor_key=key, name="click", ts=time.time(), properties={"n": n})
    assert exchange(key, event).consented


def test_raising_partitions_live_keeps_a_moving_visitors_events_in_order(backend, applied):
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        old = get_backend()
        old.flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        for n in (1, 2, 3):  # recorded by a process still on 2 partitions, not drained yet
            _click(key, n)
        before = old.partition_for(key)
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)):
        new = get_backend()
        assert new.partition_for(key) == before + 2
        for n in (4, 5):  # recorded by a process on the new count, before the seal
            _click(key, n)
        with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
            _click(key, 6)  # a process not restarted yet
        new = get_backend()
        # Until the seal, both record to the old partition, in the order they happen.
        pipeline.drain_partition(0)
        assert applied[key] == [1, 2, 3, 4, 5, 6]
        _click(key, 7)
        call_command("seal_partitions")
        _click(key, 8)  # from the seal on, to the new partition
        assert new.client.xlen(new._stream(new.partition_for(key))) == 1
        # The new partition waits until the old one's events up to the seal are applied.
        assert not new.partition_ready(new.partition_for(key))
        pipeline.drain_partition(new.partition_for(key))
        assert applied[key] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert new.pending_partitions() == []
        assert LoggedEvent.objects.filter(visitor_key=key).count() == 8


def _erase(key: str) -> None:
    from segments.privacy import erase

    erase(key, frozenset())


def test_erasing_a_moving_visitor_during_a_raise_leaves_none_of_their_waiting_events(
    backend, applied
):
    """Before the seal, a moving visitor's events wait in their old partition: the erasure
    looks there too (and locks it), so no drain applies them after it."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        for n in (1, 2):  # recorded by a process still on 2 partitions
            _click(key, n)
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)):
        new = get_backend()
        _click(key, 3)  # by a process on the new count, before the seal: the old partition
        old_partition = int(key[:8], 16) % 2
        assert new.erasure_partitions(key) == [old_partition + 2, old_partition]
        _erase(key)
        for p in range(4):
            assert not [f for _i, f in new.client.xrange(new._stream(p)) if f.get("k") == key]
        call_command("seal_partitions", stdout=io.StringIO())
        for p in range(4):
            pipeline.drain_partition(p)
        assert key not in applied
        assert LoggedEvent.objects.filter(visitor_key=key).count() == 0
        assert new.visitor_data(key).profile is None


def test_a_process_whose_count_disagrees_still_erases_where_the_others_recorded(backend):
    """A web process started with another PARTITIONS than the store's (segments.E011: it
    fails readiness, but the privacy screen still works in it) erases the visitor's events
    from the partition the recording processes used."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        _click(key, 1)
        assert get_backend().stored_partitions() == 2
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4)):
        other = get_backend()
        _erase(key)
        assert not [
            f
            for p in range(4)
            for _i, f in other.client.xrange(other._stream(p))
            if f.get("k") == key
        ]
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        for p in range(2):
            pipeline.drain_partition(p)
        assert LoggedEvent.objects.filter(visitor_key=key).count() == 0


def test_writes_outside_the_drain_wait_for_a_moving_visitors_old_partition_too(backend):
    """A static segment's members and a recomputation of profiles (retention, imports) write
    visitors' state outside the drain: during a raise of PARTITIONS, under the lock of the
    partition whose drain may still be applying a moving visitor's events (their old one), as
    an erasure is, not only of their new one, where a drain of the old partition would write
    the visitor's state back over theirs."""
    from segments.stream.rebuild import recompute
    from segments.stream.static import compute_members
    from tests.builders import segment

    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        _click(key, 1)
        old_partition = int(key[:8], 16) % 2
        pipeline.drain_partition(old_partition)
    raising = _config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)
    with override_settings(SEGMENTS_BACKEND=raising, SEGMENTS_DRAIN_MAX_SECONDS=0):
        new = get_backend()
        assert new.visitor_data(key).profile is not None
        assert new.partition_for(key) == old_partition + 2
        rule = {"type": "event_count", "event": "click", "min": 1, "window": "1d"}
        clickers = segment("clickers", rule=rule, static=True)
        drain_token = "a-drain-of-the-old-partition"
        assert new.lock_partition(old_partition, drain_token, 60_000)
        try:
            with pytest.raises(TimeoutError):
                compute_members(clickers.pk)
            with pytest.raises(TimeoutError):
                recompute([key])
            # Neither left a lock behind on the new partition.
            assert new.lock_partition(old_partition + 2, "probe", 1_000)
            new.unlock_partition(old_partition + 2, "probe")
        finally:
            new.unlock_partition(old_partition, drain_token)
        assert compute_members(clickers.pk) == 1
        assert recompute([key]) == 1
        assert "s:clickers" in new.visitor_data(key).fields


def test_a_rebuild_of_the_fast_store_during_a_raise_keeps_the_seal(backend, applied):
    """rebuild_fast_store between the seal and the end of the raise keeps the seal's marks:
    the new partitions still become ready, and a moving visitor's later events still go to
    their new partition, after the ones already waiting there."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        _click(key, 1)
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)):
        new = get_backend()
        call_command("seal_partitions", stdout=io.StringIO())
        _click(key, 2)  # after the seal: the new partition, behind 1 in the old one
        call_command("rebuild_fast_store", stdout=io.StringIO())
        _consent(key)
        _click(key, 3)
        assert new.client.xlen(new._stream(new.partition_for(key))) == 2
        for p in range(4):
            pipeline.drain_partition(p)
        assert applied[key] == [1, 2, 3]
        assert new.pending_partitions() == []


def test_the_previous_count_must_divide_the_new_one():
    assert stream_option_problem({"PARTITIONS": 8, "PREVIOUS_PARTITIONS": 4}) is None
    assert "divide" in stream_option_problem({"PARTITIONS": 6, "PREVIOUS_PARTITIONS": 4})
    assert "divide" in stream_option_problem({"PARTITIONS": 4, "PREVIOUS_PARTITIONS": 4})
    assert "cluster" in stream_option_problem(
        {"PARTITIONS": 8, "PREVIOUS_PARTITIONS": 4, "CLUSTER": True}
    )
    assert "KEY_PREFIX" in stream_option_problem({"CLUSTER": True, "KEY_PREFIX": "a{b}"})


def test_a_live_raise_on_a_cluster_is_refused_when_the_backend_is_made(settings):
    """A visitor's keys carry their partition's hash tag on a cluster: the live raise cannot
    work there, so every process refuses it as it makes its backend (a WSGI server or Celery
    worker runs no system check), before connecting to anything, and says what to do."""
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {
            "URL": "redis://127.0.0.1:1/0",  # never reached
            "CLUSTER": True,
            "PARTITIONS": 8,
            "PREVIOUS_PARTITIONS": 4,
        },
    }
    with pytest.raises(ImproperlyConfigured, match="Changing PARTITIONS on a Redis Cluster"):
        get_backend()
    with pytest.raises(ImproperlyConfigured, match="rebuild_fast_store"):
        call_command("seal_partitions")


# -- a count changed alone: detected by every process, nothing drained by it, nothing lost ---


def test_raising_partitions_alone_is_refused_by_the_drain_and_nothing_is_lost(
    backend, applied, caplog
):
    """PARTITIONS raised without PREVIOUS_PARTITIONS: the drains refuse to run under the new
    count (a visitor's waiting events are in their old partition, their next ones would go
    to the new one), leave every entry waiting, say why; once the raise is made the
    documented way, every event is applied, in order."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        old = get_backend()
        old.flush()
        key = _moving_visitor(2, 4)
        _consent(key)
        for n in (1, 2):
            _click(key, n)  # the first process to use the store seals it with 2
        assert old.stored_partitions() == 2
        before = old.partition_for(key)
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4)):
        new = get_backend()
        caplog.clear()
        assert pipeline.drain_partition(0).processed == 0
        assert "Drain refused" in caplog.text and "sealed with 2" in caplog.text
        assert applied == {}
        stats = new.stream_stats()[before]  # waiting, neither delivered nor acknowledged
        assert (stats.length, stats.pending) == (2, 0)
        _click(key, 3)  # a web process on the new count: recorded, and it says so
        assert "Recording with a partition count" in caplog.text
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)):
        new = get_backend()
        for p in range(4):
            pipeline.drain_partition(p)
        assert applied[key] == [1, 2]  # the new partition waits for the seal
        call_command("seal_partitions", stdout=io.StringIO())
        assert new.stored_partitions() == 4
        for p in range(4):
            pipeline.drain_partition(p)
        assert applied[key] == [1, 2, 3]
        assert new.pending_partitions() == []
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 3


def _visitor_in(partition: int, count: int) -> str:
    n = 0
    while True:
        key = visitor_key(f"lower-{n}")
        if int(key[:8], 16) % count == partition:
            return key
        n += 1


def test_lowering_partitions_is_refused_until_the_old_partitions_are_drained_and_sealed(
    backend, applied, caplog
):
    """PARTITIONS lowered from 4 to 2: partitions 2 and 3 are beyond the new count, so a drain
    by 2 would never read their events. It refuses; seal_partitions refuses to record the new
    count while they hold events; once drained by the old count, it records it and the
    drains run again."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4)):
        get_backend().flush()
        key = _visitor_in(3, 4)
        _consent(key)
        _click(key, 1)
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        lowered = get_backend()
        caplog.clear()
        assert pipeline.drain_partition(0).processed == 0
        assert "Drain refused" in caplog.text and "sealed with 4" in caplog.text
        with pytest.raises(CommandError, match=r"partitions \[3\] still hold events"):
            call_command("seal_partitions", stdout=io.StringIO())
        assert lowered.stored_partitions() == 4
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4)):
        assert pipeline.drain_partition(0).processed == 1  # the old count drains them
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        lowered = get_backend()
        out = io.StringIO()
        call_command("seal_partitions", stdout=out)
        assert "Recorded 2" in out.getvalue() and lowered.stored_partitions() == 2
        _click(key, 2)
        assert pipeline.drain_partition(0).processed == 1
    assert applied[key] == [1, 2]


def test_a_process_not_restarted_after_the_seal_is_refused(backend, caplog):
    """After seal_partitions the store's count is the new one: a worker still on the old
    count (the raise's step 1 skipped for it) no longer drains, and sealing with a
    PREVIOUS_PARTITIONS the store never had is refused."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        assert pipeline.drain_partition(0).processed == 0
        assert get_backend().stored_partitions() == 2
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=4, PREVIOUS_PARTITIONS=2)):
        call_command("seal_partitions", stdout=io.StringIO())
        assert get_backend().stored_partitions() == 4
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        caplog.clear()
        pipeline.drain_partition(0)
        assert "Drain refused" in caplog.text and "sealed with 4" in caplog.text
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=16, PREVIOUS_PARTITIONS=8)):
        with pytest.raises(CommandError, match="sealed with 4"):
            call_command("seal_partitions", stdout=io.StringIO())
        assert get_backend().stored_partitions() == 4


def test_a_web_process_compares_the_counts_once_not_per_request(backend, caplog):
    """The request path keeps its one round trip: the store's count is read before the
    process's first exchange only, and a disagreement is logged then."""
    with override_settings(SEGMENTS_BACKEND=_config(PARTITIONS=2)):
        get_backend().flush()
        get_backend().record_partitions(8)
        web = get_backend()
        reads = []
        stored = web.stored_partitions
        web.stored_partitions = lambda: reads.append(1) or stored()
        key = _visitor_in(0, 2)
        _consent(key)
        caplog.clear()
        for n in range(3):
            _click(key, n)
        assert len(reads) == 1
        assert caplog.text.count("Recording with a partition count") == 1


@pytest.fixture(params=["embedded", "redis"])
def kind(request, settings):
    if request.param == "embedded":
        settings.SEGMENTS_BACKEND = {
            "BACKEND": "segments.backends.embedded.EmbeddedBackend",
            "OPTIONS": {"PARTITIONS": 2},
        }
    else:
        settings.SEGMENTS_BACKEND = _config(PARTITIONS=2)
    store = get_backend()
    store.flush()
    yield store
    store.flush()


def test_every_backend_reports_a_disagreement_in_the_check_readiness_and_drain(kind, caplog):
    """The embedded backend keeps the count as the Redis one does (the cluster's: see
    test_cluster.py): the deployment check (which never records a count itself), the
    readiness check and the drain all see a store sealed with another count."""
    store = kind
    assert check_partitions() == []
    assert store.stored_partitions() is None  # a check records nothing
    key = _visitor_in(1, 2)
    _consent(key)
    _click(key, 1)
    assert store.stored_partitions() == 2
    assert browser().get("/-/health/ready/").json()["checks"]["partitions"]["ok"] is True

    store.record_partitions(8, replace=True)  # as another process's seal would
    [error] = check_partitions()
    assert error.id == "segments.E011" and "sealed with 8" in error.msg
    response = browser().get("/-/health/ready/")
    assert response.status_code == 503
    assert response.json()["checks"]["partitions"]["error"] == "PARTITIONS 2, store 8"
    caplog.clear()
    assert pipeline.drain_partition(0).processed == 0
    assert "Drain refused" in caplog.text
    assert store.waiting_partitions(2) == [1]  # still waiting
    assert pipeline.reevaluate([key], time.time()) == 0

    store.record_partitions(2, replace=True)
    assert pipeline.drain_partition(0).processed == 1
    assert check_partitions() == []


def test_an_import_by_another_count_is_refused_before_anything_is_written(backend, tmp_path):
    """Imports append straight to the partitions: by a count the store disagrees with, their
    events would wait where the drains do not look. Refused, nothing appended."""
    from tests.segments.test_imports import _import, _lines, _write

    backend.record_partitions(8)  # this process runs with 4
    with pytest.raises(CommandError, match="sealed with 8"):
        _import(_write(tmp_path / "retail.csv", _lines()))
    assert backend.waiting_partitions(8) == []
    assert not LoggedEvent.objects.exists()
    backend.record_partitions(4, replace=True)
    _import(_write(tmp_path / "retail.csv", _lines()))  # appended, then drained by the command
    assert LoggedEvent.objects.count() == len(_lines())
