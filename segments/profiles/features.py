"""Behavioural features of one visitor, kept compact for the fast store (pure: no Django).

Counts of each event are kept in three tiers of time buckets (minutes for the last hour, hours
for the last two days, days for the last 400 days), so that "at least N events in the last D"
can be answered for any window up to 400 days from a profile of bounded size. A bucket counts
towards a window while any part of it lies inside the window, so membership based on a window
lasts at most one bucket longer than the exact window (a minute, for windows up to an hour).

Besides counts a profile keeps: first and last seen, the last time of each event, sessions,
recency/frequency/monetary value of purchases, a decayed engagement score, decayed category
affinity, the last context (referrer, campaign, device, country, language, the query parameters
rules name), the cart, the most recently visited paths, how many times each of the 32 most
recently viewed pages was viewed (and when last), the ids of the latest events (to drop
duplicates), and the outputs of the active models (a score and its percentile rank, or a
cluster key).
"""

import math
import re
from dataclasses import dataclass, field
from typing import Any

# (tier name, bucket size in seconds, how many buckets are kept)
# What an event may be called: profiles count events by name, rules name them.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")

TIERS = (("m", 60, 60), ("h", 3600, 48), ("d", 86400, 400))  # (Profile._count spells them out)
MAX_WINDOW = TIERS[-1][1] * TIERS[-1][2]

SESSION_GAP = 30 * 60
HALF_LIFE = 7 * 86400  # of the engagement score and category affinity
_DECAY = math.log(2) / HALF_LIFE
MAX_CATEGORIES = 8
MAX_PATHS = 8
# Pages whose views are counted per visitor (the most recently viewed ones): what bounds a
# profile's size whatever the number of pages a visitor views.
MAX_VISIT_COUNTS = 32
MAX_RECENT_IDS = 8
RECENT_ID_LENGTH = 8
CONTEXT_PROPERTIES = (
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device",
    "country",
    "language",
    "query",  # only the parameters rules name (segments.events.request)
)
# The tracker's report of a touch screen on a device whose user agent says "Mac" (an iPad on
# iPadOS 13 or later, which presents itself as desktop Safari): its device is a tablet.
DEVICE_HINT = "device_hint"
# Properties whose values become their own counters, e.g. "page_view@category=kitchen".
DIMENSIONS = ("category", "page_type")
DEFAULT_WEIGHTS = {
    "page_view": 1.0,
    "click": 2.0,
    "scroll": 0.5,
    "add_to_cart": 5.0,
    "signup": 8.0,
    "purchase": 10.0,
    DEVICE_HINT: 0.0,  # says what the device is, not that the visitor engaged
}
PURCHASE, ADD_TO_CART, REMOVE_FROM_CART = "purchase", "add_to_cart", "remove_from_cart"


def tier_for(window: float) -> tuple[str, int, int]:
    for tier in TIERS:
        if window <= tier[1] * tier[2]:
            return tier
    raise ValueError(f"Windows longer than {MAX_WINDOW // 86400} days are not supported.")


def counter_key(name: str, dimension: str | None = None, value: str | None = None) -> str:
    return name if dimension is None else f"{name}@{dimension}={value}"


def decay(value: float, seconds: float) -> float:
    return value * math.exp(-_DECAY * seconds) if seconds > 0 else value


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(slots=True)
class Profile:
    """Features of one visitor. ``last_id`` is the stream id of the last event applied, which
    makes applying a batch idempotent when a crashed worker's batch is delivered again."""

    first_seen: float | None = None
    last_seen: float | None = None
    last_id: tuple[int, int] = (0, 0)
    totals: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)
    last_ts: dict[str, float] = field(default_factory=dict)
    sessions: int = 0
    orders: int = 0
    revenue: float = 0.0
    engagement: float = 0.0
    engaged_at: float | None = None  # reference time of the decayed scores
    affinity: dict[str, float] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    cart: int = 0
    paths: list[str] = field(default_factory=list)
    # path -> [page views, time of the latest], for the MAX_VISIT_COUNTS most recent pages
    visits: dict[str, list] = field(default_factory=dict)
    recent_ids: list[str] = field(default_factory=list)
    # Outputs of the active models, written by the workers: model slug -> [score, percentile
    # rank 0-100] for a propensity model, or the stable cluster key for a clustering.
    scores: dict[str, Any] = field(default_factory=dict)

    # -- updating -------------------------------------------------------------------------
    def apply(
        self,
        name: str,
        ts: float,
        stream_id: tuple[int, int],
        properties: dict[str, Any] | None = None,
        event_id: str | None = None,
        weights: dict[str, float] = DEFAULT_WEIGHTS,
    ) -> bool:
        """Apply one event; False (and no change) if it was applied before."""
        if stream_id <= self.last_id:
            return False
        self.last_id = stream_id
        if event_id:
            short = event_id[:RECENT_ID_LENGTH]
            if short in self.recent_ids:
                return False  # the same event sent twice (a retried beacon, say)
            self.recent_ids.append(short)
            if len(self.recent_ids) > MAX_RECENT_IDS:
                del self.recent_ids[0]
        props = properties or {}

        if self.last_seen is None or ts - self.last_seen > SESSION_GAP:
            self.sessions += 1
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        self.last_seen = ts if self.last_seen is None else max(self.last_seen, ts)
        if ts > self.last_ts.get(name, -math.inf):
            self.last_ts[name] = ts
        self.totals[name] = self.totals.get(name, 0) + 1
        self._count(name, ts)
        for dimension in DIMENSIONS:
            value = props.get(dimension)
            if isinstance(value, str) and value:
                self._count(counter_key(name, dimension, value[:64]), ts)

        weight = weights.get(name, 1.0)
        category = props.get("category")
        self._engage(weight, ts, category[:64] if isinstance(category, str) and category else None)

        if name == PURCHASE:
            # Lines of one order (same order_id, arriving together) count as one order.
            order = props.get("order_id")
            if order is None or str(order) != self.context.get("order_id"):
                self.orders += 1
            if order is not None:
                self.context["order_id"] = str(order)[:64]
            self.revenue += _number(props.get("value"), 0.0)
            self.cart = 0
        elif name == ADD_TO_CART:
            self.cart += max(int(_number(props.get("quantity"), 1)), 0)
        elif name == REMOVE_FROM_CART:
            self.cart = max(self.cart - max(int(_number(props.get("quantity"), 1)), 0), 0)

        context = self.context
        for key in CONTEXT_PROPERTIES:
            value = props.get(key)
            if isinstance(value, str) and value:
                if key == "device" and value == "desktop" and "touch" in context:
                    continue  # an iPad saying it is a Mac: the tracker told us better
                context[key] = value[:400] if key == "query" else value[:100]
        if name == DEVICE_HINT:
            touch = props.get("touch_points")
            if _number(touch, 0.0) > 1:
                context["touch"] = "1"
                context["device"] = "tablet"
        path = props.get("path")
        if isinstance(path, str) and path:
            path = path[:200]
            if path in self.paths:
                self.paths.remove(path)
            self.paths.append(path)
            if len(self.paths) > MAX_PATHS:
                del self.paths[0]
            if name == "page_view":
                self._visit(path, ts)
        return True

    def _visit(self, path: str, ts: float) -> None:
        visits = self.visits
        seen = visits.get(path)
        if seen is None:
            visits[path] = [1, ts]
            if len(visits) > MAX_VISIT_COUNTS:
                # Forget the page viewed least recently (never the one just viewed).
                oldest = min((p for p in visits if p != path), key=lambda p: visits[p][1])
                del visits[oldest]
        else:
            seen[0] += 1
            seen[1] = max(seen[1], ts)

    def visit_count(self, path: str | None = None, prefix: str | None = None) -> int:
        """Page views of ``path`` (or of the pages under ``prefix``), among the pages whose
        views are counted (the :data:`MAX_VISIT_COUNTS` viewed most recently)."""
        if path is not None:
            seen = self.visits.get(path)
            return seen[0] if seen else 0
        return sum(n for p, (n, _) in self.visits.items() if p.startswith(prefix or ""))

    def _count(self, key: str, ts: float) -> None:
        tiers = self.buckets.get(key)
        if tiers is None:
            tiers = self.buckets[key] = {"m": {}, "h": {}, "d": {}}
        # The three tiers of TIERS, written out: this runs once or twice for every event.
        for tier, b in (("m", int(ts // 60)), ("h", int(ts // 3600)), ("d", int(ts // 86400))):
            counts = tiers.get(tier)
            if counts is None:
                counts = tiers[tier] = {}
            counts[b] = counts.get(b, 0) + 1

    def _engage(self, weight: float, ts: float, category: str | None) -> None:
        ref = self.engaged_at
        if ref is None or ts >= ref:
            if ref is not None and ts > ref:
                factor = math.exp(-_DECAY * (ts - ref))
                self.engagement *= factor
                for c in self.affinity:
                    self.affinity[c] *= factor
            self.engaged_at = ts
            add = weight
        else:  # an older event arriving late: add it already decayed to the reference time
            add = decay(weight, ref - ts)
        self.engagement += add
        if category is not None:
            self.affinity[category] = self.affinity.get(category, 0.0) + add
            if len(self.affinity) > MAX_CATEGORIES:
                # Evict the weakest other category: a new interest always starts small.
                others = (c for c in self.affinity if c != category)
                weakest = min(others, key=self.affinity.__getitem__)
                del self.affinity[weakest]

    def prune(self, now: float) -> None:
        for tiers in self.buckets.values():
            for tier, size, keep in TIERS:
                counts = tiers.get(tier)
                if counts:
                    # The oldest bucket still (partly) inside the tier's longest window stays.
                    oldest = int(now // size) - keep
                    for b in [b for b in counts if b < oldest]:
                        del counts[b]
        for key in [k for k, tiers in self.buckets.items() if not any(tiers.values())]:
            del self.buckets[key]

    # -- reading --------------------------------------------------------------------------
    def count_within(self, name: str, window: float, now: float) -> int:
        tier, size, _keep = tier_for(window)
        counts = self.buckets.get(name, {}).get(tier, {})
        start = now - window
        return sum(n for b, n in counts.items() if (b + 1) * size > start and b * size <= now)

    def count_valid_until(self, name: str, window: float, minimum: int, now: float) -> float:
        """When "at least ``minimum`` of ``name`` within ``window``" stops holding if no further
        events arrive (``now`` or earlier if it does not hold now)."""
        tier, size, _keep = tier_for(window)
        counts = self.buckets.get(name, {}).get(tier, {})
        seen = 0
        for b in sorted((b for b in counts if b * size <= now), reverse=True):
            seen += counts[b]
            if seen >= minimum:
                return (b + 1) * size + window
        return now

    def engagement_at(self, now: float) -> float:
        if self.engaged_at is None:
            return 0.0
        return decay(self.engagement, now - self.engaged_at)

    def affinity_share(self, category: str) -> float:
        """The category's share of the visitor's decayed category interest (0 to 1). All
        categories decay alike, so shares do not change with time alone."""
        total = sum(self.affinity.values())
        return self.affinity.get(category, 0.0) / total if total > 0 else 0.0

    # -- storage --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready form: times to the second, scores to 4 significant digits, bucket
        tiers as flat [bucket, count, ...] lists, empty parts left out."""
        data: dict[str, Any] = {
            "f": _t(self.first_seen),
            "l": _t(self.last_seen),
            "i": list(self.last_id),
            "t": self.totals,
            "b": {
                name: {
                    tier: [x for b in sorted(c) for x in (b, c[b])]
                    for tier, c in tiers.items()
                    if c
                }
                for name, tiers in self.buckets.items()
            },
        }
        if self.last_ts:
            data["lt"] = {k: _t(v) for k, v in self.last_ts.items()}
        if self.sessions:
            data["s"] = self.sessions
        if self.orders or self.revenue:
            data["o"] = [self.orders, round(self.revenue, 2)]
        if self.engaged_at is not None:
            data["e"] = [_g(self.engagement), _t(self.engaged_at)]
        if self.affinity:
            data["a"] = {k: _g(v) for k, v in self.affinity.items()}
        if self.context:
            data["c"] = self.context
        if self.cart:
            data["k"] = self.cart
        if self.paths:
            data["p"] = self.paths
        if self.visits:
            data["v"] = {p: [n, _t(ts)] for p, (n, ts) in self.visits.items()}
        if self.recent_ids:
            data["r"] = self.recent_ids
        if self.scores:
            data["m"] = self.scores
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Profile":
        if not data:
            return cls()
        engagement, engaged_at = data.get("e") or (0.0, None)
        orders, revenue = data.get("o") or (0, 0.0)
        return cls(
            first_seen=data.get("f"),
            last_seen=data.get("l"),
            last_id=tuple(data.get("i") or (0, 0)),
            totals=dict(data.get("t") or {}),
            buckets={
                name: {tier: _pairs(flat) for tier, flat in tiers.items()}
                for name, tiers in (data.get("b") or {}).items()
            },
            last_ts=dict(data.get("lt") or {}),
            sessions=int(data.get("s") or 0),
            orders=int(orders),
            revenue=float(revenue),
            engagement=float(engagement),
            engaged_at=engaged_at,
            affinity=dict(data.get("a") or {}),
            context=dict(data.get("c") or {}),
            cart=int(data.get("k") or 0),
            paths=list(data.get("p") or []),
            visits={p: [int(n), ts] for p, (n, ts) in (data.get("v") or {}).items()},
            recent_ids=list(data.get("r") or []),
            scores=dict(data.get("m") or {}),
        )


def _t(value: float | None) -> int | None:
    return None if value is None else round(value)


def _g(value: float) -> float:
    return float(f"{value:.4g}")


def _pairs(flat: list) -> dict[int, int]:
    if flat and isinstance(flat[0], list):  # the earlier [[bucket, count], ...] form
        return {int(b): int(n) for b, n in flat}
    return {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def parse_stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
