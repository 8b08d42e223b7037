"""What a destination is told a visitor is called.

By default a keyed hash of the visitor's pseudonymous key, different for each destination (two
destinations cannot join their data on it, and it says nothing without the site's key). A
linked account's identifier or email address only for a destination configured so, and only for
visitors the site has an account for (``CHANNELS_ACCOUNT_RESOLVER``) — every visitor sent has
granted the destination's purpose. Visitors without one are sent with the keyed hash instead,
except to destinations that can only take an email address (Mailchimp), where they are left out.
"""

from django.utils.module_loading import import_string

from consent.api import external_key, external_keys

from .conf import get_setting
from .models import Destination


def keyed_hash(destination: Destination, visitor_key: str) -> str:
    return external_key(f"channels:{destination.pk}", visitor_key)


def accounts(keys: list[str]) -> dict[str, dict]:
    path = get_setting("CHANNELS_ACCOUNT_RESOLVER")
    if not path or not keys:
        return {}
    return import_string(path)(keys) or {}


def resolve(destination: Destination, keys: list[str]) -> dict[str, tuple[str, str]]:
    """``{visitor_key: (identifier type, identifier)}`` for the keys that can be sent."""
    wanted = destination.identifier
    found = accounts(keys) if wanted != Destination.Identifier.KEYED_HASH else {}
    field = "email" if wanted == Destination.Identifier.EMAIL else "account"
    out, hashed = {}, []
    for key in keys:
        value = (found.get(key) or {}).get(field)
        if value:
            out[key] = (wanted, str(value).strip().lower() if field == "email" else str(value))
        elif destination.kind != Destination.Kind.MAILCHIMP:
            hashed.append(key)
    kind = Destination.Identifier.KEYED_HASH
    for key, value in zip(hashed, external_keys(f"channels:{destination.pk}", hashed), strict=True):
        out[key] = (kind, value)
    return out
