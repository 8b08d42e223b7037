"""The OpenAPI schema of the suite's endpoints (drf-spectacular), and the view that serves it.

:class:`EndpointSchema` documents, on every operation of an :class:`~consent.rest.base.
APIEndpoint`, the refusals the shared edge can answer, in the one error envelope
(``{"error": ...}``, component ``Error``): 400, 413 and 415 for an operation that reads a body,
403 for one with a permission beyond ``AllowAny``, 404 for a path with a parameter, 429 (with
``Retry-After``) for a rate-limited one. A view adds others with ``error_statuses``.

:class:`SchemaView` serves the schema: its query parameters (``format``, ``lang``, ``version``)
are checked against what it documents, and any other value (a NUL, a newline that would end up
in a header, an unknown language) is a 400 in the same envelope; other parameters are not
read.
"""

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from tailored.jsoninput import STORABLE_TEXT_PATTERN

from .errors import exception_handler

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or invalid input; `error` names the first problem.",
    401: "No credentials, or credentials that are not valid (`WWW-Authenticate` says how).",
    403: "Refused (a cross-origin request, say).",
    404: "Nothing with this id that this client may see.",
    413: "The body is larger than the endpoint's bound.",
    415: "A content type the endpoint does not read.",
    429: "The rate is exceeded; `Retry-After` says after how many seconds to try again.",
}


_STORABLE_REF = {"$ref": "#/components/schemas/StorableJSON"}
STORABLE_JSON = {
    "description": "Any JSON that tailored.jsoninput.loads accepts: no string or key holds NUL "
    "or an unpaired surrogate (and, which a schema cannot say, at most 32 levels deep).",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": STORABLE_TEXT_PATTERN},
        {"type": "array", "items": _STORABLE_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_TEXT_PATTERN},
            "additionalProperties": _STORABLE_REF,
        },
    ],
}


class ErrorSerializer(serializers.Serializer):
    """Every refusal of the suite's endpoints."""

    error = serializers.CharField(help_text="One line saying what was refused and why.")

    class Meta:
        ref_name = "Error"


class EndpointSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` with the edge's refusals on every operation (see the
    module docstring); a response the view documents itself for a status is kept."""

    def error_statuses(self) -> set[int]:
        view = self.view
        statuses = set(getattr(view, "error_statuses", ()))
        if self.method in BODY_METHODS:
            statuses |= {400, 413, 415}
        if any(p is not AllowAny for p in getattr(view, "permission_classes", ())):
            statuses.add(403)
        if "{" in self.path:
            statuses.add(404)
        if getattr(view, "throttle_scope", None) and getattr(view, "throttle_classes", ()):
            statuses.add(429)
        return statuses

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        # What a serializer does with keys it does not read: ``schema_extra_keys = False``, it
        # refuses them; ``"json"``, it ignores them, so they may hold any JSON the body reader
        # accepts (and nothing else: what the schema allows, the endpoint accepts).
        extra = getattr(serializer, "schema_extra_keys", None)
        if extra is False:
            schema["additionalProperties"] = False
        elif extra == "json":
            component = ResolvedComponent(
                name="StorableJSON",
                type=ResolvedComponent.SCHEMA,
                object="StorableJSON",
                schema=STORABLE_JSON,
            )
            self.registry.register_on_missing(component)
            schema["additionalProperties"] = component.ref
            schema["propertyNames"] = {"pattern": STORABLE_TEXT_PATTERN}
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A list of serializers (``many=True``) checks its length without validators, which
        # drf-spectacular reads: say the same bounds in the schema.
        if isinstance(field, serializers.ListSerializer) and schema.get("type") == "array":
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
            if field.min_length is not None:
                schema["minItems"] = field.min_length
            elif not field.allow_empty:
                schema["minItems"] = 1
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in sorted(self.error_statuses()):
            if str(status) in responses:
                continue
            response = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS.get(status, "")),
                str(status),
                ["application/json"],
                direction,
            )
            if status == 429:
                response["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer"},
                        "description": "Seconds to wait before trying again.",
                    }
                }
            responses[str(status)] = response
        return responses


def _languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


class SchemaView(SpectacularAPIView):
    """drf-spectacular's schema view whose query parameters are checked before use: ``format``
    (``json``, ``yaml``), ``lang`` (one of ``LANGUAGES``) and ``version`` (one of REST
    framework's ``ALLOWED_VERSIONS``, when set) only; anything else is a 400 ``{"error"}``.

    Mount it where the schema is served: ``path("api/schema/", SchemaView.as_view())``.
    """

    def initial(self, request, *args, **kwargs):
        # Before content negotiation reads ``format``, and before anything is generated.
        problem = query_problem(request._request.GET)
        if problem:
            raise ParseError(problem)
        super().initial(request, *args, **kwargs)

    def get_exception_handler(self):
        return exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:  # the envelope as JSON, not as an OpenAPI document
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

    def _get_version_parameter(self, request):
        # Checked by initial(): a version the API knows, or none (never a raw query value,
        # which drf-spectacular would put in the Content-Disposition header).
        version = request.GET.get("version")
        return version if version in (api_settings.ALLOWED_VERSIONS or ()) else None

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, OpenApiParameter.QUERY, enum=["json", "yaml"]),
            OpenApiParameter("lang", str, OpenApiParameter.QUERY, enum=_languages()),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(ErrorSerializer, description="An unknown query parameter value."),
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def query_problem(query) -> str | None:
    """What is wrong with the schema view's query string, or ``None``."""
    allowed = {
        "format": {"json", "yaml"},
        "lang": set(_languages()),
    }
    # Without ALLOWED_VERSIONS the API has no versions to choose from.
    allowed["version"] = set(api_settings.ALLOWED_VERSIONS or ())
    for name, values in query.lists():
        if name not in allowed:
            continue  # not read (a cache-buster, say)
        if len(values) > 1:
            return f"{name!r} is given more than once."
        if values[0] not in allowed[name]:
            if not allowed[name]:
                return f"{name!r} is not a parameter of this API."
            return f"{name!r} must be one of: {', '.join(sorted(allowed[name]))}."
    return None
