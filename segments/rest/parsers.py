"""Body parsers of the event endpoint: JSON, read with a hard size bound."""

import json

from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

# The largest request body the endpoint reads (the tracker sends at most 20 small events).
MAX_BODY_BYTES = 16 * 1024


class RequestTooLarge(APIException):
    status_code = 413
    default_detail = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    default_code = "request_too_large"


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON.")


class JSONParser(BaseParser):
    """Parse a UTF-8 JSON body, reading at most one byte more than :data:`MAX_BODY_BYTES`
    whatever the Content-Length header claimed (NaN and Infinity are refused)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise RequestTooLarge()
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError("The body is not valid JSON.") from exc


class BeaconParser(JSONParser):
    """``navigator.sendBeacon`` sends a string body as text/plain;charset=UTF-8 (a "simple"
    request, so no preflight); the body is JSON all the same."""

    media_type = "text/plain"
