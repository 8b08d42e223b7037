"""The segments app's public Python API: what the layers above may use."""

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from consent.api import get_consent, notice_version, rebuild_grants

from . import events as _events
from .backends.base import BackendUnavailable, Exchange
from .conf import get_setting
from .events import Event, EventError
from .features import Profile
from .intake import is_page_view, page_view, request_context
from .registry import context_only_segments, get_backend

__all__ = [
    "BackendUnavailable",
    "Event",
    "EventError",
    "Exchange",
    "context_only_slugs",
    "context_segments",
    "estimate_rule_size",
    "exchange",
    "get_backend",
    "is_page_view",
    "mirror_consent",
    "page_view",
    "record_events",
    "report",
    "request_context",
    "rule_catalog",
    "rule_problems",
    "schedule_drain",
    "segment_choices",
    "segment_model",
    "segment_priorities",
    "track",
    "tracking_purpose",
]

logger = logging.getLogger(__name__)
_down_until = 0.0
NO_CONSENT = Exchange(consented=False)


def _backend_usable() -> bool:
    return time.monotonic() >= _down_until


def _mark_down(exc: Exception) -> None:
    global _down_until
    _down_until = time.monotonic() + float(get_setting("SEGMENTS_FAILURE_BACKOFF"))
    logger.warning("Fast store unavailable, serving default content: %s", type(exc).__name__)


def exchange(
    visitor_key: str,
    event: Event | None = None,
    *,
    visitor_id: str | None = None,
    events: Sequence[Event] = (),
) -> Exchange:
    """Record ``event`` (or ``events``, in order) for ``visitor_key`` if the server's consent
    state allows it, and return the visitor's memberships, in one round trip to the fast store.

    Never raises for an unavailable store: the result then says "not consented", so callers
    serve default content. When the store has lost the visitor's consent state it is rebuilt
    from the durable consent record (a database query, only then).
    """
    if not _backend_usable():
        return NO_CONSENT
    backend = get_backend()
    batch = [event] if event is not None else list(events)
    fields = [_events.encode(e) for e in batch]
    purpose = get_setting("SEGMENTS_PURPOSE")
    version = notice_version()
    try:
        result = backend.exchange(
            visitor_key, purpose=purpose, notice_version=version, now=time.time(), events=fields
        )
        if result.consented is None:
            mirror_consent_from_record(visitor_key, visitor_id)
            result = backend.exchange(
                visitor_key, purpose=purpose, notice_version=version, now=time.time(), events=fields
            )
    except BackendUnavailable as exc:
        _mark_down(exc)
        return NO_CONSENT
    return result if result.consented else NO_CONSENT


_EMPTY = Profile()


def context_segments(context: dict[str, str], now: float | None = None) -> frozenset[str]:
    """Segments whose rules use only the request's context (device, campaign, time...):
    decided from ``context`` alone, for any visitor, storing nothing."""
    candidates = context_only_segments()
    if not candidates:
        return frozenset()
    now = time.time() if now is None else now
    return frozenset(s.slug for s in candidates if s.evaluate(_EMPTY, now, context).matched)


def tracking_purpose() -> str:
    """The consent purpose under which behaviour is recorded."""
    return get_setting("SEGMENTS_PURPOSE")


def schedule_drain(visitor_key: str) -> None:
    """Make sure a worker drains the partition that ``visitor_key``'s events go to.

    Called at most about once per partition per burst of events (the stream's drain flag
    decides). A broker failure is logged, not raised: the periodic sweep drains the partition.
    """
    from .tasks import drain

    try:
        drain.delay(get_backend().partition_for(visitor_key))
    except Exception as exc:
        logger.warning("Could not schedule a drain: %s", type(exc).__name__)


def track(target, name: str, /, **properties) -> bool:
    """Record a server-side event (a purchase with ``value``, a signup) for a visitor, given
    their request or their pseudonymous key. Nothing is recorded without consent for the
    purpose (whatever the properties say). Raises :class:`EventError` for an invalid event;
    returns whether it was recorded."""
    if isinstance(target, str):
        key, visitor_id = target, None
    else:
        state = get_consent(target)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return False
        key, visitor_id = state.visitor_key, state.visitor_id
    return record_events(key, [(name, properties, None)], visitor_id=visitor_id) > 0


def record_events(
    visitor_key: str,
    items: Sequence[tuple[str, dict | None, str | None]],
    *,
    visitor_id: str | None = None,
) -> int:
    """Validate and record events given as (name, properties, client event id or None), all
    in one round trip. Raises :class:`EventError` (nothing recorded) if any is invalid; returns
    how many were recorded (0 without consent)."""
    now = time.time()
    batch = []
    for name, properties, event_id in items:
        clean = _events.validate(name, properties)
        if event_id is not None and not _events.EVENT_ID_RE.match(str(event_id)):
            raise EventError("An event id is 8 to 64 letters, digits, '-' or '_'.")
        event = Event(visitor_key=visitor_key, name=name, ts=now, properties=clean)
        if event_id is not None:
            # Client ids become the visitor's own namespace of UUIDs: the same id sent twice
            # (a retried beacon) is the same event; another visitor's cannot collide with it.
            digest = hashlib.blake2b(f"{visitor_key}:{event_id}".encode(), digest_size=16)
            event = replace(event, event_id=digest.hexdigest())
        _events.encode(event)  # size check before anything is written
        batch.append(event)
    if not batch:
        return 0
    result = exchange(visitor_key, events=batch, visitor_id=visitor_id)
    if result.drain_needed:
        schedule_drain(visitor_key)
    return len(batch) if result.consented else 0


def mirror_consent(
    visitor_key: str, granted: frozenset[str], version: str, expires_at: float
) -> None:
    """Copy a consent decision into the fast store, where the request path checks it."""
    now = time.time()
    ttl = max(int(expires_at - now), 3600)
    grants = dict.fromkeys(granted, expires_at) if expires_at > now else {}
    get_backend().set_consent(visitor_key, grants, version, ttl)


def mirror_consent_from_record(visitor_key: str, visitor_id: str | None = None) -> None:
    """Rebuild the fast store's copy of consent state from the durable record (re-keying the
    visitor's data if it is only found under an earlier hashing key)."""
    record = rebuild_grants(visitor_key, visitor_id)
    if record is None:
        get_backend().set_consent(visitor_key, {}, "", 3600)  # remember "nothing recorded"
    else:
        mirror_consent(visitor_key, *record)


def segment_choices() -> list[tuple[str, str]]:
    """(slug, name) of every segment, for choosers and choice blocks."""
    from .models import Segment

    return list(Segment.objects.order_by("name").values_list("slug", "name"))


def segment_model():
    """The Segment model class (for admin registration by the layers above)."""
    from .models import Segment

    return Segment


def segment_priorities() -> dict[str, int]:
    """``{slug: priority}`` of the enabled segments (from the per-process definitions cache:
    no query on most calls)."""
    from .registry import enabled_segments

    return {s.slug: s.priority for s in enabled_segments()}


# -- for the editor's tools (rule builder, reports): admin code paths only ---------------------


def rule_problems(tree) -> list[tuple[str, str]]:
    """What is wrong with a rule, as ``(path, message)`` pairs (empty when it is valid): see
    :func:`segments.rules.validate_rule`."""
    from .rules import validate_rule

    return validate_rule(tree)


def rule_catalog() -> dict:
    """What rules can say, as plain data for the rule builder: condition types, the feature
    catalog (name, kind, unit, description, parameter), context attributes with their kinds,
    the operators of each kind and the dimensions an event count can be filtered on."""
    from . import catalog, rules
    from .features import DIMENSIONS

    return {
        "types": sorted(rules._COMPILERS),
        "features": catalog.describe(),
        "context_attributes": dict(rules._CONTEXT_ATTRIBUTES),
        "operators": {
            "number": sorted(rules._NUMBER_OPS),
            "string": sorted(rules._STRING_OPS),
        },
        "dimensions": list(DIMENSIONS),
        "max_conditions": rules.MAX_NODES,
        "max_depth": rules.MAX_DEPTH,
    }


def estimate_rule_size(rule, sample: int = 2000) -> dict:
    """How many stored profiles a rule (not yet saved) would match, estimated from a sample
    (see :func:`segments.insights.estimate_size`). Raises ``RuleError`` for an invalid rule and
    :class:`BackendUnavailable` when the fast store cannot be reached."""
    from .insights import estimate_size

    return estimate_size(rule, sample=sample)


def context_only_slugs() -> frozenset[str]:
    """Slugs of the enabled segments decided from the request alone (no consent needed)."""
    return frozenset(s.slug for s in context_only_segments())


def report():
    """The reporting queries (:mod:`segments.reports`): sizes over time, entries and exits,
    top pages, conversions, and impressions/clicks/conversions per block, variant and
    segment. Imported on use: reports are admin code paths."""
    from . import reports

    return reports
