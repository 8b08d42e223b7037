"""What the segments app counts for operators (Prometheus) and the structured log lines that go
with it (docs/operations.md lists both).

The request path and the drain call one function of this module per hook, so that those
modules stay readable and the cost stays visible: on the request path a hook is a counter
increment and one histogram observation (a few microseconds, no I/O, nothing added to the one
round trip). Shared state (stream lengths, pending and dead-letter entries, lag, the workers'
heartbeat) is not counted here but read from the fast store when the endpoint is scraped
(:func:`collect`).

Log lines carry an ``event`` name and numeric or enumerated fields only (``extra``): never a
property value, a visitor key, an address or an exception message (which may quote data), only
an exception's type. :class:`tailored.logs.JsonFormatter` writes them as JSON.
"""

import logging
import time

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from .backends import get_backend

logger = logging.getLogger("segments.operations")

ROUND_TRIP = Histogram(
    "tailored_fast_store_round_trip_seconds",
    "Request path: time of the one round trip to the fast store (record events, read "
    "memberships), including a rare rebuild of a missing consent mirror.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ROUND_TRIP_ERRORS = Counter(
    "tailored_fast_store_errors",
    "Request path: round trips to the fast store that failed (timeouts, refused connections, "
    "error replies); each opens the breaker for SEGMENTS_FAILURE_BACKOFF seconds.",
)
BREAKER_OPENED = Counter(
    "tailored_fast_store_breaker_opened",
    "Times a process stopped using the fast store after a failure (pages render default content).",
)
EVENTS_ACCEPTED = Counter(
    "tailored_events_accepted",
    "Events (page views, client and server events) appended to the stream.",
)
EVENTS_REFUSED = Counter(
    "tailored_events_refused",
    "Events not recorded, by reason: no_consent (the fast store's consent state refused them), "
    "unavailable (fast store down or its breaker open).",
    ["reason"],
)
DRAIN_BATCH_SECONDS = Histogram(
    "tailored_drain_batch_seconds",
    "Worker: time to apply one batch of stream entries (features, scoring, rules, durable log, "
    "memberships, acknowledgement).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DRAIN_BATCH_SIZE = Histogram(
    "tailored_drain_batch_size",
    "Worker: stream entries per batch (at most SEGMENTS_BATCH_SIZE).",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
DRAIN_EVENTS = Counter(
    "tailored_drain_events",
    "Worker: events that took effect (new to the visitor's profile and written to the durable "
    "log); entries read but dropped (withdrawn consent, duplicates) are not counted.",
)
MEMBERSHIP_CHANGES = Counter(
    "tailored_membership_changes",
    "Visitors entering or leaving a segment, by segment slug and change (entered, exited).",
    ["segment", "change"],
)
DEAD_LETTERS = Counter(
    "tailored_dead_letters",
    "Stream entries set aside as unprocessable (dead-lettered), by reason.",
    ["reason"],
)
CONSENT_MIRROR_FAILURES = Counter(
    "tailored_consent_mirror_failures",
    "Consent decisions whose copy could not be written to the fast store (the durable record "
    "is written; a withdrawal not mirrored keeps recording until the mirror is repaired).",
    ["change"],
)

_store_down = False  # this process last saw the fast store fail


def clock() -> float:
    return time.perf_counter()


# -- request path ------------------------------------------------------------------------------
def exchanged(started: float, events: int, consented: bool | None) -> None:
    """One round trip done: its time, and its events accepted or refused."""
    global _store_down
    ROUND_TRIP.observe(time.perf_counter() - started)
    if events:
        if consented:
            EVENTS_ACCEPTED.inc(events)
        else:
            EVENTS_REFUSED.labels("no_consent").inc(events)
    if _store_down:
        _store_down = False
        logger.warning("Fast store reachable again", extra={"event": "fast_store.up"})


def exchange_failed(events: int) -> None:
    """A round trip failed (the caller opens the breaker)."""
    ROUND_TRIP_ERRORS.inc()
    if events:
        EVENTS_REFUSED.labels("unavailable").inc(events)


def skipped(events: int) -> None:
    """The breaker is open: no round trip was attempted."""
    if events:
        EVENTS_REFUSED.labels("unavailable").inc(events)


def fast_store_down(exc: Exception, backoff: float) -> None:
    global _store_down
    _store_down = True
    BREAKER_OPENED.inc()
    logger.warning(
        "Fast store unavailable, serving default content for %.1f s: %s",
        backoff,
        type(exc).__name__,
        extra={"event": "fast_store.down", "error": type(exc).__name__, "backoff_s": backoff},
    )


# -- workers -------------------------------------------------------------------------------------
def drain_batch(partition: int, started: float, entries: int, applied: int) -> None:
    """One batch applied; ``started`` is the batch's ``time.time()`` at its start."""
    seconds = max(time.time() - started, 0.0)
    DRAIN_BATCH_SECONDS.observe(seconds)
    DRAIN_BATCH_SIZE.observe(entries)
    if applied:
        DRAIN_EVENTS.inc(applied)
    logger.debug(
        "Drain batch done: partition %d, %d entries, %d applied, %.3f s",
        partition,
        entries,
        applied,
        seconds,
        extra={
            "event": "drain.batch_done",
            "partition": partition,
            "entries": entries,
            "applied": applied,
            "seconds": round(seconds, 4),
        },
    )


def membership_changes(rows) -> None:
    """Membership history rows about to be saved (entries and exits)."""
    for row in rows:
        MEMBERSHIP_CHANGES.labels(row.segment, "entered" if row.entered else "exited").inc()


def dead_lettered(partition: int, count: int, reason: str) -> None:
    """Entries set aside as unprocessable (``reason``: a short fixed word, e.g. "malformed",
    "poison"; never the entry's content)."""
    DEAD_LETTERS.labels(reason).inc(count)
    logger.error(
        "%d stream entries dead-lettered in partition %d (%s)",
        count,
        partition,
        reason,
        extra={
            "event": "drain.dead_letter",
            "partition": partition,
            "count": count,
            "reason": reason,
        },
    )


def consent_mirror_failed(exc: Exception, withdrawal: bool) -> None:
    change = "withdrawal" if withdrawal else "grant"
    CONSENT_MIRROR_FAILURES.labels(change).inc()
    logger.error(
        "Could not mirror a consent %s into the fast store: %s",
        change,
        type(exc).__name__,
        extra={"event": "consent.mirror_failed", "change": change, "error": type(exc).__name__},
    )


# -- scrape time ---------------------------------------------------------------------------------
def collect():
    """Gauges read from the fast store at scrape time (registered with tailored.metrics)."""
    now = time.time()
    backend = get_backend()
    up = GaugeMetricFamily(
        "tailored_fast_store_up", "Whether the fast store answered this scrape (1) or not (0)."
    )
    try:
        stats = backend.stream_stats(now)
        beat = backend.heartbeat()
    except Exception:
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    families = {
        "length": GaugeMetricFamily(
            "tailored_stream_length", "Entries in the partition's stream.", labels=["partition"]
        ),
        "pending": GaugeMetricFamily(
            "tailored_stream_pending",
            "Entries delivered to a drain and not acknowledged yet.",
            labels=["partition"],
        ),
        "lag": GaugeMetricFamily(
            "tailored_stream_undelivered",
            "Entries no drain has read yet.",
            labels=["partition"],
        ),
        "dead_letters": GaugeMetricFamily(
            "tailored_stream_dead_letter",
            "Entries set aside as unprocessable, waiting for an operator.",
            labels=["partition"],
        ),
        "oldest_age": GaugeMetricFamily(
            "tailored_stream_lag_seconds",
            "Age of the partition's oldest unacknowledged entry (0: nothing waiting): how far "
            "behind the workers are.",
            labels=["partition"],
        ),
    }
    for row in stats:
        for key, family in families.items():
            family.add_metric([str(row.partition)], float(getattr(row, key) or 0))
    yield from families.values()
    if beat is not None:
        age = GaugeMetricFamily(
            "tailored_worker_heartbeat_age_seconds",
            "Seconds since a Celery worker last ran the beat-scheduled sweep (every 5 s).",
        )
        age.add_metric([], max(now - beat, 0.0))
        yield age
