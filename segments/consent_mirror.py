"""The fast store's copy of consent state, which the request path and the drain check: written
when a decision is recorded (``consent_changed``), and rebuilt from the durable consent record
when the store has lost it.

The durable record wins. Every decision first lists the visitor in an outbox in PostgreSQL
(:class:`~segments.models.PendingConsentMirror`), then copies the state rebuilt from the record
into the store and removes the entry, both under the entry's row lock (so two copies of one
visitor's state never cross, and the last one written was read after the last decision). When
the store is unreachable the entry stays, and is copied later: by the periodic task, by the
first request that finds the store back, and by the drain before it applies any event of that
visitor (so events recorded against a stale "granted" are dropped after a withdrawal)."""

import logging
import time
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from consent.api import latest_grants_many, rebuild_grants

from .backends import breaker_policy, get_backend, request_breaker
from .backends.base import NOTICE_FIELD, BackendUnavailable, BaseBackend, VisitorState
from .conf import get_setting
from .models import PendingConsentMirror

logger = logging.getLogger(__name__)


def tracking_purpose() -> str:
    """The consent purpose under which behaviour is recorded."""
    return get_setting("SEGMENTS_PURPOSE")


# The standing of a state copied without its record (tests, benchmarks): any copy of the
# visitor's consent cookie counts. The durable record's copies carry its own.
ANY_COOKIE = "0:0"
NO_RECORD = "void"  # no cookie counts: nothing is recorded for the identifier


def mirror_consent(
    visitor_key: str,
    granted: frozenset[str],
    version: str,
    expires_at: float,
    standing: str = ANY_COOKIE,
) -> None:
    """Copy a consent decision into the fast store, where the request path checks it (and,
    with the record's ``standing``, which copies of the visitor's cookie still count)."""
    now = time.time()
    ttl = max(int(expires_at - now), 3600)
    grants = dict.fromkeys(granted, expires_at) if expires_at > now else {}
    get_backend().set_consent(visitor_key, grants, version, ttl, standing=standing)


def mirror_consent_from_record(visitor_key: str, visitor_id: str | None = None) -> None:
    """Rebuild the fast store's copy of consent state from the durable record (re-keying the
    visitor's data if it is only found under an earlier hashing key)."""
    record = rebuild_grants(visitor_key, visitor_id)
    if record is None:  # remember "nothing recorded"
        get_backend().set_consent(visitor_key, {}, "", 3600, standing=NO_RECORD)
    else:
        mirror_consent(visitor_key, *record)


def sync_consent_mirror(visitor_key: str) -> bool:
    """After a consent decision (committed): list the visitor in the outbox, then copy their
    state from the durable record into the store. Returns whether the store has it; if not,
    the outbox keeps it for :func:`sync_pending_mirrors`. Never raises for the store."""
    return not sync_consent_mirror_many([visitor_key])


def sync_consent_mirror_many(visitor_keys: Iterable[str]) -> list[str]:
    """:func:`sync_consent_mirror` for a batch of visitors (one decision for many, as an
    import's ``--assume-consent`` records it): per 500 visitors, one statement lists them in
    the outbox (row-locked until the end of its transaction, in key order, so two batches never
    wait on each other crosswise), one query reads their records, a store write per visitor,
    one statement removes their entries. Returns the visitors the store did not get (left in
    the outbox for :func:`sync_pending_mirrors`). Never raises for the store."""
    keys = sorted(set(visitor_keys))
    missed: list[str] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        with transaction.atomic():
            now = timezone.now()
            PendingConsentMirror.objects.bulk_create(
                [PendingConsentMirror(visitor_key=key, queued_at=now) for key in chunk],
                update_conflicts=True,
                unique_fields=["visitor_key"],
                update_fields=["queued_at"],
            )  # (each row locked until the end of the transaction, as update_or_create does)
            missed += _copy_many_locked(chunk)
    return missed


def sync_pending_mirrors(
    visitor_keys: Iterable[str] | None = None, *, limit: int = 1000, strict: bool = False
) -> int:
    """Copy consent states the store may lack (the outbox), of ``visitor_keys`` or of anyone.
    Returns how many were copied. With ``strict`` (the drain), a store that fails raises
    :class:`BackendUnavailable` instead of leaving entries for later."""
    pending = PendingConsentMirror.objects.order_by("queued_at")
    if visitor_keys is not None:
        pending = pending.filter(visitor_key__in=list(visitor_keys))
    keys = list(pending.values_list("visitor_key", flat=True)[:limit])
    copied = 0
    for key in keys:
        with transaction.atomic():
            # Another process copying this visitor now: it reads the record after us, so its
            # copy is at least as new; skip it (the drain waits for it instead).
            row = PendingConsentMirror.objects.select_for_update(skip_locked=not strict)
            if not row.filter(visitor_key=key).exists():
                continue
            if _copy_locked(key):
                copied += 1
            elif strict:
                raise BackendUnavailable("consent mirror")
            else:
                break  # the store is down: the rest wait as well
    return copied


def restore_lost_mirrors(backend: BaseBackend, states: dict[str, VisitorState]) -> None:
    """Rebuild, from the durable record, the copy of any of these visitors whose consent state
    the store no longer holds at all (Redis restarted without it, or evicted or expired the
    key), and read their state again: "nothing held" is not "withdrawn" (an erasure or a
    withdrawal leaves its fields behind, as a tombstone)."""
    lost = [key for key, state in states.items() if NOTICE_FIELD not in state.fields]
    if not lost:
        return
    for key in lost:
        mirror_consent_from_record(key)
    states.update(backend.load_visitors(lost))


def _copy_many_locked(visitor_keys: list[str]) -> list[str]:
    """:func:`_copy_locked` of many visitors whose outbox rows the caller holds locked, their
    records read in one query; returns those not copied (the store unavailable: their entries
    kept)."""
    if not request_breaker.allow(breaker_policy()):
        return list(visitor_keys)
    grants = latest_grants_many(visitor_keys)
    backend = get_backend()
    copied: list[str] = []
    try:
        for key in visitor_keys:
            started = time.monotonic()
            record = grants.get(key)
            if record is None:  # remember "nothing recorded"
                backend.set_consent(key, {}, "", 3600, standing=NO_RECORD)
            else:
                mirror_consent(key, *record)
            request_breaker.success(time.monotonic() - started, breaker_policy())
            copied.append(key)
    except BackendUnavailable as exc:
        request_breaker.failure(breaker_policy())
        logger.warning("Consent mirror postponed (fast store unavailable): %s", type(exc).__name__)
    PendingConsentMirror.objects.filter(visitor_key__in=copied).delete()
    done = set(copied)
    return [key for key in visitor_keys if key not in done]


def _copy_locked(visitor_key: str) -> bool:
    """Copy one visitor's state from the record and remove their outbox entry (whose row lock
    the caller holds); False, entry kept, when the store is unavailable."""
    return not _copy_many_locked([visitor_key])
