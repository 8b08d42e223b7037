"""The client event endpoint, ``POST /api/events/`` (see docs/tracking.md for the contract),
and the staff lookup of one visitor's features, ``/api/visitors/features/`` (docs/api.md)."""

import math

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from consent.api import (
    APIEndpoint,
    BeaconParser,
    ClientRateThrottle,
    JSONParser,
    VisitorRateThrottle,
    get_consent,
    visitor_key,
)

from ..backends.base import BackendUnavailable
from ..conf import get_setting
from ..consent_mirror import tracking_purpose
from ..events import EventError
from ..events.request import is_bot
from ..recording import record_events, store_retry_after
from ..reporting.insights import explain as explain_visitor
from ..reporting.insights import feature_values
from .permissions import MayViewVisitors, SameOrigin
from .serializers import EventBatchSerializer, VisitorLookupSerializer


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
    record: without it (or for a bot) a valid batch is answered ``202 {"recorded": 0}`` and
    nothing is stored, and no cookie is set; an invalid one is a ``400`` for every sender.
    While the fast store is unavailable the batch is refused with ``503`` and ``Retry-After``
    (nothing recorded): a 2xx answer means it was written.
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
            503: inline_serializer("EventsNotRecorded", {"error": serializers.CharField()}),
        },
        operation_id="events_create",
    )
    def post(self, request: Request) -> Response:
        # Validated first, whoever sends it: a bad batch is a 400 for a visitor without
        # consent and for a bot too, as for one whose events are recorded (a client learns of
        # its mistake before the day its visitor consents).
        batch = EventBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        if is_bot(request):
            return self._accepted(0)
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


class VisitorFeaturesView(APIEndpoint):
    """One visitor's feature values and current memberships with their explanations, for staff
    who may see them (:class:`~segments.rest.permissions.MayViewVisitors`): editors who may see
    segments and privacy officers. ``GET ?key=<pseudonymous key>[&as_of=<date>]``, or ``POST
    {"visitor_id": <the consent cookie's id>}`` (kept out of URLs and logs) or ``{"key": ...}``.
    The answer names the visitor by the pseudonymous key only."""

    authentication_classes = [SessionAuthentication]  # the admin's session; CSRF on POST
    permission_classes = [IsAuthenticated, MayViewVisitors]

    @extend_schema(
        parameters=[VisitorLookupSerializer],
        responses={200: dict, 400: dict, 403: dict, 503: dict},
        operation_id="visitor_features_retrieve",
    )
    def get(self, request: Request) -> Response:
        return self._answer(request.query_params)

    @extend_schema(
        request=VisitorLookupSerializer,
        responses={200: dict, 400: dict, 403: dict, 503: dict},
        operation_id="visitor_features_lookup",
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError("Send a JSON object.")
        return self._answer(request.data)

    def _answer(self, data) -> Response:
        lookup = VisitorLookupSerializer(data={k: data.get(k) for k in data if k in FIELDS})
        lookup.is_valid(raise_exception=True)
        found = lookup.validated_data
        key = found["key"].lower() if "key" in found else visitor_key(found["visitor_id"].lower())
        as_of = found.get("as_of")
        try:
            body = {
                "visitor_key": key,
                "as_of": as_of.isoformat() if as_of else None,
                "features": feature_values(key, as_of),
                "segments": explain_visitor(key, as_of),
            }
        except BackendUnavailable:
            return Response(
                {
                    "error": "The profile store cannot be reached right now; try again, or ask "
                    "as of a date (read from the event log)."
                },
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response(body)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


FIELDS = ("key", "visitor_id", "as_of")
