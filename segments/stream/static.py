"""Static segments: members computed once from the stored profiles, then fixed.

When a segment is saved as static, a task (``segments.compute_static_members``) evaluates its
rule once against every stored profile of a visitor who consents to the purpose (a random
percentage, when the segment takes one, drawn as everywhere else), records each member
(:class:`segments.models.StaticMember`, by pseudonymous key only) and stores the membership
with no end in the fast store. From then on nobody enters or leaves: the drain holds static
memberships as they are (:func:`segments.stream.drain.settle`), whatever the visitors do or
however the rule is edited. A visitor erased, or whose data expires, leaves with the rest of
their data. Switching the segment back to dynamic forgets the members: the rule decides again
at each visitor's next evaluation.

The task runs ``SEGMENTS_DEFINITIONS_CACHE_SECONDS`` after the save, once every process knows
the segment is static (a drain still holding older definitions would otherwise remove the new
memberships as those of an unknown segment).
"""

import math
import time
from collections import defaultdict
from datetime import UTC, datetime

import orjson

from consent.api import notice_version

from ..backends import get_backend
from ..conf import get_setting
from ..definitions import enabled_segments, forget_definitions, in_sample, site_timezone
from ..models import Segment, StaticMember
from ..profiles.features import Profile
from ..rules import compile_rule
from .drain import _Changes, _consented, _previous, locks_of, settle

__all__ = ["compute_members", "restore_members", "static_members"]


def compute_members(segment_id: int, now: float | None = None) -> int | None:
    """Compute the members of the static segment ``segment_id``, once: returns how many there
    are, or None when there is nothing to do (not static, not enabled, or computed already)."""
    segment = Segment.objects.filter(
        pk=segment_id, static=True, members_computed_at__isnull=True
    ).first()
    if segment is None:
        return None
    now = time.time() if now is None else now
    forget_definitions()  # this process reads the segment as it is now
    segments = enabled_segments()
    evaluate = compile_rule(segment.rule, tz=site_timezone())
    backend = get_backend()
    purpose, version = get_setting("SEGMENTS_PURPOSE"), notice_version()
    wait = float(get_setting("SEGMENTS_DRAIN_MAX_SECONDS")) + 5.0
    added = datetime.fromtimestamp(now, tz=UTC)
    members = 0
    for keys in backend.visitor_keys(1000):
        # Each visitor is written under the locks of every partition whose drain may be
        # applying their events (a moving visitor's old one too, during a raise of
        # PARTITIONS), as an erasure takes them: a drain holding only one of them would
        # otherwise write the visitor's state back over the new membership.
        by_partitions = backend.by_holding_partitions(keys)
        for partitions, part in sorted(by_partitions.items()):
            with locks_of(backend, partitions, wait) as still_locked:
                if still_locked is not None:
                    raise TimeoutError(
                        f"Partition {still_locked} stayed locked; computed again later."
                    )
                members += _compute_part(
                    backend, partitions[0], part, segment, evaluate, segments, now, purpose, version
                )
    # Written last: a task that failed half way runs again (the members found so far are
    # found again; a membership already stored is not entered twice).
    Segment.objects.filter(pk=segment.pk).update(members_computed_at=added)
    return members


def _compute_part(backend, partition, keys, segment, evaluate, segments, now, purpose, version):
    states = backend.load_visitors(keys)
    changes = _Changes()
    updates, rows = [], []
    slug = segment.slug
    added = datetime.fromtimestamp(now, tz=UTC)
    for key in keys:
        state = states[key]
        if state.profile is None or not _consented(state.fields, purpose, version, now):
            continue
        profile = Profile.from_dict(orjson.loads(state.profile))
        outcome = evaluate(profile, now)
        if not outcome.matched or not in_sample(key, slug, segment.sample_percent):
            continue
        previous = _previous(state.fields)
        rows.append(StaticMember(segment=segment, visitor_key=key, added_at=added))
        if previous.get(slug, 0.0) <= now:
            changes.record(
                key,
                slug,
                True,
                now,
                ("in the static segment when its members were computed", *outcome.reasons),
            )
        previous[slug] = math.inf  # held by settle from now on
        updates.append(settle(key, profile, previous, segments, now, changes))
    StaticMember.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    changes.save()
    backend.commit(partition, updates, [], changes.sizes)
    return len(rows)


def restore_members(keys: list[str]) -> dict[str, dict[str, float]]:
    """The static memberships of ``keys`` (``{key: {slug: end}}``) as the database records
    them, for a rebuild of the fast store."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    rows = StaticMember.objects.filter(
        visitor_key__in=keys, segment__static=True, segment__enabled=True
    ).values_list("visitor_key", "segment__slug")
    for key, slug in rows:
        found[key][slug] = math.inf
    return found


def static_members(segment: Segment):
    """``(visitor key, added at)`` of a static segment's members, oldest first."""
    return (
        StaticMember.objects.filter(segment=segment)
        .order_by("added_at", "visitor_key")
        .values_list("visitor_key", "added_at")
    )
