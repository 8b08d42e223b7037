"""Handlers the segments app registers: with the consent app (consent never imports us), and
on its own segments (a changed definition re-evaluates the stored memberships)."""

from django.db import transaction

from . import metrics
from .backends.base import BackendUnavailable
from .conf import get_setting
from .consent_mirror import sync_consent_mirror_many
from .models import StaticMember
from .tasks import reevaluate_everyone


def on_consents_recorded(sender, visitor_keys, granted=(), **kwargs):
    # Sent once the decision is committed, for its whole batch. The store's copy is rebuilt
    # from the durable record (not from this signal's values, which a later decision may
    # already have overtaken); if the store is unreachable now, the outbox keeps the visitors
    # until it is back, and the drain applies none of their events before their state is
    # copied (consent_mirror).
    missed = sync_consent_mirror_many(visitor_keys)
    withdrawal = get_setting("SEGMENTS_PURPOSE") not in granted
    for _key in missed:
        metrics.consent_mirror_failed(BackendUnavailable("postponed"), withdrawal)


# What decides membership: a change to any of these re-evaluates every stored visitor.
DEFINING_FIELDS = ("slug", "rule", "enabled")


def remember_definition(sender, instance, raw=False, **kwargs):
    """``pre_save`` of a segment: note its definition as stored, to tell whether it changes."""
    if instance.pk is not None and not raw:
        instance._tailored_stored = (
            sender.objects.filter(pk=instance.pk).values(*DEFINING_FIELDS).first()
        )


def on_segment_saved(sender, instance, created=False, raw=False, **kwargs):
    stored = instance.__dict__.pop("_tailored_stored", None)
    current = {field: getattr(instance, field) for field in DEFINING_FIELDS}
    if not raw and (created or stored != current):
        schedule_reevaluation()


def on_segment_deleted(sender, instance, **kwargs):
    schedule_reevaluation()


def schedule_reevaluation() -> None:
    """Once the change is committed, re-evaluate every stored visitor against the segments as
    they are then (:func:`segments.stream.drain.reevaluate_everyone`). The stored memberships
    are the cache that would otherwise lag: they change only when a visitor's next event is
    drained, after the request that sends it."""
    transaction.on_commit(reevaluate_everyone.delay)


def on_static_segment_saved(sender, instance, **kwargs) -> None:
    """A segment saved as static gets its members computed once (after every process knows it
    is static: see :mod:`segments.stream.static`); one switched back to dynamic forgets them."""
    # Celery loads with the first static segment, not at start-up (as in recording.py)
    from .tasks import compute_static_members

    if instance.static and instance.members_computed_at is None:
        delay = float(get_setting("SEGMENTS_DEFINITIONS_CACHE_SECONDS"))
        transaction.on_commit(
            lambda: compute_static_members.apply_async((instance.pk,), countdown=delay)
        )
    elif not instance.static:
        # (The row may say "computed" while this instance, loaded before, does not.)
        StaticMember.objects.filter(segment_id=instance.pk).delete()
        type(instance).objects.filter(pk=instance.pk, members_computed_at__isnull=False).update(
            members_computed_at=None
        )
        instance.members_computed_at = None
