"""The runbook for losing Redis (docs/operations.md): a store emptied under running processes
gets its consumer groups back from the sweep, drains resume, and rebuild_fast_store restores
features and memberships from the durable log."""

import time

import pytest
from django.core.management import call_command

from consent.api import notice_version
from consent.log import append_record
from segments import events
from segments.api import exchange, mirror_consent, stream_stats
from segments.models import LoggedEvent
from segments.recording import schedule_drain
from segments.tasks import sweep
from tests.builders import segment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

KEY = "89abcdef0123456789abcdef01234567"


def _record():
    # The durable consent record: what rebuild_fast_store restores the visitor from.
    append_record(
        KEY, granted=frozenset({"necessary", "personalization"}), denied=frozenset(), method="api"
    )


def _consent():
    mirror_consent(KEY, frozenset({"personalization"}), notice_version(), time.time() + 3600)


def _views(n, *, drain=True):
    """Page views as the request path records them; with ``drain``, the drain task it then
    schedules (run at once here); without, as if the broker had lost it (the drain flag stays
    set until it expires, then the periodic sweep takes the partition)."""
    for _ in range(n):
        result = exchange(KEY, events.Event(visitor_key=KEY, name="page_view", ts=time.time()))
        assert result.consented
        if drain and result.drain_needed:
            schedule_drain(KEY)


def test_losing_redis_under_running_workers(backend, capsys):
    segment()
    _consent()
    _views(3)  # drained (eagerly here); this process now believes the groups exist
    assert exchange(KEY).segments_at(time.time()) == {"engaged"}
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 3

    # Redis comes back empty: the same processes carry on.
    backend.client.delete(*backend.client.keys(f"{backend.prefix}:*"))
    assert exchange(KEY).consented is False  # no consent record in the database: none
    _consent()
    _views(1, drain=False)
    partition = backend.partition_for(KEY)
    assert [r.group for r in stream_stats() if r.partition == partition] == [False]
    backend.client.delete(f"{backend.prefix}:drain:{partition}")  # the lost task's flag expired
    sweep()  # heartbeat, groups recreated, the waiting event drained
    [row] = [r for r in stream_stats() if r.partition == partition]
    assert row.group is True and row.lag == 0 and row.pending == 0
    assert LoggedEvent.objects.filter(visitor_key=KEY).count() == 4
    assert backend.heartbeat() is not None

    # Features and memberships come back from the durable log (for a visitor whose consent
    # record grants them: one without any record is left out).
    _record()
    call_command("rebuild_fast_store")
    assert "1 visitors, 4 events replayed" in capsys.readouterr().out
    _consent()
    assert exchange(KEY).segments_at(time.time()) == {"engaged"}
