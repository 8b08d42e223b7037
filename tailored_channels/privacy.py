"""What the channels app registers with consent: withdrawals and erasures reach the destinations
(:mod:`tailored_channels.propagation`), a visitor's export lists what each destination was told,
re-keying moves it, retention purges the delivery log, and the record of processing names the
destinations as recipients."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.api import RetentionPeriod
from consent.api import get_setting as consent_setting

from . import propagation
from .conf import get_setting
from .models import AudienceMember, Delivery, FollowUp, Propagation

PROCESSING_CATEGORIES = [
    (
        _("Audience memberships sent to destinations"),
        _(
            "Which segments each destination was told a visitor is in, under a keyed hash per "
            "destination (an account identifier or email only where configured and consented)."
        ),
    ),
]
PROCESSING_RETENTION = [
    RetentionPeriod(
        _("Delivery log"),
        lambda: timedelta(days=int(get_setting("CHANNELS_DELIVERY_RETENTION_DAYS"))),
        _("%(duration)s after delivery"),
    ),
    RetentionPeriod(
        _("What each destination was told"),
        lambda: timedelta(days=int(get_setting("CHANNELS_AUDIENCE_RETENTION_DAYS"))),
        _("%(duration)s after the last change"),
    ),
]
PROCESSING_RECIPIENTS = [
    _("The destinations configured in the admin (Channels), each for its own consent purpose"),
]


def on_consents_recorded(sender, visitor_keys, granted=(), **kwargs):
    # Sent once the decision is committed, for its whole batch: the removals are queued, a
    # worker sends them.
    propagation.withdraw_many(visitor_keys, frozenset(granted))


def erase(visitor_key: str, purposes: frozenset[str]) -> int:
    return propagation.erase(visitor_key, purposes)


def export(visitor_key: str) -> dict[str, list[dict]]:
    return {
        "audiences": [
            {
                "destination": m.destination.name,
                "segment": m.segment,
                "identifier_type": m.identifier_type,
                "active": m.active,
                "changed_at": m.changed_at.isoformat(),
            }
            for m in AudienceMember.objects.filter(visitor_key=visitor_key).select_related(
                "destination"
            )
        ],
        "propagations": [
            {
                "destination": p.destination.name,
                "reason": p.reason,
                "requested_at": p.requested_at.isoformat(),
                "done_at": p.done_at.isoformat() if p.done_at else None,
            }
            for p in Propagation.objects.filter(visitor_key=visitor_key).select_related(
                "destination"
            )
        ],
        "follow_ups": _follow_ups(visitor_key),
    }


def _follow_ups(visitor_key: str) -> list[dict]:
    return [
        {
            "trigger": f.trigger.name,
            "entered_at": f.entered_at.isoformat(),
            "status": f.status,
            "reason": f.reason,
        }
        for f in FollowUp.objects.filter(visitor_key=visitor_key).select_related("trigger")
    ]


def rekey(old_key: str, new_key: str) -> None:
    FollowUp.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
    AudienceMember.objects.filter(visitor_key=old_key).update(visitor_key=new_key)
    Propagation.objects.filter(visitor_key=old_key).update(visitor_key=new_key)


def retention(now=None) -> dict[str, int]:
    """Delivered and failed deliveries and finished follow-ups after
    ``CHANNELS_DELIVERY_RETENTION_DAYS``; what destinations were told after
    ``CHANNELS_AUDIENCE_RETENTION_DAYS`` without change; confirmed propagations (the proof
    that a removal reached a destination) as long as consent records
    (``CONSENT_RECORD_RETENTION_DAYS``)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=int(get_setting("CHANNELS_DELIVERY_RETENTION_DAYS")))
    old = Delivery.objects.exclude(status=Delivery.Status.PENDING).filter(created_at__lt=cutoff)
    unconfirmed = Propagation.objects.filter(done_at=None).values("delivery_id")
    deliveries, _detail = old.exclude(pk__in=unconfirmed).delete()
    audience_cutoff = now - timedelta(days=int(get_setting("CHANNELS_AUDIENCE_RETENTION_DAYS")))
    audiences, _detail = AudienceMember.objects.filter(
        Q(changed_at__lt=audience_cutoff) | Q(active=False, changed_at__lt=cutoff)
    ).delete()
    finished = Q(entered_at__lt=cutoff) & ~Q(status=FollowUp.Status.WAITING)
    follow_ups, _detail = FollowUp.objects.filter(
        Q(entered_at__lt=audience_cutoff) | finished
    ).delete()
    proof = now - timedelta(days=int(consent_setting("CONSENT_RECORD_RETENTION_DAYS")))
    propagations, _detail = Propagation.objects.filter(done_at__lt=proof).delete()
    return {
        "deliveries": deliveries,
        "audiences": audiences,
        "follow_ups": follow_ups,
        "propagations": propagations,
    }
