"""The feature catalog: every behavioural feature rules and models can use, with its unit and
how it changes with time alone (pure: no Django).

Editors pick features by name in the rule builder; model training reads the same catalog, so a
feature means the same thing everywhere. ``trend`` says how a value moves when nothing happens:
``"up"`` grows linearly with time (days since...), ``"down"`` decays exponentially (engagement),
``None`` stays put until the next event. For trending features ``crossing`` gives the time at
which the value reaches a threshold, so membership can end (or start) exactly on time.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .features import _DECAY, MAX_WINDOW, Profile

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


# -- the numeric view models read -----------------------------------------------------------
# The same features as numbers a model can take (no missing values, money and counts flagged
# for a log transform), plus a few derived for models only. Pure, like the rest: model
# validation and the rule builder read it without numpy.

MAX_DAYS = MAX_WINDOW / DAY  # "never" for recency features: older than anything we keep


@dataclass(frozen=True, slots=True)
class ModelFeature:
    """A numeric feature a model reads from a profile at a moment. ``log``: heavy-tailed
    (counts, money), log-transformed for clustering and linear models."""

    name: str
    label: str  # plain words for editors ("days since the last purchase")
    unit: str
    value: Callable[[Profile, float], float]
    log: bool = False
    window: tuple[str, int] | None = None  # (event, days) of a windowed count

    def values(self, profiles: list[Profile], now: float) -> list[float]:
        """The values of many profiles at once (the workers' hot path): the same numbers as
        ``value``, but for the clamp to MAX_VALUE that :func:`feature_matrix` applies."""
        column = getattr(self.value, "column", None)
        if column is not None:
            return column(profiles, now)
        value = self.value
        return [value(p, now) for p in profiles]


MAX_VALUE = 1e12  # no feature is larger (money in absurd currencies, overflowing ratios)


class _catalog:
    """A model feature read from the catalog (``missing`` where the catalog has no value,
    such as the days since the last purchase of someone who never bought)."""

    def __init__(self, name: str, missing: float = 0.0, param: str | None = None):
        self.get, self.missing, self.param = FEATURES[name].value, missing, param

    def __call__(self, profile: Profile, now: float) -> float:
        v = self.get(profile, now, self.param)
        return self.missing if v is None else min(float(v), MAX_VALUE)

    def column(self, profiles: list[Profile], now: float) -> list[float]:
        get, param, missing = self.get, self.param, self.missing
        values = [get(p, now, param) for p in profiles]
        if None in values:
            values = [missing if v is None else v for v in values]
        return values


def _window(event: str, days: int):
    seconds = days * DAY
    return lambda p, now: float(p.count_within(event, seconds, now))


def _order_rate(p: Profile, now: float) -> float:
    if p.first_seen is None:
        return 0.0
    return p.orders / max((now - p.first_seen) / DAY, 1.0) * 30.0


def _overdue(p: Profile, now: float) -> float:
    """Days since the last purchase over the visitor's usual days between orders."""
    last = p.last_ts.get("purchase")
    if last is None or p.first_seen is None:
        return 10.0
    if p.orders > 1:
        usual = max((last - p.first_seen) / DAY, 1.0) / (p.orders - 1)
    else:
        usual = max((now - p.first_seen) / DAY, 1.0)
    return min((now - last) / DAY / usual, 100.0)


MODEL_FEATURES: dict[str, ModelFeature] = {
    f.name: f
    for f in (
        ModelFeature(
            "days_since_last_purchase",
            "days since the last purchase",
            "days",
            _catalog("days_since_last_purchase", MAX_DAYS),
            log=True,
        ),
        ModelFeature(
            "purchase_count", "number of orders", "orders", _catalog("purchase_count"), log=True
        ),
        ModelFeature(
            "monetary_value",
            "total spent",
            "currency units",
            _catalog("monetary_value"),
            log=True,
        ),
        ModelFeature(
            "average_order_value",
            "average order value",
            "currency units",
            _catalog("average_order_value"),
            log=True,
        ),
        ModelFeature(
            "days_since_first_seen",
            "days since the first visit (tenure)",
            "days",
            _catalog("days_since_first_seen", 0.0),
            log=True,
        ),
        ModelFeature(
            "days_since_last_seen",
            "days since the last visit",
            "days",
            _catalog("days_since_last_seen", MAX_DAYS),
            log=True,
        ),
        ModelFeature("sessions", "number of visits", "sessions", _catalog("sessions"), log=True),
        ModelFeature(
            "engagement_score",
            "recent engagement",
            "points",
            _catalog("engagement_score"),
            log=True,
        ),
        ModelFeature(
            "purchases_30d",
            "purchase lines in the last 30 days",
            "events",
            _window("purchase", 30),
            log=True,
            window=("purchase", 30),
        ),
        ModelFeature(
            "purchases_90d",
            "purchase lines in the last 90 days",
            "events",
            _window("purchase", 90),
            log=True,
            window=("purchase", 90),
        ),
        ModelFeature(
            "purchases_180d",
            "purchase lines in the last 180 days",
            "events",
            _window("purchase", 180),
            log=True,
            window=("purchase", 180),
        ),
        ModelFeature(
            "page_views_7d",
            "page views in the last 7 days",
            "events",
            _window("page_view", 7),
            log=True,
            window=("page_view", 7),
        ),
        ModelFeature(
            "page_views_30d",
            "page views in the last 30 days",
            "events",
            _window("page_view", 30),
            log=True,
            window=("page_view", 30),
        ),
        ModelFeature("cart_items", "items in the cart", "items", _catalog("cart_items"), log=True),
        ModelFeature(
            "order_rate",
            "orders per 30 days since the first visit",
            "orders",
            _order_rate,
            log=True,
        ),
        ModelFeature(
            "purchase_overdue",
            "time since the last purchase relative to the usual time between orders",
            "ratio",
            _overdue,
            log=True,
        ),
    )
}

RFM = ["days_since_last_purchase", "purchase_count", "monetary_value"]
DEFAULT_PROPENSITY_FEATURES = [
    "days_since_last_purchase",
    "purchase_count",
    "monetary_value",
    "average_order_value",
    "days_since_first_seen",
    "days_since_last_seen",
    "sessions",
    "engagement_score",
    "purchases_30d",
    "purchases_90d",
    "purchases_180d",
    "page_views_7d",
    "page_views_30d",
    "cart_items",
    "order_rate",
    "purchase_overdue",
]


def check_features(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in MODEL_FEATURES]
    if unknown or not names:
        known = ", ".join(MODEL_FEATURES)
        raise ValueError(f"unknown model feature(s) {unknown}; expected some of {known}.")
    return names
