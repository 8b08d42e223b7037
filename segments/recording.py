"""Recording behaviour: the request path's one round trip to the fast store (record the events
if the server's consent state allows it, read the memberships back), server-side and client
events validated and recorded in one round trip, and the drain a worker is asked for.

Calls go through the process's circuit breaker (:mod:`segments.breaker`): a fast store that
fails, times out (the backend's ``REQUEST_TIMEOUT``) or answers slowly again and again is left
alone for ``SEGMENTS_FAILURE_BACKOFF`` seconds. Pages render default content meanwhile, at
once, and no event is accepted (:func:`record_events` says so). Then one request probes the
store; when it answers quickly again, consent decisions it missed are copied into it."""

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from consent.api import ConsentState, get_consent, notice_version

from . import events as _events
from . import metrics
from .backends import breaker_policy, get_backend, request_breaker
from .backends.base import BackendUnavailable, Exchange
from .conf import get_setting
from .consent_mirror import mirror_consent_from_record, sync_pending_mirrors, tracking_purpose
from .events import Event, EventError

logger = logging.getLogger(__name__)
# What exchange() returns when the store was not asked (breaker open) or did not answer: no
# consent as far as the page is concerned (default content), and nothing recorded.
UNAVAILABLE = Exchange(consented=False)


def _backend_usable() -> bool:
    return request_breaker.allow(breaker_policy())


def _mark_down(exc: Exception) -> None:
    request_breaker.failure(breaker_policy())
    metrics.fast_store_down(exc, float(get_setting("SEGMENTS_FAILURE_BACKOFF")))


def _mark_up(seconds: float) -> None:
    if request_breaker.success(seconds, breaker_policy()):
        logger.info("Fast store available again")
        try:  # consent decisions made while it was away (also done by a periodic task)
            sync_pending_mirrors(limit=100)
        except Exception as exc:  # the page must not fail for it
            logger.warning("Could not copy pending consent states: %s", type(exc).__name__)


def store_retry_after() -> float:
    """Seconds until the request path tries the fast store again (0: it is being used)."""
    return request_breaker.retry_after()


def exchange(
    visitor_key: str,
    event: Event | None = None,
    *,
    visitor_id: str | None = None,
    events: Sequence[Event] = (),
    claim: ConsentState | None = None,
) -> Exchange:
    """Record ``event`` (or ``events``, in order) for ``visitor_key`` if the server's consent
    state allows it, and return the visitor's memberships, in one round trip to the fast store.

    Given ``claim``, the state read from the visitor's consent cookie, the same round trip
    checks that the cookie still counts (``consent.standing``, from the record's standing the
    store mirrors): the result's ``honoured`` says it, and nothing is recorded when it does not.

    Never raises for an unavailable store: the result is then :data:`UNAVAILABLE` ("not
    consented", nothing recorded), so callers serve default content. When the store has lost
    the visitor's consent state it is rebuilt from the durable consent record (a database
    query, only then).
    """
    if not _backend_usable():
        metrics.skipped(1 if event is not None else len(events))
        return UNAVAILABLE
    batch = [event] if event is not None else list(events)
    fields = [_events.encode(e) for e in batch]
    call = {
        "purpose": get_setting("SEGMENTS_PURPOSE"),
        "notice_version": notice_version(),
        "events": fields,
        "claim": None if claim is None else _claim(claim),
    }
    started = metrics.clock()
    try:
        backend = get_backend()
        if not backend.partitions_checked:
            _check_partitions(backend)
        result = backend.exchange(visitor_key, now=time.time(), **call)
        if result.consented is None:
            mirror_consent_from_record(visitor_key, visitor_id)
            started = metrics.clock()  # (the database's time is not the store's)
            result = backend.exchange(visitor_key, now=time.time(), **call)
    except BackendUnavailable as exc:
        metrics.exchange_failed(len(fields))
        _mark_down(exc)
        return UNAVAILABLE
    # (Any other error is raised as before; a half-open probe that ends so is replaced by
    # another after SEGMENTS_FAILURE_BACKOFF: the breaker never stays half-open.)
    _mark_up(metrics.clock() - started)
    metrics.exchanged(started, len(fields), result.consented)
    return UNAVAILABLE if result.consented is None else result


def _check_partitions(backend) -> None:
    """Once per process (per backend: a settings change makes another), before its first
    exchange: compare this process's PARTITIONS with the store's, so a web process started
    with another count says so in its log (and its readiness check fails:
    :func:`segments.health.check_partitions`). It still records: its events wait in the
    stream until the counts agree again, where refusing them would lose them. Not per request:
    the request path's one round trip stays one."""
    problem = backend.partition_problem()
    backend.partitions_checked = True
    if problem:
        logging.getLogger("segments.operations").error(
            "Recording with a partition count the store disagrees with: %s",
            problem,
            extra={"event": "recording.partitions_mismatch", "partitions": backend.partitions},
        )


def _claim(state: ConsentState) -> tuple[int, int]:
    """A cookie's claim as the store compares it: its record number (-1 when it does not say
    it) and its signing time in whole seconds."""
    return (-1 if state.record_seq is None else state.record_seq, int(state.signed_at))


def schedule_drain(visitor_key: str) -> None:
    """Make sure a worker drains the partition that ``visitor_key``'s events go to.

    Called at most about once per partition per burst of events (the stream's drain flag
    decides). A broker failure is logged, not raised: the periodic sweep drains the partition.
    """
    # Celery and the drain load with the first event that needs a worker, not at start-up
    from .tasks import drain

    try:
        # Not retried: a page must not wait on a broker that is down (the sweep drains).
        drain.apply_async((get_backend().partition_for(visitor_key),), retry=False)
    except Exception as exc:
        logger.warning("Could not schedule a drain: %s", type(exc).__name__)


def track(target, name: str, /, **properties) -> bool:
    """Record a server-side event (a purchase with ``value``, a signup) for a visitor, given
    their request or their pseudonymous key. Nothing is recorded without consent for the
    purpose (whatever the properties say), nor while the fast store is unavailable. Raises
    :class:`EventError` for an invalid event; returns whether it was recorded."""
    if isinstance(target, str):
        key, visitor_id = target, None
    else:
        state = get_consent(target)
        if state.visitor_key is None or not state.allows(tracking_purpose()):
            return False
        key, visitor_id = state.visitor_key, state.visitor_id
    try:
        return record_events(key, [(name, properties, None)], visitor_id=visitor_id) > 0
    except BackendUnavailable:
        return False


def record_events(
    visitor_key: str,
    items: Sequence[tuple[str, dict | None, str | None]],
    *,
    visitor_id: str | None = None,
) -> int:
    """Validate and record events given as (name, properties, client event id or None), all
    in one round trip. Raises :class:`EventError` (nothing recorded) if any is invalid, and
    :class:`BackendUnavailable` (nothing recorded: the caller must not report them accepted)
    while the fast store is unavailable; returns how many were recorded (0 without consent;
    events shed because their partition was over its cap are not counted)."""
    now = time.time()
    batch = []
    for name, properties, event_id in items:
        clean = _events.validate(name, properties)
        if event_id is not None and not _events.EVENT_ID_RE.match(str(event_id)):
            raise EventError("An event id is 8 to 64 letters, digits, '-' or '_'.")
        event = Event(visitor_key=visitor_key, name=name, ts=now, properties=clean)
        if event_id is not None:
            # Client ids become the visitor's own namespace of UUIDs: the same id sent twice
            # (a retried beacon) is the same event; another visitor's cannot collide with it.
            digest = hashlib.blake2b(f"{visitor_key}:{event_id}".encode(), digest_size=16)
            event = replace(event, event_id=digest.hexdigest())
        _events.encode(event)  # size check before anything is written
        batch.append(event)
    if not batch:
        return 0
    result = exchange(visitor_key, events=batch, visitor_id=visitor_id)
    if result is UNAVAILABLE:
        raise BackendUnavailable("fast store unavailable")
    if result.drain_needed:
        schedule_drain(visitor_key)
    return len(batch) - result.shed if result.consented else 0
