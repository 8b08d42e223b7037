"""Training data from the durable event log, point-in-time correct.

A visitor's features are computed the way the workers compute them: their events are applied
to a :class:`segments.profiles.features.Profile` in time order, and the features of
:data:`MODEL_FEATURES` (built on the catalog, :mod:`segments.profiles.catalog`) are read from
it *as of a cut-off*, from the events before the cut-off only. A label comes from the period after the
cut-off (did the target event happen within N days, or not), so nothing of the future leaks into
the features. One pass over each visitor's events yields rows at several cut-offs: earlier
cut-offs train, the latest one is the held-out time (:class:`TimeSplit`).

Visitors who withdrew consent, whose consent expired or who asked for erasure are left out
(:func:`consent.api.consented_keys`); erased visitors' events are gone from the log anyway.
"""

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ..profiles.catalog import FEATURES as CATALOG
from ..profiles.features import MAX_WINDOW, Profile

DAY = 86400.0
MAX_DAYS = MAX_WINDOW / DAY  # "never" for recency features: older than anything we keep

# One event of a visitor: (name, epoch seconds, properties).
EventTuple = tuple[str, float, dict]


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
        self.get, self.missing, self.param = CATALOG[name].value, missing, param

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


def feature_row(profile: Profile, now: float, names: list[str]) -> list[float]:
    return [MODEL_FEATURES[n].value(profile, now) for n in names]


def feature_matrix(profiles: list[Profile], now: float, names: list[str]) -> np.ndarray:
    """Features of many profiles at ``now`` (rows in the profiles' order), the same numbers as
    :func:`feature_row`: computed a column at a time, and windowed counts of one event read in
    a single pass over its daily buckets (the workers' hot path)."""
    X = np.empty((len(profiles), len(names)), dtype=np.float64)
    windows: dict[str, list[tuple[int, float]]] = {}  # event -> (column among them, start)
    window_columns: list[int] = []
    for j, n in enumerate(names):
        feature = MODEL_FEATURES[n]
        if feature.window is None:
            X[:, j] = feature.values(profiles, now)
        else:
            start = now - feature.window[1] * DAY
            windows.setdefault(feature.window[0], []).append((len(window_columns), start))
            window_columns.append(j)
    if windows:
        width = len(window_columns)
        rows = []
        for p in profiles:
            # Python lists, turned into one array at the end: cheaper than adding to numpy
            # elements one by one.
            row = [0.0] * width
            buckets = p.buckets
            for event, starts in windows.items():
                counts = buckets.get(event)
                days = counts.get("d") if counts else None
                if not days:
                    continue
                for b, n in days.items():
                    if b * DAY > now:
                        continue
                    end = (b + 1) * DAY
                    for k, start in starts:
                        if end > start:
                            row[k] += n
            rows.append(row)
        X[:, window_columns] = np.array(rows, dtype=np.float64).reshape(len(profiles), width)
    np.minimum(X, MAX_VALUE, out=X)
    return X


@dataclass(frozen=True, slots=True)
class Target:
    """What a propensity model predicts, as an editor picks it: ``event`` within
    ``horizon_days`` after the cut-off, or (``absence``) no such event (churn)."""

    event: str
    horizon_days: int
    absence: bool = False

    @property
    def horizon(self) -> float:
        return self.horizon_days * DAY

    def describe(self) -> str:
        what = self.event.replace("_", " ")
        if self.absence:
            return f"no {what} within {self.horizon_days} days"
        return f"{what} within {self.horizon_days} days"

    def as_dict(self) -> dict:
        return {"event": self.event, "horizon_days": self.horizon_days, "absence": self.absence}

    @classmethod
    def from_dict(cls, data: dict) -> "Target":
        return cls(str(data["event"]), int(data["horizon_days"]), bool(data.get("absence")))


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Cut-offs for training and the held-out one, such that no training label window reaches
    past the held-out cut-off (the model never learns from the period it is judged on)."""

    train_cutoffs: tuple[float, ...]
    holdout_cutoff: float
    horizon: float

    def __post_init__(self):
        if not self.train_cutoffs:
            raise ValueError("at least one training cut-off is needed.")
        if max(self.train_cutoffs) + self.horizon > self.holdout_cutoff + 1e-6:
            raise ValueError("a training label window overlaps the held-out period.")

    @classmethod
    def ending_at(
        cls, data_end: float, horizon: float, windows: int = 4, step: float = 30 * DAY
    ) -> "TimeSplit":
        """The held-out cut-off leaves one full horizon of labels before ``data_end``; training
        cut-offs are one horizon earlier and then every ``step`` before that."""
        holdout = data_end - horizon
        first = holdout - horizon
        return cls(tuple(first - i * step for i in range(windows)), holdout, horizon)

    @property
    def cutoffs(self) -> list[float]:
        return sorted({*self.train_cutoffs, self.holdout_cutoff})

    def as_dict(self) -> dict:
        return {
            "train_cutoffs": [_iso(c) for c in sorted(self.train_cutoffs)],
            "holdout_cutoff": _iso(self.holdout_cutoff),
            "horizon_days": round(self.horizon / DAY, 2),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


@dataclass(slots=True)
class Dataset:
    """Rows of (visitor, cut-off): features as of the cut-off and, with a target, the label."""

    features: list[str]
    X: np.ndarray
    y: np.ndarray | None
    cutoffs: np.ndarray
    keys: list[str] = field(repr=False)

    def at(self, cutoff: float | Iterable[float]) -> "Dataset":
        wanted = np.isin(self.cutoffs, np.atleast_1d(np.asarray(cutoff, dtype=float)))
        return Dataset(
            self.features,
            self.X[wanted],
            None if self.y is None else self.y[wanted],
            self.cutoffs[wanted],
            [k for k, w in zip(self.keys, wanted, strict=True) if w],
        )

    def __len__(self) -> int:
        return len(self.X)


def build(
    source: Iterable[tuple[str, list[EventTuple]]],
    cutoffs: Iterable[float],
    features: list[str],
    target: Target | None = None,
    *,
    require: str | None = None,
) -> Dataset:
    """One row per visitor and cut-off at which the visitor had been seen: the features from
    the events strictly before the cut-off, evaluated at the cut-off, and with a ``target`` the
    label from the events in [cut-off, cut-off + horizon). ``require``: only visitors who did
    that event before the cut-off (customers, for RFM). ``source`` yields each visitor's events
    in time order."""
    check_features(features)
    points = sorted(set(cutoffs))
    functions = [MODEL_FEATURES[n].value for n in features]
    rows: list[list[float]] = []
    labels: list[bool] = []
    row_cutoffs: list[float] = []
    keys: list[str] = []
    for key, events in source:
        times = [e[1] for e in events]
        profile = Profile()
        applied = 0
        for cutoff in points:
            while applied < len(events) and events[applied][1] < cutoff:
                name, ts, properties = events[applied]
                applied += 1
                profile.apply(name, ts, (int(ts * 1000), applied), properties)
            if profile.first_seen is None or (require and require not in profile.totals):
                continue  # not seen (or never did ``require``) before the cut-off
            rows.append([f(profile, cutoff) for f in functions])
            row_cutoffs.append(cutoff)
            keys.append(key)
            if target is not None:
                start = bisect.bisect_left(times, cutoff)
                end = bisect.bisect_left(times, cutoff + target.horizon)
                happened = any(events[i][0] == target.event for i in range(start, end))
                labels.append(happened != target.absence)
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(features))
    y = np.asarray(labels, dtype=np.int8) if target is not None else None
    return Dataset(features, X, y, np.asarray(row_cutoffs, dtype=np.float64), keys)


def profiles_at(
    source: Iterable[tuple[str, list[EventTuple]]], now: float
) -> Iterator[tuple[str, Profile]]:
    """Each visitor's profile from the events before ``now`` (as the workers would hold it)."""
    for key, events in source:
        profile = Profile()
        for i, (name, ts, properties) in enumerate(events, start=1):
            if ts >= now:
                break
            profile.apply(name, ts, (int(ts * 1000), i), properties)
        if profile.first_seen is not None:
            yield key, profile


# -- sources ---------------------------------------------------------------------------------


def event_log(
    *, since: datetime | None = None, until: datetime | None = None, purpose: str | None = None
) -> Iterator[tuple[str, list[EventTuple]]]:
    """Visitors' events from the durable log (PostgreSQL), in time order, streamed, leaving
    out visitors whose data may not be used any more (see :func:`consent.api.consented_keys`)."""
    from consent.api import consented_keys

    from ..conf import get_setting
    from ..models import Event

    purpose = purpose or get_setting("SEGMENTS_PURPOSE")
    rows = Event.objects.order_by("visitor_key", "occurred_at", "event_id")
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    pending: list[tuple[str, list[EventTuple]]] = []

    def release() -> Iterator[tuple[str, list[EventTuple]]]:
        allowed = consented_keys([k for k, _ in pending], purpose)
        yield from (item for item in pending if item[0] in allowed)
        pending.clear()

    current: str | None = None
    events: list[EventTuple] = []
    for key, name, at, properties in rows.values_list(
        "visitor_key", "name", "occurred_at", "properties"
    ).iterator(chunk_size=20_000):
        if key != current:
            if current is not None:
                pending.append((current, events))
                if len(pending) >= 2000:
                    yield from release()
            current, events = key, []
        events.append((name, at.timestamp(), properties or {}))
    if current is not None:
        pending.append((current, events))
    yield from release()


def from_file(path, mapping) -> list[tuple[str, list[EventTuple]]]:
    """Visitors' events from an export read by :mod:`segments.events.importer` (same validation and
    keyed hashing as an import), for evaluating models on data not in the log."""
    from ..events.importer import _Converter, open_rows

    convert = _Converter(mapping)
    by_visitor: dict[str, list[EventTuple]] = {}
    for n, row in enumerate(open_rows(path), start=1):
        try:
            event = convert(row, n)
        except (ValueError, TypeError):
            continue
        if event is None:
            continue
        by_visitor.setdefault(event.visitor_key, []).append(
            (event.name, event.ts, event.properties)
        )
    for events in by_visitor.values():
        events.sort(key=lambda e: e[1])
    return list(by_visitor.items())


def finite(X: np.ndarray) -> np.ndarray:
    """Guard against an infinite or missing value reaching an estimator."""
    return np.nan_to_num(X, nan=0.0, posinf=1e12, neginf=-1e12)


def log_transform(X: np.ndarray, features: list[str]) -> np.ndarray:
    """log1p of the heavy-tailed columns (negative values clipped at zero first)."""
    out = np.array(X, dtype=np.float64, copy=True)
    for j, name in enumerate(features):
        if MODEL_FEATURES[name].log:
            out[:, j] = np.log1p(np.clip(out[:, j], 0, None))
    return out


__all__ = [
    "DEFAULT_PROPENSITY_FEATURES",
    "MODEL_FEATURES",
    "RFM",
    "Dataset",
    "ModelFeature",
    "Target",
    "TimeSplit",
    "build",
    "event_log",
    "feature_matrix",
    "feature_row",
    "from_file",
    "profiles_at",
]
