"""The client event endpoint: ``POST /api/events/`` (see docs/tracking.md for the contract)."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from consent.api import get_consent

from ..api import EventError, record_events, tracking_purpose
from ..events.request import is_bot
from .parsers import MAX_BODY_BYTES, BeaconParser, JSONParser, RequestTooLarge
from .permissions import SameOrigin
from .serializers import EventBatchSerializer, first_error
from .throttling import EventRateThrottle


def _error_response(exc, context):
    """DRF's handling, with the body every endpoint of the plugin uses: ``{"error": ...}``."""
    response = exception_handler(exc, context)
    if response is not None:
        detail = exc.detail if isinstance(exc, APIException) else response.data.get("detail")
        response.data = {"error": first_error(detail) if detail else "Request refused."}
    return response


def _content_length(request: Request) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return MAX_BODY_BYTES + 1  # unparseable: treat as oversized


class EventIntakeView(APIView):
    """Record a batch of client events (clicks, scroll depth, add-to-cart, custom events).

    CSRF-exempt, because ``navigator.sendBeacon`` cannot send a token: same-origin is enforced
    from the browser's Origin/Referer headers instead. Consent comes only from the server's
    record: without it (or for a bot) the batch is answered ``202 {"recorded": 0}`` and nothing
    is stored, and no cookie is set.
    """

    authentication_classes = []
    permission_classes = [AllowAny, SameOrigin]
    throttle_classes = [EventRateThrottle]
    parser_classes = [JSONParser, BeaconParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return _error_response

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
        if _content_length(request) > MAX_BODY_BYTES:
            raise RequestTooLarge()
        batch = EventBatchSerializer(data=request.data)
        if not batch.is_valid():
            return Response({"error": batch.error_message()}, status=status.HTTP_400_BAD_REQUEST)
        state = get_consent(request)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return self._accepted(0)
        try:
            recorded = record_events(state.visitor_key, batch.items(), visitor_id=state.visitor_id)
        except EventError as exc:  # e.g. an event too large once encoded
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return self._accepted(recorded)

    def _accepted(self, recorded: int) -> Response:
        return Response({"recorded": recorded}, status=status.HTTP_202_ACCEPTED)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response
