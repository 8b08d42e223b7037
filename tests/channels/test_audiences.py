"""Audiences in mirror mode (a destination holds exactly the segment's current members; the
nightly reconciliation repairs drift), file exports, and Mailchimp through its official client
against a local server implementing the endpoints used. Memberships come from the real
pipeline: events recorded in Redis, drained, changes in PostgreSQL."""

import json
import time

import pytest
from django.core.files.storage import storages

from consent.api import notice_version
from consent.privacy import erase_visitor
from segments import events
from segments.api import exchange, mirror_consent
from segments.models import MembershipChange
from segments.stream import drain as pipeline
from tailored_channels.api import export_destination
from tailored_channels.audiences import reconcile, reconcile_all
from tailored_channels.delivery import deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import AudienceMember, Delivery, Destination
from tests.builders import segment

from .helpers import Mailchimp, Receiver, grant, key, webhook, withdraw

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

RULE = {"type": "event_count", "event": "purchase", "min": 1, "window": "10m"}


def visit(k: str, name: str = "purchase", ts: float | None = None) -> None:
    mirror_consent(
        k, frozenset({"personalization", "marketing"}), notice_version(), time.time() + 3600
    )
    exchange(k, events.Event(visitor_key=k, name=name, ts=ts or time.time(), properties={}))
    pipeline.drain_partition(pipeline.get_backend().partition_for(k))


def members(receiver) -> set[str]:
    """What a mirror receiver holds, applying its items in order."""
    held: set[str] = set()
    for item in receiver.items():
        value = item["identifier"]["value"]
        if item["type"] == "segment.entered":
            held.add(value)
        elif item["type"] in ("segment.exited", "consent.withdrawn", "visitor.erased"):
            held.discard(value)
    return held


def test_a_mirror_destination_holds_exactly_the_segments_members(backend):
    segment("buyers", RULE)
    with Receiver() as receiver:
        destination = webhook(receiver.url, segments=["buyers"], mode="mirror")
        fan_out()
        keys = [key(n) for n in range(1, 6)]
        grant(keys)
        for k in keys:
            visit(k)
        fan_out()
        deliver(destination.pk)
        assert len(members(receiver)) == 5
        # Leaving (the window passes: the sweeper records it) removes.
        until = exchange(keys[0]).memberships["buyers"]
        pipeline.reevaluate_due(now=until + 1)
        assert MembershipChange.objects.filter(entered=False).count() == 5
        fan_out()
        deliver(destination.pk)
        assert members(receiver) == set()


def test_the_reconciliation_repairs_drift(backend):
    segment("buyers", RULE)
    with Receiver() as receiver:
        destination = webhook(receiver.url, segments=["buyers"], mode="mirror")
        fan_out()
        keys = [key(n) for n in range(1, 5)]
        grant(keys)
        grant([key(9)], purposes=("personalization",))  # not the destination's purpose
        for k in [*keys, key(9)]:
            visit(k)
        # Drift: changes the fan-out never saw (lost history, a restore), and a member the
        # destination was told about who is no longer one.
        MembershipChange.objects.all().delete()
        AudienceMember.objects.create(
            destination=destination,
            visitor_key=key(7),
            segment="buyers",
            identifier="stale",
            changed_at="2026-01-01T00:00:00Z",
        )
        fan_out()
        assert Delivery.objects.count() == 0
        assert reconcile_all() == {"CRM": 5}  # 4 added, 1 removed; key(9) refused the purpose
        deliver(destination.pk)
        items = receiver.items()
        assert all(i["reconciled"] for i in items)
        assert sum(i["type"] == "segment.entered" for i in items) == 4
        (gone,) = [i for i in items if i["type"] == "segment.exited"]
        assert gone["identifier"]["value"] == "stale"
        # In step now: nothing more to send.
        assert reconcile(destination) == 0


def test_a_file_export_holds_the_audience_and_loses_a_withdrawn_or_erased_visitor(backend):
    segment("buyers", RULE)
    destination = Destination.objects.create(
        name="Export",
        kind="file",
        mode="mirror",
        segments=["buyers"],
        purpose="marketing",
        options={"format": "jsonl"},
    )
    fan_out()
    keys = [key(n) for n in range(1, 4)]
    grant(keys)
    for k in keys:
        visit(k)
    fan_out()
    path = export_destination(destination.pk)
    storage = storages["default"]
    rows = [json.loads(line) for line in storage.open(path).read().splitlines()]
    assert len(rows) == 3 and {r["segment"] for r in rows} == {"buyers"}
    assert all(r["identifier_type"] == "keyed_hash" for r in rows)
    assert not set(keys) & {r["identifier"] for r in rows}
    withdraw(keys[0], keep=("personalization",))
    erase_visitor(keys[1])
    deliver(destination.pk)
    rows = [json.loads(line) for line in storage.open(path).read().splitlines()]
    assert len(rows) == 1
    destination.options = {"format": "csv"}
    destination.save()
    text = storages["default"].open(export_destination(destination.pk)).read().decode()
    assert text.splitlines()[0] == "segment,identifier_type,identifier,since"
    assert len(text.splitlines()) == 2


def accounts(keys):
    return {
        k: {"email": f"Visitor{int(k, 16)}@Example.com", "account": int(k, 16)}
        for k in keys
        if int(k, 16) < 100
    }


def mailchimp_destination(server) -> Destination:
    """A mirror Mailchimp destination of "buyers" (by email, marketing) on the local server."""
    destination = Destination(
        name="Mailchimp",
        kind="mailchimp",
        mode="mirror",
        segments=["buyers"],
        purpose="marketing",
        identifier="email",
        options={
            "server": "us1",
            "list_id": "list1",
            "api_key": "secret-us1",
            "host": server.url.replace("/hook", "/3.0"),
            "tags": {"buyers": "High intent"},
        },
    )
    destination.full_clean()
    destination.save()
    return destination


def test_mailchimp_member_tags_by_the_md5_of_the_lower_cased_email(backend, settings):
    settings.CHANNELS_ACCOUNT_RESOLVER = "tests.channels.test_audiences.accounts"
    segment("buyers", RULE)
    api = Mailchimp([f"visitor{n}@example.com" for n in (1, 2, 3)])
    with Receiver(handler=api) as server:
        destination = mailchimp_destination(server)
        fan_out()
        keys = [key(1), key(2), key(3), key(200)]  # key(200): no account, never sent
        grant(keys)
        for k in keys:
            visit(k)
        fan_out()
        deliver(destination.pk)
        assert [m["tags"] for m in api.members.values()] == [{"High intent"}] * 3
        assert all(auth.startswith("Basic ") for _path, auth in api.calls)
        assert not AudienceMember.objects.filter(visitor_key=key(200)).exists()
        withdraw(key(1), keep=("personalization",))
        deliver(destination.pk)
        hashes = {m["email"]: m for m in api.members.values()}
        assert hashes["visitor1@example.com"]["tags"] == set()
        erase_visitor(key(2))
        deliver(destination.pk)
        assert "visitor2@example.com" not in {m["email"] for m in api.members.values()}
        assert not Delivery.objects.exclude(status="delivered").exists()


def test_mailchimp_deliveries_hold_at_most_500_members():
    destination = Destination(
        name="M",
        kind="mailchimp",
        purpose="marketing",
        identifier="email",
        batch_size=501,
        options={"server": "us1", "list_id": "l", "api_key": "k"},
    )
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        destination.full_clean()
    assert "batch_size" in caught.value.message_dict


def run_scheduled(entry: str) -> None:
    """Run one entry of the project's beat schedule as a worker would: the task it names, looked
    up in the Celery app (what ``run_periodic_tasks`` does for sites without beat)."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("run_periodic_tasks", entry, stdout=out, stderr=io.StringIO())
    assert out.getvalue() == f"{entry}: done\n"


def test_the_scheduled_export_writes_exactly_the_members_of_due_destinations(backend, settings):
    from datetime import timedelta

    from django.utils import timezone

    from tailored_channels.backends.files import FileBackend
    from tailored_channels.conf import BEAT_SCHEDULE
    from tailored_channels.identity import keyed_hash

    entry = BEAT_SCHEDULE["channels-exports"]
    assert entry["task"] == "tailored_channels.export_due"
    assert settings.CELERY_BEAT_SCHEDULE["channels-exports"] == entry
    assert entry["schedule"] <= timedelta(hours=1)  # an every_hours of 1 is kept to

    segment("buyers", RULE)
    due, later = (
        Destination.objects.create(
            name=name,
            kind="file",
            mode="mirror",
            segments=["buyers"],
            purpose="marketing",
            options={"format": "jsonl", "every_hours": 6},
        )
        for name in ("Due", "Not due")
    )
    storage = storages["default"]
    for destination in (due, later):
        path = FileBackend(destination).path()
        if storage.exists(path):  # (the tests' in-memory storage outlives a test's database)
            storage.delete(path)
    now = timezone.now()
    Destination.objects.filter(pk=due.pk).update(last_export_at=now - timedelta(hours=7))
    Destination.objects.filter(pk=later.pk).update(last_export_at=now - timedelta(hours=5))
    fan_out()
    members_ = [key(1), key(2), key(3)]
    grant([*members_, key(4)])
    grant([key(5)], purposes=("personalization",))  # a member who refused the purpose
    for k in [*members_, key(4), key(5)]:
        visit(k)
    fan_out()
    assert AudienceMember.objects.filter(destination=due, active=True).count() == 4
    # key(4) leaves: re-evaluated alone once the rule's window has passed.
    until = exchange(key(4)).memberships["buyers"]
    pipeline.reevaluate([key(4)], until + 1)
    assert MembershipChange.objects.filter(visitor_key=key(4), entered=False).exists()
    fan_out()

    run_scheduled("channels-exports")

    due.refresh_from_db()
    later.refresh_from_db()
    assert due.last_export_at > now
    assert later.last_export_at < now
    assert not storage.exists(FileBackend(later).path())
    rows = [json.loads(line) for line in storage.open(FileBackend(due).path()).read().splitlines()]
    assert sorted(r["identifier"] for r in rows) == sorted(keyed_hash(due, k) for k in members_)
    assert {r["segment"] for r in rows} == {"buyers"}
    # Exported now, so not due again until every_hours have passed.
    storage.delete(FileBackend(due).path())
    run_scheduled("channels-exports")
    assert not storage.exists(FileBackend(due).path())


def test_the_nightly_reconciliation_is_scheduled_and_its_task_reconciles(backend, settings):
    from datetime import timedelta

    from tailored_channels.conf import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["channels-reconcile"]
    assert entry["task"] == "tailored_channels.reconcile"
    assert entry["schedule"] <= timedelta(days=1)
    assert settings.CELERY_BEAT_SCHEDULE["channels-reconcile"] == entry

    segment("buyers", RULE)
    with Receiver() as receiver:
        destination = webhook(receiver.url, segments=["buyers"], mode="mirror")
        fan_out()
        keys = [key(1), key(2)]
        grant(keys)
        for k in keys:
            visit(k)
        MembershipChange.objects.all().delete()  # drift: the fan-out never sees these
        fan_out()
        assert not Delivery.objects.exists()

        run_scheduled("channels-reconcile")

        deliver(destination.pk)
        assert len(members(receiver)) == 2
        assert all(i["reconciled"] for i in receiver.items())
        assert reconcile(destination) == 0  # in step


def test_a_mailchimp_audience_of_more_than_500_is_sent_in_deliveries_of_at_most_500(
    backend, settings
):
    settings.CHANNELS_ACCOUNT_RESOLVER = "tests.channels.test_audiences.accounts_1200"
    settings.CHANNELS_BATCH_SIZE = 5000  # the site's own limit is higher: Mailchimp's holds
    segment("buyers", RULE)
    count = 1201
    api = Mailchimp([f"visitor{n}@example.com" for n in range(1, count + 1)])
    with Receiver(handler=api) as server:
        destination = mailchimp_destination(server)
        fan_out()
        keys = [key(n) for n in range(1, count + 1)]
        grant(keys)
        changes_ = [
            MembershipChange(visitor_key=k, segment="buyers", entered=True, at=timezone_now())
            for k in keys
        ]
        MembershipChange.objects.bulk_create(changes_)
        fan_out()
        queued = Delivery.objects.filter(destination=destination).order_by("id")
        assert [len(d.items) for d in queued] == [500, 500, 201]
        deliver(destination.pk)
        assert not Delivery.objects.exclude(status="delivered").exists()
        assert all(m["tags"] == {"High intent"} for m in api.members.values())
        tagged = [path for path, _auth in api.calls if path.endswith("/tags")]
        assert len(tagged) == count


def accounts_1200(keys):
    return {k: {"email": f"Visitor{int(k, 16)}@Example.com"} for k in keys}


def timezone_now():
    from django.utils import timezone

    return timezone.now()
