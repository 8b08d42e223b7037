"""The segments app's public Python API: what the layers above may use."""

import time
from datetime import datetime

from django.db.models import Max, Q

from .backends import get_backend
from .backends.base import (
    ASSIGNMENT_PREFIX,
    RECOMMENDATION_PREFIX,
    SEGMENT_PREFIX,
    BackendUnavailable,
    Exchange,
)
from .conf import get_setting
from .consent_mirror import mirror_consent, tracking_purpose
from .dead_letters import (
    dead_letters,
    discard_dead_letter,
    requeue_dead_letter,
    stream_stats,
)
from .definitions import SEGMENTS as SEGMENT_DEFINITIONS
from .definitions import (
    context_only_segments,
    context_segments,
    definitions_stamps,
    enabled_segments,
    stored_segment_slugs,
)
from .events import NAME_RE, Event, EventError
from .events import validate as validate_event
from .events.importer import Mapping, load_mapping, read_visitor_events
from .events.log import visitor_histories
from .events.request import is_page_view, page_view, request_context
from .extensions import (
    BatchEvent,
    BatchVisitor,
    FieldChanges,
    register_batch_step,
    register_definitions,
    register_explainer,
    register_profile_scorer,
    register_restore_step,
    register_rule_reference_validator,
    unregister_batch_step,
    unregister_definitions,
    unregister_restore_step,
)
from .models import LoggedEvent, MembershipChange, Segment
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
from .profiles.features import DIMENSIONS, MAX_WINDOW, PURCHASE, Profile
from .recording import exchange, record_events, schedule_drain, store_retry_after, track
from .reporting import insights
from .reporting import results as reports
from .reporting.access import may_view_visitors
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
    reason_check,
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
from .stream.static import static_members

__all__ = [
    "ASSIGNMENT_PREFIX",
    "DAY",
    "DEFAULT_PROPENSITY_FEATURES",
    "MAX_DAYS",
    "MAX_VALUE",
    "MAX_WINDOW",
    "MODEL_FEATURES",
    "NAME_RE",
    "NEVER",
    "PURCHASE",
    "RECOMMENDATION_PREFIX",
    "RFM",
    "SEGMENT_DEFINITIONS",
    "SEGMENT_PREFIX",
    "BackendUnavailable",
    "BatchEvent",
    "BatchVisitor",
    "CompileOptions",
    "Condition",
    "Evaluator",
    "Event",
    "EventError",
    "Exchange",
    "Field",
    "FieldChanges",
    "Mapping",
    "ModelFeature",
    "Outcome",
    "Profile",
    "RuleError",
    "check_features",
    "compile_comparison",
    "context_only_slugs",
    "context_segments",
    "dead_letters",
    "definitions_stamps",
    "describe_comparison",
    "describe_rule",
    "discard_dead_letter",
    "estimate_rule_size",
    "exchange",
    "explain_visitor",
    "feature_values",
    "get_backend",
    "is_page_view",
    "join_path",
    "last_membership_change",
    "latest_events",
    "load_mapping",
    "may_view_visitors",
    "members_now",
    "membership_changes",
    "min_segment_size",
    "mirror_consent",
    "model_references",
    "page_view",
    "quoted",
    "read_visitor_events",
    "reason_check",
    "reason_comparison",
    "reason_value",
    "record_events",
    "reevaluate",
    "register_batch_step",
    "register_condition",
    "register_definitions",
    "register_explainer",
    "register_profile_scorer",
    "register_restore_step",
    "register_rule_reference_validator",
    "report",
    "request_context",
    "requeue_dead_letter",
    "rule_catalog",
    "rule_problems",
    "schedule_drain",
    "segment_choices",
    "segment_model",
    "segment_priorities",
    "static_members",
    "store_retry_after",
    "stored_segment_slugs",
    "stream_stats",
    "track",
    "tracking_purpose",
    "unregister_batch_step",
    "unregister_condition",
    "unregister_definitions",
    "unregister_restore_step",
    "validate_event",
    "visitor_histories",
]


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


# -- one visitor, for editors and privacy officers ----------------------------------------------


def feature_values(visitor_key: str, as_of: datetime | None = None) -> list[dict]:
    """Every feature of the catalog with this visitor's value (``value``; ``by_param`` for
    features taking a parameter), their kind, unit, description and trend: now, from the fast
    store, or ``as_of`` an instant, rebuilt from the durable log's events before it. Keyed by
    the pseudonymous key only (``consent.api.visitor_key`` of the cookie's id); raises
    :class:`BackendUnavailable` when the fast store is needed and unreachable. See
    :func:`segments.reporting.insights.feature_values`."""
    return insights.feature_values(visitor_key, as_of)


def explain_visitor(visitor_key: str, as_of: datetime | None = None) -> list[dict]:
    """Each behavioural segment for this visitor: ``member``, ``because`` (the rule's reasons:
    for a non-member, which condition failed and by how much), ``until``, recent ``history``
    and ``model_factors`` (what the models' explainers add). See
    :func:`segments.reporting.insights.explain`."""
    return insights.explain(visitor_key, as_of)


def min_segment_size() -> int:
    """Segments (and clusters) smaller than this are flagged as too small to act on."""
    return int(get_setting("SEGMENTS_MIN_SIZE"))


# -- for the channels beyond the page (destinations, deliveries) ------------------------------


def membership_changes(after: int, limit: int, ids=()) -> list[tuple]:
    """Rows of the history of membership changes, in id order: those with an id above
    ``after`` (at most ``limit``) and those among ``ids`` (ids skipped earlier that may have
    been committed since), as ``(id, visitor_key, segment slug, entered, at)``. Read by a
    consumer that keeps its own position (channels' fan-out)."""

    wanted = Q(pk__gt=after) | Q(pk__in=list(ids)) if ids else Q(pk__gt=after)
    return list(
        MembershipChange.objects.filter(wanted)
        .order_by("pk")
        .values_list("pk", "visitor_key", "segment", "entered", "at")[:limit]
    )


def last_membership_change() -> int:
    """The id of the latest membership change (0: none): where a new consumer starts."""

    return MembershipChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def members_now(slugs, now: float | None = None, batch: int = 1000):
    """``(visitor_key, slugs)`` of every stored visitor who is a member of some of ``slugs``
    now, from the fast store, in batches (a scan: for nightly jobs, never a request). Raises
    :class:`BackendUnavailable` when the fast store cannot be reached."""

    wanted = frozenset(slugs)
    now = time.time() if now is None else now
    backend = get_backend()
    for keys in backend.visitor_keys(batch=batch):
        for key, state in backend.load_visitors(keys).items():
            found = set()
            for name, value in state.fields.items():
                if name.startswith(SEGMENT_PREFIX) and name[len(SEGMENT_PREFIX) :] in wanted:
                    try:
                        until = float(value)
                    except ValueError:
                        continue
                    if until > now:
                        found.add(name[len(SEGMENT_PREFIX) :])
            if found:
                yield key, frozenset(found)


def latest_events(keys, names, since: datetime) -> dict[str, datetime]:
    """Of ``keys``, those with an event named in ``names`` in the durable log since ``since``,
    each with the time of its latest (a conversion after a segment entry, say)."""

    rows = (
        LoggedEvent.objects.filter(
            visitor_key__in=list(keys), name__in=list(names), occurred_at__gte=since
        )
        .values("visitor_key")
        .annotate(latest=Max("occurred_at"))
    )
    return {row["visitor_key"]: row["latest"] for row in rows}
