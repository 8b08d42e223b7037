"""Events: validation and the compact wire format used on the stream (pure: no Django).

The wire format is compact JSON, written and read with orjson (a page view is encoded on every
consented request and decoded once in a worker: the standard library takes five times longer).
"""

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..profiles.features import NAME_RE
from .text import redact, unstorable

PROP_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_INT = 2**53  # integers JSON consumers can represent exactly
EVENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")
MAX_PROPERTIES = 32
MAX_STRING = 512
MAX_ENCODED = 4096


class EventError(ValueError):
    """An event that fails the schema: the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Event:
    visitor_key: str
    name: str
    ts: float
    event_id: str = field(default_factory=lambda: new_event_id())
    properties: dict[str, Any] = field(default_factory=dict)


def new_event_id() -> str:
    """A random (version 4) UUID as 32 hex digits; as ``uuid.uuid4().hex``, at a fifth of its
    cost (one per page view)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def validate(name: object, properties: object) -> dict[str, Any]:
    """Check an event's name and properties; return the properties as a plain dict.

    Property values are strings (at most 512 characters), numbers or booleans; nested data is
    refused so that nothing unexpected (an email in a blob) slips through unseen. Text that the
    durable log cannot store (a NUL character, a lone surrogate) is refused; email addresses,
    phone numbers and IP addresses in text are replaced by placeholders (:mod:`.text`).
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise EventError(
            "Event name must be 1-64 characters: lowercase letters, digits and underscores, "
            "starting with a letter."
        )
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise EventError("Event properties must be an object.")
    if len(properties) > MAX_PROPERTIES:
        raise EventError(f"An event may have at most {MAX_PROPERTIES} properties.")
    clean: dict[str, Any] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not PROP_KEY_RE.match(key):
            raise EventError(f"Invalid property name {str(key)[:64]!r}.")
        if isinstance(value, bool) or value is None:
            clean[key] = value
        elif isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise EventError(f"Property {key!r} is out of range.")
        elif isinstance(value, int | float):
            if value != value or value in (float("inf"), float("-inf")):
                raise EventError(f"Property {key!r} must be a finite number.")
            clean[key] = value
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                raise EventError(f"Property {key!r} is longer than {MAX_STRING} characters.")
            problem = unstorable(value)
            if problem is not None:
                raise EventError(f"Property {key!r} {problem}.")
            # A block's or variant's id is a UUID, which the phone-number pattern can match
            # ("…-4499-4416-2718-…"): kept as it is (no phone number has that shape).
            clean[key] = value if key in KEY_PROPERTIES and UUID_RE.match(value) else redact(value)
        else:
            raise EventError(f"Property {key!r} must be a string, number, boolean or null.")
    if name in VARIANT_EVENTS or "block" in clean:
        _check_variant_event(name, clean)
    return clean


# Impressions and clicks of personalised content (see docs/delivery.md): which block, which
# variant ("default" or the variant's id), on which page (its id).
VARIANT_EVENTS = frozenset({"impression"})
VARIANT_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
KEY_PROPERTIES = frozenset({"block", "variant"})
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")


def _check_variant_event(name: str, clean: dict[str, Any]) -> None:
    for key in ("block", "variant"):
        value = clean.get(key)
        if not isinstance(value, str) or not VARIANT_KEY_RE.match(value):
            raise EventError(
                f"A {name} event of personalised content needs {key!r}: 1-64 letters, digits, "
                "'-' or '_'."
            )
    page = clean.get("page")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise EventError(f"Property 'page' of a {name} event must be a page id.")


def encode(event: Event) -> dict[str, str]:
    """Stream entry fields for an event (visitor key kept apart for routing and tombstones)."""
    try:
        body = orjson.dumps(
            {"n": event.name, "t": round(event.ts, 3), "i": event.event_id, "p": event.properties}
        )
    except TypeError as exc:  # only validated properties get here; say so if one did not
        raise EventError(f"Event cannot be encoded: {exc}") from None
    if len(body) > MAX_ENCODED:
        raise EventError(f"Event is larger than {MAX_ENCODED} bytes once encoded.")
    # The last gate before the stream, whoever built the event: a NUL character would fail the
    # durable log's write on every retry (orjson already refuses lone surrogates above).
    if b"\\u0000" in body and _has_nul(event):
        raise EventError("Event cannot be encoded: text contains a NUL character.")
    return {"k": event.visitor_key, "d": body.decode()}


def _has_nul(event: Event) -> bool:
    texts = [event.visitor_key, event.name, event.event_id]
    for key, value in event.properties.items():
        texts.append(key)
        if isinstance(value, str):
            texts.append(value)
    return any(isinstance(t, str) and "\x00" in t for t in texts)


def decode(fields: dict[str, str]) -> Event | None:
    """Parse stream entry fields; ``None`` for an entry that cannot be an event of ours."""
    parts = decode_entry(fields)
    if parts is None:
        return None
    key, name, ts, event_id, properties = parts
    return Event(visitor_key=key, name=name, ts=ts, event_id=event_id, properties=properties)


def decode_entry(fields: dict[str, str]) -> tuple[str, str, float, str, dict] | None:
    """As :func:`decode`, as a plain tuple (visitor key, name, time, event id, properties): the
    workers' hot path, where building an Event costs more than parsing the JSON."""
    try:
        key = fields["k"]
        body = orjson.loads(fields["d"])
        name, ts, event_id = body["n"], float(body["t"]), body["i"]
        properties = body.get("p") or {}
    except (KeyError, TypeError, ValueError, RecursionError, AttributeError):
        return None
    if (
        not isinstance(name, str)
        or not NAME_RE.match(name)
        or not isinstance(event_id, str)
        or not isinstance(properties, dict)
        or not isinstance(key, str)
        or not math.isfinite(ts)
    ):
        return None
    return key, name, ts, event_id, properties
