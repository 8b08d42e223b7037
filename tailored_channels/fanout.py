"""From membership changes to deliveries.

The segments app records every entry and exit in its history (``MembershipChange``); this reads that
history in id order from a position of its own (:class:`~tailored_channels.models.Cursor`), so the
stream drain neither knows nor waits for destinations. An id skipped because its transaction had not
committed yet is looked for again for ``GAP_SECONDS``. For each destination, changes of its segments
are kept only for visitors who grant its purpose (and have no erasure pending), named as the
destination wants them, and queued as deliveries; what it holds is noted
(:class:`~tailored_channels.models.AudienceMember`). A new destination gets changes from the moment
it is created (a mirror destination is filled by its first reconciliation). The site's account
resolver (``CHANNELS_ACCOUNT_RESOLVER``) is called before the transaction that holds the position,
never inside it (:func:`accounts_ahead`).
"""

import time

from django.db import transaction
from django.utils import timezone

from consent.api import consented_keys
from segments.api import last_membership_change, membership_changes
from tailored import bulksql

from . import identity, triggers
from .conf import get_setting
from .items import item, queue
from .models import ENTERED, EXITED, AudienceMember, Cursor, Destination, Trigger

GAP_SECONDS = 120
MAX_GAPS = 10_000


def fan_out(budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Read new membership changes and queue them to the destinations, for up to
    ``budget_seconds``; returns how many changes were read and whether more are waiting."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        read, more = fan_out_once()
        total += read
        if not more or time.monotonic() > deadline:
            return total, more


def fan_out_once() -> tuple[int, bool]:
    limit = int(get_setting("CHANNELS_FANOUT_BATCH"))
    ahead, segments = accounts_ahead(limit)
    with transaction.atomic():
        cursor = Cursor.objects.select_for_update(skip_locked=True).filter(name="changes").first()
        if cursor is None:
            if Cursor.objects.filter(name="changes").exists():
                return 0, False  # another worker is on it
            Cursor.objects.get_or_create(
                name="changes", defaults={"position": last_membership_change()}
            )
            return 0, True
        now = time.time()
        gaps = {int(k): v for k, v in cursor.gaps.items() if now - v < GAP_SECONDS}
        rows = membership_changes(cursor.position, limit, ids=list(gaps))
        later = []
        if ahead is not None:
            # Changes that may need an account the look-up ahead did not cover (committed since)
            # wait for the next pass, as a change not committed yet would: no resolver call
            # inside this transaction.
            later = [r for r in rows if r[2] in segments and not ahead.covers(r[1])]
            if later:
                skipped = {r[0] for r in later}
                rows = [r for r in rows if r[0] not in skipped]
        expected = cursor.position + 1
        for pk, *_rest in rows:
            gaps.pop(pk, None)
            if pk >= expected:
                if pk > expected and len(gaps) < MAX_GAPS:
                    gaps.update(dict.fromkeys(range(expected, pk), now))
                expected = pk + 1
        fresh = [r for r in rows if r[0] > cursor.position]
        cursor.position = expected - 1
        cursor.gaps = {str(k): v for k, v in list(gaps.items())[:MAX_GAPS]}
        cursor.save(update_fields=["position", "gaps"])
        if rows:
            route(rows, ahead)
        return len(rows), bool(later) or len(fresh) >= limit


def accounts_ahead(limit: int) -> tuple[identity.Ahead | None, set[str]]:
    """Before the fan-out's transaction: the linked accounts of the visitors in the changes it
    is about to read, of the segments sent as accounts or email addresses somewhere (by a
    destination, or a trigger's sent at once), and those segments. ``(None, ...)`` when none is
    (the default: nothing to look up, not even the changes)."""
    if not identity.accounts_wanted():
        return None, set()
    cursor = Cursor.objects.filter(name="changes").first()
    if cursor is None:
        return None, set()  # the first pass only places the cursor
    keyed = Destination.Identifier.KEYED_HASH
    segments = {
        slug
        for slugs in Destination.objects.filter(enabled=True)
        .exclude(identifier=keyed)
        .values_list("segments", flat=True)
        for slug in slugs
    }
    segments |= set(
        Trigger.objects.filter(enabled=True, delay_seconds=0, destination__enabled=True)
        .exclude(destination__identifier=keyed)
        .values_list("segment", flat=True)
    )
    now = time.time()
    gaps = [int(k) for k, v in cursor.gaps.items() if now - v < GAP_SECONDS]
    rows = membership_changes(cursor.position, limit, ids=gaps)
    return identity.Ahead({r[1] for r in rows if r[2] in segments}), segments


def route(rows: list[tuple], ahead: identity.Ahead | None = None) -> None:
    """Queue changes ``(id, visitor_key, segment, entered, at)`` to every destination, and
    start or cancel the triggers' follow-ups. ``ahead``: the linked accounts looked up before
    the caller's transaction."""
    allowed_by_purpose: dict[str, set[str]] = {}
    triggers.on_changes(rows, allowed_by_purpose, ahead)
    destinations = [
        d
        for d in Destination.objects.filter(enabled=True)
        if d.segments and (ENTERED in d.events or EXITED in d.events or d.mode == d.Mode.MIRROR)
    ]
    if not destinations:
        return
    for destination in destinations:
        wanted = set(destination.segments)
        mine = [r for r in rows if r[2] in wanted]
        if not mine:
            continue
        keys = sorted({r[1] for r in mine})
        if destination.purpose not in allowed_by_purpose:
            allowed_by_purpose[destination.purpose] = set()
        allowed = allowed_by_purpose[destination.purpose]
        unknown = [k for k in keys if k not in allowed]
        if unknown:
            allowed |= consented_keys(unknown, destination.purpose)
        deliver_changes(destination, [r for r in mine if r[1] in allowed], ahead=ahead)


def deliver_changes(
    destination: Destination,
    rows: list[tuple],
    *,
    reconciled=False,
    ahead: identity.Ahead | None = None,
) -> int:
    """Queue these changes (of visitors who may be sent) to ``destination`` and note what it
    holds. Mirror mode sends only what changes what the destination holds."""
    if not rows:
        return 0
    keys = sorted({r[1] for r in rows})
    held = held_by(destination, keys)
    names = identity.resolve(destination, keys, ahead)
    mirror = destination.mode == Destination.Mode.MIRROR
    pairs, state = [], {}
    events = destination.events
    extra = {"reconciled": True} if reconciled else {}
    for _pk, key, segment, entered, at in rows:
        name = names.get(key)
        if name is None:
            continue
        before = state.get((key, segment), held.get((key, segment), (False, None)))
        if not entered and before[0]:
            # Leaving is said with the identifier the destination was told on entering.
            name = before[1]
        state[(key, segment)] = (entered, name)
        if mirror and before[0] == entered:
            continue  # the destination already holds what this change says
        event = ENTERED if entered else EXITED
        if not mirror and event not in events:
            continue
        pairs.append((key, item(event, name, at, segment, **extra)))
    # What the destination was told about each visitor and segment, where that changed (a row
    # unchanged keeps the time it last changed).
    note_held(
        destination,
        sorted((k, v) for k, v in state.items() if k not in held or held[k] != v),
    )
    if destination.kind != Destination.Kind.FILE:
        queue(destination, "segment.changes", pairs)
    return len(pairs)


def held_by(destination: Destination, keys: list[str]) -> dict:
    """``{(visitor_key, segment): (active, (identifier type, identifier))}`` of what
    ``destination`` was told about these visitors."""
    if not bulksql.available():
        found = AudienceMember.objects.filter(
            destination=destination, visitor_key__in=keys
        ).values_list("visitor_key", "segment", "active", "identifier_type", "identifier")
    else:
        table = AudienceMember._meta.db_table
        with bulksql.cursor() as cursor:
            cursor.execute(
                "SELECT visitor_key, segment, active, identifier_type, identifier"  # noqa: S608
                f" FROM {table} WHERE destination_id = %s AND visitor_key = ANY(%b::text[])",
                [destination.pk, keys],
            )
            found = cursor.fetchall()
    return {(key, segment): (active, (kind, ident)) for key, segment, active, kind, ident in found}


def note_held(destination: Destination, rows: list[tuple]) -> None:
    """Record ``((visitor_key, segment), (active, (identifier type, identifier)))`` rows as
    what ``destination`` holds (one upsert, in key order)."""
    if not rows:
        return
    now = timezone.now()
    if not bulksql.available():
        AudienceMember.objects.bulk_create(
            [
                AudienceMember(
                    destination=destination,
                    visitor_key=key,
                    segment=segment,
                    identifier_type=name[0],
                    identifier=name[1],
                    active=active,
                    changed_at=now,
                )
                for (key, segment), (active, name) in rows
            ],
            update_conflicts=True,
            unique_fields=["destination", "visitor_key", "segment"],
            update_fields=["active", "identifier_type", "identifier", "changed_at"],
            batch_size=2000,
        )
        return
    table = AudienceMember._meta.db_table
    with bulksql.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (destination_id, visitor_key, segment, identifier_type,"  # noqa: S608
            " identifier, active, changed_at) SELECT %s, u.* , %s FROM unnest(%b::text[],"
            " %b::text[], %b::text[], %b::text[], %b::bool[]) AS u"
            " ON CONFLICT (destination_id, visitor_key, segment) DO UPDATE SET"
            " active = EXCLUDED.active, identifier_type = EXCLUDED.identifier_type,"
            " identifier = EXCLUDED.identifier, changed_at = EXCLUDED.changed_at",
            [
                destination.pk,
                now,
                [key for (key, _s), _v in rows],
                [segment for (_k, segment), _v in rows],
                [str(name[0]) for _k, (_a, name) in rows],
                [name[1] for _k, (_a, name) in rows],
                [active for _k, (active, _n) in rows],
            ],
        )
