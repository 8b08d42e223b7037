"""The fan-out's bookkeeping: what each destination holds and the deliveries queued, written in
bulk (one statement per step, nothing quoted row by row in Python) without changing what is
sent."""

from unittest import mock

import psycopg
import pytest

from tailored import bulksql
from tailored_channels.delivery import deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import AudienceMember, Delivery

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
