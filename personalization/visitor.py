"""Per-request personalization state: memoised, lazy, and free for visitors without consent."""

import time

from django.http import HttpRequest, HttpResponse

from consent.api import get_consent
from segments.api import (
    Exchange,
    exchange,
    is_page_view,
    page_view,
    schedule_drain,
    tracking_purpose,
)


class VisitorContext:
    """What this request knows about the visitor, fetched at most once.

    The page view is recorded in the same round trip that reads memberships, when a template
    first asks for ``request.segments``; otherwise after the response, if it was a page.
    """

    __slots__ = ("_exchange", "_recorded", "request")

    def __init__(self, request: HttpRequest):
        self.request = request
        self._exchange: Exchange | None = None
        self._recorded = False

    def _trackable(self) -> str | None:
        state = get_consent(self.request)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return None
        return state.visitor_key

    def _run(self, record: bool) -> Exchange | None:
        key = self._trackable()
        if key is None:
            return None
        event = page_view(self.request, key) if record else None
        self._recorded = self._recorded or record
        self._exchange = exchange(key, event, visitor_id=get_consent(self.request).visitor_id)
        return self._exchange

    def segments(self) -> frozenset[str]:
        if self._exchange is None:
            self._run(record=is_page_view(self.request))
        if self._exchange is None:
            return frozenset()
        return self._exchange.segments_at(time.time())

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
