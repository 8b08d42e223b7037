"""Consent withdrawals and erasures, carried to every destination that holds the visitor.

A withdrawal of a destination's purpose removes the visitor from it (one ``consent.withdrawn`` item,
or, for a destination that did not ask for those, a ``segment.exited`` item per segment it holds
them in); an erasure sends its delete call (``visitor.erased``) to every destination that was ever
told about them, forgets what each was told, and strips them from the delivery log. Each is a
:class:`~tailored_channels.models.Propagation`, delivered by a persistent delivery (retried until it
succeeds) and listed for the privacy officer until the destination confirmed it; a confirmed erasure
is added to the visitor's erasure record in the consent log.
"""

from collections import defaultdict

from django.db import connection, transaction
from django.utils import timezone

from consent.api import record_erasure_outcome

from .items import item, queue
from .models import (
    ERASED,
    WITHDRAWN,
    AudienceMember,
    Delivery,
    Destination,
    FollowUp,
    Propagation,
)


def withdraw_many(keys, granted: frozenset[str]) -> int:
    """:func:`withdraw` for a batch of visitors with the same decision: per 1,000 visitors, one
    statement cancels their waiting follow-ups and one query finds who any destination needing
    another purpose holds; only those go through :func:`withdraw` (an import's new visitors:
    none). Returns the number of destinations told."""
    keys = list(dict.fromkeys(keys))
    told = 0
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        FollowUp.objects.filter(visitor_key__in=chunk, status=FollowUp.Status.WAITING).exclude(
            trigger__destination__purpose__in=list(granted)
        ).update(status=FollowUp.Status.CANCELLED, reason="consent withdrawn")
        held = set(
            AudienceMember.objects.filter(visitor_key__in=chunk, active=True)
            .exclude(destination__purpose__in=list(granted))
            .values_list("visitor_key", flat=True)
        )
        for key in chunk:
            if key in held:
                told += withdraw(key, granted)
    return told


def withdraw(key: str, granted: frozenset[str]) -> int:
    """Remove ``key`` from every destination whose purpose is not in ``granted``; returns the
    number of destinations told."""
    told = 0
    FollowUp.objects.filter(visitor_key=key, status=FollowUp.Status.WAITING).exclude(
        trigger__destination__purpose__in=list(granted)
    ).update(status=FollowUp.Status.CANCELLED, reason="consent withdrawn")
    with transaction.atomic():
        rows = list(
            AudienceMember.objects.select_for_update()
            .filter(visitor_key=key, active=True)
            .exclude(destination__purpose__in=list(granted))
            .select_related("destination")
        )
        if not rows:
            return 0
        by_destination: dict[int, list[AudienceMember]] = defaultdict(list)
        for row in rows:
            by_destination[row.destination_id].append(row)
        now = timezone.now()
        for members in by_destination.values():
            destination = members[0].destination
            if WITHDRAWN in destination.events:
                names = {(m.identifier_type, m.identifier) for m in members}
                items = [item(WITHDRAWN, name, now) for name in sorted(names)]
            else:
                items = [
                    item("exited", (m.identifier_type, m.identifier), now, m.segment)
                    for m in members
                ]
            told += _propagate(destination, key, WITHDRAWN, items)
        AudienceMember.objects.filter(pk__in=[r.pk for r in rows]).update(
            active=False, changed_at=now
        )
    return told


def erase(key: str, purposes: frozenset[str] = frozenset()) -> int:
    """Send the delete call for ``key`` to every destination told about them (those needing one
    of ``purposes``; all when empty), forget what they were told and strip ``key`` from the
    delivery log. Returns the number of destinations called."""
    members = AudienceMember.objects.filter(visitor_key=key).select_related("destination")
    if purposes:
        members = members.filter(destination__purpose__in=list(purposes))
    by_destination: dict[int, list[AudienceMember]] = defaultdict(list)
    for row in members:
        by_destination[row.destination_id].append(row)
    now = timezone.now()
    created: list[int] = []
    for rows in by_destination.values():
        destination = rows[0].destination
        names = {(m.identifier_type, m.identifier) for m in rows}
        items = [item(ERASED, name, now) for name in sorted(names)]
        _propagate(destination, key, ERASED, items, created)
    follow_ups = FollowUp.objects.filter(visitor_key=key)
    if purposes:
        follow_ups = follow_ups.filter(trigger__destination__purpose__in=list(purposes))
    follow_ups.delete()
    held = [r.pk for rows in by_destination.values() for r in rows]
    AudienceMember.objects.filter(pk__in=held).delete()
    strip(key, keep=created)
    return len(by_destination)


def _propagate(destination: Destination, key, reason, items, created=None) -> int:
    deliveries = queue(destination, f"visitor.{reason}", [(key, i) for i in items], persistent=True)
    delivery = deliveries[0] if deliveries else None
    Propagation.objects.create(
        destination=destination, visitor_key=key, reason=reason, delivery=delivery
    )
    if created is not None and delivery is not None:
        created.append(delivery.pk)
    return 1


def strip(key: str, keep=()) -> int:
    """Remove ``key``'s items from every delivery of the log (those not yet sent are not sent
    with them); deliveries left empty are deleted. Withdrawals and erasures are kept: they
    carry removals that must still happen."""
    if connection.vendor == "postgresql":
        naming = Delivery.objects.filter(keys__contains=[key])
    else:  # (the embedded demo's SQLite has no JSON containment)
        naming = Delivery.objects.filter(keys__icontains=key)
    changed = 0
    naming = naming.exclude(pk__in=list(keep)).exclude(persistent=True)
    for delivery in naming.select_for_update():
        kept = [(k, i) for k, i in zip(delivery.keys, delivery.items, strict=True) if k != key]
        if len(kept) == len(delivery.keys):
            continue
        changed += 1
        if not kept and delivery.status == Delivery.Status.PENDING:
            delivery.delete()
            continue
        delivery.keys = [k for k, _i in kept]
        delivery.items = [i for _k, i in kept]
        delivery.save(update_fields=["keys", "items"])
    return changed


def confirmed(delivery: Delivery) -> None:
    """A persistent delivery was accepted: its propagations are done; an erasure's outcome is
    added to the visitor's erasure record, and the identifiers it named are scrubbed from the
    log (the delete call was their last use)."""
    now = timezone.now()
    done = list(Propagation.objects.filter(delivery=delivery, done_at=None))
    Propagation.objects.filter(pk__in=[p.pk for p in done]).update(done_at=now)
    erased = {p.visitor_key for p in done if p.reason == ERASED}
    for key in erased:
        record_erasure_outcome(key, "tailored_channels", outcome(key))
    if erased:
        delivery.items = [
            {**i, "identifier": {"type": i["identifier"]["type"], "value": "(erased)"}}
            for i in delivery.items
        ]
        delivery.keys = []
        delivery.save(update_fields=["items", "keys"])


def outcome(key: str) -> str:
    rows = Propagation.objects.filter(visitor_key=key, reason=ERASED)
    total = rows.count()
    done = rows.filter(done_at__isnull=False).count()
    names = ", ".join(
        rows.filter(done_at__isnull=False).values_list("destination__name", flat=True)
    )
    return f"deleted at {done} of {total} destinations ({names})"


def pending():
    """Propagations not confirmed yet, oldest first (the privacy officer's list)."""
    return (
        Propagation.objects.filter(done_at=None)
        .select_related("destination", "delivery")
        .order_by("requested_at")
    )
