"""The feature catalog: every behavioural feature rules and models can use, with its unit and
how it changes with time alone (pure: no Django).

Editors pick features by name in the rule builder; model training reads the same catalog, so a
feature means the same thing everywhere. ``trend`` says how a value moves when nothing happens:
``"up"`` grows linearly with time (days since...), ``"down"`` decays exponentially (engagement),
``None`` stays put until the next event. For trending features ``crossing`` gives the time at
which the value reaches a threshold, so membership can end (or start) exactly on time.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .features import _DECAY, Profile

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: str  # "number" or "string"
    unit: str
    description: str
    value: Callable[[Profile, float, str | None], Any]
    trend: str | None = None
    crossing: Callable[[Profile, float], float | None] | None = None
    param: str | None = None  # name of the parameter the feature takes (e.g. "category")


def _since(attr: Callable[[Profile], float | None], unit: float):
    def value(p: Profile, now: float, _param=None):
        t0 = attr(p)
        return None if t0 is None else max(now - t0, 0.0) / unit

    def crossing(p: Profile, threshold: float):
        t0 = attr(p)
        return None if t0 is None else t0 + threshold * unit

    return value, crossing


def _engagement_crossing(p: Profile, threshold: float) -> float | None:
    if p.engaged_at is None or p.engagement <= 0 or threshold <= 0:
        return None
    return p.engaged_at + math.log(p.engagement / threshold) / _DECAY


def _top_category(p: Profile, now: float, _param=None) -> str | None:
    return max(p.affinity, key=p.affinity.__getitem__) if p.affinity else None


def _cart_since(p: Profile) -> float | None:
    return p.last_ts.get("add_to_cart") if p.cart > 0 else None


_first = _since(lambda p: p.first_seen, DAY)
_last = _since(lambda p: p.last_seen, DAY)
_purchase = _since(lambda p: p.last_ts.get("purchase"), DAY)
_cart = _since(_cart_since, 60.0)


def _context(key: str):
    return lambda p, now, _param=None: p.context.get(key)


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "days_since_first_seen",
            "number",
            "days",
            "Time since the first recorded event.",
            _first[0],
            "up",
            _first[1],
        ),
        Feature(
            "days_since_last_seen",
            "number",
            "days",
            "Recency: time since the latest event.",
            _last[0],
            "up",
            _last[1],
        ),
        Feature(
            "days_since_last_purchase",
            "number",
            "days",
            "Purchase recency (empty if the visitor never bought).",
            _purchase[0],
            "up",
            _purchase[1],
        ),
        Feature(
            "sessions",
            "number",
            "sessions",
            "Visits, a new one starting after 30 minutes without activity.",
            lambda p, now, _=None: p.sessions,
        ),
        Feature(
            "total_events",
            "number",
            "events",
            "All-time count of one event (parameter: event name).",
            lambda p, now, event=None: p.totals.get(event or "page_view", 0),
            param="event",
        ),
        Feature(
            "purchase_count",
            "number",
            "orders",
            "Purchase frequency: number of purchases.",
            lambda p, now, _=None: p.orders,
        ),
        Feature(
            "monetary_value",
            "number",
            "currency units",
            "Total value of purchases.",
            lambda p, now, _=None: p.revenue,
        ),
        Feature(
            "average_order_value",
            "number",
            "currency units",
            "Monetary value / purchases.",
            lambda p, now, _=None: p.revenue / p.orders if p.orders else 0.0,
        ),
        Feature(
            "engagement_score",
            "number",
            "points",
            "Weighted activity (page view 1, click 2, add to cart 5, purchase 10) halving "
            "every 7 days.",
            lambda p, now, _=None: p.engagement_at(now),
            "down",
            _engagement_crossing,
        ),
        Feature(
            "category_affinity",
            "number",
            "share (0-1)",
            "Share of recent interest in a category (parameter: category), recency-weighted.",
            lambda p, now, category=None: p.affinity_share(category or ""),
            param="category",
        ),
        Feature(
            "top_category",
            "string",
            "category",
            "The category of strongest interest.",
            _top_category,
        ),
        Feature(
            "cart_items",
            "number",
            "items",
            "Items added to the cart and not yet bought.",
            lambda p, now, _=None: p.cart,
        ),
        Feature(
            "minutes_since_cart_activity",
            "number",
            "minutes",
            "Time since the last add to cart, while the cart holds items (empty otherwise).",
            _cart[0],
            "up",
            _cart[1],
        ),
        Feature(
            "last_referrer",
            "string",
            "host",
            "Referring site of the latest visit.",
            _context("referrer"),
        ),
        Feature(
            "last_campaign",
            "string",
            "utm_campaign",
            "Campaign of the latest visit.",
            _context("utm_campaign"),
        ),
        Feature(
            "last_source",
            "string",
            "utm_source",
            "Campaign source of the latest visit.",
            _context("utm_source"),
        ),
        Feature(
            "last_device",
            "string",
            "device class",
            "desktop, mobile or tablet.",
            _context("device"),
        ),
        Feature(
            "country",
            "string",
            "ISO country code",
            "From the proxy's country header (no IP address is kept).",
            _context("country"),
        ),
    )
}


def describe() -> list[dict[str, str | None]]:
    """The catalog as plain data, for documentation and the rule builder."""
    return [
        {
            "name": f.name,
            "kind": f.kind,
            "unit": f.unit,
            "description": f.description,
            "param": f.param,
            "trend": f.trend,
        }
        for f in FEATURES.values()
    ]
