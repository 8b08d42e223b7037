"""The durable event log: written in bulk by the drain, read back per visitor for training.

On PostgreSQL rows are streamed with COPY into a temporary table and inserted from there with
ON CONFLICT DO NOTHING, several times faster than an INSERT per batch and still idempotent (an
event id already logged, as after a worker crash, is skipped). Other databases use
``bulk_create(ignore_conflicts=True)``.
"""

from collections.abc import Iterator
from datetime import datetime

import orjson
from django.db import IntegrityError, connection, transaction

from consent.api import consented_keys

from ..conf import get_setting
from ..models import LoggedEvent

Row = tuple[str, str, str, datetime, dict]  # event_id, visitor_key, name, occurred_at, properties


def write(rows: list[Row]) -> None:
    if not rows:
        return
    if connection.vendor != "postgresql":
        LoggedEvent.objects.bulk_create(
            [
                LoggedEvent(event_id=i, visitor_key=k, name=n, occurred_at=t, properties=p)
                for i, k, n, t, p in rows
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        return
    try:
        with transaction.atomic():
            _copy(rows, LoggedEvent._meta.db_table)  # the usual case: nothing logged yet
    except IntegrityError:
        # Some were logged before (a batch delivered again after a crash): skip those.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS _incoming_events "
                "(LIKE segments_event INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            _copy(rows, "_incoming_events")
            cursor.execute(
                "INSERT INTO segments_event (event_id, visitor_key, name, occurred_at, properties) "
                "SELECT event_id, visitor_key, name, occurred_at, properties "
                "FROM _incoming_events ON CONFLICT (event_id) DO NOTHING"
            )


def _copy(rows: list[Row], table: str) -> None:
    # The raw psycopg cursor's errors are wrapped so a duplicate is Django's IntegrityError.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {table} (event_id, visitor_key, name, occurred_at, properties) FROM STDIN"
        ) as copy,
    ):
        dumps = orjson.dumps
        for event_id, key, name, occurred_at, properties in rows:
            copy.write_row((event_id, key, name, occurred_at, dumps(properties).decode()))


def visitor_events(
    visitor_key: str, *, until: datetime | None = None
) -> list[tuple[str, float, dict]]:
    """One visitor's events from the durable log, in time order, as ``(name, ts,
    properties)``; with ``until``, only those strictly before it (the log as it stood then)."""
    rows = LoggedEvent.objects.filter(visitor_key=visitor_key)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    return [
        (name, at.timestamp(), properties or {})
        for name, at, properties in rows.order_by("occurred_at", "event_id").values_list(
            "name", "occurred_at", "properties"
        )
    ]


def visitor_histories(
    *, since: datetime | None = None, until: datetime | None = None, purpose: str | None = None
) -> Iterator[tuple[str, list[tuple[str, float, dict]]]]:
    """Each visitor's events from the durable log as ``(key, [(name, ts, properties), ...])``,
    in time order, streamed (what model training reads), leaving out visitors whose data may not
    be used any more (see :func:`consent.api.consented_keys`)."""
    purpose = purpose or get_setting("SEGMENTS_PURPOSE")
    rows = LoggedEvent.objects.order_by("visitor_key", "occurred_at", "event_id")
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    pending: list[tuple[str, list[tuple[str, float, dict]]]] = []

    def release() -> Iterator[tuple[str, list[tuple[str, float, dict]]]]:
        allowed = consented_keys([k for k, _ in pending], purpose)
        yield from (item for item in pending if item[0] in allowed)
        pending.clear()

    current: str | None = None
    events: list[tuple[str, float, dict]] = []
    for key, name, at, properties in rows.values_list(
        "visitor_key", "name", "occurred_at", "properties"
    ).iterator(chunk_size=20_000):
        if key != current:
            if current is not None:
                pending.append((current, events))
                if len(pending) >= 2000:
                    yield from release()
            current, events = key, []
        events.append((name, at.timestamp(), properties or {}))
    if current is not None:
        pending.append((current, events))
    yield from release()
