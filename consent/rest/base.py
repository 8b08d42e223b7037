"""The base view of every JSON endpoint of the suite, whichever app serves it."""

from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from .errors import exception_handler
from .parsers import MAX_BODY_BYTES, JSONParser
from .schema import EndpointSchema
from .throttling import ClientRateThrottle


class APIEndpoint(APIView):
    """A DRF ``APIView`` with the suite's edge: no authentication (the visitor is the one the
    consent cookie names), a JSON body read up to ``max_body_bytes``, JSON responses, errors as
    ``{"error": ...}`` (:func:`consent.rest.errors.exception_handler`),
    :class:`~consent.rest.throttling.ClientRateThrottle`, and an OpenAPI schema that documents
    those refusals (:class:`~consent.rest.schema.EndpointSchema`).

    Subclasses name their throttle bucket and rate to be rate limited::

        throttle_scope = "events"

        def get_throttle_rate(self):
            return get_setting("MYAPP_EVENT_RATE")

    The settings are the project's, so the views carry these choices rather than
    ``REST_FRAMEWORK``.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [ClientRateThrottle]
    throttle_scope: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    schema = EndpointSchema()
    # Refusals beyond those EndpointSchema documents from the view's own setup.
    error_statuses: tuple[int, ...] = ()

    def get_throttle_rate(self) -> str | None:
        """This endpoint's rate (``"requests/period"``), read at request time; ``None`` (the
        default) for no limit."""
        return None

    def get_exception_handler(self):
        return exception_handler
