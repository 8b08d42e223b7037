"""The durable event log: written in bulk by the drain, read back per visitor for training.

On PostgreSQL rows are streamed with COPY straight into the table (the usual case: none of them
is logged yet); when that meets an id already logged (a re-import, a batch delivered again after
a worker crash) they are streamed into a temporary table and inserted from there with ON
CONFLICT DO NOTHING RETURNING, still several times faster than an INSERT per batch. Either way
:func:`write` says which events were newly written: the drain applies only those to profiles, so
a duplicate never counts, whatever the number of copies.
"""

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Count

from consent.api import consented_keys

from ..conf import get_setting
from ..models import LoggedEvent
from ..profiles.features import Profile

Row = tuple[str, str, str, datetime, dict]  # event_id, visitor_key, name, occurred_at, properties


# The latest time the log (a timestamp with time zone read into datetime) can hold.
MAX_TS = 253402300799.0  # 9999-12-31 23:59:59 UTC


_HEX_DIGITS = "0123456789abcdef"


def uid(event_id) -> str:
    """An event id as the log keys it (32 hex digits); ValueError if it is not a UUID."""
    if type(event_id) is str and len(event_id) == 32 and not event_id.strip(_HEX_DIGITS):
        # Already so (the usual case: ids are made so, and the drain asks twice per event);
        # any 32 lowercase hex digits are a UUID's. Parsing costs ~2 us per call.
        return event_id
    return event_id.hex if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id).hex


def write(rows: list[Row]) -> set[str]:
    """Log ``rows``, skipping ids already logged; returns the ids (32 hex digits) newly written.
    Rows with the same id in one call are written once (the first one)."""
    if not rows:
        return set()
    unique: dict[str, Row] = {}
    for row in rows:
        unique.setdefault(uid(row[0]), row)
    if len(unique) < len(rows):
        rows = list(unique.values())
    if connection.vendor != "postgresql":
        with transaction.atomic():
            logged = {
                i.hex
                for i in LoggedEvent.objects.filter(pk__in=list(unique)).values_list(
                    "pk", flat=True
                )
            }
            LoggedEvent.objects.bulk_create(
                [
                    LoggedEvent(event_id=i, visitor_key=k, name=n, occurred_at=t, properties=p)
                    for i, k, n, t, p in rows
                    if uid(i) not in logged
                ],
                ignore_conflicts=True,
                batch_size=1000,
            )
        return set(unique) - logged
    try:
        with transaction.atomic():
            _copy(rows, LoggedEvent._meta.db_table)  # the usual case: nothing logged yet
        return set(unique)
    except IntegrityError:
        pass
    # Some were logged before (a re-import, a batch delivered again after a crash): skip those.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS _incoming_events "
            "(LIKE segments_event INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        # Emptied at commit only: inside a longer transaction (ATOMIC_REQUESTS, a caller's
        # atomic block) the previous call's rows would still be there, and be logged again.
        cursor.execute("TRUNCATE _incoming_events")
        _copy(rows, "_incoming_events")
        cursor.execute(
            "INSERT INTO segments_event (event_id, visitor_key, name, occurred_at, properties) "
            "SELECT event_id, visitor_key, name, occurred_at, properties "
            "FROM _incoming_events ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        return {uid(i) for (i,) in cursor.fetchall()}


def counts(keys: Iterable[str]) -> dict[str, int]:
    """How many events the log holds for each of ``keys`` (absent: none)."""
    keys = list(keys)
    if not keys:
        return {}
    rows = (
        LoggedEvent.objects.filter(visitor_key__in=keys)
        .order_by()
        .values_list("visitor_key")
        .annotate(n=Count("*"))
    )
    return dict(rows)


def replay(
    keys: Iterable[str], *, histories: dict[str, list] | None = None
) -> tuple[dict[str, Profile], int]:
    """Each visitor's profile recomputed from exactly what the log holds for them (events
    applied in time order), and how many events that took: what a rebuild writes, and what
    retention and the drain write when a profile and the log disagree. With ``histories``
    (a dict), each visitor's events are also gathered there as ``(name, ts, properties)``, in
    time order (what a rebuild's restore steps read), from the same single read of the log."""
    profiles: dict[str, Profile] = {k: Profile() for k in keys}
    if not profiles:
        return profiles, 0
    rows = LoggedEvent.objects.filter(visitor_key__in=list(profiles)).order_by("occurred_at", "pk")
    values = rows.values_list("visitor_key", "name", "occurred_at", "properties")
    events = 0
    for seq, (key, name, occurred_at, properties) in enumerate(
        values.iterator(chunk_size=5000), start=1
    ):
        # No event id: the log holds each event once, so every row counts.
        ts = occurred_at.timestamp()
        profiles[key].apply(name, ts, (0, seq), properties or {})
        if histories is not None:
            histories.setdefault(key, []).append((name, ts, properties or {}))
        events += 1
    return profiles, events


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
