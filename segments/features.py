"""Behavioural features of one visitor, kept compact for the fast store (pure: no Django).

Counts of each event are kept in three tiers of time buckets (minutes for the last hour, hours
for the last two days, days for the last 400 days), so that "at least N events in the last D"
can be answered for any window up to 400 days from a profile of bounded size. A bucket counts
towards a window while any part of it lies inside the window, so membership based on a window
lasts at most one bucket longer than the exact window (a minute, for windows up to an hour).
"""

from dataclasses import dataclass, field
from typing import Any

# (tier name, bucket size in seconds, how many buckets are kept)
TIERS = (("m", 60, 60), ("h", 3600, 48), ("d", 86400, 400))
MAX_WINDOW = TIERS[-1][1] * TIERS[-1][2]


def tier_for(window: float) -> tuple[str, int, int]:
    for tier in TIERS:
        if window <= tier[1] * tier[2]:
            return tier
    raise ValueError(f"Windows longer than {MAX_WINDOW // 86400} days are not supported.")


@dataclass(slots=True)
class Profile:
    """Features of one visitor. ``last_id`` is the stream id of the last event applied, which
    makes applying a batch idempotent when a crashed worker's batch is delivered again."""

    first_seen: float | None = None
    last_seen: float | None = None
    last_id: tuple[int, int] = (0, 0)
    totals: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)

    # -- updating -------------------------------------------------------------------------
    def apply(self, name: str, ts: float, stream_id: tuple[int, int]) -> bool:
        """Count one event; False (and no change) if it was applied before."""
        if stream_id <= self.last_id:
            return False
        self.last_id = stream_id
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        self.last_seen = ts if self.last_seen is None else max(self.last_seen, ts)
        self.totals[name] = self.totals.get(name, 0) + 1
        tiers = self.buckets.setdefault(name, {})
        for tier, size, _keep in TIERS:
            b = int(ts // size)
            counts = tiers.setdefault(tier, {})
            counts[b] = counts.get(b, 0) + 1
        return True

    def prune(self, now: float) -> None:
        for tiers in self.buckets.values():
            for tier, size, keep in TIERS:
                counts = tiers.get(tier)
                if counts:
                    # The oldest bucket still (partly) inside the tier's longest window stays.
                    oldest = int(now // size) - keep
                    for b in [b for b in counts if b < oldest]:
                        del counts[b]

    # -- reading --------------------------------------------------------------------------
    def count_within(self, name: str, window: float, now: float) -> int:
        tier, size, _keep = tier_for(window)
        counts = self.buckets.get(name, {}).get(tier, {})
        return sum(
            n for b, n in counts.items() if (b + 1) * size > now - window and b * size <= now
        )

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

    # -- storage --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "f": self.first_seen,
            "l": self.last_seen,
            "i": list(self.last_id),
            "t": self.totals,
            "b": {
                name: {tier: [[b, n] for b, n in sorted(c.items())] for tier, c in tiers.items()}
                for name, tiers in self.buckets.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Profile":
        if not data:
            return cls()
        return cls(
            first_seen=data.get("f"),
            last_seen=data.get("l"),
            last_id=tuple(data.get("i") or (0, 0)),
            totals=dict(data.get("t") or {}),
            buckets={
                name: {tier: {int(b): int(n) for b, n in pairs} for tier, pairs in tiers.items()}
                for name, tiers in (data.get("b") or {}).items()
            },
        )


def parse_stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
