"""Events in, per the Segment tracking specification: ``POST /v1/track``, ``/v1/page``,
``/v1/identify`` and ``/v1/batch`` under the app's URLs, authenticated per source by its write
key (HTTP Basic, the key as user name, as Segment's libraries send it).

- Identifiers (``userId``, else ``anonymousId``) are replaced on arrival by a keyed hash in the
  source's own namespace (``consent.api.external_key``); the raw value is never stored.
- Consent is the source's assertion: its purposes are recorded in the consent log for each new
  visitor, with the source's name (method ``api:<source>``), as ``import_events
  --assume-consent`` does. A source that does not assert the tracking purpose has its events
  dropped (answered, and counted as not recorded).
- The same validation, limits and errors as the beacon endpoint: event names and properties
  are checked as there (a track's name is lower-cased with spaces as underscores: "Order
  Completed" is ``order_completed``), at most 50 events and ``MAX_BODY_BYTES`` per request, a
  batch is refused or accepted whole, errors are ``{"error": ...}``, a rate per client address.
  Events take the time they arrive (a message's own ``timestamp`` is not trusted).
- ``identify`` records the consent only: traits (often an email) are never stored.
"""

import base64
import binascii
import math
import re
from collections import defaultdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from consent.api import APIEndpoint, external_key, grant_imported
from segments.api import (
    NAME_RE,
    BackendUnavailable,
    EventError,
    record_events,
    store_retry_after,
    tracking_purpose,
    validate_event,
)

from .conf import get_setting
from .models import Source, hash_write_key

MAX_EVENTS = 50
MAX_ID = 256
_WORDS = re.compile(r"[^a-z0-9]+")


class InvalidWriteKey(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "A valid write key is required (HTTP Basic, key as user name)."
    default_code = "invalid_write_key"


class Unavailable(APIException):
    """As the beacon endpoint's: ``Retry-After`` says when the fast store is tried again."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    # A batch names several visitors, each recorded in a round trip of its own: the store may
    # fail after the first ones. Sent again, a message with a messageId (Segment's libraries
    # always set one) is the same event and is never counted twice.
    default_detail = (
        "Events cannot be recorded at the moment; send the request again "
        "(a message with a messageId is never counted twice)."
    )
    default_code = "store_unavailable"

    def __init__(self, wait: float):
        super().__init__()
        self.wait = max(math.ceil(wait), 1)


def authenticate(request) -> Source:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    key = ""
    if header.startswith("Basic "):
        try:
            key = base64.b64decode(header[6:], validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    elif isinstance(request.data, dict) and isinstance(request.data.get("writeKey"), str):
        key = request.data["writeKey"]
    source = (
        Source.objects.filter(write_key_hash=hash_write_key(key), enabled=True).first()
        if key
        else None
    )
    if source is None:
        raise InvalidWriteKey()
    return source


def event_name(message: dict) -> str:
    kind = message.get("type")
    if kind == "page":
        return "page_view"
    name = message.get("event")
    if not isinstance(name, str) or not name:
        raise ValidationError("A track message needs an event name.")
    return _WORDS.sub("_", name.strip().lower()).strip("_")


def visitor(source: Source, message: dict) -> str:
    raw = message.get("userId") or message.get("anonymousId")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ID:
        raise ValidationError("Each message needs a userId or an anonymousId (a string).")
    return external_key(f"source:{source.name}", raw)


def parse(source: Source, messages: list) -> tuple[list[str], dict[str, list[tuple]]]:
    """Every message checked before anything is recorded: ``(keys, {key: events})``."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError("Send at least one message.")
    if len(messages) > MAX_EVENTS:
        raise ValidationError(f"At most {MAX_EVENTS} messages per request.")
    keys: list[str] = []
    events: dict[str, list[tuple]] = defaultdict(list)
    for message in messages:
        if not isinstance(message, dict):
            raise ValidationError("Each message is a JSON object.")
        kind = message.get("type")
        if kind not in ("track", "page", "identify"):
            raise ValidationError("A message's type is track, page or identify.")
        key = visitor(source, message)
        keys.append(key)
        if kind == "identify":
            continue
        name = event_name(message)
        if not NAME_RE.match(name):
            raise ValidationError(
                "Event name must be 1-64 characters: letters, digits and spaces or underscores, "
                "starting with a letter."
            )
        properties = message.get("properties")
        if kind == "page" and isinstance(properties, dict):
            properties = {k: v for k, v in properties.items() if k in ("path", "title")}
        try:
            clean = validate_event(name, properties)
        except EventError as exc:
            raise ValidationError(str(exc)) from exc
        message_id = message.get("messageId")
        event_id = (
            message_id if isinstance(message_id, str) and 8 <= len(message_id) <= 64 else None
        )
        if event_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", event_id):
            event_id = None
        events[key].append((name, clean, event_id))
    return keys, events


class InboundView(APIEndpoint):
    """One of the Segment specification's calls (``kind``: track, page, identify, batch)."""

    kind = "batch"
    throttle_scope = "channels_inbound"
    error_statuses = (401, 503)

    def get_throttle_rate(self) -> str | None:
        return get_setting("CHANNELS_INBOUND_RATE")

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        operation_id=None,
        summary="Segment tracking specification (track, page, identify, batch)",
    )
    def post(self, request):
        source = authenticate(request)
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError("Send a JSON object.")
        batch = self.kind == "batch"
        messages = data.get("batch") if batch else [{**data, "type": self.kind}]
        keys, events = parse(source, messages)
        purposes = frozenset(source.purposes)
        new = sorted(set(keys))
        if purposes:
            grant_imported(new, purposes, source=source.name)
        recorded = 0
        if tracking_purpose() in purposes:
            try:
                for key, items in events.items():
                    recorded += record_events(key, items)
            except EventError as exc:
                raise ValidationError(str(exc)) from exc
            except BackendUnavailable as exc:
                raise Unavailable(store_retry_after()) from exc
        return Response({"success": True, "recorded": recorded}, status=status.HTTP_200_OK)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = 'Basic realm="events"'
        return response
