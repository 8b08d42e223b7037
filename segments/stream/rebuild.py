"""Rebuilding the fast store from the durable log: losing Redis loses no data, and brings
back nothing a visitor took away (a withdrawal, an erasure waiting to run)."""

import time

from consent.api import pending_erasure_purposes, rebuild_grants

from ..backends import get_backend
from ..backends.base import VisitorUpdate
from ..conf import get_setting
from ..consent_mirror import mirror_consent
from ..definitions import enabled_segments
from ..models import LoggedEvent
from ..profiles.features import Profile
from .drain import _Changes, settle


def replay_log(keys: list[str]) -> tuple[dict[str, Profile], int]:
    """The visitors' features recomputed from the durable log alone (what a rebuild stores,
    before pruning), and how many events that took."""
    profiles: dict[str, Profile] = {k: Profile() for k in keys}
    rows = LoggedEvent.objects.filter(visitor_key__in=keys).order_by("occurred_at", "pk")
    values = rows.values_list("visitor_key", "name", "occurred_at", "properties", "event_id")
    events = 0
    for seq, (key, name, occurred_at, properties, event_id) in enumerate(
        values.iterator(chunk_size=5000), start=1
    ):
        profiles[key].apply(name, occurred_at.timestamp(), (0, seq), properties, event_id.hex)
        events += 1
    return profiles, events


def rebuild(chunk: int = 2000) -> dict[str, int]:
    backend = get_backend()
    backend.flush(keep_stream=True)
    segments = enabled_segments()
    now = time.time()
    purpose = get_setting("SEGMENTS_PURPOSE")
    stats = {"visitors": 0, "events": 0, "consents": 0, "skipped": 0}
    changes = _Changes()
    keys = list(LoggedEvent.objects.order_by().values_list("visitor_key", flat=True).distinct())
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        part = _restorable(part, stats, purpose)
        profiles, events = replay_log(part)
        stats["events"] += events
        by_partition: dict[int, list[VisitorUpdate]] = {}
        for key, profile in profiles.items():
            profile.last_id = (0, 0)  # live stream ids continue after the rebuild
            profile.prune(now)
            update = settle(key, profile, {}, segments, now, changes, new_profile=True)
            by_partition.setdefault(backend.partition_for(key), []).append(update)
        for partition, updates in by_partition.items():
            backend.commit(partition, updates, [])
        stats["visitors"] += len(part)
    # Sizes start again from the rebuilt memberships; the history keeps its rows (a rebuild
    # is not a change in anyone's behaviour).
    backend.commit(0, [], [], changes.sizes)
    return stats


def _restorable(keys: list[str], stats: dict[str, int], purpose: str) -> list[str]:
    """Mirror each visitor's consent as the durable record has it, less the purposes of any
    erasure still pending; return those whose profile may come back: their latest decision
    grants ``purpose`` and no erasure of it is waiting. A visitor who withdrew (erasure due
    later), was erased, or has no consent record keeps nothing in the fast store, and their
    events still in the log wait there for the erasure or retention."""
    pending = pending_erasure_purposes(keys)
    restorable = []
    for key in keys:
        grants = rebuild_grants(key, None)
        if grants is None:
            stats["skipped"] += 1
            continue
        granted, version, expiry = grants
        granted -= pending.get(key, frozenset())
        mirror_consent(key, granted, version, expiry)
        stats["consents"] += 1
        if purpose in granted:
            restorable.append(key)
        else:
            stats["skipped"] += 1
    return restorable


__all__ = ["rebuild", "replay_log"]
