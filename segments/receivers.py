"""Handlers the segments app registers with the consent app (consent never imports us)."""

from . import metrics
from .backends.base import BackendUnavailable
from .conf import get_setting
from .consent_mirror import sync_consent_mirror


def on_consent_changed(sender, visitor_key, granted=(), **kwargs):
    # Sent once the decision is committed. The store's copy is rebuilt from the durable record
    # (not from this signal's values, which a later decision may already have overtaken); if
    # the store is unreachable now, the outbox keeps the visitor until it is back, and the
    # drain applies none of their events before their state is copied (consent_mirror).
    if not sync_consent_mirror(visitor_key):
        withdrawal = get_setting("SEGMENTS_PURPOSE") not in granted
        metrics.consent_mirror_failed(BackendUnavailable("postponed"), withdrawal)
