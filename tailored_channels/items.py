"""Items of a delivery, and deliveries built from them (chunked to the destination's size)."""

from datetime import UTC, datetime
from functools import lru_cache

import orjson
from django.db import transaction

from tailored import bulksql

from .conf import get_setting
from .models import Delivery, Destination

TYPES = {
    "entered": "segment.entered",
    "exited": "segment.exited",
    "withdrawn": "consent.withdrawn",
    "erased": "visitor.erased",
    "follow_up": "follow_up.due",
}


def iso(value) -> str:
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    return _iso(value)


# The fan-out names the same change's time once per destination: formatted once (more than a
# fan-out batch of distinct times fit).
@lru_cache(maxsize=16_384)
def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item(event: str, identifier: tuple[str, str], at, segment: str | None = None, **extra) -> dict:
    return {
        "type": TYPES[event],
        "segment": segment,
        "identifier": {"type": identifier[0], "value": identifier[1]},
        "at": iso(at),
        **extra,
    }


def queue(
    destination: Destination,
    kind: str,
    pairs: list[tuple[str, dict]],
    *,
    persistent: bool = False,
) -> list[Delivery]:
    """Deliveries of ``(visitor_key, item)`` pairs to ``destination``, at most its batch size
    each; a worker sends them once the transaction commits."""
    if not pairs:
        return []
    size = max(1, min(destination.batch_size or 500, int(get_setting("CHANNELS_BATCH_SIZE"))))
    now = datetime.now(UTC)
    rows = [
        Delivery(
            destination=destination,
            type=kind,
            keys=[key for key, _item in pairs[start : start + size]],
            items=[entry for _key, entry in pairs[start : start + size]],
            persistent=persistent,
            next_attempt_at=now,
        )
        for start in range(0, len(pairs), size)
    ]
    if bulksql.available():
        insert(rows)
    else:
        Delivery.objects.bulk_create(rows)
    schedule(destination.pk)
    return rows


def insert(rows: list[Delivery]) -> None:
    """Insert deliveries in one statement (their items serialised by orjson, bound as binary
    arrays: nothing quoted in Python) and give each its id."""
    now = datetime.now(UTC)
    table = Delivery._meta.db_table
    fields = ("destination_id", "type", "persistent", "next_attempt_at")
    with bulksql.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (message_id, items, keys, destination_id, type,"  # noqa: S608
            " persistent, next_attempt_at, created_at, status, attempts, response)"
            " SELECT u.m, u.i::jsonb, u.k::jsonb, u.d, u.t, u.p, u.n, %s, %s, 0, ''"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],"
            " %b::bool[], %b::timestamptz[]) AS u(m, i, k, d, t, p, n) RETURNING message_id, id",
            [
                now,
                Delivery.Status.PENDING.value,
                [d.message_id for d in rows],
                [orjson.dumps(d.items).decode() for d in rows],
                [orjson.dumps(d.keys).decode() for d in rows],
                *([getattr(d, f) for d in rows] for f in fields),
            ],
        )
        ids = dict(cursor.fetchall())
    for delivery in rows:
        delivery.pk = ids[delivery.message_id]
        delivery.created_at = now
        delivery._state.adding = False


def schedule(destination_id: int) -> None:
    """Once committed, a worker sends the destination's deliveries (the task is looked up by
    name: the tasks module sits above this one)."""
    from celery import current_app

    transaction.on_commit(
        lambda: current_app.tasks["tailored_channels.deliver"].delay(destination_id)
    )
