"""The nightly rebuild of the co-occurrence and popularity sums from the durable log.

The drain keeps the sums up to date incrementally; this starts them afresh from what the log
holds now: only consented visitors' events (:func:`segments.api.visitor_histories` leaves out
visitors whose data may no longer be used), and none of an erased visitor's (their events
left the log with them). So an erased visitor's contribution leaves the lists within one
rebuild period. Popularity per segment counts each visitor in the segments they are in now.
"""

from django.db import transaction

from segments.api import SEGMENT_PREFIX, get_backend, visitor_histories

from . import buffer, scoring
from .conf import get_setting
from .items import catalogue, item_of
from .models import Pair, Popularity
from .sums import _upsert


def rebuild() -> dict[str, int]:
    weights = get_setting("RECOMMENDATIONS_EVENT_WEIGHTS")
    names = tuple(get_setting("RECOMMENDATIONS_ITEM_PROPERTIES"))
    keep = int(get_setting("RECOMMENDATIONS_RECENT_ITEMS"))
    pair_with = min(int(get_setting("RECOMMENDATIONS_PAIR_ITEMS")), keep)
    half_life = float(get_setting("RECOMMENDATIONS_HALF_LIFE_DAYS")) * 86400
    items = catalogue()
    deltas = scoring.Deltas()
    batch: list[tuple[str, list]] = []
    visitors = 0

    def flush() -> None:
        states = get_backend().load_visitors([k for k, _ in batch])
        for key, events in batch:
            fields = states[key].fields if key in states else {}
            segments = [f[len(SEGMENT_PREFIX) :] for f in fields if f.startswith(SEGMENT_PREFIX)]
            found = []
            for name, ts, properties in events:
                weight = weights.get(name)
                item = item_of(properties, items, names) if weight else None
                if item is not None:
                    found.append((ts, item, float(weight), name == "purchase"))
            found.sort(key=scoring.in_order)  # as the drain counted them
            deltas.add_events(
                scoring.Recent(),
                found,
                segments,
                half_life_seconds=half_life,
                keep=keep,
                pair_with=pair_with,
            )
        batch.clear()

    for key, events in visitor_histories():
        visitors += 1
        batch.append((key, events))
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    buffer.discard()  # this process's: counted from the log below
    with transaction.atomic():
        Pair.objects.all().delete()
        Popularity.objects.all().delete()
        _upsert(Pair._meta.db_table, ("a", "b"), sorted(deltas.pairs.items()))
        _upsert(Popularity._meta.db_table, ("segment", "item"), sorted(deltas.popular.items()))
    return {"visitors": visitors, "pairs": len(deltas.pairs), "popular": len(deltas.popular)}
