"""Per-request personalization state: memoised, lazy, and free for visitors without consent."""

import time

from django.http import HttpRequest, HttpResponse

from consent.api import ConsentState, claimed_consent, settle_consent
from segments.api import (
    Exchange,
    context_segments,
    exchange,
    is_page_view,
    page_view,
    request_context,
    schedule_drain,
    stored_segment_slugs,
    tracking_purpose,
)


class VisitorContext:
    """What this request knows about the visitor, computed at most once.

    ``segments()`` is the union of context-only segments (decided from the request, for every
    visitor; those taking a random percentage of their matching visitors only for a consented
    visitor drawn into them) and the memberships stored for a consented visitor. The page view
    is recorded in the same round trip that reads memberships, when a template first asks for
    ``request.segments``; otherwise after the response, if it was a page.
    """

    __slots__ = ("_context", "_exchange", "_exchange_key", "_recorded", "_segments", "request")

    # Whether responses for this visitor may be shared through the cache-safe page cache
    # (personalization.cache): not when their state is forced (a preview, a test override).
    cacheable = True

    def __init__(self, request: HttpRequest):
        self.request = request
        self._exchange: Exchange | None = None
        self._recorded = False
        self._context: dict[str, str] | None = None
        self._segments: frozenset[str] | None = None

    def context(self) -> dict[str, str]:
        if self._context is None:
            self._context = request_context(self.request)
        return self._context

    def _trackable(self) -> ConsentState | None:
        """The consent state under which this visitor's behaviour may be recorded, if any:
        the cookie's claim when it is not verified yet (the exchange verifies it)."""
        state, _claim = claimed_consent(self.request)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return None
        return state

    def _run(self, record: bool, claim: ConsentState | None = None) -> Exchange | None:
        state = self._trackable()
        if state is None:
            return None
        key = self._exchange_key = state.visitor_key
        claim = claim or claimed_consent(self.request)[1]
        event = page_view(self.request, key, self.context()) if record else None
        self._recorded = self._recorded or record
        self._exchange = exchange(key, event, visitor_id=state.visitor_id, claim=claim)
        settle_consent(self.request, self._exchange.honoured)
        return self._exchange

    def standing(self, claimed: ConsentState) -> bool | None:
        """Whether the visitor's consent cookie still counts, answered by this request's round
        trip to the fast store (made now if it was not yet: the page view is recorded with it,
        as when a template first asks for ``request.segments``). None when the store cannot
        tell: the visitor does not allow recording, or the store is unavailable."""
        if self._exchange is None:
            if claimed.visitor_key is None or not claimed.allows(tracking_purpose()):
                return None
            self._run(record=is_page_view(self.request), claim=claimed)
        return None if self._exchange is None else self._exchange.honoured

    def segments(self) -> frozenset[str]:
        if self._segments is None:
            now = time.time()
            if self._exchange is None:
                self._run(record=is_page_view(self.request))
            stored_ok = self._exchange is not None and bool(self._exchange.consented)
            # The memberships as of the round trip (which may have been made earlier in the
            # request, when consent was first checked): the request is one moment, and the
            # store returned exactly those current then, without their end times to parse.
            stored = self._exchange.segments_at(self._exchange.now) if stored_ok else frozenset()
            if stored:  # not a deleted or disabled segment's, before the drain removes it
                stored &= stored_segment_slugs()
            decided = context_segments(
                self.context(),
                now,
                query=self.request.GET,
                visitor_key=self._trackable() if stored_ok else None,
            )
            self._segments = stored | decided
        return self._segments

    def experiment_state(self) -> tuple[str, dict[str, str]] | None:
        """(visitor key, sticky experiment assignments) of a consented visitor, read by this
        request's one round trip (made now if it was not yet); None without consent."""
        if self._exchange is None:
            self.segments()
        exchange = self._exchange
        if exchange is None or not exchange.consented:
            return None
        return self._exchange_key, exchange.assignments

    def recommendation_fields(self) -> dict[str, str] | None:
        """The consented visitor's recommendation fields (their "for you" list...), read by
        this request's one round trip (made now if it was not yet); None without consent."""
        if self._exchange is None:
            self.segments()
        exchange = self._exchange
        if exchange is None or not exchange.consented:
            return None
        return exchange.recommendations

    def finish(self, response: HttpResponse) -> None:
        if (
            not self._recorded
            and response.status_code == 200
            and response.get("Content-Type", "").startswith("text/html")
            and is_page_view(self.request)
        ):
            self._run(record=True)
        if self._exchange is not None and self._exchange.drain_needed:
            schedule_drain(self._exchange_key)


def consent_standing(request: HttpRequest, claimed: ConsentState) -> bool | None:
    """consent's standing source: the request's visitor state answers (see
    :meth:`VisitorContext.standing`); None outside the middleware (or while forced)."""
    visitor = getattr(request, "personalization", None)
    standing = getattr(visitor, "standing", None)
    return None if standing is None else standing(claimed)


class LazySegments:
    """``request.segments``: the visitor's segments (a frozenset of slugs), computed on first
    use, and behaving as that frozenset (``in``, iteration, ``len``, comparisons, set
    operators, its methods). Lighter than Django's SimpleLazyObject on the request path."""

    __slots__ = ("_visitor",)

    def __init__(self, visitor: VisitorContext):
        self._visitor = visitor

    def _set(self) -> frozenset[str]:
        return self._visitor.segments()

    def __contains__(self, slug) -> bool:
        return slug in self._visitor.segments()

    def __iter__(self):
        return iter(self._visitor.segments())

    def __len__(self) -> int:
        return len(self._visitor.segments())

    def __bool__(self) -> bool:
        return bool(self._visitor.segments())

    def __eq__(self, other) -> bool:
        return self._set() == (other._set() if isinstance(other, LazySegments) else other)

    __hash__ = None  # like a set that is not computed yet: not a dictionary key

    def __and__(self, other):
        return self._set() & other

    def __or__(self, other):
        return self._set() | other

    def __sub__(self, other):
        return self._set() - other

    def __xor__(self, other):
        return self._set() ^ other

    def __rand__(self, other):
        return other & self._set()

    def __ror__(self, other):
        return other | self._set()

    def __rsub__(self, other):
        return other - self._set()

    def __rxor__(self, other):
        return other ^ self._set()

    def __le__(self, other):
        return self._set() <= other

    def __lt__(self, other):
        return self._set() < other

    def __ge__(self, other):
        return self._set() >= other

    def __gt__(self, other):
        return self._set() > other

    def __getattr__(self, name: str):
        if name.startswith("_"):  # (never for the slot itself: no recursion half-built)
            raise AttributeError(name)
        return getattr(self._set(), name)  # issubset, union, copy...

    def __repr__(self) -> str:
        return repr(self._set())
