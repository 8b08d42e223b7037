"""Whether the server still honours a consent cookie: its own record wins over any copy.

A cookie is a signed reference to one decision. The browser can keep (or be given back) an old
copy after the visitor decided again: a copy made before a withdrawal still names the
identifier and purposes it granted. Such a copy counts as **no consent**, for every use (the
request's ``request.consent``, Consent Mode, the visitor's data download, a new grant):

- a cookie whose identifier's latest record grants nothing (withdrawn, erased, every purpose
  turned off by Global Privacy Control) is void, whatever it says;
- a cookie naming an earlier record (``ConsentState.record_seq``) than the latest one for its
  identifier is void; cookies written before the number was part of the payload are compared
  by their signing time (to the second);
- a cookie whose identifier has no record at all (under the current or an earlier hashing key)
  is void.

Cost: a page view pays nothing of its own for it. The check is made on first use of the
request's state (:mod:`consent.visitor`), by a registered standing source where there is one:
the app that mirrors consent state into the fast store keeps each identifier's standing
(:meth:`Standing.encode`) with it and checks the cookie there, in the round trip that records
a consented page view. Otherwise (no source, a visitor who does not allow recording, the
store unavailable) the latest record of each identifier is read from Django's cache
(``CONSENT_STATE_CACHE``, Redis in production) as the same short string, written when a
record commits and filled from the database on a miss. Where the answer grants access to data
or decides an identifier (the data download, a new decision), the database is asked directly
(``fresh=True``), so a lost or stale cache can never hand them out.
"""

import logging
from dataclasses import dataclass

from django.core.cache import caches

from .conf import get_setting
from .identity import previous_visitor_keys
from .models import ConsentRecord
from .policy import ConsentState

logger = logging.getLogger(__name__)

_PREFIX = "tailored:consent:standing:"
_VOID = "void"  # the latest record grants nothing, or there is none


@dataclass(frozen=True, slots=True)
class Standing:
    """The latest record of one identifier, as far as cookies are concerned: cookies naming a
    record before ``seq`` (or signed before ``signed_after``) are old copies; none counts
    unless ``granting``."""

    granting: bool
    seq: int = 0
    signed_after: int = 0  # whole seconds, as the cookie's signing time is

    def encode(self) -> str:
        return f"{self.seq}:{self.signed_after}" if self.granting else _VOID

    @classmethod
    def decode(cls, value: str) -> "Standing | None":
        if value == _VOID:
            return VOID
        try:
            seq, signed_after = value.split(":")
            return cls(True, int(seq), int(signed_after))
        except (AttributeError, ValueError):
            return None

    def honours(self, state: ConsentState) -> bool:
        if not self.granting:
            return False
        if state.record_seq is not None:
            return state.record_seq >= self.seq
        return int(state.signed_at) >= self.signed_after


VOID = Standing(False)


def of_record(method: str, seq: int, granted, created_at) -> Standing:
    """The standing a newly written record gives its identifier."""
    if not granted:
        return VOID
    if method == ConsentRecord.Method.KEY_ROTATION:
        # Moves the latest decision to the new key: the cookies that named it stay current.
        return Standing(True)
    return Standing(True, seq, int(created_at.timestamp()))


def _cache():
    return caches[get_setting("CONSENT_STATE_CACHE")]


def _cache_key(visitor_key: str) -> str:
    return _PREFIX + visitor_key


def remember(standings: dict[str, Standing]) -> None:
    """Record new standings (once their records committed). Never raises: when the cache
    cannot be written the stale entries are dropped, so the next read asks the database."""
    if not standings:
        return
    timeout = int(get_setting("CONSENT_MAX_AGE"))  # no cookie outlives this
    values = {_cache_key(key): standing.encode() for key, standing in standings.items()}
    try:
        _cache().set_many(values, timeout)
    except Exception as exc:
        logger.warning("Consent standing not cached: %s", type(exc).__name__)
        try:
            _cache().delete_many(list(values))
        except Exception as again:  # the cache is down: readers fall back to the database
            logger.warning("Consent standing not dropped: %s", type(again).__name__)


def _from_database(visitor_key: str, visitor_id: str | None) -> Standing:
    for key in (visitor_key, *(previous_visitor_keys(visitor_id) if visitor_id else ())):
        record = (
            ConsentRecord.objects.filter(visitor_key=key)
            .order_by("-seq")
            .values_list("method", "seq", "granted", "created_at")
            .first()
        )
        if record is not None:
            return of_record(*record)
    return VOID


def lookup(visitor_key: str, visitor_id: str | None = None, *, fresh: bool = False) -> Standing:
    """The standing of ``visitor_key``: from the cache, or (on a miss, or ``fresh``) from the
    database, which then fills the cache (``add``: never over a newer record's standing)."""
    cache_key = _cache_key(visitor_key)
    if not fresh:
        try:
            cached = _cache().get(cache_key)
        except Exception:
            cached = None
        standing = Standing.decode(cached) if isinstance(cached, str) else None
        if standing is not None:
            return standing
    standing = _from_database(visitor_key, visitor_id)
    try:
        _cache().add(cache_key, standing.encode(), int(get_setting("CONSENT_MAX_AGE")))
    except Exception as exc:  # the cache is down: the next request asks the database again
        logger.warning("Consent standing not cached: %s", type(exc).__name__)
    return standing


def honoured(state: ConsentState, *, fresh: bool = False) -> bool:
    """Whether the server still honours the cookie ``state`` was read from. A state without
    an identifier claims nothing the server keeps, and is always honoured."""
    if state.visitor_key is None:
        return True
    return lookup(state.visitor_key, state.visitor_id, fresh=fresh).honours(state)
