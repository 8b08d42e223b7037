"""Synthetic shop customers for the model tests: loyal ones keep buying, lapsed ones stop."""

import hashlib
import random
import uuid
from datetime import UTC, datetime

DAY = 86400.0


def key(n: int, kind: str) -> str:
    return hashlib.blake2b(f"{kind}{n}".encode(), digest_size=16).hexdigest()


def customers(n_loyal: int, n_lapsed: int, end: float, seed: int = 0, *, noise: float = 0.15):
    """[(visitor key, [(name, ts, properties), ...])] over the 300 days before ``end``. Loyal
    customers buy every 5-25 days until the end; lapsed ones buy once or twice early on. A
    share ``noise`` of each group behaves like the other near the end (so no model is perfect)."""
    rng = random.Random(seed)
    out = []
    for n in range(n_loyal + n_lapsed):
        loyal = n < n_loyal
        k = key(n, "loyal" if loyal else "lapsed")
        events = []
        t = end - rng.uniform(200, 300) * DAY
        stops = end - (rng.uniform(100, 200) * DAY if rng.random() < noise else 0)
        if loyal:
            while t < min(end, stops):
                events += _order(rng, t, big=True)
                t += rng.uniform(5, 25) * DAY
        else:
            for _ in range(rng.choice((1, 1, 2))):
                events += _order(rng, t, big=False)
                t += rng.uniform(10, 40) * DAY
            if rng.random() < noise:  # comes back late
                events += _order(rng, end - rng.uniform(1, 60) * DAY, big=False)
        events.sort(key=lambda e: e[1])
        out.append((k, events))
    return out


def _order(rng, t, *, big):
    order = uuid.UUID(int=rng.getrandbits(128)).hex[:12]
    lines = rng.randint(2, 6) if big else 1
    value = rng.uniform(20, 80) if big else rng.uniform(5, 20)
    events = [("page_view", t - 60, {"path": "/shop/"})]
    events += [
        ("purchase", t + i, {"order_id": order, "value": round(value, 2)}) for i in range(lines)
    ]
    return events


def store(source) -> list[str]:
    """Write the customers' events to the durable log and record their consent."""
    from consent.api import grant_imported
    from segments.models import LoggedEvent

    LoggedEvent.objects.bulk_create(
        [
            LoggedEvent(
                event_id=uuid.uuid4(),
                visitor_key=k,
                name=name,
                occurred_at=datetime.fromtimestamp(ts, tz=UTC),
                properties=props,
            )
            for k, events in source
            for name, ts, props in events
        ],
        batch_size=2000,
    )
    keys = [k for k, _ in source]
    grant_imported(keys, frozenset({"personalization"}))
    return keys
