"""Embedded backend: the same semantics as the Redis backend, held in this process.

For the zero-setup demo and for single-process deployments: consent state, memberships,
features and the partitioned event stream (with consumer-group delivery, pending entries and
reclaiming) live in dictionaries guarded by a lock. Nothing survives a restart, exactly like a
Redis without persistence; the durable event log in the database is the source of truth.
"""

import itertools
import threading
import time
from collections import OrderedDict

from .base import (
    ASSIGNMENT_PREFIX,
    CONSENT_PREFIX,
    NOTICE_FIELD,
    RECOMMENDATION_PREFIX,
    SEGMENT_PREFIX,
    STANDING_FIELD,
    BaseBackend,
    DeadLetter,
    Exchange,
    PartitionStats,
    StreamEntry,
    VisitorState,
    VisitorUpdate,
    _until,
    claim_status,
    shed_prefix,
)


class _Stream:
    def __init__(self) -> None:
        self.entries: OrderedDict[str, dict[str, str]] = OrderedDict()  # unacknowledged
        self.delivered: set[str] = set()  # pending: delivered, not acknowledged
        self.dead: OrderedDict[str, DeadLetter] = OrderedDict()
        self.attempts: dict[str, int] = {}
        self.shed = 0


class EmbeddedBackend(BaseBackend):
    def __init__(self, options: dict):
        super().__init__(options)
        self._lock = threading.RLock()
        self._hashes: dict[str, dict[str, str]] = {}
        self._profiles: dict[str, str] = {}
        self._streams = [_Stream() for _ in range(self.partitions)]
        self._flags: dict[str, tuple[float, str]] = {}
        self._seq = itertools.count()
        self._due: dict[str, float] = {}
        self._sizes: dict[str, int] = {}
        self._nprofiles = 0
        self._stored_partitions: int | None = None  # as the Redis backend's P:partitions
        self._last_ms = 0
        self._shed_prefixes = tuple(shed_prefix(name) for name in self.shed_events)
        self._keep_prefixes = tuple(shed_prefix(name) for name in self.keep_events)

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        self._last_ms = max(ms, self._last_ms)
        return f"{self._last_ms}-{next(self._seq)}"

    def _flag(self, name: str, ttl_ms: int, value: str = "1") -> bool:
        now = time.monotonic()
        held = self._flags.get(name)
        if held is not None and held[0] > now:
            return False
        self._flags[name] = (now + ttl_ms / 1000, value)
        return True

    # -- request path -----------------------------------------------------------------------
    def exchange(self, visitor_key, *, purpose, notice_version, now, events=(), claim=None):
        with self._lock:
            h = self._hashes.get(visitor_key)
            if not h:
                return Exchange(consented=None)
            honoured = None
            if claim is not None:
                status = claim_status(h.get(STANDING_FIELD), claim)
                if status is None:
                    return Exchange(consented=None)
                honoured = bool(status)
                if not honoured:
                    return Exchange(consented=False, honoured=False)
            expiry = h.get(CONSENT_PREFIX + purpose)
            if expiry is None or float(expiry) <= now or h.get(NOTICE_FIELD) != notice_version:
                return Exchange(consented=False, honoured=honoured)
            drain = False
            shed = 0
            if events:
                partition = self.partition_for(visitor_key)
                stream = self._streams[partition]
                length = len(stream.entries)
                over = 0 < self.max_length <= length
                full = 0 < self.hard_max_length <= length
                added = 0
                for fields in events:
                    if (full and not fields["d"].startswith(self._keep_prefixes)) or (
                        over and fields["d"].startswith(self._shed_prefixes)
                    ):
                        stream.shed += 1
                        shed += 1
                        continue
                    stream.entries[self._next_id()] = {"k": fields["k"], "d": fields["d"]}
                    added += 1
                drain = bool(added) and self._flag(f"drain:{partition}", self.drain_flag_ttl_ms)
            flat = []
            assignments = {}
            recommendations = {}
            for k, v in h.items():
                if k.startswith(SEGMENT_PREFIX):
                    if _until(v) > now:
                        flat += (k[len(SEGMENT_PREFIX) :], v)
                elif k.startswith(ASSIGNMENT_PREFIX):
                    assignments[k[len(ASSIGNMENT_PREFIX) :]] = v
                elif k.startswith(RECOMMENDATION_PREFIX):
                    recommendations[k[len(RECOMMENDATION_PREFIX) :]] = v
            return Exchange(
                True,
                now=now,
                flat=flat,
                drain_needed=drain,
                shed=shed,
                honoured=honoured,
                assignments=assignments,
                recommendations=recommendations,
            )

    def append_events(self, partition, events):
        with self._lock:
            stream = self._streams[partition]
            for fields in events:
                stream.entries[self._next_id()] = {"k": fields["k"], "d": fields["d"]}

    def ping(self):
        return True

    # -- consent mirror ---------------------------------------------------------------------
    def set_consent(self, visitor_key, grants, notice_version, ttl, *, standing="0:0"):
        with self._lock:
            h = self._hashes.setdefault(visitor_key, {})
            for k in [k for k in h if k.startswith(CONSENT_PREFIX)]:
                del h[k]
            h[NOTICE_FIELD] = notice_version
            h[STANDING_FIELD] = standing
            for purpose, expiry in grants.items():
                h[CONSENT_PREFIX + purpose] = repr(float(expiry))

    # -- workers ----------------------------------------------------------------------------
    def lock_partition(self, partition, token, ttl_ms):
        with self._lock:
            return self._flag(f"lock:{partition}", ttl_ms, token)

    def refresh_lock(self, partition, token, ttl_ms):
        with self._lock:
            held = self._flags.get(f"lock:{partition}")
            if held is None or held[1] != token or held[0] <= time.monotonic():
                return False
            self._flags[f"lock:{partition}"] = (time.monotonic() + ttl_ms / 1000, token)
            return True

    def record_attempt(self, partition, entry_id):
        with self._lock:
            attempts = self._streams[partition].attempts
            attempts[entry_id] = attempts.get(entry_id, 0) + 1
            return attempts[entry_id]

    def dead_letter(self, partition, entry, error, attempts):
        with self._lock:
            stream = self._streams[partition]
            dead_id = self._next_id()
            stream.dead[dead_id] = DeadLetter(
                partition, dead_id, entry.entry_id, dict(entry.fields), error, attempts, time.time()
            )
            stream.entries.pop(entry.entry_id, None)
            stream.delivered.discard(entry.entry_id)
            stream.attempts.pop(entry.entry_id, None)

    def dead_letters(self, partition=None, limit=500):
        with self._lock:
            streams = self._streams if partition is None else [self._streams[partition]]
            found = [d for s in streams for d in s.dead.values()]
        found.sort(key=lambda d: (d.at, d.partition))
        return found[:limit]

    def requeue_dead_letter(self, partition, entry_id):
        with self._lock:
            stream = self._streams[partition]
            dead = stream.dead.pop(entry_id, None)
            if dead is None:
                return False
            stream.entries[self._next_id()] = dict(dead.fields)
            return True

    def discard_dead_letter(self, partition, entry_id):
        with self._lock:
            return self._streams[partition].dead.pop(entry_id, None) is not None

    def stream_stats(self, now=None):
        now = time.time() if now is None else now
        with self._lock:
            return [
                PartitionStats(
                    partition=p,
                    length=len(s.entries),
                    pending=len(s.delivered),
                    lag=len(s.entries) - len(s.delivered),
                    dead_letters=len(s.dead),
                    shed=s.shed,
                    oldest_age=_age(next(iter(s.entries), None), now),
                )
                for p, s in enumerate(self._streams)
            ]

    def unlock_partition(self, partition, token):
        with self._lock:
            held = self._flags.get(f"lock:{partition}")
            if held is not None and held[1] == token:
                del self._flags[f"lock:{partition}"]

    def clear_drain_flag(self, partition):
        with self._lock:
            self._flags.pop(f"drain:{partition}", None)

    def set_drain_flag(self, partition):
        with self._lock:
            return self._flag(f"drain:{partition}", self.drain_flag_ttl_ms)

    def read_batch(self, partition, consumer, count, *, reclaim=False, block_ms=0):
        with self._lock:
            stream = self._streams[partition]
            if reclaim and stream.delivered:
                ids = [i for i in stream.entries if i in stream.delivered][:count]
                if ids:
                    return [StreamEntry(i, dict(stream.entries[i])) for i in ids]
            fresh = [i for i in stream.entries if i not in stream.delivered][:count]
            stream.delivered.update(fresh)
            return [StreamEntry(i, dict(stream.entries[i])) for i in fresh]

    def load_visitors(self, keys):
        with self._lock:
            return {
                k: VisitorState(profile=self._profiles.get(k), fields=dict(self._hashes.get(k, {})))
                for k in keys
            }

    def commit(self, partition, updates: list[VisitorUpdate], acked, size_deltas=None):
        with self._lock:
            for slug, delta in (size_deltas or {}).items():
                self._sizes[slug] = self._sizes.get(slug, 0) + delta
            for u in updates:
                self._nprofiles += u.new_profile
                if u.due == float("inf"):
                    self._due.pop(u.visitor_key, None)
                else:
                    self._due[u.visitor_key] = u.due
                self._profiles[u.visitor_key] = u.profile
                h = self._hashes.setdefault(u.visitor_key, {})
                for slug in u.removed_memberships:
                    h.pop(SEGMENT_PREFIX + slug, None)
                for slug, until in u.set_memberships.items():
                    h[SEGMENT_PREFIX + slug] = repr(float(until))
                for name in u.delete_fields:
                    h.pop(name, None)
                h.update(u.set_fields)
            stream = self._streams[partition]
            for entry_id in acked:
                stream.entries.pop(entry_id, None)
                stream.delivered.discard(entry_id)

    def due_visitors(self, now, limit):
        with self._lock:
            due = sorted((t, k) for k, t in self._due.items() if t <= now)
            return [k for _t, k in due[:limit]]

    def segment_sizes(self):
        with self._lock:
            return {k: max(v, 0) for k, v in self._sizes.items()}

    def profile_count(self):
        return self._nprofiles

    def sample_profiles(self, limit):
        with self._lock:
            return list(itertools.islice(self._profiles.values(), limit))

    def visitor_keys(self, batch=1000):
        with self._lock:
            keys = list(self._profiles)
        for start in range(0, len(keys), batch):
            yield keys[start : start + batch]

    def pending_partitions(self):
        with self._lock:
            return [p for p, s in enumerate(self._streams) if s.entries]

    def stale_partitions(self, idle_ms):
        return []  # one process: a drain that died took the whole backend with it

    def erase_visitor(self, visitor_key):
        partitions = self.erasure_partitions(visitor_key)
        with self._lock:
            doomed, dead = [], []
            for p in partitions:
                if p >= len(self._streams):
                    continue
                stream = self._streams[p]
                mine = [i for i, f in stream.entries.items() if f.get("k") == visitor_key]
                for entry_id in mine:
                    del stream.entries[entry_id]
                    stream.delivered.discard(entry_id)
                letters = [i for i, d in stream.dead.items() if d.fields.get("k") == visitor_key]
                for entry_id in letters:  # dead letters are the visitor's events too
                    del stream.dead[entry_id]
                doomed += mine
                dead += letters
            if self._profiles.pop(visitor_key, None) is not None:
                self._nprofiles -= 1
            self._due.pop(visitor_key, None)
            h = self._hashes.get(visitor_key, {})
            for k in [k for k in h if k.startswith(SEGMENT_PREFIX)]:
                del h[k]
                slug = k[len(SEGMENT_PREFIX) :]
                self._sizes[slug] = self._sizes.get(slug, 0) - 1
            for k in [k for k in h if k.startswith((ASSIGNMENT_PREFIX, RECOMMENDATION_PREFIX))]:
                del h[k]
            return len(doomed) + len(dead)

    def visitor_data(self, visitor_key):
        return self.load_visitors([visitor_key])[visitor_key]

    def rename_visitor(self, old_key, new_key):
        with self._lock:
            profile = self._profiles.pop(old_key, None)
            if profile is not None:
                self._profiles[new_key] = profile
            old = self._hashes.pop(old_key, {})
            new = self._hashes.setdefault(new_key, {})
            new.update(
                {
                    k: v
                    for k, v in old.items()
                    if k.startswith((SEGMENT_PREFIX, ASSIGNMENT_PREFIX, RECOMMENDATION_PREFIX))
                }
            )

    def flush(self, keep_stream=False):
        with self._lock:
            self._hashes.clear()
            self._profiles.clear()
            if not keep_stream:
                self._streams = [_Stream() for _ in range(self.partitions)]
                self._flags.clear()
                self._stored_partitions = None
            self._due.clear()
            self._sizes.clear()
            self._nprofiles = 0

    # -- the partition count the store was sealed with ----------------------------------------
    # One process holds the store, so its count cannot disagree with another's; kept anyway,
    # with the Redis backend's semantics, so that the checks, the drain's refusal and
    # seal_partitions behave the same on both.
    def seal_resize(self):
        with self._lock:
            if self.previous_partitions:
                self._stored_partitions = self.partitions
        return {}

    def stored_partitions(self):
        return self._stored_partitions

    def record_partitions(self, count, *, replace=False):
        with self._lock:
            if replace or self._stored_partitions is None:
                self._stored_partitions = int(count)
            return self._stored_partitions

    def waiting_partitions(self, count):
        with self._lock:
            return [
                p for p, stream in enumerate(self._streams[:count]) if stream.entries or stream.dead
            ]

    # -- operations -------------------------------------------------------------------------

    def ensure_consumer_groups(self):
        return []  # the embedded stream has its one group built in

    def set_heartbeat(self, now):
        self._heartbeat = now

    def heartbeat(self):
        return getattr(self, "_heartbeat", None)


def _age(entry_id: str | None, now: float) -> float:
    """Seconds since the entry (a stream id, milliseconds first) was recorded; 0 for none."""
    if entry_id is None:
        return 0.0
    return max(now - int(entry_id.partition("-")[0]) / 1000, 0.0)
