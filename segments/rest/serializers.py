"""The event endpoint's request body: ``{"events": [{"name", "properties", "event_id"}]}``.

Each event is checked with the same schema as server-side events (:func:`segments.events.
validate`), so a batch is refused or accepted whole, whatever the visitor's consent.

The OpenAPI schema says what the validator checks, from the same constants (the name's pattern,
the number, names and values of properties): a body the schema allows is one the endpoint
accepts, and the other way round.
"""

import re
from datetime import UTC, datetime

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tailored.jsoninput import STORABLE_TEXT_PATTERN

from .. import events
from ..profiles.features import NAME_RE

MAX_EVENTS = 50
# The durable log's event_id column holds 32 characters (segments.models.LoggedEvent); a longer
# client id would be accepted by the schema and then fail in the worker, so it is refused here.
MAX_EVENT_ID = 64  # stored as a UUID derived from (visitor, id): see segments.api.record_events


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into strings."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def anchored(pattern: re.Pattern) -> str:
    """A validator's ``\\A...\\Z`` pattern from one of the validator's ``...\\Z`` ones (a
    ``RegexValidator`` searches; drf-spectacular writes ``\\A``/``\\Z`` as ``^``/``$``)."""
    return r"\A" + pattern.pattern.removeprefix(r"\A")


# What events.validate accepts as a property value, and as a property name.
PROPERTY_VALUE_SCHEMA = {
    "oneOf": [
        {"type": "null"},
        {"type": "string", "maxLength": events.MAX_STRING, "pattern": STORABLE_TEXT_PATTERN},
        {"type": "number", "minimum": -events.MAX_INT, "maximum": events.MAX_INT},
        {"type": "boolean"},
    ],
}
PROPERTIES_SCHEMA = {
    "type": "object",
    "nullable": True,
    "maxProperties": events.MAX_PROPERTIES,
    "propertyNames": {"pattern": "^" + events.PROP_KEY_RE.pattern.removesuffix(r"\Z") + "$"},
    "additionalProperties": PROPERTY_VALUE_SCHEMA,
}


@extend_schema_field(PROPERTIES_SCHEMA)
class PropertiesField(serializers.JSONField):
    """An event's properties: checked by :func:`segments.events.validate` (with the event's
    name); the one rule of the schema the validator leaves to the edge is the range of numbers,
    floats included (``MAX_INT``), so that the schema's ``minimum``/``maximum`` hold."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            for key, value in data.items():
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and value == value  # NaN: the validator's own message
                    and not -events.MAX_INT <= value <= events.MAX_INT
                ):
                    raise serializers.ValidationError(
                        f"Property {str(key)[:64]!r} is out of range."
                    )
        return super().to_internal_value(data)


class EventSerializer(serializers.Serializer):
    """One event: ``name``, ``properties``, ``event_id``; other keys are ignored (a newer
    tracker's), so the schema lets them hold any JSON the body reader accepts."""

    schema_extra_keys = "json"  # consent.api.EndpointSchema
    name = StrictCharField(
        trim_whitespace=False,
        min_length=1,
        max_length=64,
        validators=[
            RegexValidator(
                anchored(NAME_RE),
                "Event name must be 1-64 characters: lowercase letters, digits and underscores, "
                "starting with a letter.",
            )
        ],
    )
    properties = PropertiesField(required=False, allow_null=True, default=None)
    event_id = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        trim_whitespace=False,
        min_length=8,
        max_length=MAX_EVENT_ID,
        validators=[
            RegexValidator(
                anchored(events.EVENT_ID_RE),
                f"An event id is 8 to {MAX_EVENT_ID} letters, digits, '-' or '_'.",
            )
        ],
    )

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["properties"] = events.validate(attrs["name"], attrs["properties"])
        except events.EventError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return attrs


class EventBatchSerializer(serializers.Serializer):
    """Unknown top-level keys (a client's ``"consent": true``, say) are ignored: consent is
    only ever the server's record."""

    schema_extra_keys = "json"  # ignored, so any JSON the reader accepts

    events = EventSerializer(many=True, max_length=MAX_EVENTS)

    def items(self) -> list[tuple[str, dict, str | None]]:
        """The validated events as ``(name, properties, event_id)`` for ``record_events``."""
        return [(e["name"], e["properties"], e["event_id"]) for e in self.validated_data["events"]]


HEX_ID = RegexValidator(r"\A[0-9a-fA-F]{32}\Z", "32 hexadecimal characters.")


class VisitorLookupSerializer(serializers.Serializer):
    """Which visitor, and as of when: ``key`` (the pseudonymous key, a keyed hash) or
    ``visitor_id`` (the id in the visitor's consent cookie, hashed here with the current key and
    never stored or returned), and an optional ``as_of`` (a date or an ISO date and time)."""

    key = StrictCharField(required=False, trim_whitespace=True, validators=[HEX_ID])
    visitor_id = StrictCharField(required=False, trim_whitespace=True, validators=[HEX_ID])
    as_of = StrictCharField(required=False, max_length=40)

    def validate(self, attrs: dict) -> dict:
        if ("key" in attrs) == ("visitor_id" in attrs):
            raise serializers.ValidationError("Give either key or visitor_id.")
        if "as_of" in attrs:
            attrs["as_of"] = parse_instant(attrs["as_of"])
        return attrs


def parse_instant(value: str):
    """A date (its midnight, UTC) or an ISO date and time (UTC without an offset), not in the
    future; a ``ValidationError`` otherwise."""
    try:
        instant = datetime.fromisoformat(value.strip())
    except ValueError:
        raise serializers.ValidationError(
            {"as_of": f"{value[:40]!r} is not a date such as 2011-12-10."}
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    if instant > datetime.now(UTC):
        raise serializers.ValidationError({"as_of": "The as-of date cannot be in the future."})
    return instant
