"""Training data from the durable event log, point-in-time correct.

A visitor's features are computed the way the workers compute them: their events are applied
to a :class:`segments.api.Profile` in time order, and the features of :data:`MODEL_FEATURES`
(the numeric view of the one feature catalog, :mod:`segments.profiles.catalog`) are read from
it *as of a cut-off*, from the events before the cut-off only. A label comes from the period
after the cut-off (did the target event happen within N days, or not), so nothing of the
future leaks into the features. One pass over each visitor's events yields rows at several
cut-offs: earlier cut-offs train, the latest one is the held-out time (:class:`TimeSplit`).

Visitors who withdrew consent, whose consent expired or who asked for erasure are left out
(:func:`consent.api.consented_keys`); erased visitors' events are gone from the log anyway.
"""

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from segments.api import (  # the one feature catalog, shared with rules (re-exported)
    DAY,
    DEFAULT_PROPENSITY_FEATURES,
    MAX_DAYS,
    MAX_VALUE,
    MODEL_FEATURES,
    RFM,
    ModelFeature,
    Profile,
    check_features,
    read_visitor_events,
    visitor_histories,
)

__all__ = [
    "DAY",
    "DEFAULT_PROPENSITY_FEATURES",
    "MAX_DAYS",
    "MODEL_FEATURES",
    "RFM",
    "Dataset",
    "ModelFeature",
    "Target",
    "TimeSplit",
    "build",
    "check_features",
    "event_log",
    "events_before",
    "feature_matrix",
    "feature_row",
    "finite",
    "from_file",
    "log_transform",
    "profiles_at",
]

# One event of a visitor: (name, epoch seconds, properties).
EventTuple = tuple[str, float, dict]


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


# Where training data comes from: the durable log, or an export file read like an import.
event_log = visitor_histories
from_file = read_visitor_events


def events_before(
    source: Iterable[tuple[str, list[EventTuple]]], instant: float
) -> list[tuple[str, list[EventTuple]]]:
    """The source as it stood at ``instant`` (epoch seconds): each visitor's events strictly
    before it, visitors with none left out. What ``--as-of`` does to a file (the durable log
    is read with ``until`` instead)."""
    out = []
    for key, events in source:
        kept = [e for e in events if e[1] < instant]
        if kept:
            out.append((key, kept))
    return out


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
    "events_before",
    "feature_matrix",
    "feature_row",
    "from_file",
    "profiles_at",
]
