"""Handlers the segments app registers with the consent app (consent never imports us)."""

from . import metrics
from .backends.base import BackendUnavailable
from .conf import get_setting
from .consent_mirror import mirror_consent


def on_consent_changed(sender, visitor_key, granted, notice_version, expires_at, **kwargs):
    # The durable record is written either way; the request path rebuilds a missing mirror
    # from it. Known gap: a store that was briefly unreachable may keep an older mirror until
    # the visitor's next decision (re-synchronisation is part of the consent work).
    try:
        mirror_consent(visitor_key, frozenset(granted), notice_version, expires_at.timestamp())
    except BackendUnavailable as exc:
        metrics.consent_mirror_failed(exc, get_setting("SEGMENTS_PURPOSE") not in granted)
