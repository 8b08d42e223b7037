"""Workers' side of the stream: read batches, update features and memberships, acknowledge.

Scheduling. Every drain task serves every partition, round-robin, one batch per turn
(:func:`drain_partition`): a partition's lock is taken for one batch only, so with N worker
processes up to N partitions are worked on at once and no partition waits behind another that
keeps receiving events. A task ends when a pass finds every partition empty (after a short
linger), or hands over to a fresh task after ``SEGMENTS_DRAIN_MAX_SECONDS``.

Locks and takeover. One drain at a time per partition (a lock in the fast store), so each
visitor's events are applied in order. The lock lives a few seconds (``SEGMENTS_LOCK_TTL_MS``)
and the live drain renews it from a thread (:class:`LockKeeper`): a worker that dies frees its
partition within seconds, and the next drain to take it claims the entries the dead one had
read and not acknowledged (``XAUTOCLAIM``) before reading new ones.

Exactly once. A batch's effects (durable log rows, features, memberships) are written before
its entries are acknowledged, and only events newly written to the log are applied to profiles
(a profile found to disagree with the log is recomputed from it), so a worker killed mid-batch
loses no event and double-counts none.

Bad entries. A batch that fails is split until the failing entries are alone
(:func:`apply_isolated`); the rest are applied and acknowledged. An entry that keeps failing
while the database and the fast store answer goes, after ``SEGMENTS_DEAD_LETTER_ATTEMPTS``
attempts, to its partition's dead-letter stream, from which an operator requeues or discards
it (:mod:`segments.dead_letters`). No entry can stop a partition.

Consent. A visitor whose consent mirror is missing from the fast store (lost, or removed by a
rebuild) is not taken as withdrawn: the mirror is rebuilt from the durable consent record
first, and only a record that does not allow the purpose drops the visitor's events.
"""

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from django.db import connection

from consent.api import notice_version

from .. import events as _events
from .. import extensions, metrics
from ..backends import get_backend
from ..backends.base import (
    CONSENT_PREFIX,
    NOTICE_FIELD,
    SEGMENT_PREFIX,
    BaseBackend,
    StreamEntry,
    VisitorUpdate,
)
from ..conf import get_setting
from ..consent_mirror import restore_lost_mirrors, sync_pending_mirrors
from ..definitions import CompiledSegment, enabled_segments, forget_definitions, in_sample
from ..events import log as eventlog
from ..events.log import MAX_TS
from ..models import MembershipChange
from ..profiles.features import Profile, parse_stream_id
from ..rules import Outcome

logger = logging.getLogger(__name__)
operations = logging.getLogger("segments.operations")


def partitions_agree(backend: BaseBackend, what: str) -> bool:
    """Whether this process may work on the store's partitions: its PARTITIONS (and
    PREVIOUS_PARTITIONS) agree with the count the store was sealed with (a store holding none
    is given this process's). When they do not, nothing is read or acknowledged: the waiting
    entries stay where they are until the processes agree again (docs/operations.md, "When
    processes disagree on PARTITIONS"), and the refusal is logged on every attempt."""
    problem = backend.partition_problem()
    if problem is None:
        return True
    operations.error(
        "%s refused: %s",
        what,
        problem,
        extra={
            "event": "drain.partitions_mismatch",
            "partitions": backend.partitions,
            "previous_partitions": backend.previous_partitions,
        },
    )
    return False


def consumer_name() -> str:
    """This process's consumer name in the stream's group (read at call time: Celery's pool
    processes are forked after this module is imported)."""
    return f"{socket.gethostname()}-{os.getpid()}"


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


def _previous(fields: dict[str, str]) -> dict[str, float]:
    memberships = {}
    for name, value in fields.items():
        if name.startswith(SEGMENT_PREFIX):
            try:
                memberships[name[len(SEGMENT_PREFIX) :]] = float(value)
            except ValueError:
                memberships[name[len(SEGMENT_PREFIX) :]] = 0.0
    return memberships


def evaluate(profile: Profile, segments: list[CompiledSegment], now: float) -> dict[str, Outcome]:
    """Every behavioural segment's outcome for the profile (context-only segments are decided
    inside each request instead, static ones not at all). An evaluator that raises (a site's
    condition breaking the contract) leaves only its segment out, named in the result's
    ``failed``."""
    try:
        return {
            s.slug: s.evaluate(profile, now)
            for s in segments
            if not s.context_only and not s.static
        }
    except Exception:
        return _evaluate_each(profile, segments, now)


class _Partial(dict):
    """Outcomes of the segments that could be evaluated; ``failed``: those that raised."""

    __slots__ = ("failed",)


_failed_evaluators: set[str] = set()  # logged once each per process


def _failed(slug: str, exc: Exception) -> None:
    if slug not in _failed_evaluators:
        _failed_evaluators.add(slug)
        logger.warning(
            "Segment %r could not be evaluated (%s); its members are held",
            slug,
            type(exc).__name__,
        )


def _evaluate_each(profile: Profile, segments: list[CompiledSegment], now: float) -> _Partial:
    outcomes = _Partial()
    outcomes.failed = set()
    for s in segments:
        if s.context_only or s.static:
            continue
        try:
            outcomes[s.slug] = s.evaluate(profile, now)
        except Exception as exc:
            outcomes.failed.add(s.slug)
            _failed(s.slug, exc)
    return outcomes


_NO_PROFILE = Profile()


def _latest_match(
    segment: CompiledSegment, events: list[tuple[float, dict]]
) -> tuple[float, Outcome] | None:
    """The latest of a visitor's page views whose recorded context matches a context-only
    segment (its time and outcome), or None."""
    found = None
    for ts, properties in events:
        outcome = segment.evaluate(_NO_PROFILE, ts, properties)
        if outcome.matched and (found is None or ts > found[0]):
            found = (ts, outcome)
    return found


def _words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            amount = int(seconds // size)
            return f"{amount} {unit}{'' if amount == 1 else 's'}"
    return f"{int(seconds)} seconds"


@dataclass(slots=True)
class _Changes:
    """Membership changes of one batch: history rows and segment size deltas."""

    rows: list[MembershipChange] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    def record(self, key: str, slug: str, entered: bool, at: float, reasons) -> None:
        self.rows.append(
            MembershipChange(
                visitor_key=key,
                segment=slug,
                entered=entered,
                at=datetime.fromtimestamp(at, tz=UTC),
                reason="; ".join(reasons)[:500],
            )
        )
        self.sizes[slug] = self.sizes.get(slug, 0) + (1 if entered else -1)

    def save(self) -> None:
        metrics.membership_changes(self.rows)
        if self.rows:
            MembershipChange.objects.bulk_create(self.rows, batch_size=1000)


def settle(
    key: str,
    profile: Profile,
    previous: dict[str, float],
    segments: list[CompiledSegment],
    now: float,
    changes: _Changes,
    *,
    new_profile: bool = False,
    events: list[tuple[float, dict]] = (),
) -> VisitorUpdate:
    """Evaluate a visitor's segments, record who entered and left, and say what to store.

    A membership whose end time has passed was left at that time (requests already stopped
    counting it); leaving is recorded here if the sweeper has not done it yet. What each kind
    of segment stores (docs/rules.md, "Segment options"):

    - a behavioural segment: a membership while the rule holds; a persistent one keeps it for
      its ``persist`` seconds after the visitor last matched, and one taking a random
      percentage only for visitors drawn into it (:func:`segments.definitions.in_sample`);
    - a persistent context-only segment: a membership from the latest of ``events`` (the
      batch's page views, as ``(time, properties)``) whose recorded request matched, for
      ``persist`` seconds from then (without ``persist`` nothing is stored: requests decide);
    - a static segment: nothing changes (its members were computed once and are held).
    """
    outcomes = evaluate(profile, segments, now)
    current: dict[str, float] = {}
    entered: dict[str, object] = {}  # slug -> reasons of an entry (when not an outcome's)
    left: dict[str, object] = {}  # slug -> reasons of an exit (when not an outcome's)
    failed = set(getattr(outcomes, "failed", ()) or ())
    for segment in segments:
        slug = segment.slug
        before = previous.get(slug, 0.0)
        running = before > now
        if segment.static:
            if running:
                current[slug] = before
            continue
        if segment.context_only:
            if segment.persist <= 0:
                left[slug] = ("no longer kept: the segment is decided from each request",)
                continue
            try:
                found = _latest_match(segment, events) if events else None
            except Exception as exc:
                failed.add(slug)
                _failed(slug, exc)
                continue
            kept = _persist_words(segment)
            if found is not None and found[0] + segment.persist > now:
                if in_sample(key, slug, segment.sample):
                    ts, outcome = found
                    current[slug] = max(ts + segment.persist, before if running else 0.0)
                    entered[slug] = lambda o=outcome, k=kept: [*o.reasons, k]
                    continue
                left[slug] = (_held_out(segment),)
            if running:
                current[slug] = before  # persistent: stays until its time
            else:
                left[slug] = (f"{kept}, and that time is over",)
            continue
        outcome = outcomes.get(slug)
        if outcome is None:
            continue  # its evaluator raised: held below
        if outcome.matched and outcome.until > now:
            if in_sample(key, slug, segment.sample):
                until = outcome.until
                if segment.persist:
                    until = max(until, now + segment.persist)
                    if running:
                        until = max(until, before)
                current[slug] = until
                continue
            left[slug] = (_held_out(segment),)
        if segment.persist and running:
            current[slug] = before  # persistent: stays until its time
    # An enabled segment whose rule does not compile is evaluated for no one, nor is one whose
    # evaluator raised: their members stay as they are until their memberships end
    # (segments.definitions.Definitions.broken).
    broken = getattr(segments, "broken", None)
    if failed:
        broken = {*(broken or ()), *failed}
    held = {s: u for s, u in previous.items() if u > now and s in broken} if broken else {}
    current.update(held)
    for slug, until in previous.items():
        expired = until <= now
        if expired or slug not in current:
            if slug in left:
                reasons = _reasons(left[slug])
            elif slug in outcomes:
                reasons = outcomes[slug].reasons
            elif broken and slug in broken:
                reasons = ("membership ended while the segment's rule is broken",)
            else:
                reasons = ("segment disabled",)
            changes.record(key, slug, False, min(until, now), reasons)
    for slug in current:
        if slug not in previous or previous[slug] <= now:
            reasons = _reasons(entered[slug]) if slug in entered else outcomes[slug].reasons
            changes.record(key, slug, True, now, reasons)
    ends = [o.until for o in outcomes.values() if o.until > now]
    ends.extend(u for u in current.values() if u > now)  # a membership ends on time
    return VisitorUpdate(
        visitor_key=key,
        profile=orjson.dumps(profile.to_dict()).decode(),
        set_memberships=current,
        removed_memberships=sorted(previous.keys() - current.keys()),
        due=min(ends, default=math.inf),
        new_profile=new_profile,
    )


def _reasons(why) -> tuple[str, ...]:
    return tuple(why() if callable(why) else why)


def _persist_words(segment: CompiledSegment) -> str:
    return f"kept for {_words(segment.persist)} after the visitor last matched"


def _held_out(segment: CompiledSegment) -> str:
    return (
        f"matches the rule but is held out: not among the {segment.sample}% of matching "
        "visitors drawn into the segment"
    )


def process_batch(
    backend: BaseBackend,
    partition: int,
    entries: list[StreamEntry],
    segments: list[CompiledSegment],
) -> int:
    """Apply one batch of stream entries; returns how many events took effect.

    The batch's events are written to the durable log first, and only those newly written
    there are applied to profiles: an event already logged (a re-import, a retried beacon, a
    batch delivered again) never counts twice, whatever the number of copies, so profiles
    summarise exactly what the log holds. Where that cannot be known from the batch alone
    (some of a visitor's events were logged already, or the visitor has no stored profile),
    the visitor's event count in the log is compared with the profile's, and a profile that
    disagrees (a worker that died between the log and the fast store, a lost profile) is
    recomputed from the log; so is the profile of a visitor receiving an event older than
    their latest one, so that features depending on order (sessions, lines of one order) are
    always those of the events in time order.
    """
    now = time.time()
    purpose, version = get_setting("SEGMENTS_PURPOSE"), notice_version()
    # visitor key -> [(stream id, name, time, event id, properties)], in stream order
    by_visitor: dict[str, list[tuple]] = defaultdict(list)
    decode, uid = _events.decode_entry, eventlog.uid
    for entry in entries:
        event = decode(entry.fields)
        if event is None:
            logger.warning("Dropping a malformed stream entry %s", entry.entry_id)
            continue
        key, name, ts, event_id, properties = event
        try:
            event_id = uid(event_id)  # the log's key: a UUID
        except ValueError:
            event = None
        if event is None or not 0 <= ts <= MAX_TS:
            logger.warning("Dropping a malformed stream entry %s", entry.entry_id)
            continue
        by_visitor[key].append((parse_stream_id(entry.entry_id), name, ts, event_id, properties))

    # The durable consent record wins over a stale copy in the store (a decision made while
    # the store was unreachable): copy those visitors' state first, or fail the batch.
    sync_pending_mirrors(by_visitor, strict=True)
    states = backend.load_visitors(list(by_visitor))
    restore_lost_mirrors(backend, states)  # and a copy the store lost is rebuilt from it
    consented = [
        (key, items)
        for key, items in by_visitor.items()
        if _consented(states[key].fields, purpose, version, now)
    ]  # the others withdrew (or were erased) since the event was recorded: dropped
    rows: list[eventlog.Row] = []
    for key, items in consented:
        for _stream_id, name, ts, event_id, properties in items:
            rows.append((event_id, key, name, datetime.fromtimestamp(ts, tz=UTC), properties))
    written = eventlog.write(rows)
    check = [
        key
        for key, items in consented
        if states[key].profile is None or any(item[3] not in written for item in items)
    ]
    logged = eventlog.counts(check)
    profiles: dict[str, Profile] = {}
    replay: list[str] = []
    claimed: set[str] = set()
    fresh: dict[str, list] = {}  # visitor key -> the batch's events newly written to the log
    for key, items in consented:
        state = states[key]
        profile = profiles[key] = Profile.from_dict(
            orjson.loads(state.profile) if state.profile else None
        )
        new = fresh[key] = []
        for item in items:
            if item[3] in written and item[3] not in claimed:
                claimed.add(item[3])
                new.append(item)
        if key in check and sum(profile.totals.values()) + len(new) != logged.get(key, 0):
            replay.append(key)
            continue
        apply = profile.apply
        for stream_id, name, ts, _event_id, properties in new:
            # An event older than the visitor's latest (a backfill, a late import) would be
            # counted differently than in time order (sessions, lines of one order): the
            # profile is recomputed from the log in time order instead, as a rebuild does.
            last_seen = profile.last_seen
            # No event id: the log has just said that each of these is new.
            if (last_seen is not None and ts < last_seen) or not apply(
                name, ts, stream_id, properties
            ):
                replay.append(key)  # (or an out-of-order stream id): the log decides
                break
    took_effect = len(written)
    if replay:
        # Now counted: the batch's events that were logged but missing from the profile.
        took_effect += sum(len({item[3] for item in by_visitor[key]} - written) for key in replay)
        replayed, _ = eventlog.replay(replay)
        for key in replay:
            profile = replayed[key]
            profile.scores = profiles[key].scores  # model outputs: rescored as usual
            profile.last_id = max(profiles[key].last_id, *(item[0] for item in by_visitor[key]))
            profiles[key] = profile
    touched = list(profiles.items())
    for _key, profile in touched:
        profile.prune(now)
    score(touched, now)
    changes = _Changes()
    # Persistent context-only segments are decided from each page view's recorded request.
    persistent_context = any(s.context_only and s.persist > 0 for s in segments)
    updates = [
        settle(
            key,
            profile,
            _previous(states[key].fields),
            segments,
            now,
            changes,
            new_profile=states[key].profile is None,
            events=[(item[2], item[4]) for item in by_visitor[key] if item[1] == "page_view"]
            if persistent_context
            else (),
        )
        for key, profile in touched
    ]
    changes.save()
    run_steps(updates, profiles, fresh, states, now)
    backend.commit(partition, updates, [e.entry_id for e in entries], changes.sizes)
    metrics.drain_batch(partition, now, len(entries), took_effect)
    return took_effect


def run_steps(
    updates: list[VisitorUpdate],
    profiles: dict[str, Profile],
    fresh: dict[str, list],
    states: dict,
    now: float,
) -> None:
    """Let the registered batch steps (experiments, when installed) see the batch's visitors
    after settling, and carry the hash fields they set or delete into the updates."""
    if not extensions.extensions.batch_steps:
        return
    visitors = [
        extensions.BatchVisitor(
            key=u.visitor_key,
            profile=profiles[u.visitor_key],
            memberships=u.set_memberships,
            events=sorted(
                (
                    extensions.BatchEvent(item[1], item[2], item[4])
                    for item in fresh.get(u.visitor_key, ())
                ),
                key=lambda e: e.ts,
            ),
            fields=states[u.visitor_key].fields,
        )
        for u in updates
    ]
    changed = extensions.run_batch_steps(visitors, now)
    if not changed:
        return
    for u in updates:
        change = changed.get(u.visitor_key)
        if change is not None:
            u.set_fields.update(change.set)
            u.delete_fields.extend(change.delete)


def score(profiles: list[tuple[str, Profile]], now: float) -> None:
    """Let the registered scorers (model-driven segments, when installed) score the batch's
    visitors before their rules are evaluated (:mod:`segments.extensions`)."""
    extensions.score_profiles([p for _, p in profiles], now)


def reevaluate_due(now: float | None = None, limit: int = 1000) -> int:
    """Evaluate again the visitors whose memberships end (or time-based conditions start) by
    ``now``, without any new event: this records leaving on time and entering by time."""
    now = time.time() if now is None else now
    keys = get_backend().due_visitors(now, limit)
    return reevaluate(keys, now) if keys else 0


def reevaluate(keys: list[str], now: float, *, rescore: bool = False, wait: float = 2.0) -> int:
    """Evaluate the visitors' segments again (with ``rescore``, after the active models scored
    them again: the nightly re-scoring), a partition at a time under its drain lock (a
    partition whose lock stays taken for ``wait`` seconds is left for the next pass)."""
    backend = get_backend()
    # Under another count, a visitor's partition lock would be another's than their drain's.
    if not partitions_agree(backend, "Re-evaluation"):
        return 0
    segments = enabled_segments()
    by_partition: dict[int, list[str]] = defaultdict(list)
    for key in keys:
        by_partition[backend.partition_for(key)].append(key)
    done = 0
    with LockKeeper(backend) as keeper:
        for partition, partition_keys in by_partition.items():
            if not keeper.take(partition, wait=wait):
                continue  # a drain is busy there; next sweep
            try:
                done += _reevaluate_partition(
                    backend, partition, partition_keys, segments, now, rescore
                )
            finally:
                keeper.release(partition)
    return done


def reevaluate_everyone(now: float | None = None, batch: int = 1000) -> int:
    """Evaluate every stored visitor again against the segments as they are now: what a change
    to a segment's rule, enabled state or slug needs, so that its members follow it at their
    next request rather than after their next event is drained (until then the memberships
    stored under the old definition would keep choosing content). Waits for busy partitions
    (a drain holds one for at most ``SEGMENTS_DRAIN_MAX_SECONDS``)."""
    forget_definitions()  # this process may still hold the definitions from before the change
    now = time.time() if now is None else now
    wait = float(get_setting("SEGMENTS_DRAIN_MAX_SECONDS")) + 5.0
    done = 0
    for keys in get_backend().visitor_keys(batch):
        done += reevaluate(keys, now, wait=wait)
    return done


def _reevaluate_partition(
    backend: BaseBackend,
    partition: int,
    keys: list[str],
    segments: list[CompiledSegment],
    now: float,
    rescore: bool,
) -> int:
    states = backend.load_visitors(keys)
    changes = _Changes()
    profiles = [
        (key, Profile.from_dict(orjson.loads(p) if (p := states[key].profile) else None))
        for key in keys
    ]
    if rescore:
        score(profiles, now)
    updates = [
        settle(key, profile, _previous(states[key].fields), segments, now, changes)
        for key, profile in profiles
    ]
    changes.save()
    backend.commit(partition, updates, [], changes.sizes)
    return len(updates)


def _acquire(backend: BaseBackend, partition: int, token: str, wait: float) -> bool:
    ttl = int(get_setting("SEGMENTS_LOCK_TTL_MS"))
    deadline = time.monotonic() + wait
    while not backend.lock_partition(partition, token, ttl):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@contextmanager
def locks_of(backend: BaseBackend, partitions, wait: float) -> Iterator[int | None]:
    """Hold the drain locks of ``partitions`` for work that writes visitors' state outside
    the drain: every partition whose drain may be applying their events
    (:meth:`~segments.backends.base.BaseBackend.by_holding_partitions`: during a raise of
    PARTITIONS, a moving visitor's old partition too), taken in ascending order as an erasure
    takes them. Yields None once all are held, or the first that stayed locked for ``wait``
    seconds (then nothing may be written); releases those taken after."""
    token = uuid.uuid4().hex
    taken: list[int] = []
    try:
        for partition in sorted(set(partitions)):
            if not _acquire(backend, partition, token, wait):
                yield partition
                return
            taken.append(partition)
        yield None
    finally:
        for held in taken:
            backend.unlock_partition(held, token)


class LockKeeper:
    """Holds one drain's partition locks and keeps them alive while it works.

    The lock's lifetime (``SEGMENTS_LOCK_TTL_MS``, a few seconds) is short so that a worker
    that dies frees its partition within seconds; a live drain renews what it holds every
    third of that from a thread, however long a batch takes (a slow database). A renewal that
    finds the lock gone (it expired while the process was stalled, and another drain may have
    taken the partition) marks it lost: the drain stops working there after its batch (the
    other drain reclaims and applies the same entries again, which changes nothing)."""

    def __init__(self, backend: BaseBackend, token: str | None = None):
        self.backend = backend
        self.token = token or uuid.uuid4().hex
        self.ttl = int(get_setting("SEGMENTS_LOCK_TTL_MS"))
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LockKeeper":
        self._thread = threading.Thread(target=self._renew, name="drain-lock-keeper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for partition in list(self._held):
            self.release(partition)
        if self._thread is not None:
            self._thread.join(timeout=1)

    def take(self, partition: int, wait: float = 0.0) -> bool:
        if not _acquire(self.backend, partition, self.token, wait):
            return False
        with self._guard:
            self._held.add(partition)
            self._lost.discard(partition)
        return True

    def holds(self, partition: int) -> bool:
        return partition in self._held and partition not in self._lost

    def release(self, partition: int) -> None:
        with self._guard:
            self._held.discard(partition)
        self.backend.unlock_partition(partition, self.token)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3000):
            with self._guard:
                held = list(self._held)
            for partition in held:
                try:
                    alive = self.backend.refresh_lock(partition, self.token, self.ttl)
                except Exception as exc:  # unreachable store: the drain's own calls fail too
                    logger.warning("Could not renew a drain lock: %s", type(exc).__name__)
                    continue
                if not alive:
                    with self._guard:
                        self._lost.add(partition)


def _store_healthy(backend: BaseBackend) -> bool:
    """Whether the database and the fast store answer: tells a bad entry (which fails alone
    while both answer) from an outage (which fails every entry and must not cost any)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        if not connection.in_atomic_block:
            connection.close()  # the next query connects afresh
        return False
    return backend.ping()


def apply_isolated(
    backend: BaseBackend,
    partition: int,
    entries: list[StreamEntry],
    segments: list[CompiledSegment],
) -> int:
    """:func:`process_batch`, and when the batch fails, the same for each half, down to single
    entries: one entry that cannot be applied never holds up the others.

    A single entry that fails while the database and the fast store answer is tried again, up
    to ``SEGMENTS_DEAD_LETTER_ATTEMPTS`` times in all (counted in the store, across drains),
    then moved to the partition's dead-letter stream with its fields and the error's class.
    It is settled before any later entry of its half is applied, so a visitor's events are
    never applied out of order. A failure while either store does not answer is an outage: it
    is raised, and every entry not yet acknowledged waits for the next drain."""
    try:
        return process_batch(backend, partition, entries, segments)
    except Exception as exc:
        if not _store_healthy(backend):
            raise
        if len(entries) > 1:
            middle = len(entries) // 2
            return apply_isolated(backend, partition, entries[:middle], segments) + (
                apply_isolated(backend, partition, entries[middle:], segments)
            )
        error = exc
    entry = entries[0]
    limit = max(int(get_setting("SEGMENTS_DEAD_LETTER_ATTEMPTS")), 1)
    while True:
        attempts = backend.record_attempt(partition, entry.entry_id)
        if attempts >= limit:
            backend.dead_letter(partition, entry, type(error).__name__, attempts)
            # Counted and logged (drain.dead_letter) with the error's class only: its message
            # may quote the event's properties.
            metrics.dead_lettered(partition, 1, type(error).__name__)
            return 0
        try:
            return process_batch(backend, partition, entries, segments)
        except Exception as exc:
            if not _store_healthy(backend):
                raise
            error = exc


@dataclass(slots=True)
class _Round:
    """What one pass over the partitions found."""

    processed: int = 0
    read: int = 0
    empty: list[int] = field(default_factory=list)


def _turn(keeper: LockKeeper, partition: int, batch_size: int, segments, result: _Round) -> None:
    """One batch of one partition, under its lock; a partition another drain holds is skipped
    (that drain serves it)."""
    backend = keeper.backend
    if not backend.partition_ready(partition):
        return  # PARTITIONS being raised: its visitors' earlier events come first
    if not keeper.take(partition):
        return
    try:
        # Holding the lock, anything pending belongs to a drain that died: reclaimed first,
        # so each visitor's events are applied in order.
        entries = backend.read_batch(partition, consumer_name(), batch_size, reclaim=True)
        if not entries:
            result.empty.append(partition)
            return
        result.read += len(entries)
        result.processed += apply_isolated(backend, partition, entries, segments)
    finally:
        keeper.release(partition)


def drain_partition(partition: int, *, max_seconds: float | None = None) -> DrainResult:
    """Serve every partition with pending events, one batch per turn, round-robin (starting
    with ``partition``), until all are empty or the time budget is spent.

    Why round-robin in one task rather than one task per partition: a drain that kept its
    partition until empty held its worker process for as long as events kept arriving (up to
    ``SEGMENTS_DRAIN_MAX_SECONDS``), and with more partitions than worker processes the others
    waited that long. Here every drain task serves every partition a batch at a time, taking a
    partition's lock for one batch only: with N processes, up to N partitions are worked on at
    once, and none waits for more than one batch of each of the others. When a pass finds
    nothing, the drain waits up to ``SEGMENTS_DRAIN_LINGER_MS`` for any partition to receive
    an event, then clears the partitions' drain flags and looks once more (an event added
    before a flag was cleared is read now; one added after it schedules a new drain).
    """
    backend = get_backend()
    # One read per drain task, not per batch: a seal made meanwhile is seen by the next task.
    if not partitions_agree(backend, "Drain"):
        return DrainResult(0, more=False)
    if not 0 <= partition < backend.partitions:
        raise ValueError(
            f"No partition {partition} among this process's {backend.partitions}: the process "
            "that asked for it runs with another PARTITIONS (segments.E011)."
        )
    budget = get_setting("SEGMENTS_DRAIN_MAX_SECONDS") if max_seconds is None else max_seconds
    batch_size = int(get_setting("SEGMENTS_BATCH_SIZE"))
    linger = int(get_setting("SEGMENTS_DRAIN_LINGER_MS"))
    count = backend.partitions
    order = [(partition + n) % count for n in range(count)]
    processed = 0
    deadline = time.monotonic() + budget
    segments = enabled_segments()
    with LockKeeper(backend) as keeper:
        lingered = False
        while True:
            if time.monotonic() >= deadline:
                return DrainResult(processed, more=True)
            result = _Round()
            for p in order:
                _turn(keeper, p, batch_size, segments, result)
            processed += result.processed
            if result.read:
                lingered = False
                continue
            if linger and not lingered:
                lingered = True
                backend.wait_for_events(linger)
                continue
            # Nothing anywhere: clear the flags of the partitions found empty, then look once
            # more before ending.
            for p in result.empty:
                backend.clear_drain_flag(p)
            again = _Round()
            for p in order:
                _turn(keeper, p, batch_size, segments, again)
            processed += again.processed
            if not again.read:
                return DrainResult(processed, more=False)
            for p in order:
                if p not in again.empty:
                    backend.set_drain_flag(p)
            lingered = False


def pending_partitions() -> list[int]:
    return get_backend().pending_partitions()


def to_schedule(partitions: list[int]) -> list[int]:
    """Those of ``partitions`` that need a drain task: no drain is scheduled for or running on
    them (their drain flag was not set; it is set now), or they hold entries that a drain
    which died left unacknowledged for longer than the lock's lifetime (its flag may still be
    set; the new drain claims them). So the sweep never piles up drains for one backlog, and
    a dead worker's partition is taken over within seconds."""
    backend = get_backend()
    stale = set(backend.stale_partitions(int(get_setting("SEGMENTS_LOCK_TTL_MS"))))
    return [p for p in partitions if backend.set_drain_flag(p) or p in stale]
