"""Webhooks per the Standard Webhooks specification, received by a real HTTP server that
verifies them with the specification's reference library (``standardwebhooks``)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tailored_channels import signing
from tailored_channels.delivery import deliver, replay
from tailored_channels.fanout import fan_out
from tailored_channels.models import AudienceMember, Delivery, Destination

from .helpers import Receiver, change, changes, grant, key, webhook

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def start():
    fan_out()  # the first pass places the cursor after the history already there


def due_now():
    Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_messages_are_signed_with_every_secret_in_force_and_verified_by_the_reference_library():
    old, new = signing.new_secret(), signing.new_secret()
    with Receiver(secrets=[old, new, signing.new_secret()]) as receiver:
        destination = webhook(receiver.url, secrets=f"{new}\n{old}")
        start()
        grant([key(1)])
        change(key(1))
        fan_out()
        deliver(destination.pk)
        (request,) = receiver.requests
        assert request["verified"] == [True, True, False]  # both rotating secrets, not another
        headers = request["headers"]
        assert headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 30
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert all(s.startswith("v1,") for s in headers["webhook-signature"].split(" "))
        body = request["json"]
        assert body["type"] == "segment.changes"
        (item,) = body["data"]["items"]
        assert item["type"] == "segment.entered" and item["segment"] == "high-intent"
        # The keyed hash for this destination: never the pseudonymous key itself.
        assert item["identifier"]["type"] == "keyed_hash"
        assert item["identifier"]["value"] != key(1) and len(item["identifier"]["value"]) == 32
        assert key(1) not in request["body"].decode()


def test_a_tampered_body_does_not_verify():
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(timezone.now().timestamp()), b'{"a":1}')
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    Webhook(secret).verify(b'{"a":1}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_visitors_without_the_destinations_purpose_are_not_sent():
    with Receiver(secrets=[]) as receiver:
        destination = webhook(receiver.url)
        start()
        grant([key(1)], purposes=("personalization", "marketing"))
        grant([key(2)], purposes=("personalization",))  # refused the destination's purpose
        change(key(1))
        change(key(2))
        change(key(3))  # never decided
        change(key(1), segment="other")  # not a segment of this destination
        fan_out()
        deliver(destination.pk)
        assert len(receiver.items()) == 1
        assert AudienceMember.objects.filter(destination=destination).count() == 1


def test_a_failed_delivery_is_retried_with_the_same_id_on_the_backoff_schedule(settings):
    settings.CHANNELS_RETRY_SCHEDULE = [5, 300, 1800]
    with Receiver(statuses=(500, 503, 200)) as receiver:
        destination = webhook(receiver.url)
        start()
        grant([key(1)])
        change(key(1))
        fan_out()
        deliver(destination.pk)
        delivery = Delivery.objects.get()
        assert delivery.status == "pending" and delivery.attempts == 1
        wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert timedelta(seconds=4.9) < wait < timedelta(seconds=5.1)
        deliver(destination.pk)  # not due yet: nothing sent
        assert len(receiver.requests) == 1
        due_now()
        deliver(destination.pk)
        delivery.refresh_from_db()
        wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert timedelta(seconds=299) < wait < timedelta(seconds=301)
        due_now()
        deliver(destination.pk)
        delivery.refresh_from_db()
        assert delivery.status == "delivered" and delivery.attempts == 3
        assert delivery.response_status == 200
        ids = {r["headers"]["webhook-id"] for r in receiver.requests}
        assert ids == {delivery.message_id}
        assert len({r["body"] for r in receiver.requests}) == 1


def test_the_default_schedule_retries_over_about_three_days():
    from tailored_channels.defaults import CHANNELS_RETRY_SCHEDULE

    total = sum(CHANNELS_RETRY_SCHEDULE)
    assert 2.5 * 86400 < total < 3.5 * 86400
    assert sorted(CHANNELS_RETRY_SCHEDULE) == CHANNELS_RETRY_SCHEDULE


def test_a_delivery_failing_through_the_whole_schedule_is_marked_failed(settings):
    settings.CHANNELS_RETRY_SCHEDULE = [1, 1]
    with Receiver(statuses=(500,)) as receiver:
        destination = webhook(receiver.url)
        start()
        grant([key(1)])
        change(key(1))
        fan_out()
        for _ in range(3):
            due_now()
            deliver(destination.pk)
        delivery = Delivery.objects.get()
        assert delivery.status == "failed" and delivery.attempts == 3
        assert len(receiver.requests) == 3
        # Replayed from the log: sent again with its id.
        replay(delivery)
        deliver(destination.pk)
        assert receiver.requests[-1]["headers"]["webhook-id"] == delivery.message_id
        assert len(receiver.requests) == 4


def test_a_410_disables_the_destination():
    with Receiver(statuses=(410,)) as receiver:
        destination = webhook(receiver.url, batch_size=1)
        start()
        grant([key(1), key(2)])
        change(key(1))
        change(key(2))
        fan_out()
        deliver(destination.pk)
        destination.refresh_from_db()
        assert not destination.enabled and "410" in destination.disabled_reason
        assert len(receiver.requests) == 1  # the second delivery waits
        assert Delivery.objects.filter(status="pending").count() == 2
        deliver(destination.pk)
        assert len(receiver.requests) == 1


def test_changes_are_batched_per_destination(settings):
    with Receiver() as receiver, Receiver() as other:
        destination = webhook(receiver.url)
        second = webhook(other.url, name="Other", batch_size=100)
        start()
        keys = [key(n) for n in range(1, 1201)]
        grant(keys)
        changes([(k, "high-intent", True) for k in keys])
        fan_out()
        assert Delivery.objects.filter(destination=destination).count() == 3  # 500+500+200
        assert Delivery.objects.filter(destination=second).count() == 12
        deliver(destination.pk)
        deliver(second.pk)
        assert [len(r["json"]["data"]["items"]) for r in receiver.requests] == [500, 500, 200]
        assert len(other.items()) == 1200
        # Different destinations get different keyed hashes for the same visitor.
        assert not {i["identifier"]["value"] for i in receiver.items()} & {
            i["identifier"]["value"] for i in other.items()
        }


def test_deliveries_are_sent_by_workers_not_when_the_change_is_recorded():
    with Receiver() as receiver:
        webhook(receiver.url)
        start()
        grant([key(1)])
        change(key(1))
        assert receiver.requests == []
        assert Delivery.objects.count() == 0


def test_a_destination_must_name_a_purpose_of_the_notice():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        Destination(name="x", kind="webhook", url="http://x", purpose="nope").full_clean()
    assert "purpose" in caught.value.message_dict
    with pytest.raises(ValidationError):
        Destination(name="x", kind="webhook", url="http://x", purpose="necessary").full_clean()
    with pytest.raises(ValidationError) as caught:
        Destination(
            name="x", kind="webhook", url="http://x", purpose="marketing", secrets="nope"
        ).full_clean()
    assert "secrets" in caught.value.message_dict


def test_a_change_committed_after_a_later_one_is_not_skipped():
    """Ids are taken when rows are inserted, not when they are committed: a change whose
    transaction commits after a later change's is read once it is there."""
    import psycopg
    from django.db import connection

    settings_dict = connection.settings_dict
    with Receiver() as receiver:
        destination = webhook(receiver.url)
        start()
        grant([key(1), key(2)])
        other = psycopg.connect(
            host=settings_dict["HOST"] or "127.0.0.1",
            port=settings_dict["PORT"] or 5432,
            user=settings_dict["USER"],
            dbname=settings_dict["NAME"],
        )
        try:
            other.execute(
                "INSERT INTO segments_membershipchange (visitor_key, segment, entered, at, reason)"
                " VALUES (%s, 'high-intent', true, now(), '')",
                (key(1),),
            )  # not committed yet
            change(key(2))  # a later id, committed
            fan_out()
            other.commit()
        finally:
            other.close()
        fan_out()
        deliver(destination.pk)
        assert len(receiver.items()) == 2


def site_accounts(keys):
    """The site's account resolver (``CHANNELS_ACCOUNT_RESOLVER``): visitors 1 and 3 have an
    account, visitor 2 has none."""
    linked = {key(1): "acct-1001", key(3): "acct-3003"}
    return {
        k: {"account": linked[k], "email": f"{linked[k]}@example.com"} for k in keys if k in linked
    }


def test_an_account_destination_is_sent_the_account_only_for_consenting_visitors_with_one(
    settings,
):
    """Identifier "account": a visitor with an account who granted the destination's purpose
    is sent as that account; one without an account as the keyed hash (docs/channels.md,
    "Identifier"); one who refused the purpose is not sent at all, account or not."""
    settings.CHANNELS_ACCOUNT_RESOLVER = f"{__name__}.site_accounts"
    with Receiver() as receiver:
        destination = webhook(receiver.url, identifier=Destination.Identifier.ACCOUNT)
        start()
        grant([key(1), key(2)])
        grant([key(3)], purposes=("personalization",))  # refused the destination's purpose
        for n in (1, 2, 3):
            change(key(n))
        fan_out()
        deliver(destination.pk)
    sent = {i["identifier"]["type"]: i["identifier"]["value"] for i in receiver.items()}
    assert len(receiver.items()) == 2
    assert sent["account"] == "acct-1001"
    from tailored_channels.identity import keyed_hash

    assert sent["keyed_hash"] == keyed_hash(destination, key(2))
    bodies = b"".join(r["body"] for r in receiver.requests)
    assert b"acct-3003" not in bodies and key(3).encode() not in bodies
    assert key(1).encode() not in bodies and key(2).encode() not in bodies
    assert not AudienceMember.objects.filter(visitor_key=key(3)).exists()
    held = AudienceMember.objects.get(visitor_key=key(1))
    assert (held.identifier_type, held.identifier) == ("account", "acct-1001")
