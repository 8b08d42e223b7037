"""What the segments app holds about a visitor, for the consent app's data-subject requests,
retention and record of processing (registered in ``SegmentsConfig.ready()``: consent never
imports this)."""

import json
import uuid
from datetime import timedelta

from django.utils.translation import gettext_lazy as _

from consent.api import RetentionPeriod

from .backends import get_backend
from .backends.base import SEGMENT_PREFIX, profile_ttl
from .conf import get_setting
from .models import LoggedEvent, MembershipChange, PendingConsentMirror, StaticMember
from .stream.drain import _acquire
from .stream.rebuild import recompute


def export(visitor_key: str) -> dict[str, list[dict]]:
    state = get_backend().visitor_data(visitor_key)
    return {
        "events": [
            {
                "event_id": str(e.event_id),
                "name": e.name,
                "occurred_at": e.occurred_at.isoformat(),
                "properties": e.properties,
            }
            for e in LoggedEvent.objects.filter(visitor_key=visitor_key).order_by("occurred_at")
        ],
        "features": [json.loads(state.profile)] if state.profile else [],
        "segments": [
            {"segment": k[len(SEGMENT_PREFIX) :], "member_until": v}
            for k, v in sorted(state.fields.items())
            if k.startswith(SEGMENT_PREFIX)
        ],
        "membership_history": [
            {
                "segment": c.segment,
                "entered": c.entered,
                "at": c.at.isoformat(),
                "reason": c.reason,
            }
            for c in MembershipChange.objects.filter(visitor_key=visitor_key).order_by("at", "pk")
        ],
        "static_segments": [
            {"segment": m.segment.slug, "added_at": m.added_at.isoformat()}
            for m in StaticMember.objects.filter(visitor_key=visitor_key)
            .select_related("segment")
            .order_by("added_at", "pk")
        ],
        # A consent decision the fast store has not copied yet (the outbox): only its time.
        "consent_sync_pending": [
            {"queued_at": p.queued_at.isoformat()}
            for p in PendingConsentMirror.objects.filter(visitor_key=visitor_key)
        ],
    }


def erase(visitor_key: str, purposes: frozenset[str]) -> int:
    """Erase behaviour data (collected under SEGMENTS_PURPOSE) from the stream, the fast store
    and the durable log. Waits for a drain processing the visitor's partition to finish its
    batch, so nothing is written back afterwards."""
    if purposes and get_setting("SEGMENTS_PURPOSE") not in purposes:
        return 0
    backend = get_backend()
    token = uuid.uuid4().hex
    wait = get_setting("SEGMENTS_LOCK_TTL_MS") / 1000
    # Every partition that may hold the visitor's waiting events (their old one too during a
    # raise of PARTITIONS), in ascending order, as two erasures must not wait on each other.
    locked = []
    try:
        for partition in sorted(backend.erasure_partitions(visitor_key)):
            if _acquire(backend, partition, token, wait=wait):
                locked.append(partition)
        removed = backend.erase_visitor(visitor_key)
    finally:
        for partition in locked:
            backend.unlock_partition(partition, token)
    deleted = sum(model.objects.filter(visitor_key=visitor_key).delete()[0] for model in _TABLES)
    return removed + deleted


# Every table of this app holding rows under a visitor's key: exported, erased, re-keyed and
# purged together (tests/suite/test_personal_data.py fails for a table missing here). The
# consent outbox goes with an erasure too: the erasure removed the store's copy, and a missing
# copy is rebuilt from the durable record (which no longer grants anything) before any event.
_TABLES = (LoggedEvent, MembershipChange, PendingConsentMirror, StaticMember)


def rekey(old_key: str, new_key: str) -> None:
    get_backend().rename_visitor(old_key, new_key)
    for model in (LoggedEvent, MembershipChange):
        model.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
    # One row per segment and visitor: a segment the new key is a member of already keeps it.
    taken = StaticMember.objects.filter(visitor_key=new_key).values("segment_id")
    StaticMember.objects.filter(visitor_key=old_key, segment_id__in=taken).delete()
    StaticMember.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
    # The outbox is keyed by the visitor (one row each): the new key may be listed already.
    pending = PendingConsentMirror.objects.filter(visitor_key=old_key).first()
    if pending is not None:
        PendingConsentMirror.objects.get_or_create(
            visitor_key=new_key, defaults={"queued_at": pending.queued_at}
        )
        pending.delete()


def retention(now) -> dict[str, int]:
    """Purge events and the membership history older than ``SEGMENTS_EVENT_RETENTION_DAYS``
    before ``now`` (the history says what the events made of the visitor, so it goes with
    them), then recompute the profiles of the visitors who lost events from what the log still
    holds: profiles always summarise exactly the log (docs/privacy.md, "Retention")."""
    cutoff = now - timedelta(days=get_setting("SEGMENTS_EVENT_RETENTION_DAYS"))
    affected: set[str] = set()
    events = _purge(LoggedEvent.objects.filter(occurred_at__lt=cutoff), affected)
    history = _purge(MembershipChange.objects.filter(at__lt=cutoff), set())
    # Static segments' members go with the history that says they entered.
    _purge(StaticMember.objects.filter(added_at__lt=cutoff), set())
    # An outbox entry that old means the store was never reachable since: the durable record
    # rules anyway (a missing or stale copy is rebuilt from it before any event is applied).
    _purge(PendingConsentMirror.objects.filter(queued_at__lt=cutoff), set())
    # Features and memberships of visitors gone quiet expire in the fast store on their own
    # (PROFILE_TTL); those of visitors who lost events now are recomputed.
    profiles = recompute(sorted(affected), now.timestamp()) if affected else 0
    return {"events": events, "membership_history": history, "profiles_recomputed": profiles}


def _purge(rows, affected: set[str]) -> int:
    """Delete in batches, so one run never holds a long lock on a big table; collect the
    visitors whose rows went in ``affected``."""
    removed = 0
    while True:
        batch = list(rows.values_list("pk", "visitor_key")[:5000])
        if not batch:
            return removed
        affected.update(key for _, key in batch)
        removed += rows.model.objects.filter(pk__in=[pk for pk, _ in batch]).delete()[0]


# The record of processing (Art. 30): what the segments app holds, and for how long, read from
# its own settings each time the record is shown.
PROCESSING_CATEGORIES = [
    (
        _("Events"),
        _(
            "Pages viewed (path without query string) and actions, campaign parameters, "
            "referring host name, device class, time; email addresses, phone numbers and IP "
            "addresses in any text are replaced by placeholders before storage."
        ),
    ),
    (
        _("Features"),
        _("Counters and scores derived from the events the log holds (recomputed on purges)."),
    ),
    (_("Segments"), _("Audience segments the visitor currently belongs to.")),
    (
        _("Segment history"),
        _("When the visitor entered or left each segment, and the rule's reasons."),
    ),
    (
        _("Static segment members"),
        _("The static segments the visitor was found in when their members were computed."),
    ),
]


def _event_retention() -> int:
    return get_setting("SEGMENTS_EVENT_RETENTION_DAYS") * 86400


def _profile_retention() -> int:
    return profile_ttl(get_setting("SEGMENTS_BACKEND").get("OPTIONS") or {})


PROCESSING_RETENTION = [
    RetentionPeriod(_("Events (page views and actions)"), _event_retention),
    RetentionPeriod(_("Segment history (entries and exits)"), _event_retention),
    RetentionPeriod(_("Static segment members"), _event_retention),
    RetentionPeriod(
        _("Features and segment memberships"),
        _profile_retention,
        _("%(duration)s after the visitor's last activity"),
    ),
]

__all__ = [
    "PROCESSING_CATEGORIES",
    "PROCESSING_RETENTION",
    "erase",
    "export",
    "rekey",
    "retention",
]
