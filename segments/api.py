"""The segments app's public Python API: what the layers above may use."""

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from consent.api import get_consent, notice_version

from . import events as _events
from .backends import get_backend
from .backends.base import BackendUnavailable, Exchange
from .conf import get_setting
from .consent_mirror import mirror_consent, mirror_consent_from_record, tracking_purpose
from .definitions import context_only_segments, enabled_segments
from .events import NAME_RE, Event, EventError
from .events.importer import Mapping, read_visitor_events
from .events.log import visitor_histories
from .events.request import is_page_view, page_view, request_context
from .extensions import (
    register_explainer,
    register_profile_scorer,
    register_rule_reference_validator,
)
from .models import Segment
from .profiles import catalog
from .profiles.catalog import (
    DAY,
    DEFAULT_PROPENSITY_FEATURES,
    MAX_DAYS,
    MAX_VALUE,
    MODEL_FEATURES,
    RFM,
    ModelFeature,
    check_features,
)
from .profiles.features import DIMENSIONS, MAX_WINDOW, Profile
from .reporting import results as reports
from .reporting.insights import estimate_size
from .rules import (
    NEVER,
    CompileOptions,
    Condition,
    Evaluator,
    Field,
    Outcome,
    RuleError,
    compile_comparison,
    join_path,
    model_references,
    reason_comparison,
    reason_value,
    register_condition,
    unregister_condition,
    validate_rule,
)
from .rules import catalog as rules_catalog
from .rules import describe_rule as _describe_rule
from .rules.text import describe_comparison, quoted
from .stream.drain import reevaluate

__all__ = [
    "DAY",
    "DEFAULT_PROPENSITY_FEATURES",
    "MAX_DAYS",
    "MAX_VALUE",
    "MAX_WINDOW",
    "MODEL_FEATURES",
    "NAME_RE",
    "NEVER",
    "RFM",
    "BackendUnavailable",
    "CompileOptions",
    "Condition",
    "Evaluator",
    "Event",
    "EventError",
    "Exchange",
    "Field",
    "Mapping",
    "ModelFeature",
    "Outcome",
    "Profile",
    "RuleError",
    "check_features",
    "compile_comparison",
    "context_only_slugs",
    "context_segments",
    "describe_comparison",
    "describe_rule",
    "estimate_rule_size",
    "exchange",
    "get_backend",
    "is_page_view",
    "join_path",
    "min_segment_size",
    "mirror_consent",
    "model_references",
    "page_view",
    "quoted",
    "read_visitor_events",
    "reason_comparison",
    "reason_value",
    "record_events",
    "reevaluate",
    "register_condition",
    "register_explainer",
    "register_profile_scorer",
    "register_rule_reference_validator",
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
    "unregister_condition",
    "visitor_histories",
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


def schedule_drain(visitor_key: str) -> None:
    """Make sure a worker drains the partition that ``visitor_key``'s events go to.

    Called at most about once per partition per burst of events (the stream's drain flag
    decides). A broker failure is logged, not raised: the periodic sweep drains the partition.
    """
    # Celery and the drain load with the first event that needs a worker, not at start-up
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


def segment_choices() -> list[tuple[str, str]]:
    """(slug, name) of every segment, for choosers and choice blocks."""

    return list(Segment.objects.order_by("name").values_list("slug", "name"))


def segment_model():
    """The Segment model class (for admin registration by the layers above)."""

    return Segment


def segment_priorities() -> dict[str, int]:
    """``{slug: priority}`` of the enabled segments (from the per-process definitions cache:
    no query on most calls)."""

    return {s.slug: s.priority for s in enabled_segments()}


# -- for the editor's tools (rule builder, reports): admin code paths only ---------------------


def rule_problems(tree) -> list[tuple[str, str]]:
    """What is wrong with a rule, as ``(path, message)`` pairs (empty when it is valid): see
    :func:`segments.rules.validate_rule`."""

    return validate_rule(tree)


def describe_rule(tree) -> str:
    """A rule as one sentence for editors ("Visitors matching at least 3 page views in the last
    10 minutes."), worded by each condition type. Never raises: parts of a rule still being
    built read as "an incomplete condition" (see :func:`segments.rules.describe_rule`)."""

    return _describe_rule(tree)


def rule_catalog() -> dict:
    """What rules can say, as plain data for the rule builder: the condition types with their
    labels, fields and a new node of each (``conditions``, from the registry), the feature
    catalog (name, kind, unit, description, parameter), the operators of each kind of value and
    their labels, the units of a window, context attributes with their kinds and the
    dimensions an event count can be filtered on."""

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
    (see :func:`segments.reporting.insights.estimate_size`). Raises ``RuleError`` for an
    invalid rule and :class:`BackendUnavailable` when the fast store cannot be reached."""

    return estimate_size(rule, sample=sample)


def context_only_slugs() -> frozenset[str]:
    """Slugs of the enabled segments decided from the request alone (no consent needed)."""
    return frozenset(s.slug for s in context_only_segments())


def report():
    """The reporting queries (:mod:`segments.reporting.results`): sizes over time, entries
    and exits, top pages, conversions, and impressions/clicks/conversions per block, variant and
    segment (the module; its functions are the reporting API of the editor's screens)."""
    return reports


def min_segment_size() -> int:
    """Segments (and clusters) smaller than this are flagged as too small to act on."""
    return int(get_setting("SEGMENTS_MIN_SIZE"))
