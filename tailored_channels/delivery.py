"""Sending deliveries: one worker at a time per destination, oldest first, each with the id it
was given when queued (the receiver's key for de-duplicating retries). A refusal or no answer is
retried after ``CHANNELS_RETRY_SCHEDULE`` (about three days); a delivery carrying a withdrawal or
an erasure is retried until it succeeds; an HTTP 410, or an address the outbound checks refuse,
disables the destination (its deliveries wait until it is enabled again).

No transaction is open while a request is on its way: a receiver that is slow to answer (up to
twice ``CHANNELS_TIMEOUT`` per attempt, twenty attempts a batch) must not pin a database
connection, hold back vacuum, or keep a lock that an edit of the destination, the fan-out or an
erasure would wait on. The one sender per destination is a lease
(:class:`~tailored_channels.models.Sender`) taken and renewed by conditional UPDATEs that commit at
once; each attempt's outcome is saved in a short transaction of its own. A worker killed
mid-batch leaves its deliveries pending and its lease to expire after ``CHANNELS_SEND_LEASE``:
the next worker sends them, with the same ids. A backend that sends a delivery in several
requests renews the lease between them (:class:`Lease`, ``BaseBackend.keep_lease``) and stops
when it has lost it; such an attempt is recorded as failed and leaves the delivery due, for the
worker holding the lease to send again before the later ones."""

import contextlib
import logging
import secrets
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from . import propagation
from .backends import backend_for
from .conf import get_setting
from .models import Delivery, Destination, Sender

logger = logging.getLogger(__name__)


class Busy(Exception):
    """Another worker is sending to this destination."""


def deliver(destination_id: int, budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Send the destination's due deliveries for up to ``budget_seconds``. Returns how many
    were attempted and whether due ones are left (the caller hands over to a fresh task);
    raises :class:`Busy` when another worker holds the destination. Call it outside any
    transaction (as the task does): it opens none of its own across a request."""
    deadline = time.monotonic() + budget_seconds
    token = secrets.token_hex(16)
    if not take(destination_id, token):
        if Destination.objects.filter(pk=destination_id, enabled=True).exists():
            raise Busy(destination_id)
        return 0, False  # disabled or deleted
    attempted = 0
    try:
        while time.monotonic() < deadline:
            destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
            if destination is None:
                return attempted, False  # disabled or deleted
            due = list(
                Delivery.objects.filter(
                    destination=destination,
                    status=Delivery.Status.PENDING,
                    next_attempt_at__lte=timezone.now(),
                ).order_by("id")[:20]
            )
            if not due:
                return attempted, False
            backend = backend_for(destination)
            for delivery in due:
                if not renew(destination_id, token):
                    # Disabled or deleted meanwhile, or the lease ran out and another worker
                    # has taken over: it sends what is left.
                    return attempted, False
                attempted += 1
                if not attempt(destination, backend, delivery, Lease(destination_id, token)):
                    return attempted, False  # disabled by a 410, or the lease was lost
        return attempted, True
    finally:
        release(destination_id, token)


def take(destination_id: int, token: str) -> bool:
    """Take the destination's lease for ``token`` if it is free, expired or ``token``'s
    already: one UPDATE, which two workers cannot both win (PostgreSQL checks the condition
    again on the row the other committed; SQLite writes one at a time)."""
    now = timezone.now()
    until = now + timedelta(seconds=float(get_setting("CHANNELS_SEND_LEASE")))
    free = Q(until__isnull=True) | Q(until__lte=now) | Q(token=token)
    for _ in range(2):
        if _leases(destination_id).filter(free).update(token=token, until=until):
            return True
        if Sender.objects.filter(pk=destination_id).exists():
            return False
        if not Destination.objects.filter(pk=destination_id, enabled=True).exists():
            return False
        try:  # the destination's first send: its row, then the same UPDATE
            Sender.objects.bulk_create(
                [Sender(destination_id=destination_id)], ignore_conflicts=True
            )
        except IntegrityError:  # deleted in between
            return False
    return False


def renew(destination_id: int, token: str) -> bool:
    """Extend ``token``'s lease by ``CHANNELS_SEND_LEASE`` from now; False when it is no longer
    ``token``'s or the destination is disabled or gone (then stop sending)."""
    until = timezone.now() + timedelta(seconds=float(get_setting("CHANNELS_SEND_LEASE")))
    return bool(_leases(destination_id).filter(token=token).update(until=until))


def _leases(destination_id: int):
    """The destination's lease row while the destination is enabled, for a conditional UPDATE.
    Every condition on the lease must stay in the UPDATE's own WHERE (a join would make Django
    move it into a subquery, which PostgreSQL does not check again on the row another worker
    has just written: both would win); the destination is looked at through EXISTS."""
    enabled = Destination.objects.filter(pk=OuterRef("pk"), enabled=True)
    return Sender.objects.filter(Exists(enabled), pk=destination_id)


class Lease:
    """This worker's hold on a destination for the length of one send, handed to the backend
    (:meth:`~tailored_channels.backends.base.BaseBackend.keep_lease`): a send of several calls
    renews it between them, and learns when it has lost it. ``lost`` stays set once it has."""

    def __init__(self, destination_id: int, token: str):
        self.destination_id = destination_id
        self.token = token
        self.renewed = time.monotonic()  # the loop renewed it just before the send
        self.lost = False

    def __call__(self) -> bool:
        if self.lost:
            return False
        # Renewed at most every tenth of the lease: a backend may call this before each of
        # hundreds of requests, and the hold is certain for nine tenths of it meanwhile.
        started = time.monotonic()
        if started - self.renewed < float(get_setting("CHANNELS_SEND_LEASE")) / 10:
            return True
        if renew(self.destination_id, self.token):
            self.renewed = started
            return True
        self.lost = True
        return False


def release(destination_id: int, token: str) -> None:
    Sender.objects.filter(pk=destination_id, token=token).update(token="", until=None)


def attempt(
    destination: Destination, backend, delivery: Delivery, lease: Lease | None = None
) -> bool:
    """One attempt at one delivery, recorded in the log. False when the destination was
    disabled by it, or when ``lease`` was lost during it (stop sending). Called outside any
    transaction (the request must not hold one open)."""
    if lease is not None:
        with contextlib.suppress(AttributeError):  # a site's backend with __slots__
            backend.lease_keeper = lease
    try:
        result = backend.send(
            delivery.message_id,
            delivery.type,
            delivery.items,
            delivery.created_at.isoformat().replace("+00:00", "Z"),
        )
    except Exception as exc:  # a site's backend that raises is a failed attempt, not a crash
        logger.exception("Destination %s: the backend raised", destination.pk)
        from .backends.base import Result

        result = Result(ok=False, response=type(exc).__name__)
    finally:
        if lease is not None and getattr(backend, "lease_keeper", None) is lease:
            backend.lease_keeper = None
    return record(destination, delivery, result, lease)


LOST = "stopped: this worker's hold on the destination ran out during the send"


def record(destination: Destination, delivery: Delivery, result, lease: Lease | None = None):
    """Save the outcome of one attempt. With ``lease``, as the outcome only while no other
    worker has taken the destination over (its token still on the lease row, locked for the
    length of the write): a worker that lost it while sending -- its send outlasted the lease --
    records a failed attempt and leaves the delivery due, never delivered, so that the worker
    now sending sends it again before the ones queued after it; and it records nothing once
    that worker has."""
    now = timezone.now()
    if lease is not None:
        with transaction.atomic():
            holds = Sender.objects.select_for_update().filter(
                pk=lease.destination_id, token=lease.token
            )
            if list(holds.values_list("pk", flat=True)):
                return _record(destination, delivery, result, now)
            lease.lost = True
            logger.warning(
                "Delivery %s to destination %s: the worker lost its lease while sending",
                delivery.message_id,
                destination.pk,
            )
            response = f"{LOST}; {result.response}" if result.response else LOST
            Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
                attempts=F("attempts") + 1,
                last_attempt_at=now,
                response_status=result.status,
                response=response[: int(get_setting("CHANNELS_RESPONSE_CHARS"))],
            )
        return False
    return _record(destination, delivery, result, now)


def _record(destination: Destination, delivery: Delivery, result, now) -> bool:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = result.status
    # Whatever the backend (a site's own included), the log keeps a bounded answer.
    delivery.response = str(result.response)[: int(get_setting("CHANNELS_RESPONSE_CHARS"))]
    if result.ok:
        delivery.status = Delivery.Status.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    else:
        schedule = [float(s) for s in get_setting("CHANNELS_RETRY_SCHEDULE")]
        if delivery.attempts <= len(schedule):
            delivery.next_attempt_at = now + timedelta(seconds=schedule[delivery.attempts - 1])
        elif delivery.persistent:
            delivery.next_attempt_at = now + timedelta(seconds=schedule[-1] if schedule else 3600)
        else:
            delivery.status = Delivery.Status.FAILED
            delivery.next_attempt_at = None
        logger.warning(
            "Delivery %s to destination %s failed (attempt %d, status %s)",
            delivery.message_id,
            destination.pk,
            delivery.attempts,
            result.status,
        )
    fields = [
        "attempts",
        "last_attempt_at",
        "response_status",
        "response",
        "status",
        "delivered_at",
        "next_attempt_at",
    ]
    # The request is over: its outcome is saved in a transaction of its own, as short as the
    # few statements it takes. (An update, not save(): an erasure may have deleted the
    # delivery while it was on its way, leaving nothing to record.)
    with transaction.atomic():
        saved = Delivery.objects.filter(pk=delivery.pk).update(
            **{name: getattr(delivery, name) for name in fields}
        )
        if saved and result.ok and delivery.persistent:
            propagation.confirmed(delivery)
        if result.gone or result.disable:
            reason = (
                f"The receiver answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC"
                if result.gone
                else f"{now:%Y-%m-%d %H:%M} UTC: {result.disable}"
            )
            limit = Destination._meta.get_field("disabled_reason").max_length
            destination.enabled = False
            destination.disabled_reason = (
                reason if len(reason) <= limit else reason[: limit - 1] + "…"
            )
            destination.save(update_fields=["enabled", "disabled_reason"])
            logger.warning("Destination %s disabled: %s", destination.pk, reason)
            return False
    return True


def replay(delivery: Delivery) -> None:
    """Send a delivery again (from the delivery log), with its id: a receiver that had it
    already recognises it."""
    from .items import schedule

    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.PENDING, next_attempt_at=timezone.now()
    )
    schedule(delivery.destination_id)


def due_destinations() -> list[int]:
    return list(
        Delivery.objects.filter(
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            destination__enabled=True,
        )
        .values_list("destination_id", flat=True)
        .distinct()
    )
