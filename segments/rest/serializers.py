"""The event endpoint's request body: ``{"events": [{"name", "properties", "event_id"}]}``.

Each event is checked with the same schema as server-side events (:func:`segments.events.
validate`), so a batch is refused or accepted whole, whatever the visitor's consent.
"""

from datetime import UTC, datetime

from django.core.validators import RegexValidator
from rest_framework import serializers

from .. import events

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


class EventSerializer(serializers.Serializer):
    name = StrictCharField(trim_whitespace=False, max_length=64)
    properties = serializers.JSONField(required=False, allow_null=True, default=None)
    event_id = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        trim_whitespace=False,
        min_length=8,
        max_length=MAX_EVENT_ID,
        validators=[
            RegexValidator(
                events.EVENT_ID_RE,
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
