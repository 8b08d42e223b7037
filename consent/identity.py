"""Pseudonymous identity: the keyed hash that stands for a visitor everywhere data is stored."""

from django.conf import settings

from .conf import get_setting
from .hashing import keyed_hash

# Used only when DEBUG is on and no CONSENT_HASH_KEY is set (the zero-setup demo and tests);
# check consent.E003 refuses to run like this in production.
_DEBUG_FALLBACK_SALT = "tailored.consent.debug-hash-key"


def hash_key() -> bytes:
    key = get_setting("CONSENT_HASH_KEY")
    if key:
        return key.encode() if isinstance(key, str) else bytes(key)
    if settings.DEBUG or getattr(settings, "CONSENT_ALLOW_DERIVED_HASH_KEY", False):
        return f"{_DEBUG_FALLBACK_SALT}:{settings.SECRET_KEY}".encode()
    raise RuntimeError("CONSENT_HASH_KEY is not set (see system check consent.E003).")


def visitor_key(visitor_id: str) -> str:
    """The keyed hash under which everything about ``visitor_id`` is stored."""
    return keyed_hash(visitor_id, hash_key(), domain="visitor")


def user_key(user_id: object) -> str:
    """The keyed hash that links a logged-in user to a visitor profile (with consent)."""
    return keyed_hash(str(user_id), hash_key(), domain="user")
