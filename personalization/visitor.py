"""Per-request personalization state: memoised, lazy, and free for visitors without consent."""

import time

from django.http import HttpRequest, HttpResponse

from consent.api import get_consent
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
    visitor) and the memberships stored for a consented visitor. The page view is recorded in
    the same round trip that reads memberships, when a template first asks for
    ``request.segments``; otherwise after the response, if it was a page.
    """

    __slots__ = ("_context", "_exchange", "_recorded", "_segments", "request")

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

    def _trackable(self) -> str | None:
        state = get_consent(self.request)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return None
        return state.visitor_key

    def _run(self, record: bool) -> Exchange | None:
        key = self._trackable()
        if key is None:
            return None
        event = page_view(self.request, key, self.context()) if record else None
        self._recorded = self._recorded or record
        self._exchange = exchange(key, event, visitor_id=get_consent(self.request).visitor_id)
        return self._exchange

    def segments(self) -> frozenset[str]:
        if self._segments is None:
            now = time.time()
            if self._exchange is None:
                self._run(record=is_page_view(self.request))
            stored = self._exchange.segments_at(now) if self._exchange else frozenset()
            if stored:  # not a deleted or disabled segment's, before the drain removes it
                stored &= stored_segment_slugs()
            self._segments = stored | context_segments(self.context(), now)
        return self._segments

    def finish(self, response: HttpResponse) -> None:
        if (
            not self._recorded
            and response.status_code == 200
            and response.get("Content-Type", "").startswith("text/html")
            and is_page_view(self.request)
        ):
            self._run(record=True)
        if self._exchange is not None and self._exchange.drain_needed:
            schedule_drain(self._trackable())


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
