"""Events in per the Segment tracking specification, with write keys per source: consent
asserted by the source and recorded with its name, identifiers hashed on arrival, and the
beacon endpoint's validation, limits and errors."""

import base64
import json

import pytest
from django.test import Client

from consent.api import external_key
from consent.models import ConsentRecord
from segments.models import LoggedEvent
from segments.stream import drain as pipeline
from tailored_channels.models import Source

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def source(name="Mobile app", purposes=("personalization", "marketing")):
    row = Source(name=name, purposes=list(purposes))
    key = row.set_write_key()
    row.save()
    return row, key


def post(path, body, key, **extra):
    auth = base64.b64encode(f"{key}:".encode()).decode()
    return Client().post(
        f"/api/channels/v1/{path}",
        data=json.dumps(body) if not isinstance(body, bytes) else body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {auth}",
        **extra,
    )


def drain_all():
    backend = pipeline.get_backend()
    for partition in range(backend.partitions):
        pipeline.drain_partition(partition)


def test_track_page_identify_and_batch_are_recorded_under_a_keyed_hash(backend):
    _row, key = source()
    assert post(
        "track", {"userId": "user-42", "event": "Order Completed", "properties": {"value": 30}}, key
    ).json() == {"success": True, "recorded": 1}
    assert (
        post(
            "page",
            {
                "anonymousId": "anon-1",
                "properties": {"path": "/kitchen", "url": "https://x/kitchen"},
            },
            key,
        ).status_code
        == 200
    )
    assert (
        post("identify", {"userId": "user-42", "traits": {"email": "a@example.com"}}, key).json()[
            "recorded"
        ]
        == 0
    )
    answer = post(
        "batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "user-42",
                    "event": "Added To Cart",
                    "messageId": "m-0001-abc",
                },
                {"type": "page", "userId": "user-7"},
            ]
        },
        key,
    )
    assert answer.status_code == 200 and answer.json()["recorded"] == 2
    hashed = external_key("source:Mobile app", "user-42")
    drain_all()
    names = sorted(LoggedEvent.objects.filter(visitor_key=hashed).values_list("name", flat=True))
    assert names == ["added_to_cart", "order_completed"]
    # Consent was the source's assertion, recorded with its name, once per visitor.
    records = ConsentRecord.objects.filter(visitor_key=hashed)
    assert [r.method for r in records] == ["api:Mobile app"]
    assert set(records[0].granted) == {"personalization", "marketing"}
    # The raw identifiers and traits are stored nowhere.
    for model in (LoggedEvent, ConsentRecord):
        dumped = json.dumps(list(model.objects.values()), default=str)
        assert "user-42" not in dumped and "a@example.com" not in dumped


def test_a_batch_sent_again_counts_each_message_with_a_message_id_once(backend):
    """What docs/channels.md tells a source to do after a 503 in the middle of a batch (some
    visitors' events already recorded): send it again as it was. Messages carry a messageId,
    as Segment's libraries set it, and each is one event however often it arrives."""
    _row, key = source()
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": f"user-{n}",
                "event": "Viewed",
                "messageId": f"msg-{n:04d}-x",
            }
            for n in range(3)
        ]
    }
    for _ in range(2):
        assert post("batch", batch, key).json() == {"success": True, "recorded": 3}
    drain_all()
    keys = [external_key("source:Mobile app", f"user-{n}") for n in range(3)]
    assert LoggedEvent.objects.filter(visitor_key__in=keys).count() == 3


def test_a_source_that_does_not_assert_the_tracking_purpose_records_nothing(backend):
    _row, key = source(purposes=("marketing",))
    answer = post("track", {"userId": "u1", "event": "viewed"}, key)
    assert answer.status_code == 200 and answer.json()["recorded"] == 0


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "ok"},
                    {"type": "track", "userId": "u", "event": "9 starts with a digit"},
                ]
            },
            "Event name",
        ),
        ({"batch": [{"type": "track", "event": "ok"}]}, "userId"),
        (
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "ok",
                        "properties": {"nested": {"a": 1}},
                    }
                ]
            },
            "",
        ),
        ({"batch": [{"type": "alias", "userId": "u"}]}, "type"),
        ({"batch": [{"type": "track", "userId": "u", "event": "e"}] * 51}, "At most 50"),
    ],
)
def test_a_batch_is_refused_whole_with_the_error_envelope(backend, body, message):
    _row, key = source()
    answer = post("batch", body, key)
    assert answer.status_code == 400
    assert message in json.dumps(answer.json()["error"])
    assert LoggedEvent.objects.count() == 0 and ConsentRecord.objects.count() == 0


def test_write_keys_authenticate_each_source(backend):
    row, key = source()
    assert post("track", {"userId": "u", "event": "e"}, "wk_wrong").status_code == 401
    assert "error" in post("track", {"userId": "u", "event": "e"}, "wk_wrong").json()
    row.enabled = False
    row.save()
    assert post("track", {"userId": "u", "event": "e"}, key).status_code == 401
    assert len(row.write_key_hash) == 64 and key not in row.write_key_hash


def test_the_body_limit_and_rate_limit_of_the_beacon_apply(backend, settings):
    _row, key = source()
    big = {"userId": "u", "event": "e", "properties": {"p": "x" * 20000}}
    assert post("track", big, key).status_code == 413
    settings.CHANNELS_INBOUND_RATE = "2/min"
    codes = [post("track", {"userId": "u", "event": "e"}, key).status_code for _ in range(3)]
    assert codes[-1] == 429


def test_a_source_created_in_the_admin_shows_its_write_key_once(backend, client):
    import re

    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("marketer", password="pw")
    for codename in ("access_admin", "manage_destinations"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    page = client.post(
        "/admin/channels/sources/new/",
        {"name": "Shop server", "purposes": '["personalization"]', "enabled": "on"},
        follow=True,
    )
    assert page.status_code == 200
    (key,) = re.findall(r"wk_[A-Za-z0-9_-]{20,}", page.content.decode())
    assert post("track", {"userId": "u", "event": "e"}, key).json()["recorded"] == 1
    assert key not in client.get("/admin/channels/sources/").content.decode()


def test_an_unreachable_store_is_a_503_with_retry_after_and_nothing_recorded(backend, settings):
    """As the beacon endpoint (docs/tracking.md): while the fast store cannot be reached, the
    request is refused with 503, ``Retry-After`` and the error envelope, and nothing is
    recorded, so that the sender retries it instead of taking it for accepted."""
    _row, key = source()
    live = settings.SEGMENTS_BACKEND
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": live["OPTIONS"]["KEY_PREFIX"]},
    }
    body = {"batch": [{"type": "track", "userId": "u1", "event": "Order Completed"}]}
    answer = post("batch", body, key)
    assert answer.status_code == 503
    assert answer["Content-Type"] == "application/json"
    assert "send the request again" in answer.json()["error"]
    assert int(answer["Retry-After"]) >= 1
    settings.SEGMENTS_BACKEND = live
    drain_all()
    assert LoggedEvent.objects.count() == 0
