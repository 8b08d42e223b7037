"""Withdrawing consent removes the visitor from every destination needing that purpose; erasure
sends each destination's delete call and records the outcome with the erasure; a failed removal
is retried, and shown to the privacy officer, until it succeeds."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from consent.models import ErasureRequest
from consent.privacy import erase_visitor
from tailored_channels.delivery import deliver
from tailored_channels.fanout import fan_out
from tailored_channels.models import AudienceMember, Delivery, Propagation

from .helpers import Receiver, change, grant, key, webhook, withdraw

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def enter(destination, *keys):
    fan_out()
    grant(keys)
    for k in keys:
        change(k)
    fan_out()
    deliver(destination.pk)


def test_withdrawing_the_destinations_purpose_removes_the_visitor_from_it():
    with Receiver() as receiver, Receiver() as analytics:
        destination = webhook(receiver.url)  # marketing
        other = webhook(analytics.url, name="Analytics", purpose="personalization")
        enter(destination, key(1), key(2))
        deliver(other.pk)
        entered = {i["identifier"]["value"] for i in receiver.items()}
        withdraw(key(1), keep=("personalization",))  # withdraws marketing only
        # (the signal queued the removal; eager Celery sent it once committed)
        last = receiver.requests[-1]["json"]
        assert last["type"] == "visitor.withdrawn"
        (item,) = last["data"]["items"]
        assert item["type"] == "consent.withdrawn" and item["identifier"]["value"] in entered
        assert receiver.requests[-1]["verified"] == []  # (no secrets given to this receiver)
        assert not AudienceMember.objects.get(destination=destination, visitor_key=key(1)).active
        assert AudienceMember.objects.get(destination=destination, visitor_key=key(2)).active
        assert Propagation.objects.get(visitor_key=key(1)).done_at is not None
        # A destination needing another purpose keeps the visitor; and nothing more is sent
        # about them to this one.
        assert AudienceMember.objects.get(destination=other, visitor_key=key(1)).active
        count = len(receiver.requests)
        change(key(1), entered=False)
        change(key(1))
        fan_out()
        deliver(destination.pk)
        assert len(receiver.requests) == count


def test_a_destination_without_the_withdrawn_event_gets_exits_instead():
    with Receiver() as receiver:
        destination = webhook(receiver.url, events=["entered", "exited"])
        enter(destination, key(1))
        withdraw(key(1), keep=())
        (item,) = receiver.requests[-1]["json"]["data"]["items"]
        assert item["type"] == "segment.exited" and item["segment"] == "high-intent"


def test_erasure_sends_the_delete_call_and_records_the_outcome_with_the_erasure():
    with Receiver() as receiver:
        destination = webhook(receiver.url)
        enter(destination, key(1), key(2))
        first = Delivery.objects.get(type="segment.changes")
        erase_visitor(key(1))
        erased = [r for r in receiver.requests if r["json"]["type"] == "visitor.erased"]
        assert len(erased) == 1
        (item,) = erased[0]["json"]["data"]["items"]
        assert item["type"] == "visitor.erased"
        request = ErasureRequest.objects.get(visitor_key=key(1))
        assert request.result["tailored_channels"] == "deleted at 1 of 1 destinations (CRM)"
        # Nothing about them is left with the channels: not what the destination was told,
        # not their items in the delivery log (the delete call's identifier is scrubbed).
        assert not AudienceMember.objects.filter(visitor_key=key(1)).exists()
        first.refresh_from_db()
        assert key(1) not in first.keys and len(first.items) == 1
        for delivery in Delivery.objects.filter(type="visitor.erased"):
            assert all(i["identifier"]["value"] == "(erased)" for i in delivery.items)


def privacy_officer(client):
    user = User.objects.create_user("officer", password="pw")
    group = Group.objects.create(name="Privacy")
    group.permissions.add(
        Permission.objects.get(codename="access_admin"),
        Permission.objects.get(codename="view_consent_log"),
    )
    user.groups.add(group)
    client.force_login(user)
    return user


def test_a_failed_removal_is_retried_and_shown_to_the_privacy_officer_until_it_succeeds(
    settings, client
):
    settings.CHANNELS_RETRY_SCHEDULE = [1]  # then again every second, never given up
    statuses = [200] + [500] * 3 + [200]
    with Receiver(statuses=statuses) as receiver:
        destination = webhook(receiver.url)
        enter(destination, key(1))
        withdraw(key(1), keep=())
        privacy_officer(client)
        for _ in range(3):
            assert Propagation.objects.filter(done_at=None).count() == 1
            page = client.get("/admin/channels/propagations/")
            assert page.status_code == 200
            assert key(1) in page.content.decode() and "CRM" in page.content.decode()
            Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
            deliver(destination.pk)
        assert Delivery.objects.get(type="visitor.withdrawn").status == "delivered"
        assert not Propagation.objects.filter(done_at=None).exists()
        page = client.get("/admin/channels/propagations/")
        assert key(1) not in page.content.decode()
        assert len({r["headers"]["webhook-id"] for r in receiver.requests[1:]}) == 1


def test_the_pending_removals_screen_is_only_for_privacy_officers(client):
    user = User.objects.create_user("editor", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(user)
    assert client.get("/admin/channels/propagations/").status_code == 403


def test_export_lists_what_each_destination_was_told():
    from consent.privacy import export_visitor

    with Receiver() as receiver:
        destination = webhook(receiver.url)
        enter(destination, key(1))
        data = export_visitor(key(1))
        (row,) = data["tailored_channels.audiences"]
        assert row["destination"] == "CRM" and row["segment"] == "high-intent"


def manager(client, perm=True):
    user = User.objects.create_user("marketer", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="access_admin"))
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="manage_destinations"))
    client.force_login(user)
    return user


def test_destinations_and_the_delivery_log_need_their_own_permission(client):
    with Receiver(statuses=(500,)) as receiver:
        destination = webhook(receiver.url)
        enter(destination, key(1))
    delivery = Delivery.objects.get()
    manager(client, perm=False)
    assert client.get("/admin/channels/destinations/").status_code in (302, 403)
    assert client.post(f"/admin/channels/deliveries/{delivery.pk}/replay/").status_code == 403
    client.logout()
    User.objects.filter(username="marketer").delete()
    manager(client)
    page = client.get("/admin/channels/destinations/")
    assert page.status_code == 200 and "CRM" in page.content.decode()
    assert client.get(f"/admin/channels/destinations/edit/{destination.pk}/").status_code == 200
    assert client.get("/admin/channels/destinations/new/").status_code == 200
    log = client.get("/admin/channels/deliveries/")
    assert log.status_code == 200 and delivery.message_id in log.content.decode()
    inspect = client.get(f"/admin/channels/deliveries/inspect/{delivery.pk}/")
    assert inspect.status_code == 200 and "500" in inspect.content.decode()
    assert client.get(f"/admin/channels/deliveries/edit/{delivery.pk}/").status_code != 200
    assert client.post(f"/admin/channels/deliveries/{delivery.pk}/replay/").status_code == 302


def test_a_marketer_configures_a_destination_in_the_admin(client):
    from tailored_channels.models import Destination
    from tests.builders import segment

    segment("high-intent")
    manager(client)
    form = client.get("/admin/channels/destinations/new/").content.decode()
    assert 'value="high-intent"' in form and 'value="marketing"' in form
    assert 'value="necessary"' not in form
    answer = client.post(
        "/admin/channels/destinations/new/",
        {
            "name": "Email tool",
            "kind": "webhook",
            "enabled": "on",
            "segments": ["high-intent"],
            "events": ["entered", "exited", "withdrawn", "erased"],
            "purpose": "marketing",
            "identifier": "keyed_hash",
            "mode": "events",
            "url": "https://email.example/hooks",
            "secrets": "whsec_" + "A" * 32,
            "options": "{}",
            "batch_size": "500",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:3000]
    destination = Destination.objects.get(name="Email tool")
    assert destination.segments == ["high-intent"] and destination.purpose == "marketing"
