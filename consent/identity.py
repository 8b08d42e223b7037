"""Pseudonymous identity: the keyed hash that stands for a visitor everywhere data is stored.

Keys rotate: ``CONSENT_HASH_KEY`` is the current key and ``CONSENT_PREVIOUS_HASH_KEYS`` the
earlier ones. When a returning visitor (whose browser still holds the raw identifier) has data
only under an earlier key, it is re-keyed to the current one (see :mod:`consent.actions`).
Data of visitors who never return stays under the old key until retention removes it; once the
old key is dropped from settings it can no longer be linked to anyone.
"""

import hashlib
import hmac
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .conf import get_setting
from .hashing import KEY_LENGTH_HEX, keyed_hash

# Used only when DEBUG is on and no CONSENT_HASH_KEY is set; check consent.E003 refuses to run
# like this in production.
_DEBUG_FALLBACK_SALT = "tailored.consent.debug-hash-key"


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def hash_key() -> bytes:
    key = get_setting("CONSENT_HASH_KEY")
    if key:
        return _as_bytes(key)
    if settings.DEBUG or get_setting("CONSENT_ALLOW_DERIVED_HASH_KEY"):
        return f"{_DEBUG_FALLBACK_SALT}:{settings.SECRET_KEY}".encode()
    raise RuntimeError("CONSENT_HASH_KEY is not set (see system check consent.E003).")


def previous_hash_keys() -> list[bytes]:
    return [_as_bytes(k) for k in get_setting("CONSENT_PREVIOUS_HASH_KEYS") if k]


def chain_key() -> bytes:
    """The key of the consent log's hash chain (kept outside the database)."""
    key = get_setting("CONSENT_CHAIN_KEY")
    if key:
        return _as_bytes(key)
    return hmac.new(hash_key(), b"tailored.consent.chain", hashlib.sha256).digest()


def visitor_key(visitor_id: str) -> str:
    """The keyed hash under which everything about ``visitor_id`` is stored."""
    return keyed_hash(visitor_id, hash_key(), domain="visitor")


def previous_visitor_keys(visitor_id: str) -> list[str]:
    """``visitor_id``'s keys under the earlier hashing keys, newest first."""
    return [keyed_hash(visitor_id, k, domain="visitor") for k in previous_hash_keys()]


def external_key(source: str, external_id: str) -> str:
    """The visitor key for an identifier from another system (a CRM's customer number) that
    an import brings in: a keyed hash, so the raw identifier is never stored."""
    return keyed_hash(f"{source}:{external_id}", hash_key(), domain="external")


def external_keys(source: str, external_ids: list[str]) -> list[str]:
    """:func:`external_key` of each of ``external_ids`` (the key read and the HMAC keyed once:
    for thousands at a time)."""
    prefix = hmac.new(hash_key(), f"external:{source}:".encode(), hashlib.sha256)
    out = []
    for external_id in external_ids:
        mac = prefix.copy()
        mac.update(external_id.encode())
        out.append(mac.hexdigest()[:KEY_LENGTH_HEX])
    return out


def user_key(user_id: object) -> str:
    """The keyed hash that links a logged-in user to a visitor profile (with consent)."""
    return keyed_hash(str(user_id), hash_key(), domain="user")


def client_key(address: str) -> str:
    """A keyed hash of a client address, for rate limiting only (never stored)."""
    return keyed_hash(address, hash_key(), domain="client")


_KEY_RE = re.compile(rf"\A[0-9a-fA-F]{{{KEY_LENGTH_HEX}}}\Z")


def validate_visitor_key(value: str) -> None:
    """Form validator: ``value`` has the shape of a pseudonymous key (what every screen that
    takes one from a person checks before looking anything up)."""
    if not _KEY_RE.match(value):
        raise ValidationError(
            _("A pseudonymous id is %(n)d hexadecimal characters."),
            code="invalid",
            params={"n": KEY_LENGTH_HEX},
        )
