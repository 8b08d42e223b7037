"""The client event endpoint: ``POST /api/events/`` (see docs/tracking.md for the contract)."""

import math

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from consent.api import APIEndpoint, BeaconParser, JSONParser, get_consent

from ..backends.base import BackendUnavailable
from ..conf import get_setting
from ..consent_mirror import tracking_purpose
from ..events import EventError
from ..events.request import is_bot
from ..recording import record_events, store_retry_after
from .permissions import SameOrigin
from .serializers import EventBatchSerializer


class StoreUnavailable(APIException):
    """Nothing was recorded: the fast store is unavailable. ``Retry-After`` says when it is
    tried again; event ids make a retry safe (the tracker retries once)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Events cannot be recorded at the moment; nothing was recorded."
    default_code = "store_unavailable"

    def __init__(self, wait: float):
        super().__init__()
        self.wait = max(math.ceil(wait), 1)


class EventIntakeView(APIEndpoint):
    """Record a batch of client events (clicks, scroll depth, add-to-cart, custom events).

    CSRF-exempt, because ``navigator.sendBeacon`` cannot send a token: same-origin is enforced
    from the browser's Origin/Referer headers instead. Consent comes only from the server's
    record: without it (or for a bot) the batch is answered ``202 {"recorded": 0}`` and nothing
    is stored, and no cookie is set. While the fast store is unavailable the batch is refused
    with ``503`` and ``Retry-After`` (nothing recorded): a 2xx answer means it was written.
    """

    permission_classes = [AllowAny, SameOrigin]
    parser_classes = [JSONParser, BeaconParser]  # bodies up to consent.api.MAX_BODY_BYTES
    throttle_scope = "segments_events"

    def get_throttle_rate(self) -> str | None:
        return get_setting("SEGMENTS_EVENT_RATE")

    @extend_schema(
        request=EventBatchSerializer,
        responses={
            202: inline_serializer("EventsRecorded", {"recorded": serializers.IntegerField()}),
            400: inline_serializer("EventsRefused", {"error": serializers.CharField()}),
            503: inline_serializer("EventsNotRecorded", {"error": serializers.CharField()}),
        },
        operation_id="events_create",
    )
    def post(self, request: Request) -> Response:
        if is_bot(request):
            return self._accepted(0)
        batch = EventBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        state = get_consent(request)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return self._accepted(0)
        try:
            recorded = record_events(state.visitor_key, batch.items(), visitor_id=state.visitor_id)
        except EventError as exc:  # e.g. an event too large once encoded
            raise ValidationError(str(exc)) from exc
        except BackendUnavailable as exc:
            raise StoreUnavailable(store_retry_after()) from exc
        return self._accepted(recorded)

    def _accepted(self, recorded: int) -> Response:
        return Response({"recorded": recorded}, status=status.HTTP_202_ACCEPTED)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response
