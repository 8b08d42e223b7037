"""The drain's recommendations step: co-occurrence, popularity and each visitor's lists.

Registered with the segments drain (:func:`segments.api.register_batch_step`), it sees each
batch's consented visitors with the events newly written to the durable log (a batch
delivered again brings none, so nothing counts twice). For every event naming a known item
(:data:`RECOMMENDATIONS_ITEM_PROPERTIES`) with a weight (:data:`RECOMMENDATIONS_EVENT_WEIGHTS`):

- the item co-occurs with each of the visitor's recent items (kept in their hash as
  ``r:recent``), and counts towards its popularity for everyone and in each of the visitor's
  segments: decayed, weighted increments (:mod:`recommendations.scoring`), gathered and
  upserted together (:mod:`recommendations.buffer`), in key order (no deadlock between
  partitions' drains);
- the visitor's "for you" list is built again from their recent items' strongest neighbours
  (after this batch's increments) and goes to their hash (``r:fy``) with the batch, where the
  request path's one round trip reads it (:attr:`segments.api.Exchange.recommendations`).

After a loss of the fast store, ``rebuild_fast_store`` gives those fields back through
:func:`restore` (a restore step): the recent items from the visitor's logged events, the list
from the sums, which live in the database and are not lost with the fast store.
"""

import time

from segments.api import BatchVisitor, FieldChanges

from . import buffer, factorisation, scoring
from .conf import get_setting
from .items import catalogue, item_of
from .sums import top_neighbours

STEP_NAME = "recommendations"
PREFIX = "r:"
RECENT, BOUGHT, FOR_YOU = "r:recent", "r:bought", "r:fy"


def step(visitors: list[BatchVisitor], now: float) -> dict[str, FieldChanges]:
    weights = get_setting("RECOMMENDATIONS_EVENT_WEIGHTS")
    if not weights:
        return {}
    names = tuple(get_setting("RECOMMENDATIONS_ITEM_PROPERTIES"))
    keep = int(get_setting("RECOMMENDATIONS_RECENT_ITEMS"))
    pair_with = min(int(get_setting("RECOMMENDATIONS_PAIR_ITEMS")), keep)
    half_life = float(get_setting("RECOMMENDATIONS_HALF_LIFE_DAYS")) * 86400
    items = None
    work = []
    for visitor in visitors:
        found = None
        for event in visitor.events:  # one pass: the batch's events naming an item
            weight = weights.get(event.name)
            if not weight:
                continue
            if items is None:
                items = catalogue()
                if not items.known:
                    return {}
            item = item_of(event.properties, items, names)
            if item is not None:
                if found is None:
                    found = []
                found.append((event.ts, item, float(weight), event.name == "purchase"))
        if found is None:
            continue
        found.sort(key=scoring.in_order)
        recent = scoring.Recent.decode(visitor.fields.get(RECENT), visitor.fields.get(BOUGHT))
        work.append((visitor.key, recent, found, visitor.memberships))
    if not work:
        return {}
    with buffer.gathering() as deltas:  # straight into what the worker gathers
        add_events = deltas.add_events
        for _key, recent, found, memberships in work:
            add_events(
                recent,
                found,
                memberships,
                half_life_seconds=half_life,
                keep=keep,
                pair_with=pair_with,
            )
    return _lists({key: recent for key, recent, _found, _memberships in work})


def restore(visitors: list[BatchVisitor], now: float) -> dict[str, FieldChanges]:
    """After the fast store is rebuilt from the durable log (``rebuild_fast_store``, a restore
    step): each visitor's recent and bought items from every event the log holds for them,
    and their "for you" list built again from those, as the drain would. Nothing is counted
    again: the sums (in the database) counted these events when they were first drained."""
    weights = get_setting("RECOMMENDATIONS_EVENT_WEIGHTS")
    names = tuple(get_setting("RECOMMENDATIONS_ITEM_PROPERTIES"))
    keep = int(get_setting("RECOMMENDATIONS_RECENT_ITEMS"))
    items = catalogue()
    if not items.known:
        return {}
    touched: dict[str, scoring.Recent] = {}
    for visitor in visitors:
        found = []
        for event in visitor.events:
            if not weights.get(event.name):
                continue
            item = item_of(event.properties, items, names)
            if item is not None:
                found.append((event.ts, item, event.name == "purchase"))
        if not found:
            continue
        found.sort(key=scoring.in_order)
        recent = touched[visitor.key] = scoring.Recent()
        for _ts, item, purchase in found:
            recent.add(item, purchase, keep)
    return _lists(touched) if touched else {}


def _lists(touched: dict[str, scoring.Recent]) -> dict[str, FieldChanges]:
    """Each touched visitor's hash fields: their recent and bought items, and their "for you"
    list (the active factorisation model's, else their recent items' co-occurrence)."""
    length = int(get_setting("RECOMMENDATIONS_LIST_LENGTH"))
    neighbours = _neighbours({i for r in touched.values() for i in r.items}, length)
    exclude_bought = get_setting("RECOMMENDATIONS_EXCLUDE_BOUGHT")
    # With an active factorisation model, "for you" is its list (co-occurrence for visitors
    # whose items it does not know yet).
    modelled = factorisation.for_you(touched, exclude_bought=exclude_bought, length=length)
    changes = {}
    for key, recent in touched.items():
        mine = modelled.get(key) or scoring.for_you(
            recent.items,
            neighbours,
            exclude=recent.bought if exclude_bought else (),
            length=length,
        )
        recent_field, bought_field = recent.encode()
        change = FieldChanges(set={RECENT: recent_field, FOR_YOU: ",".join(map(str, mine))})
        if bought_field:
            change.set[BOUGHT] = bought_field
        changes[key] = change
    return changes


# Each item's neighbours as last built in this process: (when, [(item, weight), ...]).
_built: dict[int, tuple[float, list[tuple[int, float]]]] = {}


def _neighbours(items: set[int], length: int) -> dict[int, list[tuple[int, float]]]:
    """Each item's strongest neighbours: the stored sums with the increments gathered and not
    yet written added, built again at most once per ``RECOMMENDATIONS_FLUSH_SECONDS`` per
    item (one query for the batch's items that are due): what this process gathers shows in
    the lists within that time, what the others wrote after they write it."""
    now = time.monotonic()
    ttl = float(get_setting("RECOMMENDATIONS_FLUSH_SECONDS"))
    built = _built
    if len(built) > 100_000:
        built.clear()
    due = [i for i in items if i not in built or ttl <= 0 or now - built[i][0] > ttl]
    if due:
        stored = top_neighbours(set(due), length)
        pending = buffer.pending_tops(due, length)
        for item in due:
            links = stored.get(item, [])
            gathered = pending.get(item)
            if gathered:
                merged = dict(links)  # the best of each, summed: the best of the sum, near enough
                for b, w in gathered:
                    merged[b] = merged.get(b, 0.0) + w
                links = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:length]
            built[item] = (now, links)
    return {item: built[item][1] for item in items if built[item][1]}


def forget() -> None:
    """Build every item's neighbours again on next use (tests)."""
    _built.clear()
