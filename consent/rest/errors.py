"""One error envelope for every endpoint of the suite: ``{"error": "<one line>"}``.

The status codes are DRF's: 400 malformed JSON or invalid input, 403, 404, 405 (with
``Allow``), 413 body too large, 415 unsupported content type, 429 throttled (with
``Retry-After``). The tracker, headless front ends and API clients read ``error``; a person
whose browser posted one of consent's forms (the banner, the preferences page) or followed one
of its links reads the same line as plain text (:class:`JSONForAPIClients`).
"""

from rest_framework.exceptions import APIException
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler


def first_error(errors, path: str = "") -> str:
    """The first message in DRF's nested ``errors`` (dicts, lists, index-keyed dicts), prefixed
    with where it is."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                return first_error(value, path)
            if isinstance(key, int):  # a ListSerializer's errors are keyed by item index
                return first_error(value, f"{path}[{key}]")
            return first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if value:  # a ListSerializer reports valid items as empty dicts
                if isinstance(value, dict | list):
                    return first_error(value, f"{path}[{index}]")
                return f"{path}: {value}" if path else str(value)
    if errors:
        return f"{path}: {errors}" if path else str(errors)
    return "Invalid request."


def exception_handler(exc, context) -> Response | None:
    """DRF's exception handling (status codes, ``Allow``, ``Retry-After``) with the suite's
    body, ``{"error": ...}``: a serializer's nested errors become their first message, with
    where it is (``events[1].name: ...``).

    Every :class:`~consent.rest.base.APIEndpoint` uses it; a project may also name it in
    ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` for its own endpoints.
    """
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = exc.detail if isinstance(exc, APIException) else response.data.get("detail")
        response.data = {"error": first_error(detail) if detail else "Request refused."}
    return response


def wants_json(request) -> bool:
    """Whether the client speaks JSON: it sent JSON, or its ``Accept`` header names JSON."""
    django_request = getattr(request, "_request", request)
    return django_request.content_type == "application/json" or (
        "application/json" in django_request.headers.get("Accept", "")
    )


class PlainTextErrorRenderer(BaseRenderer):
    """The envelope's message as plain text, for a person's browser (see
    :class:`JSONForAPIClients`). Only errors are rendered with it."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        message = data.get("error", "") if isinstance(data, dict) else ""
        return str(message).encode(self.charset)


class JSONForAPIClients(DefaultContentNegotiation):
    """JSON for a client that sent JSON or asks for it (:func:`wants_json`), the view's other
    renderer (plain text) for a browser's form post or link, whatever else its ``Accept`` says;
    the first renderer when the view has only one.

    DRF's own negotiation would answer a browser's ``*/*`` with the first renderer, and a script
    that posts JSON without an ``Accept`` header with the first renderer too.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        json_client = wants_json(request)
        for renderer in renderers:
            if (renderer.format == "json") == json_client:
                return renderer, renderer.media_type
        return renderers[0], renderers[0].media_type
