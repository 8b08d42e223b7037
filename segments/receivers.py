"""Handlers the segments app registers with the consent app (consent never imports us)."""

from .consent_mirror import sync_consent_mirror


def on_consent_changed(sender, visitor_key, **kwargs):
    # Sent once the decision is committed. The store's copy is rebuilt from the durable record
    # (not from this signal's values, which a later decision may already have overtaken); if
    # the store is unreachable now, the outbox keeps the visitor until it is back, and the
    # drain applies none of their events before their state is copied (consent_mirror).
    sync_consent_mirror(visitor_key)
