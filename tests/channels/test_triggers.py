"""Triggers: a segment entry starts a follow-up (a webhook now, or after a wait), cancelled if
the visitor leaves the segment or converts first."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from segments.models import LoggedEvent
from tailored_channels.delivery import deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import FollowUp, Trigger
from tailored_channels.triggers import send_due

from .helpers import Receiver, change, grant, key, webhook, withdraw

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def follow_ups(receiver):
    return [i for i in receiver.items() if i["type"] == "follow_up.due"]


def test_an_entry_sends_a_follow_up_at_once():
    with Receiver() as receiver:
        email = webhook(receiver.url, segments=[], events=[])
        Trigger.objects.create(name="High intent", segment="high-intent", destination=email)
        fan_out()
        grant([key(1)])
        grant([key(2)], purposes=("personalization",))  # refused the email tool's purpose
        change(key(1))
        change(key(2))
        fan_out()
        deliver(email.pk)
        (item,) = follow_ups(receiver)
        assert item["trigger"] == "High intent" and item["segment"] == "high-intent"
        assert item["identifier"]["type"] == "keyed_hash"


def test_a_delayed_follow_up_waits_and_is_cancelled_by_leaving_or_converting():
    with Receiver() as receiver:
        email = webhook(receiver.url, segments=[], events=[])
        Trigger.objects.create(
            name="Nudge",
            segment="high-intent",
            destination=email,
            delay_seconds=3600,
            cancel_events=["purchase"],
        )
        fan_out()
        grant([key(1), key(2), key(3)])
        for n in (1, 2, 3):
            change(key(n))
        fan_out()
        assert send_due() == 0  # waiting
        change(key(2), entered=False)  # leaves first
        fan_out()
        LoggedEvent.objects.create(  # converts first
            event_id="0" * 32,
            visitor_key=key(3),
            name="purchase",
            occurred_at=datetime.now(UTC),
            properties={},
        )
        assert send_due(now=timezone.now() + timedelta(seconds=3601)) == 1
        deliver(email.pk)
        assert len(follow_ups(receiver)) == 1
        statuses = dict(FollowUp.objects.values_list("visitor_key", "reason"))
        assert statuses == {key(1): "", key(2): "left the segment", key(3): "converted"}
        assert FollowUp.objects.get(visitor_key=key(1)).status == "sent"


def test_withdrawing_the_purpose_cancels_waiting_follow_ups_even_if_granted_again():
    """The withdrawal itself cancels the visitor's waiting follow-ups of destinations needing
    that purpose: granting it again before the wait is over does not bring them back (the
    entry that started them came before the withdrawal)."""
    with Receiver() as receiver:
        email = webhook(receiver.url, segments=[], events=[])  # marketing
        other = webhook(receiver.url, name="Analytics", segments=[], events=[], purpose="analytics")
        Trigger.objects.create(
            name="Nudge", segment="high-intent", destination=email, delay_seconds=3600
        )
        Trigger.objects.create(
            name="Count", segment="high-intent", destination=other, delay_seconds=3600
        )
        fan_out()
        grant([key(1), key(2)], purposes=("personalization", "marketing", "analytics"))
        change(key(1))
        change(key(2))
        fan_out()
        assert FollowUp.objects.filter(status="waiting").count() == 4
        withdraw(key(1), keep=("personalization", "analytics"))  # marketing withdrawn
        cancelled = FollowUp.objects.get(visitor_key=key(1), trigger__name="Nudge")
        assert (cancelled.status, cancelled.reason) == ("cancelled", "consent withdrawn")
        assert FollowUp.objects.get(visitor_key=key(1), trigger__name="Count").status == "waiting"
        grant([key(1)], purposes=("personalization", "marketing", "analytics"))
        assert send_due(now=timezone.now() + timedelta(seconds=3601)) == 3
        deliver(email.pk)
        deliver(other.pk)
    sent = sorted((i["trigger"], i["identifier"]["value"]) for i in follow_ups(receiver))
    from tailored_channels.identity import keyed_hash

    assert sent == sorted(
        [
            ("Count", keyed_hash(other, key(1))),
            ("Count", keyed_hash(other, key(2))),
            ("Nudge", keyed_hash(email, key(2))),
        ]
    )
