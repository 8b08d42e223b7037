"""The fast store's copy of consent state, which the request path and the drain check: written
when a decision is recorded (``consent_changed``), and rebuilt from the durable consent record
when the store has lost it."""

import time

from consent.api import rebuild_grants

from .backends import get_backend
from .conf import get_setting


def tracking_purpose() -> str:
    """The consent purpose under which behaviour is recorded."""
    return get_setting("SEGMENTS_PURPOSE")


def mirror_consent(
    visitor_key: str, granted: frozenset[str], version: str, expires_at: float
) -> None:
    """Copy a consent decision into the fast store, where the request path checks it."""
    now = time.time()
    ttl = max(int(expires_at - now), 3600)
    grants = dict.fromkeys(granted, expires_at) if expires_at > now else {}
    get_backend().set_consent(visitor_key, grants, version, ttl)


def mirror_consent_from_record(visitor_key: str, visitor_id: str | None = None) -> None:
    """Rebuild the fast store's copy of consent state from the durable record (re-keying the
    visitor's data if it is only found under an earlier hashing key)."""
    record = rebuild_grants(visitor_key, visitor_id)
    if record is None:
        get_backend().set_consent(visitor_key, {}, "", 3600)  # remember "nothing recorded"
    else:
        mirror_consent(visitor_key, *record)
