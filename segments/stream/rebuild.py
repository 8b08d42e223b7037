"""Rebuilding the fast store from the durable log: losing Redis loses no data, and brings
back nothing a visitor took away (a withdrawal, an erasure waiting to run). Profiles always
summarise exactly what the log holds, so the same recomputation serves retention: when events
are purged, the profiles of the visitors they belonged to are recomputed from what remains."""

import time
from collections import defaultdict

import orjson

from consent.api import pending_erasure_purposes, rebuild_grants

from ..backends import get_backend
from ..backends.base import VisitorState, VisitorUpdate
from ..conf import get_setting
from ..consent_mirror import mirror_consent
from ..definitions import enabled_segments
from ..events import log as eventlog
from ..extensions import BatchEvent, BatchVisitor, extensions, run_restore_steps
from ..models import LoggedEvent
from ..profiles.features import Profile
from .drain import _Changes, _previous, locks_of, run_steps, score, settle
from .static import restore_members


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
        # The events themselves only when a restore step wants them (below).
        histories: dict[str, list] | None = {} if extensions.restore_steps else None
        profiles, events = eventlog.replay(part, histories=histories)
        stats["events"] += events
        # Static segments' members are recorded in the database: held as they were.
        static = restore_members(list(profiles))
        by_partition: dict[int, list[VisitorUpdate]] = {}
        for key, profile in profiles.items():
            profile.last_id = (0, 0)  # live stream ids continue after the rebuild
            profile.prune(now)
            held = static.get(key, {})
            for slug in held:
                changes.sizes[slug] = changes.sizes.get(slug, 0) + 1
            update = settle(key, profile, dict(held), segments, now, changes, new_profile=True)
            by_partition.setdefault(backend.partition_for(key), []).append(update)
        # The batch steps restore what they keep in the hashes (experiments: sticky arms,
        # from their own tables): they see each visitor with no events and no stored fields.
        blank = defaultdict(lambda: VisitorState(None, {}))
        for updates in by_partition.values():
            run_steps(updates, profiles, {}, blank, now)
            if histories is not None:
                _restore(updates, profiles, histories, now)
        for partition, updates in by_partition.items():
            backend.commit(partition, updates, [])
        stats["visitors"] += len(part)
    # Sizes start again from the rebuilt memberships; the history keeps its rows (a rebuild
    # is not a change in anyone's behaviour).
    backend.commit(0, [], [], changes.sizes)
    return stats


def _restore(updates: list[VisitorUpdate], profiles, histories: dict, now: float) -> None:
    """Let the restore steps (recommendations: recent items and the "for you" list) give back
    what only the visitors' events can, and carry their fields into the updates."""
    visitors = [
        BatchVisitor(
            key=u.visitor_key,
            profile=profiles[u.visitor_key],
            memberships=u.set_memberships,
            events=[BatchEvent(*event) for event in histories.get(u.visitor_key, ())],
            fields={},
        )
        for u in updates
    ]
    changed = run_restore_steps(visitors, now)
    for u in updates:
        change = changed.get(u.visitor_key)
        if change is not None:
            u.set_fields.update(change.set)
            u.delete_fields.extend(change.delete)


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
        granted = grants.granted - pending.get(key, frozenset())
        mirror_consent(key, granted, grants.version, grants.expiry, grants.standing)
        stats["consents"] += 1
        if purpose in granted:
            restorable.append(key)
        else:
            stats["skipped"] += 1
    return restorable


def recompute(keys: list[str], now: float | None = None, chunk: int = 2000) -> int:
    """Recompute the stored profiles (and memberships) of ``keys`` from what the log holds
    now, a partition at a time under its drain lock, keeping model outputs and the stream
    position. Visitors without a stored profile are left alone (nothing summarises them);
    those whose events are all gone keep an empty profile. Returns how many were recomputed;
    raises ``TimeoutError`` (after doing the other partitions) if a partition stays locked.
    (A profile left behind that way is recomputed by the drain as soon as it disagrees with
    the log on a duplicate, or by ``rebuild_fast_store``.)"""
    backend = get_backend()
    now = time.time() if now is None else now
    segments = enabled_segments()
    # Under the locks of every partition whose drain may be applying a visitor's events (a
    # moving visitor's old one too, during a raise of PARTITIONS), as an erasure takes them.
    by_partitions = backend.by_holding_partitions(dict.fromkeys(keys))
    # A drain holds the lock for at most SEGMENTS_DRAIN_MAX_SECONDS at a time.
    wait = float(get_setting("SEGMENTS_DRAIN_MAX_SECONDS")) + 5.0
    done = 0
    locked: list[int] = []
    for partitions, partition_keys in sorted(by_partitions.items()):
        partition = partitions[0]
        for start in range(0, len(partition_keys), chunk):
            part = partition_keys[start : start + chunk]
            with locks_of(backend, partitions, wait) as still_locked:
                if still_locked is not None:
                    locked.append(still_locked)  # the other partitions are still done
                    break
                states = backend.load_visitors(part)
                stored = {k: s for k, s in states.items() if s.profile is not None}
                profiles, _ = eventlog.replay(list(stored))
                for key, profile in profiles.items():
                    old = Profile.from_dict(orjson.loads(stored[key].profile))
                    profile.scores, profile.last_id = old.scores, old.last_id
                    profile.prune(now)
                touched = list(profiles.items())
                score(touched, now)
                changes = _Changes()
                updates = [
                    settle(key, profile, _previous(stored[key].fields), segments, now, changes)
                    for key, profile in touched
                ]
                changes.save()
                backend.commit(partition, updates, [], changes.sizes)
                done += len(updates)
    if locked:
        raise TimeoutError(f"Partitions {locked} stayed locked: their profiles were not updated.")
    return done


__all__ = ["rebuild", "recompute"]
