"""Body parsers of every endpoint of the suite: each reads a body only up to a bound.

The bound is the view's ``max_body_bytes`` (:data:`MAX_BODY_BYTES` unless it says less). A body
whose ``Content-Length`` claims more is refused before anything is read, and the JSON and form
parsers also stop reading one byte past the bound whatever the header claimed: either way the
answer is 413 (:class:`RequestTooLarge`). Malformed content is 400 (DRF's ``ParseError``), and a
content type the view has no parser for is 415 (DRF's ``UnsupportedMediaType``). JSON is read by
:func:`tailored.jsoninput.loads`: too deep, duplicate keys, ``NaN``, ``\\u0000`` and unpaired
surrogates are malformed too.

The JSON and form parsers subclass DRF's ``BaseParser``, not its ``JSONParser``/``FormParser``:
DRF's request reads the whole body into memory first for those two classes.
"""

from typing import Any

from django.core.exceptions import TooManyFieldsSent
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from tailored.jsoninput import JSONInputError, loads

# The largest request body an endpoint reads unless its view sets a smaller ``max_body_bytes``
# (the event endpoint's: the tracker sends at most 20 small events).
MAX_BODY_BYTES = 16 * 1024


class RequestTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def body_limit(parser_context: dict | None) -> int:
    """The bound on the body of the request being parsed: its view's ``max_body_bytes``."""
    view = (parser_context or {}).get("view")
    return getattr(view, "max_body_bytes", MAX_BODY_BYTES)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than {limit} bytes.")


def _refuse_declared(parser_context: dict | None, limit: int) -> None:
    """Refuse a body whose Content-Length is over the bound, before reading any of it."""
    request = (parser_context or {}).get("request")
    if request is None:
        return
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0  # as Django and DRF read it: no body
    if declared > limit:
        raise _too_large(limit)


def _read(stream, parser_context: dict | None) -> bytes:
    limit = body_limit(parser_context)
    _refuse_declared(parser_context, limit)
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


class JSONParser(BaseParser):
    """Parse a UTF-8 JSON body, reading at most one byte more than the bound whatever the
    Content-Length header claimed, with :func:`tailored.jsoninput.loads` (too deep, duplicate
    keys, NaN and Infinity, NUL and unpaired surrogates are refused)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        raw = _read(stream, parser_context)
        try:
            return loads(raw)
        except JSONInputError as exc:
            # Malformed text gets the one documented message; refused JSON says why.
            detail = "" if exc.malformed else f" {exc}"
            raise ParseError(f"The body is not valid JSON.{detail}") from exc


class BeaconParser(JSONParser):
    """``navigator.sendBeacon`` sends a string body as text/plain;charset=UTF-8 (a "simple"
    request, so no preflight); the body is JSON all the same."""

    media_type = "text/plain"


class FormParser(BaseParser):
    """A URL-encoded form (what a browser's ``<form method="post">`` sends), read with the
    bound; like DRF's ``FormParser`` it gives a ``QueryDict``."""

    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream, media_type=None, parser_context=None) -> QueryDict:
        raw = _read(stream, parser_context)
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            return QueryDict(raw, encoding=encoding)
        except TooManyFieldsSent as exc:
            raise ParseError("The form has too many fields.") from exc


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser behind the Content-Length bound (Django's multipart parser reads
    no further than that header says).

    When ``CsrfViewMiddleware`` has already read a multipart form, DRF hands the view Django's
    parse and no parser runs: Django's ``DATA_UPLOAD_MAX_*`` limits apply then. The site's own
    forms are URL-encoded, which :class:`FormParser` always bounds.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        _refuse_declared(parser_context, body_limit(parser_context))
        return super().parse(stream, media_type, parser_context)
