"""Keyed hashing of identifiers (pure: no Django).

Everything stored about a visitor is keyed by ``keyed_hash(identifier)``: an HMAC-SHA256 under a
secret that lives in settings, never in the database, truncated to 128 bits and hex-encoded. Without
the key, a stored hash cannot be linked back to an identifier, nor recomputed from a guessed one.
"""

import hashlib
import hmac
import re
import secrets

_ID_RE = re.compile(r"[0-9a-f]{32}\Z")

KEY_LENGTH_HEX = 32


def new_identifier() -> str:
    """A fresh 128-bit random visitor identifier, hex-encoded."""
    return secrets.token_hex(16)


def is_identifier(value: str) -> bool:
    return bool(_ID_RE.match(value))


def keyed_hash(value: str, key: bytes, *, domain: str = "visitor") -> str:
    """HMAC-SHA256 of ``domain:value`` under ``key``, truncated to 128 bits (32 hex characters).

    The domain separates kinds of identifier, so a visitor id and a user id that happen to be
    equal never hash to the same key.
    """
    if not key:
        raise ValueError("keyed_hash needs a non-empty key")
    mac = hmac.new(key, f"{domain}:{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:KEY_LENGTH_HEX]
