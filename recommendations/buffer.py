"""Increments to the stored sums, gathered in the worker process and written together.

Upserting every batch's co-occurrence increments (an event pairs with up to
``RECOMMENDATIONS_PAIR_ITEMS`` recent items, both ways) costs the database a row per pair per
batch: far more than the rest of the drain. Gathered for ``RECOMMENDATIONS_FLUSH_SECONDS``,
the increments of many batches merge into one row per distinct pair (bounded by the
catalogue), written by a timer thread of the worker process in one transaction, in key order
(one statement per table: the keys, in order, as arrays). After a slow write the next waits
longer (:data:`BACK_OFF`), so a busy database gets fewer, larger writes.

What is gathered and not yet written is lost if the process dies: the events themselves are in
the durable log already, and the nightly rebuild counts them again (module
:mod:`recommendations.rebuild`). ``0`` writes every batch's increments at once (tests).
"""

import heapq
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from . import scoring
from .conf import get_setting
from .sums import save

logger = logging.getLogger(__name__)
# Gathered pairs beyond this are written at once, in the drain's thread.
MAX_PENDING = 200_000
# The next write starts no sooner than this many times the last write's duration after it
# (a database slowed down by the writes gets fewer, larger ones).
BACK_OFF = 10.0

_lock = threading.Lock()
# Pairs gathered, by their first item (a -> {b: weight}), and popularity increments, by
# segment (segment -> {item: weight}); _size: how many pairs, at most.
_links: dict[int, dict[int, float]] = {}
_popular: dict[str, dict[int, float]] = {}
_size = 0
_timer: threading.Timer | None = None
_last_write_seconds = 0.0


def _interval(minimum: float = 0.0) -> float:
    """Seconds until the next timed write: ``RECOMMENDATIONS_FLUSH_SECONDS``, or longer after
    a slow write (:data:`BACK_OFF`)."""
    interval = max(float(get_setting("RECOMMENDATIONS_FLUSH_SECONDS")), minimum)
    return max(interval, BACK_OFF * _last_write_seconds)


@contextmanager
def gathering() -> Iterator[scoring.Deltas]:
    """The gathered increments themselves, under the lock, for a batch to add its own to
    (:meth:`scoring.Deltas.add_events`): nothing is gathered twice (a batch's increments and
    then their merge). Afterwards they are written at once when the interval is 0 or too many
    pairs wait, else by the timer. What is added in the block must not fail half-way (plain
    arithmetic): it is not undone."""
    global _timer, _size
    interval = float(get_setting("RECOMMENDATIONS_FLUSH_SECONDS"))
    with _lock:
        live = scoring.Deltas(_links, _popular)
        yield live
        _size += live.increments  # at most that many new pairs
        if _size >= MAX_PENDING:  # the bound says maybe: count them
            _size = sum(map(len, _links.values()))
        now = interval <= 0 or _size >= MAX_PENDING
        if not now and _timer is None:
            _timer = threading.Timer(_interval(), _flush_in_thread)
            _timer.daemon = True
            _timer.start()
    if now:
        flush()


def _merge(into: dict[str, dict[int, float]], rows: dict[str, dict[int, float]]) -> None:
    for key, row in rows.items():
        mine = into.get(key)
        if mine is None:
            into[key] = dict(row)
            continue
        for item, w in row.items():
            mine[item] = mine.get(item, 0.0) + w


def pending_top(item: int, length: int) -> list[tuple[int, float]]:
    """The ``length`` largest increments gathered and not yet written for pairs starting at
    ``item``."""
    with _lock:
        links = _links.get(item)
        if not links:
            return []
        return heapq.nlargest(length, links.items(), key=_strongest)


def _strongest(link: tuple[int, float]) -> tuple[float, int]:
    return link[1], -link[0]  # ties: the smaller id first


def pending_tops(items, length: int) -> dict[int, list[tuple[int, float]]]:
    """:func:`pending_top` of each of ``items`` that has any, under one lock."""
    out = {}
    with _lock:
        for item in items:
            links = _links.get(item)
            if links:
                out[item] = heapq.nlargest(length, links.items(), key=_strongest)
    return out


def pending_links(item: int) -> dict[int, float]:
    """Every increment gathered and not yet written for pairs starting at ``item``."""
    with _lock:
        return dict(_links.get(item, ()))


def _take() -> scoring.Deltas:
    global _links, _popular, _size
    with _lock:
        links, popular = _links, _popular
        _links, _popular, _size = {}, {}, 0
    return scoring.Deltas(links, popular)


def flush() -> int:
    """Write what was gathered (one transaction); returns how many pairs."""
    taken = _take()
    if not taken.links and not taken.by_segment:
        return 0
    global _last_write_seconds
    started = time.monotonic()
    try:
        save(taken)
    except Exception:
        add_back(taken)
        raise
    finally:
        _last_write_seconds = time.monotonic() - started
    return sum(len(row) for row in taken.links.values())


def add_back(deltas: scoring.Deltas) -> None:
    global _size
    with _lock:  # written by the next flush
        for a, row in deltas.links.items():
            links = _links.setdefault(a, {})
            for b, w in row.items():
                if b not in links:
                    _size += 1
                links[b] = links.get(b, 0.0) + w
        _merge(_popular, deltas.by_segment)


def _flush_in_thread() -> None:
    global _timer
    with _lock:
        _timer = None
    try:
        flush()
    except Exception:
        logger.exception("Recommendations: writing the gathered increments failed; retried")
    finally:
        connection.close()  # this thread's own connection
    with _lock:
        if (_links or _popular) and _timer is None:
            _timer = threading.Timer(_interval(0.5), _flush_in_thread)
            _timer.daemon = True
            _timer.start()


def discard() -> None:
    """Forget what was gathered, and the timed write (tests; a rebuild counts everything from
    the log)."""
    global _timer
    with _lock:
        timer, _timer = _timer, None
    if timer is not None:
        timer.cancel()
    _take()
