"""Workers' side of the stream: read batches, update features and memberships, acknowledge.

One drain at a time per partition (a lock in the fast store), so each visitor's events are
applied in order. A batch's effects (durable log rows, features, memberships) are written before
its entries are acknowledged, and applying an entry twice changes nothing, so a worker killed
mid-batch loses no event and double-counts none: the next drain reclaims what it left pending.
"""

import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from consent.api import notice_version

from . import events as _events
from .backends.base import (
    CONSENT_PREFIX,
    NOTICE_FIELD,
    SEGMENT_PREFIX,
    BaseBackend,
    StreamEntry,
    VisitorUpdate,
)
from .conf import get_setting
from .features import Profile, parse_stream_id
from .models import Event as EventRow
from .registry import CompiledSegment, enabled_segments, get_backend

logger = logging.getLogger(__name__)
CONSUMER = f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class DrainResult:
    processed: int
    more: bool  # stopped at the time budget with work left


def _consented(fields: dict[str, str], purpose: str, version: str, now: float) -> bool:
    expiry = fields.get(CONSENT_PREFIX + purpose)
    try:
        return expiry is not None and float(expiry) > now and fields.get(NOTICE_FIELD) == version
    except ValueError:
        return False


def evaluate(profile: Profile, segments: list[CompiledSegment], now: float) -> dict[str, float]:
    """Segments the profile belongs to now, with the time each membership ends."""
    memberships = {}
    for segment in segments:
        if segment.context_only:
            continue  # decided inside each request, from the request itself
        outcome = segment.evaluate(profile, now)
        if outcome.matched and outcome.until > now:
            memberships[segment.slug] = outcome.until
    return memberships


def process_batch(
    backend: BaseBackend,
    partition: int,
    entries: list[StreamEntry],
    segments: list[CompiledSegment],
) -> int:
    """Apply one batch of stream entries; returns how many events took effect."""
    now = time.time()
    purpose, version = get_setting("SEGMENTS_PURPOSE"), notice_version()
    by_visitor: dict[str, list[tuple[tuple[int, int], _events.Event]]] = defaultdict(list)
    for entry in entries:
        event = _events.decode(entry.fields)
        if event is None:
            logger.warning("Dropping a malformed stream entry %s", entry.entry_id)
            continue
        by_visitor[event.visitor_key].append((parse_stream_id(entry.entry_id), event))

    states = backend.load_visitors(list(by_visitor))
    updates: list[VisitorUpdate] = []
    rows: list[EventRow] = []
    for key, items in by_visitor.items():
        state = states[key]
        if not _consented(state.fields, purpose, version, now):
            continue  # withdrawn (or erased) since the event was recorded: drop it
        profile = Profile.from_dict(json.loads(state.profile) if state.profile else None)
        for stream_id, event in items:
            if profile.apply(event.name, event.ts, stream_id, event.properties, event.event_id):
                rows.append(
                    EventRow(
                        event_id=event.event_id,
                        visitor_key=key,
                        name=event.name,
                        occurred_at=datetime.fromtimestamp(event.ts, tz=UTC),
                        properties=event.properties,
                    )
                )
        profile.prune(now)
        memberships = evaluate(profile, segments, now)
        previous = {f[len(SEGMENT_PREFIX) :] for f in state.fields if f.startswith(SEGMENT_PREFIX)}
        updates.append(
            VisitorUpdate(
                visitor_key=key,
                profile=json.dumps(profile.to_dict(), separators=(",", ":")),
                set_memberships=memberships,
                removed_memberships=sorted(previous - memberships.keys()),
            )
        )
    if rows:
        EventRow.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    backend.commit(partition, updates, [e.entry_id for e in entries])
    return len(rows)


def _acquire(backend: BaseBackend, partition: int, token: str, wait: float) -> bool:
    ttl = int(get_setting("SEGMENTS_LOCK_TTL_MS"))
    deadline = time.monotonic() + wait
    while not backend.lock_partition(partition, token, ttl):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def drain_partition(partition: int, *, max_seconds: float | None = None) -> DrainResult:
    """Process the partition's pending events until it is empty or the time budget is spent."""
    backend = get_backend()
    if not 0 <= partition < backend.partitions:
        raise ValueError(f"No partition {partition}.")
    budget = get_setting("SEGMENTS_DRAIN_MAX_SECONDS") if max_seconds is None else max_seconds
    batch_size = int(get_setting("SEGMENTS_BATCH_SIZE"))
    linger = int(get_setting("SEGMENTS_DRAIN_LINGER_MS"))
    ttl = int(get_setting("SEGMENTS_LOCK_TTL_MS"))
    token = uuid.uuid4().hex
    if not _acquire(backend, partition, token, wait=2.0):
        return DrainResult(0, more=False)  # another drain holds it and will see our events
    processed = 0
    deadline = time.monotonic() + budget
    try:
        segments = enabled_segments()
        while True:
            if time.monotonic() >= deadline:
                return DrainResult(processed, more=True)
            entries = backend.read_batch(partition, CONSUMER, batch_size, reclaim=True)
            if not entries and linger:
                entries = backend.read_batch(partition, CONSUMER, batch_size, block_ms=linger)
            if not entries:
                # Clear the flag, then look once more: an event added before the flag was
                # cleared is read now; one added after it schedules a new drain itself.
                backend.clear_drain_flag(partition)
                entries = backend.read_batch(partition, CONSUMER, batch_size)
                if not entries:
                    return DrainResult(processed, more=False)
                backend.set_drain_flag(partition)
            processed += process_batch(backend, partition, entries, segments)
            backend.refresh_lock(partition, token, ttl)
    finally:
        backend.unlock_partition(partition, token)


def pending_partitions() -> list[int]:
    return get_backend().pending_partitions()
