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


def test_mailchimp_member_tags_by_the_md5_of_the_lower_cased_email(backend, settings):
    settings.CHANNELS_ACCOUNT_RESOLVER = "tests.channels.test_audiences.accounts"
    segment("buyers", RULE)
    api = Mailchimp([f"visitor{n}@example.com" for n in (1, 2, 3)])
    with Receiver(handler=api) as server:
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
