"""Reports for editors: segment sizes over time, entries and exits, top pages, conversions, and
impressions, clicks and conversions per block, variant and segment.

Everything is read from the durable tables: the event log
(:class:`~segments.models.LoggedEvent`) and the membership history
(:class:`~segments.models.MembershipChange`), so reports survive a lost fast store and cover
any period the log still holds.

Attribution (documented in docs/editors.md): a visitor is in a segment from each "entered"
change until the next "left" one. An impression, a click or a page view counts for the segments
the visitor was in *at that moment*. A conversion (an event named in ``conversions``) counts for
a block's variant when it is the variant of that block the visitor saw last before converting,
at most ``window`` seconds earlier, and for the segments the visitor was in at that impression.

The event contract of personalised blocks: events ``impression`` and ``click`` with properties
``block`` (the block's id), ``variant`` (``"default"`` or the variant's stable id) and ``page``
(the page id).
"""

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..backends import get_backend
from ..backends.base import BackendUnavailable
from ..models import LoggedEvent, MembershipChange

ALL = ""  # the "all visitors" row of a breakdown
CHUNK = 1000


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


@dataclass
class Intervals:
    """Each visitor's membership intervals per segment, as sorted (start, end) timestamps
    (end ``inf`` while still a member)."""

    spans: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)

    @classmethod
    def from_changes(cls, changes: Iterable[tuple[str, str, bool, datetime]]) -> "Intervals":
        """From (visitor_key, segment, entered, at) in time order."""
        opened: dict[tuple[str, str], float] = {}
        spans: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for key, segment, entered, at in changes:
            ts = at.timestamp()
            if entered:
                opened.setdefault((key, segment), ts)
            elif (key, segment) in opened:
                spans[key][segment].append((opened.pop((key, segment)), ts))
        for (key, segment), ts in opened.items():
            spans[key][segment].append((ts, float("inf")))
        for by_segment in spans.values():
            for segment_spans in by_segment.values():
                segment_spans.sort()
        return cls({k: dict(v) for k, v in spans.items()})

    def segments_at(self, key: str, ts: float) -> list[str]:
        found = []
        for segment, spans in self.spans.get(key, {}).items():
            i = bisect.bisect_right(spans, (ts, float("inf"))) - 1
            if i >= 0 and spans[i][0] <= ts < spans[i][1]:
                found.append(segment)
        return found

    def member_during(self, key: str, segment: str, start: float, end: float) -> bool:
        return any(s < end and e > start for s, e in self.spans.get(key, {}).get(segment, ()))


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def intervals(*, segment: str | None = None, visitors: Iterable[str] | None = None, until=None):
    """Membership intervals from the history (of one segment, or of some visitors)."""
    base = MembershipChange.objects.order_by("at", "pk")
    if until is not None:
        base = base.filter(at__lt=until)
    if segment is not None:
        base = base.filter(segment=segment)
    fields = ("visitor_key", "segment", "entered", "at")
    if visitors is None:
        return Intervals.from_changes(base.values_list(*fields).iterator(chunk_size=5000))
    rows = []
    for chunk in _chunks(sorted(set(visitors))):
        rows.extend(base.filter(visitor_key__in=chunk).values_list(*fields))
    rows.sort(key=lambda r: r[3])
    return Intervals.from_changes(rows)


# -- one segment ---------------------------------------------------------------------------------
def size_over_time(segment: str, start: date, end: date) -> list[tuple[date, int]]:
    """Members at the end of each day from ``start`` to ``end`` (from the membership history)."""
    history = intervals(segment=segment, until=_start(end + timedelta(days=1)))
    ends = [_start(day + timedelta(days=1)).timestamp() for day in _days(start, end)]
    sizes = [0] * len(ends)
    for by_segment in history.spans.values():
        for s, e in by_segment.get(segment, ()):
            for i, t in enumerate(ends):
                if s <= t < e:
                    sizes[i] += 1
    return list(zip(_days(start, end), sizes, strict=True))


def entries_and_exits(segment: str, start: date, end: date) -> list[tuple[date, int, int]]:
    """(day, entries, exits) for each day of the period."""
    rows = (
        MembershipChange.objects.filter(
            segment=segment, at__gte=_start(start), at__lt=_start(end + timedelta(days=1))
        )
        .annotate(day=TruncDate("at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            entries=Count("pk", filter=Q(entered=True)), exits=Count("pk", filter=Q(entered=False))
        )
    )
    by_day = {r["day"]: (r["entries"], r["exits"]) for r in rows}
    return [(day, *by_day.get(day, (0, 0))) for day in _days(start, end)]


def _members(history: Intervals, segment: str, t0: float, t1: float) -> list[str]:
    return [k for k in history.spans if history.member_during(k, segment, t0, t1)]


def top_pages(segment: str, start: date, end: date, limit: int = 10) -> list[tuple[str, int]]:
    """The paths members viewed most while they were members, in the period."""
    t0, t1 = _start(start), _start(end + timedelta(days=1))
    history = intervals(segment=segment, until=t1)
    members = _members(history, segment, t0.timestamp(), t1.timestamp())
    counts: Counter[str] = Counter()
    for chunk in _chunks(members):
        views = LoggedEvent.objects.filter(
            visitor_key__in=chunk, name="page_view", occurred_at__gte=t0, occurred_at__lt=t1
        ).values_list("visitor_key", "occurred_at", "properties")
        for key, at, props in views.iterator(chunk_size=5000):
            path = (props or {}).get("path")
            if path and segment in history.segments_at(key, at.timestamp()):
                counts[str(path)] += 1
    return counts.most_common(limit)


def conversion_rate(segment: str, start: date, end: date, conversions: Iterable[str]) -> dict:
    """Of the visitors who were members at some time in the period, how many had a conversion
    event while they were members."""
    names = list(conversions)
    t0, t1 = _start(start), _start(end + timedelta(days=1))
    history = intervals(segment=segment, until=t1)
    members = _members(history, segment, t0.timestamp(), t1.timestamp())
    converted = set()
    for chunk in _chunks(members):
        events = LoggedEvent.objects.filter(
            visitor_key__in=chunk, name__in=names, occurred_at__gte=t0, occurred_at__lt=t1
        ).values_list("visitor_key", "occurred_at")
        for key, at in events.iterator(chunk_size=5000):
            if segment in history.segments_at(key, at.timestamp()):
                converted.add(key)
    rate = len(converted) / len(members) if members else None
    return {"members": len(members), "converted": len(converted), "rate": rate}


# -- every segment at once (the dashboard: a fixed number of queries, however many segments) -----
def entries_and_exits_by_segment(start: date, end: date) -> dict[str, tuple[int, int]]:
    """(entries, exits) of each segment with any in the period, in one query."""
    rows = (
        MembershipChange.objects.filter(
            at__gte=_start(start), at__lt=_start(end + timedelta(days=1))
        )
        .values("segment")
        .annotate(
            entries=Count("pk", filter=Q(entered=True)), exits=Count("pk", filter=Q(entered=False))
        )
    )
    return {r["segment"]: (r["entries"], r["exits"]) for r in rows}


def conversion_rates(start: date, end: date, conversions: Iterable[str]) -> dict[str, dict]:
    """:func:`conversion_rate` of every segment with members in the period, from one read of
    the membership history and one of the members' conversion events (in chunks of visitors)."""
    names = list(conversions)
    t0, t1 = _start(start), _start(end + timedelta(days=1))
    history = intervals(until=t1)
    members: dict[str, list[str]] = defaultdict(list)
    for key, by_segment in history.spans.items():
        for segment in by_segment:
            if history.member_during(key, segment, t0.timestamp(), t1.timestamp()):
                members[segment].append(key)
    converted: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted({k for keys in members.values() for k in keys})):
        events = LoggedEvent.objects.filter(
            visitor_key__in=chunk, name__in=names, occurred_at__gte=t0, occurred_at__lt=t1
        ).values_list("visitor_key", "occurred_at")
        for key, at in events.iterator(chunk_size=5000):
            for segment in history.segments_at(key, at.timestamp()):
                converted[segment].add(key)
    return {
        segment: {
            "members": len(keys),
            "converted": len(converted[segment]),
            "rate": len(converted[segment]) / len(keys),
        }
        for segment, keys in members.items()
    }


# -- blocks and variants -------------------------------------------------------------------------
@dataclass
class VariantRow:
    page: str
    block: str
    variant: str
    segment: str  # ALL for every visitor
    impressions: int = 0
    clicks: int = 0
    visitors: set = field(default_factory=set, repr=False)
    converted: set = field(default_factory=set, repr=False)

    @property
    def conversions(self) -> int:
        """Visitors who converted after seeing the variant (see the module docstring)."""
        return len(self.converted)

    @property
    def click_rate(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion_rate(self) -> float | None:
        """Share of the visitors who saw the variant who then converted."""
        return self.conversions / len(self.visitors) if self.visitors else None


def block_report(
    start: date,
    end: date,
    conversions: Iterable[str],
    *,
    window: float = 7 * 86400,
    page: str | None = None,
) -> list[VariantRow]:
    """Impressions, clicks and conversions per (page, block, variant, segment), plus an
    all-visitors row (segment ``ALL``) for each variant. See the module docstring for how
    events are attributed."""
    names = list(conversions)
    t0, t1 = _start(start), _start(end + timedelta(days=1))
    query = LoggedEvent.objects.filter(
        name__in=["impression", "click"], occurred_at__gte=t0, occurred_at__lt=t1
    )
    if page:
        query = query.filter(properties__page=int(page) if str(page).isdigit() else page)
    shown = list(
        query.order_by("occurred_at").values_list(
            "visitor_key", "name", "occurred_at", "properties"
        )
    )
    history = intervals(visitors={r[0] for r in shown}, until=t1)
    rows: dict[tuple, VariantRow] = {}
    # Per visitor and block: their impressions in time order, for conversions.
    seen: dict[tuple[str, str, str], list[tuple[float, str, list[str]]]] = defaultdict(list)

    def row(pg, block, variant, segment) -> VariantRow:
        key = (pg, block, variant, segment)
        if key not in rows:
            rows[key] = VariantRow(pg, block, variant, segment)
        return rows[key]

    for key, name, at, props in shown:
        props = props or {}
        block, variant = str(props.get("block", "")), str(props.get("variant", ""))
        if not block or not variant:
            continue
        pg = str(props.get("page", ""))
        ts = at.timestamp()
        segments = history.segments_at(key, ts)
        for segment in [ALL, *segments]:
            r = row(pg, block, variant, segment)
            if name == "impression":
                r.impressions += 1
                r.visitors.add(key)
            else:
                r.clicks += 1
        if name == "impression":
            seen[(key, pg, block)].append((ts, variant, segments))

    if names and seen:
        visitors = sorted({k for k, _pg, _b in seen})
        conv_end = t1 + timedelta(seconds=window)
        by_visitor: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for k, pg, block in seen:
            by_visitor[k].append((pg, block))
        for chunk in _chunks(visitors):
            events = LoggedEvent.objects.filter(
                visitor_key__in=chunk, name__in=names, occurred_at__gte=t0, occurred_at__lt=conv_end
            ).values_list("visitor_key", "occurred_at")
            for key, at in events.iterator(chunk_size=5000):
                ts = at.timestamp()
                for pg, block in by_visitor[key]:
                    impressions = seen[(key, pg, block)]
                    i = bisect.bisect_right([x[0] for x in impressions], ts) - 1
                    if i < 0 or ts - impressions[i][0] > window:
                        continue
                    _ts, variant, segments = impressions[i]
                    for segment in [ALL, *segments]:
                        row(pg, block, variant, segment).converted.add(key)
    return sorted(
        rows.values(), key=lambda r: (r.page, r.block, r.variant, r.segment != ALL, r.segment)
    )


def current_sizes() -> dict[str, int] | None:
    """Each segment's size now, from the fast store (None when it cannot be reached)."""

    try:
        return get_backend().segment_sizes()
    except BackendUnavailable:
        return None
