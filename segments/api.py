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
    "describe_rule",
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
    "variant_counts",
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


def variant_counts(page: int | None = None, since=None) -> list[dict]:
    """Impressions and clicks of personalised content from the durable event log, aggregated
    in the database: one dict per (page, block, variant) with ``impressions``, ``clicks`` and
    ``visitors`` (distinct visitors with an impression or a click of it), ordered by page,
    block and variant. ``page`` (an id) and ``since`` (an aware datetime) narrow the events.
    On PostgreSQL the grouping runs on the JSON properties in SQL."""
    from django.db.models import Count, Q
    from django.db.models.fields.json import KT

    from .models import Event as LoggedEvent

    events = LoggedEvent.objects.filter(
        name__in=("impression", "click"), properties__has_key="block"
    )
    if page is not None:
        events = events.filter(properties__page=int(page))
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    rows = (
        events.values(
            page_id=KT("properties__page"),
            block=KT("properties__block"),
            variant=KT("properties__variant"),
        )
        .annotate(
            impressions=Count("pk", filter=Q(name="impression")),
            clicks=Count("pk", filter=Q(name="click")),
            visitors=Count("visitor_key", distinct=True),
        )
        .order_by("page_id", "block", "variant")
    )
    return [
        {**row, "page_id": int(row["page_id"]) if row["page_id"] not in (None, "") else None}
        for row in rows
    ]


# -- for the editor's tools (rule builder, reports): admin code paths only ---------------------


def rule_problems(tree) -> list[tuple[str, str]]:
    """What is wrong with a rule, as ``(path, message)`` pairs (empty when it is valid): see
    :func:`segments.rules.validate_rule`."""
    from .rules import validate_rule

    return validate_rule(tree)


def describe_rule(tree) -> str:
    """A rule as one sentence for editors ("Visitors matching at least 3 page views in the last
    10 minutes."), worded by each condition type. Never raises: parts of a rule still being
    built read as "an incomplete condition" (see :func:`segments.rules.describe_rule`)."""
    from .rules import describe_rule

    return describe_rule(tree)


def rule_catalog() -> dict:
    """What rules can say, as plain data for the rule builder: the condition types with their
    labels, fields and a new node of each (``conditions``, from the registry), the feature
    catalog (name, kind, unit, description, parameter), the operators of each kind of value and
    their labels, the units of a window, context attributes with their kinds and the
    dimensions an event count can be filtered on."""
    from . import catalog
    from .features import DIMENSIONS
    from .rules import catalog as rules_catalog

    result = rules_catalog()
    fields = {
        (entry["type"], f["name"]): f for entry in result["conditions"] for f in entry["fields"]
    }
    attribute = fields.get(("context", "attribute"))
    return {
        **result,
        "features": catalog.describe(),
        "context_attributes": {c["value"]: c["kind"] for c in attribute["choices"]}
        if attribute
        else {},
        "dimensions": list(DIMENSIONS),
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
