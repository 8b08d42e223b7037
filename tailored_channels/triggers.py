"""Follow-ups started by segment entries (:class:`~tailored_channels.models.Trigger`).

The fan-out hands each batch of membership changes here: an entry of a trigger's segment, by
a visitor who grants the destination's purpose, starts a follow-up (sent at once when the
trigger has no wait); an exit cancels the visitor's waiting ones. ``send_due`` (beat, every
minute) sends those whose wait is over, unless the visitor converted (one of the trigger's
``cancel_events`` since the entry, from the durable log) or no longer grants the purpose."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from consent.api import consented_keys
from segments.api import latest_events

from . import identity
from .items import item, queue
from .models import Destination, FollowUp, Trigger


def on_changes(
    rows: list[tuple], allowed_by_purpose: dict[str, set[str]], ahead: identity.Ahead | None = None
) -> int:
    """Start and cancel follow-ups for changes ``(id, key, segment, entered, at)``; ``ahead``,
    the linked accounts the fan-out looked up before its transaction."""
    triggers = list(Trigger.objects.filter(enabled=True).select_related("destination"))
    if not triggers:
        return 0
    started = 0
    for trigger in triggers:
        mine = [r for r in rows if r[2] == trigger.segment]
        if not mine:
            continue
        left = {r[1] for r in mine if not r[3]}
        if left:
            FollowUp.objects.filter(
                trigger=trigger, visitor_key__in=left, status=FollowUp.Status.WAITING
            ).update(status=FollowUp.Status.CANCELLED, reason="left the segment")
        entries = [r for r in mine if r[3]]
        purpose = trigger.destination.purpose
        allowed = allowed_by_purpose.get(purpose)
        if allowed is None:
            allowed = allowed_by_purpose[purpose] = set()
        unknown = [r[1] for r in entries if r[1] not in allowed]
        if unknown:
            allowed |= consented_keys(sorted(set(unknown)), purpose)
        rows_in = [
            FollowUp(
                trigger=trigger,
                visitor_key=key,
                entered_at=_aware(at),
                due_at=_aware(at) + timedelta(seconds=trigger.delay_seconds),
            )
            for _pk, key, _slug, _entered, at in entries
            if key in allowed
        ]
        FollowUp.objects.bulk_create(rows_in)
        started += len(rows_in)
        if trigger.delay_seconds == 0 and rows_in:
            send(trigger, rows_in, ahead)
    return started


def _aware(at) -> datetime:
    if isinstance(at, int | float):
        return datetime.fromtimestamp(at, tz=UTC)
    return at


def send_due(now=None) -> int:
    now = now or timezone.now()
    sent = 0
    waiting = FollowUp.objects.filter(status=FollowUp.Status.WAITING, due_at__lte=now).order_by(
        "due_at", "pk"
    )
    ahead = None
    if identity.accounts_wanted():
        # The site's resolver runs before the transaction, never while it holds the rows.
        keyed = Destination.Identifier.KEYED_HASH
        ahead = identity.Ahead(
            waiting.exclude(trigger__destination__identifier=keyed).values_list(
                "visitor_key", flat=True
            )[:5000]
        )
    with transaction.atomic():
        due = list(
            waiting.select_for_update(skip_locked=True, of=("self",)).select_related(
                "trigger__destination"
            )[:5000]
        )
        if ahead is not None:  # due since the look-up: at the next pass
            keyed = Destination.Identifier.KEYED_HASH
            due = [
                f
                for f in due
                if f.trigger.destination.identifier == keyed or ahead.covers(f.visitor_key)
            ]
        by_trigger: dict[int, list[FollowUp]] = defaultdict(list)
        for follow_up in due:
            by_trigger[follow_up.trigger_id].append(follow_up)
        for follow_ups in by_trigger.values():
            sent += send(follow_ups[0].trigger, follow_ups, ahead)
    return sent


def send(trigger: Trigger, follow_ups: list[FollowUp], ahead: identity.Ahead | None = None) -> int:
    destination = trigger.destination
    keys = sorted({f.visitor_key for f in follow_ups})
    allowed = consented_keys(keys, destination.purpose)
    converted: dict[str, datetime] = {}
    if trigger.cancel_events:
        since = min(f.entered_at for f in follow_ups)
        converted = latest_events(keys, trigger.cancel_events, since)
    names = identity.resolve(destination, keys, ahead)
    pairs, done, cancelled = [], [], {}
    for follow_up in follow_ups:
        key = follow_up.visitor_key
        if key not in allowed or key not in names:
            cancelled[follow_up.pk] = "no consent"
        elif key in converted and converted[key] >= follow_up.entered_at:
            cancelled[follow_up.pk] = "converted"
        else:
            done.append(follow_up.pk)
            pairs.append(
                (
                    key,
                    item(
                        "follow_up",
                        names[key],
                        follow_up.entered_at,
                        trigger.segment,
                        trigger=trigger.name,
                    ),
                )
            )
    for reason in set(cancelled.values()):
        FollowUp.objects.filter(pk__in=[k for k, v in cancelled.items() if v == reason]).update(
            status=FollowUp.Status.CANCELLED, reason=reason
        )
    FollowUp.objects.filter(pk__in=done).update(status=FollowUp.Status.SENT)
    if destination.enabled:
        queue(destination, "follow_up", pairs)
    return len(pairs)
