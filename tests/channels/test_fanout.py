"""The fan-out's bookkeeping: what each destination holds and the deliveries queued, written in
bulk (one statement per step, nothing quoted row by row in Python) without changing what is
sent."""

import threading
from datetime import timedelta
from typing import ClassVar
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from tailored import bulksql
from tailored_channels.delivery import deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import AudienceMember, Cursor, Delivery, FollowUp, Trigger
from tailored_channels.triggers import send_due

from .helpers import Receiver, change, changes, grant, key, webhook

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_no_statement_of_the_fan_out_has_its_rows_quoted_in_python():
    """Django binds parameters on the client: thousands of values quoted one by one in Python
    cost more than the statement. The fan-out's rows go as arrays bound by the server."""
    if not bulksql.available():
        pytest.skip("PostgreSQL only")
    with Receiver() as receiver:
        for n in range(3):
            webhook(receiver.url, name=f"CRM {n}")
        fan_out()
        keys = [key(n) for n in range(1, 601)]
        grant(keys)
        changes([(k, "high-intent", True) for k in keys])
        quoted = []
        execute = psycopg.Cursor.execute

        def counting(cursor, query, params=None, **kwargs):
            if isinstance(cursor, psycopg.ClientCursor) and params:
                quoted.append(len(params))
            return execute(cursor, query, params, **kwargs)

        with mock.patch.object(psycopg.Cursor, "execute", counting):
            read, _more = fan_out()
        assert read == 600
        assert quoted and max(quoted) < 20
        assert Delivery.objects.count() == 6  # 3 destinations, 500 items a delivery
        assert AudienceMember.objects.filter(active=True).count() == 1800


def test_deliveries_queued_in_bulk_carry_their_items_and_are_sent():
    with Receiver() as receiver:
        destination = webhook(receiver.url)
        fan_out()
        keys = [key(n) for n in range(1, 701)]
        grant(keys)
        changes([(k, "high-intent", True) for k in keys])
        fan_out()
        queued = list(Delivery.objects.order_by("id"))
        assert [len(d.items) for d in queued] == [500, 200]
        assert [len(d.keys) for d in queued] == [500, 200]
        assert len({d.message_id for d in queued}) == 2
        deliver(destination.pk)  # (the tests' eager Celery may have sent them on commit)
        assert [d.status for d in Delivery.objects.order_by("id")] == ["delivered"] * 2
        ids = [r["headers"]["webhook-id"] for r in receiver.requests]
        assert ids == [d.message_id for d in queued]
        assert len(receiver.items()) == 700


def test_what_a_destination_holds_changes_only_with_a_change():
    """A repeated entry sends nothing new to a mirror destination and leaves the time it was
    last told unchanged; an exit names the visitor as the entry did."""
    with Receiver() as receiver:
        destination = webhook(receiver.url, mode="mirror")
        fan_out()
        grant([key(1)])
        change(key(1))
        fan_out()
        held = AudienceMember.objects.get(destination=destination)
        assert held.active
        change(key(1))  # entered again (a replayed history, say)
        fan_out()
        again = AudienceMember.objects.get(destination=destination)
        assert again.changed_at == held.changed_at
        change(key(1), entered=False)
        fan_out()
        left = AudienceMember.objects.get(destination=destination)
        assert not left.active and left.changed_at > held.changed_at
        deliver(destination.pk)
        items = receiver.items()
        assert [i["type"] for i in items] == ["segment.entered", "segment.exited"]
        assert items[0]["identifier"] == items[1]["identifier"]


class Resolver:
    """A site's account resolver (``CHANNELS_ACCOUNT_RESOLVER``) that notes, each time it is
    called, whether the worker's connection is in a transaction and whether another connection
    can lock the fan-out's position and the follow-ups meanwhile (a slow resolver must not hold
    them); ``during`` runs inside the call (a change committed while it looks up)."""

    seen: ClassVar[list] = []
    during: ClassVar[list] = []

    def __call__(self, keys):
        found = {"atomic": connection.in_atomic_block}

        def other():
            try:
                with transaction.atomic():
                    for name, query in (
                        ("cursor", Cursor.objects.filter(name="changes")),
                        ("follow-ups", FollowUp.objects.all()),
                    ):
                        try:
                            with transaction.atomic():
                                list(query.select_for_update(nowait=True))
                            found[name] = "free"
                        except OperationalError:
                            found[name] = "locked"
                if Resolver.during:
                    Resolver.during.pop(0)()
            finally:
                connection.close()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        Resolver.seen.append(found)
        return {k: {"email": f"Visitor{int(k, 16)}@example.com"} for k in keys}


resolver = Resolver()
FREE = {"atomic": False, "cursor": "free", "follow-ups": "free"}


@pytest.fixture
def probing_resolver(settings):
    Resolver.seen.clear()
    Resolver.during.clear()
    settings.CHANNELS_ACCOUNT_RESOLVER = f"{__name__}.resolver"
    return Resolver


def test_the_account_resolver_runs_outside_the_fan_outs_transaction(probing_resolver):
    """A site's resolver may be slow (its own query, a request to a CRM): the fan-out calls it
    before it takes its position, and a change committed while it looks up is not lost (it goes
    at the next pass, with its email too)."""
    with Receiver() as receiver:
        destination = webhook(receiver.url, identifier="email")
        email = webhook(receiver.url, name="Email tool", segments=[], identifier="email")
        Trigger.objects.create(name="Now", segment="high-intent", destination=email)
        fan_out()
        grant([key(1), key(2)])
        change(key(1))
        probing_resolver.during.append(lambda: change(key(2)))
        read, _more = fan_out()
        assert probing_resolver.seen and all(s == FREE for s in probing_resolver.seen)
        assert read + fan_out()[0] == 2
        deliver(destination.pk)
        deliver(email.pk)
    sent = sorted((i["type"], i["identifier"]["value"]) for i in receiver.items())
    assert sent == [
        ("follow_up.due", "visitor1@example.com"),
        ("follow_up.due", "visitor2@example.com"),
        ("segment.entered", "visitor1@example.com"),
        ("segment.entered", "visitor2@example.com"),
    ]


def test_the_account_resolver_runs_outside_the_follow_ups_transaction(probing_resolver):
    with Receiver() as receiver:
        email = webhook(receiver.url, segments=[], identifier="email")
        Trigger.objects.create(
            name="Later", segment="high-intent", destination=email, delay_seconds=60
        )
        fan_out()
        grant([key(1)])
        change(key(1))
        fan_out()
        assert probing_resolver.seen == []  # nothing sent yet: no one to name
        assert send_due(now=timezone.now() + timedelta(seconds=61)) == 1
        assert probing_resolver.seen == [FREE]
        deliver(email.pk)
    ((kind, value),) = [(i["type"], i["identifier"]["value"]) for i in receiver.items()]
    assert (kind, value) == ("follow_up.due", "visitor1@example.com")
