"""Standard Webhooks signatures (https://www.standardwebhooks.com), the sending side.

Pure: no Django. A message is signed as ``base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))``
where ``secret`` is the bytes of a ``whsec_<base64>`` secret; the ``webhook-signature`` header
carries one ``v1,<signature>`` per secret in force, separated by spaces, so a receiver keeps
verifying while a secret is rotated (the new one listed first, the old one until the receiver
has switched).
"""

import base64
import hashlib
import hmac
import secrets as _secrets

PREFIX = "whsec_"


class InvalidSecret(ValueError):
    pass


def new_secret() -> str:
    """A fresh ``whsec_`` secret (24 random bytes, as the specification suggests 24 to 64)."""
    return PREFIX + base64.b64encode(_secrets.token_bytes(24)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; raises :class:`InvalidSecret`."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret("A secret starts with whsec_.")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except ValueError as exc:
        raise InvalidSecret("A secret is whsec_ followed by base64.") from exc
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("A secret holds 24 to 64 bytes.")
    return key


def parse_secrets(text: str) -> list[str]:
    """The secrets of a destination, one per line (blank lines ignored), newest first."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one attempt: the id is the message's (the same on every retry),
    the timestamp the attempt's, and one signature per secret."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets),
    }
