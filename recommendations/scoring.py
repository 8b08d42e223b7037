"""The arithmetic of recommendations, on plain values: time decay, co-occurrence and
popularity deltas from a visitor's events, the "for you" list from their recent items, and the
business rules applied to any list. Imports nothing from Django (a pure-logic contract).

**Time decay without rewriting.** A weight ``w`` recorded at time ``t`` is stored as
``w * 2 ** ((t - EPOCH) / half_life)``: a stored sum then ranks items exactly as the sum of
their weights decayed to any common "now" would (every term shares the factor
``2 ** -((now - EPOCH) / half_life)``), so adding an event is one increment and nothing is ever
rescaled. The nightly rebuild starts the sums afresh.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# 2020-01-01T00:00:00Z: the time stored weights are scaled to (see above). Float64 holds the
# factor for ~85 years either side with a 30-day half-life.
EPOCH = 1_577_836_800.0
_MAX_EXPONENT = 1000.0


def decayed(weight: float, ts: float, half_life_seconds: float) -> float:
    """``weight`` of an event at ``ts`` on the common scale of stored sums."""
    exponent = (ts - EPOCH) / half_life_seconds
    return weight * 2.0 ** max(min(exponent, _MAX_EXPONENT), -_MAX_EXPONENT)


def in_order(event: tuple) -> tuple:
    """Sort key of a visitor's item events ``(ts, item, ...)``: time order, and events of the
    same millisecond (the stream's resolution) in order of item id. The drain and a rebuild
    from the durable log (which cannot tell which of them came first) then agree on the
    visitor's latest items."""
    return event[0], event[1]


@dataclass(slots=True)
class Recent:
    """A visitor's latest items (newest last) and the items they bought, as kept in their
    fast-store hash (``r:recent``, ``r:bought``)."""

    items: list[int] = field(default_factory=list)
    bought: list[int] = field(default_factory=list)

    @classmethod
    def decode(cls, recent: str | None, bought: str | None) -> "Recent":
        return cls(_ids(recent), _ids(bought))

    def encode(self) -> tuple[str, str]:
        return ",".join(map(str, self.items)), ",".join(map(str, self.bought))

    def add(self, item: int, purchase: bool, keep: int) -> None:
        if item in self.items:
            self.items.remove(item)
        self.items.append(item)
        del self.items[:-keep]
        if purchase and item not in self.bought:
            self.bought.append(item)
            del self.bought[: -max(keep * 3, 1)]


def _ids(value: str | None) -> list[int]:
    out = []
    for part in (value or "").split(","):
        if part.isdigit():
            out.append(int(part))
    return out


@dataclass(slots=True)
class Deltas:
    """Increments to the stored sums from a batch of events: ``links[a][b]`` for the pair
    ``(a, b)`` (symmetric: both orders are added) and ``by_segment[segment][item]`` for an
    item's popularity (segment ``""``: everyone). Kept by first key, as the worker's gathering
    (:mod:`recommendations.buffer`) and the stored lists are: a batch's increments merge into
    it a row at a time. :attr:`pairs` and :attr:`popular` give them by ``(a, b)`` and by
    ``(segment, item)``, as they are stored."""

    links: dict[int, dict[int, float]] = field(default_factory=dict)
    by_segment: dict[str, dict[int, float]] = field(default_factory=dict)
    # Pair increments added (both orders), an upper bound of the new pairs among them.
    increments: int = field(default=0, compare=False)

    @classmethod
    def of_pairs(
        cls, pairs: Mapping[tuple[int, int], float], popular: Mapping[tuple[str, int], float]
    ) -> "Deltas":
        deltas = cls()
        for (a, b), w in pairs.items():
            deltas.links.setdefault(a, {})[b] = w
        for (segment, item), w in popular.items():
            deltas.by_segment.setdefault(segment, {})[item] = w
        return deltas

    @property
    def pairs(self) -> dict[tuple[int, int], float]:
        """Every pair's increment by ``(a, b)``."""
        return {(a, b): w for a, row in self.links.items() for b, w in row.items()}

    @property
    def popular(self) -> dict[tuple[str, int], float]:
        """Every popularity increment by ``(segment, item)``."""
        return {(s, i): w for s, row in self.by_segment.items() for i, w in row.items()}

    def add_event(
        self,
        recent: Recent,
        item: int,
        weight: float,
        ts: float,
        segments: Iterable[str],
        *,
        half_life_seconds: float,
        keep: int,
        purchase: bool,
        pair_with: int = 0,
    ) -> None:
        """One event on ``item``: it co-occurs with each of the visitor's ``pair_with`` latest
        items (0: all their recent items; never with itself), counts towards its popularity
        for everyone and in each segment, then becomes the visitor's latest item."""
        self.add_events(
            recent,
            ((ts, item, weight, purchase),),
            segments,
            half_life_seconds=half_life_seconds,
            keep=keep,
            pair_with=pair_with,
        )

    def add_events(
        self,
        recent: Recent,
        events: Iterable[tuple[float, int, float, bool]],
        segments: Iterable[str],
        *,
        half_life_seconds: float,
        keep: int,
        pair_with: int = 0,
    ) -> None:
        """:meth:`add_event` for each of one visitor's events ``(ts, item, weight,
        purchase)``, in the order given (time order: :func:`in_order`).

        The drain's inner loop: the pairs go straight into :attr:`links`; the visitor's
        popularity increments are summed by item first and then added to everyone's row and
        each of their segments' rows (one addition per item and segment, not per event)."""
        links = self.links
        get_row = links.get
        items = recent.items  # changed in place by recent.add
        mine_popular: dict[int, float] = {}
        popular_get = mine_popular.get
        paired = 0
        for ts, item, weight, purchase in events:
            w = decayed(weight, ts, half_life_seconds)
            partners = items[-pair_with:] if pair_with > 0 else items
            if partners:
                paired += len(partners)
                mine = get_row(item)
                if mine is None:
                    mine = links[item] = {}
                for other in partners:
                    if other != item:
                        mine[other] = mine.get(other, 0.0) + w
                        back = get_row(other)
                        if back is None:
                            links[other] = {item: w}
                        else:
                            back[item] = back.get(item, 0.0) + w
                if not mine:  # its only partner was itself
                    del links[item]
            mine_popular[item] = popular_get(item, 0.0) + w
            recent.add(item, purchase, keep)
        self.increments += 2 * paired
        by_segment = self.by_segment
        for segment in ("", *segments):
            row = by_segment.get(segment)
            if row is None:
                by_segment[segment] = dict(mine_popular)
                continue
            get = row.get
            for item, w in mine_popular.items():
                row[item] = get(item, 0.0) + w


def for_you(
    recent: Sequence[int],
    neighbours: Mapping[int, Sequence[tuple[int, float]]],
    *,
    exclude: Iterable[int] = (),
    length: int = 20,
) -> list[int]:
    """Items for a visitor from their recent items' co-occurrence neighbours (each item's
    list best first, as :func:`recommendations.sums.top_neighbours` gives them): each neighbour
    scores the sum over the recent items of its share of that item's strongest link, the
    newest item counting most (the k-th newest ``1 / k``). Recent and ``exclude``d items are
    left out; ties go to the smaller id (a stable order)."""
    scores: dict[int, float] = {}
    get = scores.get
    for rank, item in enumerate(reversed(recent), start=1):
        links = neighbours.get(item)
        if not links:
            continue
        scale = 1.0 / ((links[0][1] or 1.0) * rank)  # the strongest link is the first
        for b, w in links:
            scores[b] = get(b, 0.0) + w * scale
    pop = scores.pop
    for b in recent:
        pop(b, None)
    for b in exclude:
        pop(b, None)
    ranked = [(-s, b) for b, s in scores.items()]
    ranked.sort()
    return [b for _s, b in ranked[:length]]


def apply_rules(
    candidates: Sequence[int],
    *,
    count: int,
    allowed: Iterable[int] | None = None,
    categories: Mapping[int, str] | None = None,
    exclude: Iterable[int] = (),
    pin: Sequence[int] = (),
    max_per_category: int = 0,
    diversify: bool = False,
) -> list[int]:
    """The business rules on a ranked list, in this order: ``pin``ned items first (in the
    editor's order, if allowed), then the candidates without ``exclude``d items or items not
    ``allowed`` (unpublished, private, expired), at most ``max_per_category`` of one category
    (0: no limit), and with ``diversify`` one item of each category in turn (round robin, in
    rank order) before a second of any; ``count`` items at most, no item twice."""
    allowed_set = None if allowed is None else set(allowed)
    banned = set(exclude)
    categories = categories or {}
    out: list[int] = []
    seen: set[int] = set()
    per_category: dict[str, int] = {}

    def ok(item: int) -> bool:
        return (
            item not in seen and item not in banned and (allowed_set is None or item in allowed_set)
        )

    for item in pin:
        if len(out) >= count:
            return out
        if ok(item):
            out.append(item)
            seen.add(item)
            cat = categories.get(item, "")
            per_category[cat] = per_category.get(cat, 0) + 1
    rest, firsts = [], set()
    for c in candidates:
        if ok(c) and c not in firsts:  # first occurrence only
            firsts.add(c)
            rest.append(c)
    if diversify:
        buckets: dict[str, list[int]] = {}
        for c in rest:
            buckets.setdefault(categories.get(c, ""), []).append(c)
        ordered = []
        while any(buckets.values()):
            for cat in list(buckets):
                if buckets[cat]:
                    ordered.append(buckets[cat].pop(0))
        rest = ordered
    for item in rest:
        if len(out) >= count:
            break
        cat = categories.get(item, "")
        if max_per_category and per_category.get(cat, 0) >= max_per_category:
            continue
        out.append(item)
        seen.add(item)
        per_category[cat] = per_category.get(cat, 0) + 1
    return out
