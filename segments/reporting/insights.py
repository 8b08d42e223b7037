"""What editors and auditors learn about segments: sizes, snapshots, estimates, explanations."""

import hashlib
import json
import logging
import math
import time
from datetime import UTC, datetime

from django.utils import timezone

from .. import extensions
from ..backends import get_backend
from ..backends.base import SEGMENT_PREFIX
from ..conf import get_setting
from ..definitions import enabled_segments, in_sample, site_timezone
from ..events.log import visitor_events
from ..models import MembershipChange, Segment, SegmentSnapshot, StaticMember
from ..profiles.catalog import FEATURES
from ..profiles.features import Profile
from ..rules import NEVER, compile_rule

logger = logging.getLogger(__name__)


def rule_hash(rule) -> str:
    return hashlib.sha256(json.dumps(rule, sort_keys=True).encode()).hexdigest()


def segment_sizes() -> list[dict]:
    """Current size of each segment, flagged when too small to act on."""
    sizes = get_backend().segment_sizes()
    minimum = int(get_setting("SEGMENTS_MIN_SIZE"))
    return [
        {
            "segment": s.slug,
            "name": s.name,
            "size": sizes.get(s.slug, 0),
            "too_small": sizes.get(s.slug, 0) < minimum,
        }
        for s in Segment.objects.filter(enabled=True)
    ]


def take_snapshots(day=None) -> list[SegmentSnapshot]:
    """Record today's size of every segment with the version (hash) of its rule."""
    day = day or timezone.localdate()
    sizes = get_backend().segment_sizes()
    minimum = int(get_setting("SEGMENTS_MIN_SIZE"))
    taken = []
    for segment in Segment.objects.filter(enabled=True):
        size = sizes.get(segment.slug, 0)
        snapshot, _ = SegmentSnapshot.objects.update_or_create(
            segment=segment.slug,
            day=day,
            defaults={"size": size, "rule_hash": rule_hash(segment.rule)},
        )
        taken.append(snapshot)
        if size < minimum:
            logger.warning("Segment %s has %s members (below %s)", segment.slug, size, minimum)
    return taken


def estimate_size(rule, sample: int = 2000) -> dict:
    """Estimate how many stored profiles a rule (not yet saved) would match, from a sample.
    Raises :class:`segments.rules.RuleError` for an invalid rule."""
    evaluate = compile_rule(rule, tz=site_timezone())
    backend = get_backend()
    profiles = backend.sample_profiles(sample)
    total = backend.profile_count()
    now = time.time()
    matched = sum(
        1 for raw in profiles if evaluate(Profile.from_dict(json.loads(raw)), now).matched
    )
    estimate = round(matched / len(profiles) * total) if profiles else 0
    return {
        "sampled": len(profiles),
        "matched": matched,
        "profiles": total,
        "estimate": estimate,
        "too_small": estimate < int(get_setting("SEGMENTS_MIN_SIZE")),
    }


def visitor_profile(visitor_key: str, as_of: datetime | None = None) -> tuple[Profile, float]:
    """A visitor's profile and the moment it is read at: now, from the fast store (what the
    workers hold, model outputs included); or ``as_of``, rebuilt from the durable log's
    events before that instant, the way the workers build it, and scored by the registered
    scorers (the models active now, on the features as they stood then)."""
    if as_of is None:
        state = get_backend().visitor_data(visitor_key)
        return Profile.from_dict(json.loads(state.profile) if state.profile else None), time.time()
    profile = Profile()
    for i, (name, ts, properties) in enumerate(visitor_events(visitor_key, until=as_of), 1):
        profile.apply(name, ts, (int(ts * 1000), i), properties)
    if profile.first_seen is not None:
        extensions.score_profiles([profile], as_of.timestamp())
    return profile, as_of.timestamp()


def _shown(value):
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


def feature_values(visitor_key: str, as_of: datetime | None = None) -> list[dict]:
    """Every feature of the catalog (:mod:`segments.profiles.catalog`) with this visitor's
    value, now or ``as_of`` an instant (see :func:`visitor_profile`): name, kind, unit,
    description, how it moves with time, ``value`` (None: unknown, e.g. the days since the
    last purchase of someone who never bought) and, for a feature that takes a parameter,
    ``by_param``: the value for each event (``total_events``) or category
    (``category_affinity``) the visitor has."""
    profile, now = visitor_profile(visitor_key, as_of)
    params = {"event": sorted(profile.totals), "category": sorted(profile.affinity)}
    result = []
    for feature in FEATURES.values():
        entry = {
            "name": feature.name,
            "kind": feature.kind,
            "unit": feature.unit,
            "description": feature.description,
            "trend": feature.trend,
            "param": feature.param,
            "value": None,
        }
        if feature.param is None:
            entry["value"] = _shown(feature.value(profile, now, None))
        else:
            entry["by_param"] = {
                p: _shown(feature.value(profile, now, p)) for p in params.get(feature.param, [])
            }
            if feature.param == "event":  # the parameter's default: page views
                entry["value"] = _shown(feature.value(profile, now, None))
        result.append(entry)
    return result


def explain(visitor_key: str, as_of: datetime | None = None) -> list[dict]:
    """For one visitor: each behavioural segment, whether they are in it, why, until when, and
    their recent entries and exits (e.g. "in engaged because: 4 page view event(s) in the last
    10 minutes (threshold 3)"; for a non-member, which condition failed and by how much: "not
    in engaged because: 1 page view event(s) in the last 10 minutes, fewer than the 3 required
    (2 short)"). ``as_of``: as the visitor stood at that instant (profile rebuilt from the
    durable log and scored by the models active now, history up to then)."""
    profile, now = visitor_profile(visitor_key, as_of)
    history: dict[str, list[dict]] = {}
    changes = MembershipChange.objects.filter(visitor_key=visitor_key)
    if as_of is not None:
        changes = changes.filter(at__lte=as_of)
    for change in changes.order_by("-at")[:200]:
        history.setdefault(change.segment, []).append(
            {"entered": change.entered, "at": change.at.isoformat(), "reason": change.reason}
        )
    result = []
    factors = _model_factors(profile, now)
    segments = enabled_segments()
    static = set()
    if any(s.static for s in segments):
        found = StaticMember.objects.filter(visitor_key=visitor_key)
        if as_of is not None:
            found = found.filter(added_at__lte=as_of)
        static = set(found.values_list("segment__slug", flat=True))
    stored: dict[str, float] = {}
    if as_of is None and any(s.persist for s in segments):
        fields = get_backend().visitor_data(visitor_key).fields
        stored = {
            k[len(SEGMENT_PREFIX) :]: _end(v)
            for k, v in fields.items()
            if k.startswith(SEGMENT_PREFIX)
        }
    for segment in segments:
        if segment.context_only and not segment.static:
            continue
        member, reasons, until = _membership(segment, profile, now, visitor_key, static, stored)
        verb = "in" if member else "not in"
        result.append(
            {
                "segment": segment.slug,
                "member": member,
                "because": f"{verb} {segment.slug} because: " + "; ".join(reasons),
                "until": None
                if until == NEVER
                else datetime.fromtimestamp(until, tz=UTC).isoformat(),
                "history": history.get(segment.slug, [])[:10],
                "model_factors": factors.get(segment.slug, {}),
            }
        )
    return result


def _end(value) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def _membership(segment, profile, now, visitor_key, static, stored):
    """Whether the visitor is in a (non-request) segment, why, and until when, with its
    options: a static segment's fixed members, a random percentage's draw, persistence."""
    if segment.static:
        if segment.slug in static:
            return True, ["found when the static segment's members were computed"], NEVER
        return False, ["not found when the static segment's members were computed"], NEVER
    outcome = segment.evaluate(profile, now)
    member, reasons, until = outcome.matched, list(outcome.reasons), outcome.until
    if member and not in_sample(visitor_key, segment.slug, segment.sample):
        member = False
        reasons.append(
            f"held out: not among the {segment.sample}% of matching visitors drawn into it"
        )
    if segment.persist and stored.get(segment.slug, 0.0) > now:
        if not member:
            reasons.append("kept in: the segment is persistent")
        member, until = True, stored[segment.slug]
    return member, reasons, until


def _model_factors(profile: Profile, now: float) -> dict[str, dict[str, list[dict]]]:
    """Per segment, what the registered explainers add (model-driven segments: the visitor's
    top contributing features for each model the rule uses)."""
    if not extensions.extensions.explainers:
        return {}
    rules = dict(Segment.objects.filter(enabled=True).values_list("slug", "rule"))
    return extensions.explain(profile, rules, now)
