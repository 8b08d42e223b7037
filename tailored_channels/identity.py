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


class Ahead:
    """Linked accounts looked up before a transaction, for the visitors of ``keys`` (those of
    them without one included): the site's resolver may be slow (a query of its own, a request
    to another service), and must not run while the fan-out or the follow-ups hold their
    transaction and row locks."""

    def __init__(self, keys):
        self.keys = frozenset(keys)
        self.found = accounts(sorted(self.keys))

    def covers(self, key: str) -> bool:
        return key in self.keys


def accounts_wanted() -> bool:
    """Whether a resolver is set and some destination is sent accounts or email addresses."""
    return bool(get_setting("CHANNELS_ACCOUNT_RESOLVER")) and (
        Destination.objects.exclude(identifier=Destination.Identifier.KEYED_HASH).exists()
    )


def resolve(
    destination: Destination, keys: list[str], ahead: Ahead | None = None
) -> dict[str, tuple[str, str]]:
    """``{visitor_key: (identifier type, identifier)}`` for the keys that can be sent. With
    ``ahead``, the accounts looked up before the caller's transaction; the resolver is called
    here only for keys it lacks (none, when the caller kept to the keys it covers)."""
    wanted = destination.identifier
    found = {}
    if wanted != Destination.Identifier.KEYED_HASH:
        if ahead is None:
            found = accounts(keys)
        else:
            missing = [k for k in keys if not ahead.covers(k)]
            found = {**ahead.found, **accounts(missing)} if missing else ahead.found
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
