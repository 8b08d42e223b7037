"""The interface of an event-stream and fast-store backend.

One backend provides both the event stream and the fast store, so that the request path can
check consent, append an event and read membership in a single round trip. Subclasses implement
every method below; :class:`segments.backends.redis.RedisBackend` is the production one and
:class:`segments.backends.embedded.EmbeddedBackend` keeps everything in process for the demo.

Keys are pseudonymous visitor keys (keyed hashes), never raw identifiers.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson

# Fields of the per-visitor membership hash. Segment memberships are "s:<slug>" -> until (epoch
# seconds, "inf" for open-ended); consent grants mirrored from the consent app are
# "_c:<purpose>" -> expiry (epoch seconds) with the notice version under "_nv". Sticky
# experiment assignments are "x:<experiment id>" -> "<assignment version>:<arm>", written by the
# drain's batch steps only and returned by the request path's exchange (Exchange.assignments).
# A visitor's recommendation state (recent items, "for you" list) is "r:<name>" -> value,
# written by the recommendations batch step and returned by the exchange
# (Exchange.recommendations, without the prefix).
SEGMENT_PREFIX = "s:"
ASSIGNMENT_PREFIX = "x:"
RECOMMENDATION_PREFIX = "r:"
CONSENT_PREFIX = "_c:"
NOTICE_FIELD = "_nv"
# The latest consent record's standing (consent.standing: which copies of the consent cookie
# still count), as the durable record gives it: "void" or "<record number>:<signed after>".
STANDING_FIELD = "_sq"


def claim_status(standing: str | None, claim: tuple[int, int]) -> int | None:
    """Whether a consent cookie's ``claim`` (its record number, -1 when it does not say it, and
    its signing time in whole seconds) still counts against a stored ``standing``: 1 yes, 0 no,
    None when there is no standing to compare with (the exchange script does the same)."""
    if standing is None:
        return None
    seq, _, after = standing.partition(":")
    if not after:
        return 0
    if claim[0] >= 0:
        return int(claim[0] >= int(seq))
    return int(claim[1] >= int(after))


# A visitor's features and memberships expire from the fast store this long (seconds) after
# their last activity, unless OPTIONS["PROFILE_TTL"] says otherwise. Defined only here: the
# record of processing (segments.privacy) reports it.
DEFAULT_PROFILE_TTL = 400 * 86400


def profile_ttl(options: dict) -> int:
    """The profile lifetime, in seconds, that a backend created with ``options`` applies."""
    return int(options.get("PROFILE_TTL", DEFAULT_PROFILE_TTL))


class BackendUnavailable(Exception):
    """The fast store cannot be reached; callers degrade to default content."""


class Exchange:
    """What one request-path round trip returned.

    ``consented`` is None when the store holds no consent state for the visitor (it was lost or
    expired: the caller rebuilds it from the durable consent record), else whether the purpose
    is currently granted. The memberships are those current at ``now`` (the time the call was
    made with): ``flat`` holds ``slug, end`` pairs as the store returned them, read into
    ``memberships`` (slug -> end, epoch seconds) only when asked. ``drain_needed`` is True when
    this call appended an event and no drain was scheduled. ``shed`` counts the events it
    refused because their partition was over its cap (back-pressure): those were not recorded.
    ``honoured`` says whether the consent cookie's claim the call was given still counts (None:
    none was given, or the store could not tell); when it does not, nothing was recorded.
    ``assignments`` holds the visitor's sticky experiment assignments read by the same call
    (experiment id -> ``"<assignment version>:<arm>"``; empty without consent), and
    ``recommendations`` the visitor's recommendation fields (``r:`` fields without their prefix;
    empty without consent).
    """

    __slots__ = (
        "_current",
        "_flat",
        "_memberships",
        "assignments",
        "consented",
        "drain_needed",
        "honoured",
        "now",
        "recommendations",
        "shed",
    )

    def __init__(
        self,
        consented: bool | None,
        *,
        now: float = -math.inf,
        flat: Sequence[str] = (),
        drain_needed: bool = False,
        shed: int = 0,
        honoured: bool | None = None,
        assignments: dict[str, str] | None = None,
        recommendations: dict[str, str] | None = None,
    ):
        self.consented = consented
        self.assignments = assignments if assignments is not None else {}
        self.recommendations = recommendations if recommendations is not None else {}
        self.honoured = honoured
        self.drain_needed = drain_needed
        self.shed = shed
        self.now = now
        self._flat = flat
        self._current: frozenset[str] | None = None
        self._memberships: dict[str, float] | None = None

    @property
    def memberships(self) -> dict[str, float]:
        if self._memberships is None:
            flat = self._flat
            self._memberships = dict(zip(flat[::2], map(_until, flat[1::2]), strict=True))
        return self._memberships

    def segments_at(self, now: float) -> frozenset[str]:
        if now <= self.now:  # every membership returned ends after self.now (the usual case)
            if self._current is None:
                self._current = frozenset(self._flat[::2])
            return self._current
        return frozenset(slug for slug, until in self.memberships.items() if until > now)

    def __repr__(self) -> str:
        return f"Exchange(consented={self.consented!r}, memberships={self.memberships!r})"


def _until(value) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


@dataclass(slots=True)
class VisitorState:
    """A visitor's stored features (serialized) and membership hash, as a worker reads them."""

    profile: str | None
    fields: dict[str, str]


@dataclass(slots=True)
class VisitorUpdate:
    """What a worker writes for one visitor. ``due`` is when the visitor must be evaluated
    again without new events (a membership ends, or a time-based condition starts to hold);
    ``math.inf`` for never. ``new_profile`` counts the visitor into the profile total.
    ``set_fields`` and ``delete_fields`` are other fields of the visitor's hash that the
    drain's batch steps (:mod:`segments.extensions`) set and delete, written with the rest."""

    visitor_key: str
    profile: str
    set_memberships: dict[str, float]
    removed_memberships: list[str]
    due: float = float("inf")
    new_profile: bool = False
    set_fields: dict[str, str] = field(default_factory=dict)
    delete_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    entry_id: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry the drain gave up on: its original fields (``k``: visitor key, ``d``: the
    encoded event), its id in the partition's stream, the class of the last error (never its
    message, which may quote the event) and how many times it was tried. ``entry_id`` is its
    id in the dead-letter stream, ``at`` when it was moved there (epoch seconds)."""

    partition: int
    entry_id: str
    original_id: str
    fields: dict[str, str]
    error: str
    attempts: int
    at: float


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One partition of the stream, as :func:`segments.api.stream_stats` reports it."""

    partition: int
    length: int  # entries accepted and not yet acknowledged (delivered or not)
    pending: int  # delivered to a drain, not acknowledged
    lag: int  # not yet delivered to any drain
    dead_letters: int
    shed: int  # events refused at intake because the partition was over its cap (or hard cap)
    oldest_age: float = 0.0  # seconds since the oldest unacknowledged entry was recorded
    group: bool | None = True  # the consumer group exists (None: no stream yet, which is fine)


# Events refused first when a partition is over its cap (OPTIONS["SHED_EVENTS"]).
DEFAULT_SHED_EVENTS = ("page_view",)
# Entries a partition may hold before sheddable events are refused (OPTIONS["MAX_LENGTH"]).
DEFAULT_MAX_LENGTH = 500_000
# Entries a partition may hold before every event but the kept ones is refused
# (OPTIONS["HARD_MAX_LENGTH"]), and the events still accepted then (OPTIONS["KEEP_EVENTS"]):
# the bound on the stream's memory when the sheddable events are not the burst.
DEFAULT_HARD_MAX_LENGTH = 2_000_000
DEFAULT_KEEP_EVENTS = ("purchase",)


def shed_prefix(name: str) -> str:
    """How the encoded event ("d") of a stream entry named ``name`` begins: the events module
    writes the name first (``{"n":"page_view",...``), so the exchange script recognises a
    sheddable event without decoding it."""
    return '{"n":' + orjson.dumps(name).decode() + ","


# The largest partition count OPTIONS["PARTITIONS"] may name (system check segments.E009).
MAX_PARTITIONS = 1024


def partition_count_problem(partitions: int, previous: int, stored: int | None) -> str | None:
    """Why a process with ``partitions`` (and ``previous``: PREVIOUS_PARTITIONS, 0 when unset)
    must not record or drain by them in a store sealed with ``stored`` partitions, or None.

    A visitor's partition is their key modulo the count: two counts map some visitors to two
    partitions, so their waiting events may sit where no drain looks (partitions beyond the
    smaller count) and their events may be applied out of order. The only two counts that may
    meet are those of a documented raise: PREVIOUS_PARTITIONS and PARTITIONS, with the store
    sealed with either (before and after ``seal_partitions``). None when nothing is stored yet
    (the first process to use the store records its count)."""
    if stored is None or stored == partitions:
        return None
    if previous and stored == previous:
        return None  # a raise in progress, not sealed yet
    mine = f"PARTITIONS={partitions}"
    if previous:
        mine += f" and PREVIOUS_PARTITIONS={previous}"
    return (
        f"This process runs with {mine}, but the store's partitions were sealed with "
        f"{stored}: its visitors' events would go to other partitions than the drains' "
        "(some never drained, some applied out of order). Raise PARTITIONS with "
        f"PREVIOUS_PARTITIONS={stored} then seal_partitions, or change it with the site "
        "stopped and the stream drained, then seal_partitions (docs/operations.md, "
        '"When processes disagree on PARTITIONS").'
    )


class BaseBackend:
    """Base class of backends: read the docstring of each method before implementing it."""

    def __init__(self, options: dict):
        self.options = options
        self.partitions = int(options.get("PARTITIONS", 4))
        # While PARTITIONS is being raised on a live site: the count before (see
        # partition_ready and docs/operations.md, "Raising PARTITIONS on a live site").
        self.previous_partitions = int(options.get("PREVIOUS_PARTITIONS", 0))
        self.profile_ttl = profile_ttl(options)
        self.drain_flag_ttl_ms = int(options.get("DRAIN_FLAG_TTL_MS", 10_000))
        # Back-pressure: over this many waiting entries, a partition refuses the sheddable
        # events (page views by default) at intake, never the others; 0: no cap.
        self.max_length = int(options.get("MAX_LENGTH", DEFAULT_MAX_LENGTH))
        self.shed_events = tuple(options.get("SHED_EVENTS", DEFAULT_SHED_EVENTS))
        # Over this many, every event but the KEEP_EVENTS (purchases by default) is refused.
        self.hard_max_length = int(options.get("HARD_MAX_LENGTH", DEFAULT_HARD_MAX_LENGTH))
        self.keep_events = tuple(options.get("KEEP_EVENTS", DEFAULT_KEEP_EVENTS))

    def partition_for(self, visitor_key: str) -> int:
        """Events of one visitor always go to the same partition, so they stay in order."""
        return int(visitor_key[:8], 16) % self.partitions

    def erasure_partitions(self, visitor_key: str) -> list[int]:
        """Every partition that may hold ``visitor_key``'s waiting events: theirs by this
        process's PARTITIONS first, then theirs by PREVIOUS_PARTITIONS (during a raise, a moving
        visitor's events wait in the old partition until the seal) and by the count the store
        was sealed with (a process whose count disagrees, segments.E011, erases where the
        others recorded). An erasure that looked in one partition only would leave events
        that the drain then applies: a profile made again after the erasure."""
        return list(next(iter(self.by_holding_partitions([visitor_key]))))

    def by_holding_partitions(self, visitor_keys) -> dict[tuple[int, ...], list[str]]:
        """``visitor_keys`` grouped by the partitions that may hold their waiting events, as
        :meth:`erasure_partitions` gives them (their own first), the store's sealed count read
        once: work that writes visitors' state outside the drain locks all of a group's."""
        try:
            stored = self.stored_partitions()
        except BackendUnavailable:  # the visitor's own partition still counts
            stored = None
        counts = [c for c in (self.previous_partitions, stored) if c and c != self.partitions]
        groups: dict[tuple[int, ...], list[str]] = {}
        for visitor_key in visitor_keys:
            held = [self.partition_for(visitor_key)]
            for count in counts:
                other = int(visitor_key[:8], 16) % count
                if other not in held:
                    held.append(other)
            groups.setdefault(tuple(held), []).append(visitor_key)
        return groups

    def partition_ready(self, partition: int) -> bool:
        """Whether a drain may serve ``partition`` now. While PARTITIONS is being raised from
        ``previous_partitions`` (N), a partition p >= N whose visitors' earlier events still
        wait in partition p mod N is not ready until those are applied (after
        :meth:`seal_resize`), so a visitor's events are applied in order. Backends without a
        resize to follow are always ready."""
        return True

    def seal_resize(self) -> dict[int, str]:
        """Once every process records by the new PARTITIONS: remember, for each old partition,
        its last entry so far (what :meth:`partition_ready` waits for), and record PARTITIONS
        as the store's count (:meth:`stored_partitions`), in one atomic step. Returns them."""
        return {}

    # -- the partition count the store was sealed with ----------------------------------------
    # Every process must record and drain by the same count (or by the two of a documented
    # raise): the store remembers it, so a process started with another one finds out.
    partitions_checked = False  # set by segments.recording once this process has compared

    def stored_partitions(self) -> int | None:
        """The partition count the store was sealed with, or None if none is recorded yet (a
        new or emptied store). One small read: never on the request path but once per
        process (:mod:`segments.recording`)."""
        raise NotImplementedError

    def record_partitions(self, count: int, *, replace: bool = False) -> int:
        """Record ``count`` as the store's partition count if none is recorded (or whatever
        is, with ``replace``); returns the count recorded after the call."""
        raise NotImplementedError

    def first_partitions(self) -> int:
        """The count a process records in a store that holds none: the old one during a raise
        that is not sealed yet, else PARTITIONS."""
        return self.previous_partitions or self.partitions

    def partition_problem(self, *, record: bool = True) -> str | None:
        """Why this process's PARTITIONS (and PREVIOUS_PARTITIONS) disagree with the store's
        (:func:`partition_count_problem`), or None. With ``record``, a store holding no count
        is given this process's (:meth:`first_partitions`): the first process to use a store
        seals it. Raises :class:`BackendUnavailable` when the store does not answer."""
        stored = self.stored_partitions()
        if stored is None and record:
            stored = self.record_partitions(self.first_partitions())
        return partition_count_problem(self.partitions, self.previous_partitions, stored)

    def waiting_partitions(self, count: int) -> list[int]:
        """Those of the first ``count`` partitions (whatever PARTITIONS says) that hold
        entries not yet acknowledged or dead letters: what must be empty before the store's
        count is changed without a raise (``seal_partitions`` checks it)."""
        raise NotImplementedError

    # -- request path -----------------------------------------------------------------------
    def exchange(
        self,
        visitor_key: str,
        *,
        purpose: str,
        notice_version: str,
        now: float,
        events: Sequence[dict[str, str]] = (),
        claim: tuple[int, int] | None = None,
    ) -> Exchange:
        """In one round trip: check that ``purpose`` is granted in the stored consent state
        (and, given a consent cookie's ``claim``, that the cookie still counts:
        :func:`claim_status`; not consented when it does not, and no consent state when there
        is no standing to check it against), append ``events`` (stream fields "k" and "d") to
        the visitor's partition, in order, only if it is, mark the partition as needing a
        drain, and return the membership hash."""
        raise NotImplementedError

    def ping(self) -> bool:
        raise NotImplementedError

    def durability_problems(self) -> list[str]:
        """What in the store's own configuration can lose events it accepted (a deployment
        check reports them); none by default."""
        return []

    def append_events(self, partition: int, events: Sequence[dict[str, str]]) -> None:
        """Append events (stream fields) to a partition in bulk, for imports: the caller has
        checked consent. Schedules nothing."""
        raise NotImplementedError

    # -- consent mirror ---------------------------------------------------------------------
    def set_consent(
        self,
        visitor_key: str,
        grants: dict[str, float],
        notice_version: str,
        ttl: int,
        *,
        standing: str = "0:0",
    ) -> None:
        """Replace the stored consent state: ``grants`` maps purpose to expiry (epoch seconds);
        purposes absent from it are not granted; ``standing`` is the latest record's
        (:data:`STANDING_FIELD`; by default any copy of the visitor's cookie counts)."""
        raise NotImplementedError

    # -- workers ----------------------------------------------------------------------------
    def lock_partition(self, partition: int, token: str, ttl_ms: int) -> bool:
        """Take the partition's drain lock (one drain per partition keeps events in order)."""
        raise NotImplementedError

    def refresh_lock(self, partition: int, token: str, ttl_ms: int) -> bool:
        """Extend the lock if ``token`` still holds it (atomically); False if it does not."""
        raise NotImplementedError

    def unlock_partition(self, partition: int, token: str) -> None:
        raise NotImplementedError

    def clear_drain_flag(self, partition: int) -> None:
        raise NotImplementedError

    def set_drain_flag(self, partition: int) -> bool:
        """Set the flag; True if it was not set (the caller must then make sure a drain runs)."""
        raise NotImplementedError

    def read_batch(
        self, partition: int, consumer: str, count: int, *, reclaim: bool = False, block_ms: int = 0
    ) -> list[StreamEntry]:
        """Entries of the partition not yet acknowledged, oldest first: first any left pending
        by a consumer that died (reclaimed for ``consumer``, when ``reclaim``), then new ones,
        waiting up to ``block_ms`` for some to arrive if there are none."""
        raise NotImplementedError

    def wait_for_events(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for an event to arrive in any partition (an idle drain's
        linger); True if one did. Backends that cannot wait return False at once."""
        return False

    def record_attempt(self, partition: int, entry_id: str) -> int:
        """Count one failed attempt at applying an entry; returns the count so far (kept
        until the entry is acknowledged or dead-lettered, across drains)."""
        raise NotImplementedError

    def dead_letter(self, partition: int, entry: StreamEntry, error: str, attempts: int) -> None:
        """Atomically move ``entry`` to the partition's dead-letter stream (with its fields,
        the error class and the attempts) and acknowledge it in the event stream."""
        raise NotImplementedError

    def dead_letters(self, partition: int | None = None, limit: int = 500) -> list[DeadLetter]:
        """Dead-lettered entries (of one partition, or all), oldest first, at most ``limit``."""
        raise NotImplementedError

    def requeue_dead_letter(self, partition: int, entry_id: str) -> bool:
        """Append a dead-lettered entry to its partition's stream again (a new entry, read
        after everything already waiting) and remove it from the dead letters; False if there
        is no such dead letter."""
        raise NotImplementedError

    def discard_dead_letter(self, partition: int, entry_id: str) -> bool:
        """Remove a dead-lettered entry for good; False if there is no such dead letter."""
        raise NotImplementedError

    def stream_stats(self, now: float | None = None) -> list[PartitionStats]:
        """Each partition's backlog, dead letters, shed events, the age of its oldest waiting
        entry at ``now`` and whether its consumer group exists (for operators: health checks,
        metrics scrapes and the admin; never the request path)."""
        raise NotImplementedError

    def load_visitors(self, keys: list[str]) -> dict[str, VisitorState]:
        raise NotImplementedError

    def commit(
        self,
        partition: int,
        updates: list[VisitorUpdate],
        acked: list[str],
        size_deltas: dict[str, int] | None = None,
    ) -> None:
        """Atomically write the updates, adjust segment sizes and acknowledge ``acked``
        entries (then delete them from the stream)."""
        raise NotImplementedError

    def due_visitors(self, now: float, limit: int) -> list[str]:
        """Visitors whose re-evaluation time has come, earliest first."""
        raise NotImplementedError

    def segment_sizes(self) -> dict[str, int]:
        raise NotImplementedError

    def profile_count(self) -> int:
        raise NotImplementedError

    def sample_profiles(self, limit: int) -> list[str]:
        """Up to ``limit`` stored profiles (serialized), for size estimates."""
        raise NotImplementedError

    def visitor_keys(self, batch: int = 1000) -> Iterator[list[str]]:
        """Every visitor with stored features, in batches (for the nightly re-scoring)."""
        raise NotImplementedError

    def pending_partitions(self) -> list[int]:
        """Partitions with entries that no consumer has acknowledged."""
        raise NotImplementedError

    def stale_partitions(self, idle_ms: int) -> list[int]:
        """Partitions holding entries delivered to a drain at least ``idle_ms`` ago and not
        acknowledged: what a drain that died left behind."""
        raise NotImplementedError

    # -- data-subject requests ---------------------------------------------------------------
    def erase_visitor(self, visitor_key: str) -> int:
        """Remove the visitor's features, memberships, sticky experiment assignments,
        recommendation fields, unprocessed stream entries and dead letters (consent fields
        stay: they are the tombstone that drops later events). Returns how many stream entries
        (dead letters included) were removed. The caller holds the visitor's partition lock."""
        raise NotImplementedError

    def visitor_data(self, visitor_key: str) -> VisitorState:
        raise NotImplementedError

    def rename_visitor(self, old_key: str, new_key: str) -> None:
        """Move features, memberships, sticky experiment assignments and recommendation
        fields to a rotated key."""
        raise NotImplementedError

    def flush(self, keep_stream: bool = False) -> None:
        """Remove everything this backend stored (tests), or everything but the event stream
        and its consumer group, the store's partition count and the seal of a raise of
        PARTITIONS in progress (rebuilds)."""
        raise NotImplementedError

    # -- operations (read by health checks and metrics scrapes, never on the request path) ----
    def ensure_consumer_groups(self) -> list[int]:
        """Create every partition's stream and consumer group where missing (from the start of
        the stream, so nothing in it is skipped); returns the partitions whose group was
        missing. Idempotent."""
        raise NotImplementedError

    def set_heartbeat(self, now: float) -> None:
        """Record that a worker ran a periodic task at ``now`` (epoch seconds)."""
        raise NotImplementedError

    def heartbeat(self) -> float | None:
        """When a worker last recorded a heartbeat, or None."""
        raise NotImplementedError
