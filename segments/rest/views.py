"""The client event endpoint: ``POST /api/events/`` (see docs/tracking.md for the contract)."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from consent.api import (
    APIEndpoint,
    BeaconParser,
    ClientRateThrottle,
    JSONParser,
    VisitorRateThrottle,
    get_consent,
)

from ..conf import get_setting
from ..consent_mirror import tracking_purpose
from ..events import EventError
from ..events.request import is_bot
from ..recording import record_events
from .permissions import SameOrigin
from .serializers import EventBatchSerializer


class EventIntakeView(APIEndpoint):
    """Record a batch of client events (clicks, scroll depth, add-to-cart, custom events).

    CSRF-exempt, because ``navigator.sendBeacon`` cannot send a token: same-origin is enforced
    from the browser's Origin/Referer headers instead. Consent comes only from the server's
    record: without it (or for a bot) the batch is answered ``202 {"recorded": 0}`` and nothing
    is stored, and no cookie is set.
    """

    permission_classes = [AllowAny, SameOrigin]
    parser_classes = [JSONParser, BeaconParser]  # bodies up to consent.api.MAX_BODY_BYTES
    # Per address (SEGMENTS_EVENT_RATE) and per visitor (SEGMENTS_EVENT_VISITOR_RATE).
    throttle_classes = [ClientRateThrottle, VisitorRateThrottle]
    throttle_scope = "segments_events"

    def get_throttle_rate(self) -> str | None:
        return get_setting("SEGMENTS_EVENT_RATE")

    def get_visitor_throttle_rate(self) -> str | None:
        return get_setting("SEGMENTS_EVENT_VISITOR_RATE")

    @extend_schema(
        request=EventBatchSerializer,
        responses={
            202: inline_serializer("EventsRecorded", {"recorded": serializers.IntegerField()}),
            400: inline_serializer("EventsRefused", {"error": serializers.CharField()}),
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
        return self._accepted(recorded)

    def _accepted(self, recorded: int) -> Response:
        return Response({"recorded": recorded}, status=status.HTTP_202_ACCEPTED)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response
