"""The read side: a recommendation list for one request, from what the workers keep.

Per visitor, only the "for you" list, read from the visitor's hash by the request's one round
trip (the caller passes those fields in). Per page and per segment ("bought or viewed
together", "similar pages", "popular"), lists shared by every visitor, read from the database
at most once per ``RECOMMENDATIONS_CACHE_SECONDS`` per process (most pages query nothing).
"""

import time
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from segments.api import segment_priorities

from .conf import get_setting
from .items import catalogue
from .models import Popularity, SimilarList
from .scoring import apply_rules
from .sums import top_neighbours

FOR_YOU, TOGETHER, SIMILAR, POPULAR = "for_you", "together", "similar", "popular"
STRATEGIES = (FOR_YOU, TOGETHER, SIMILAR, POPULAR)
# What each strategy falls back on when it has too little (popular needs nothing).
FALLBACKS = {
    FOR_YOU: (FOR_YOU, TOGETHER, SIMILAR, POPULAR),
    TOGETHER: (TOGETHER, SIMILAR, POPULAR),
    SIMILAR: (SIMILAR, POPULAR),
    POPULAR: (POPULAR,),
}
# For editors: one sentence each (docs/recommendations.md says more).
DESCRIPTIONS = {
    FOR_YOU: "Items that go with what this visitor looked at, put in a cart or bought lately "
    "(only for visitors who consented; others get the fallback).",
    TOGETHER: "Items that visitors who viewed or bought this page's item also viewed or "
    "bought, recent behaviour counting most.",
    SIMILAR: "Pages whose text is most like this page's text.",
    POPULAR: "The items most viewed and bought lately by visitors of the visitor's segment "
    "(by everyone when the segment has none).",
}


@dataclass(frozen=True, slots=True)
class Recommendations:
    """A list of page ids, best first, and the strategy that produced its first item (the
    requested one, or the fallback that filled in: :data:`FALLBACKS`); ``""`` when empty."""

    items: list[int]
    strategy: str
    requested: str


_cache: dict[tuple[str, object], tuple[float, list[int]]] = {}


def _cached(kind: str, key, load) -> list[int]:
    now = time.monotonic()
    hit = _cache.get((kind, key))
    if hit is not None and now - hit[0] <= get_setting("RECOMMENDATIONS_CACHE_SECONDS"):
        return hit[1]
    value = load()
    if len(_cache) > 50_000:
        _cache.clear()
    _cache[(kind, key)] = (now, value)
    return value


def forget() -> None:
    """Read every shared list again on next use (tests; after a rebuild in this process)."""
    _cache.clear()


def together(page_id: int) -> list[int]:
    length = int(get_setting("RECOMMENDATIONS_LIST_LENGTH")) * 2
    return _cached(
        TOGETHER,
        page_id,
        lambda: [b for b, _w in top_neighbours({page_id}, length).get(page_id, ())],
    )


def similar(page_id: int) -> list[int]:
    def load():
        row = SimilarList.objects.filter(item=page_id).values_list("similar", flat=True).first()
        return [int(i) for i in row or ()]

    return _cached(SIMILAR, page_id, load)


def popular(segment: str) -> list[int]:
    length = int(get_setting("RECOMMENDATIONS_LIST_LENGTH")) * 2
    return _cached(
        POPULAR,
        segment,
        lambda: list(
            Popularity.objects.filter(segment=segment, weight__gt=0)
            .order_by("-weight", "item")
            .values_list("item", flat=True)[:length]
        ),
    )


def item_pages(ids: Sequence[int]) -> list:
    """The pages (specific) of these item ids, in order, leaving out any gone: read from the
    database only for ids this process has not read within ``RECOMMENDATIONS_CACHE_SECONDS``
    (a page's new title shows within that time; whether it may be recommended at all is the
    catalogue's, read as often)."""
    now = time.monotonic()
    ttl = get_setting("RECOMMENDATIONS_CACHE_SECONDS")
    found, missing = {}, []
    for i in ids:
        hit = _cache.get(("page", i))
        if hit is not None and now - hit[0] <= ttl:
            found[i] = hit[1]
        else:
            missing.append(i)
    if missing:
        from wagtail.models import Page

        for page in Page.objects.filter(pk__in=missing).specific():
            _cache[("page", page.pk)] = (now, page)
            found[page.pk] = page
    return [found[i] for i in ids if found.get(i) is not None]


def popular_segments() -> list[str]:
    """The segments with a popular list of their own, highest priority first."""

    def load():
        priorities = segment_priorities()
        found = Popularity.objects.exclude(segment="").values_list("segment", flat=True)
        return sorted(set(found.distinct()), key=lambda s: (-priorities.get(s, 0), s))

    return _cached("segments", None, load)


def _ids(value: str | None) -> list[int]:
    return [int(p) for p in (value or "").split(",") if p.isdigit()]


def candidates(
    strategy: str,
    *,
    page_id: int | None,
    fields: dict[str, str] | None,
    segments: Container[str],
) -> list[int]:
    """The ranked list one strategy gives, before the business rules."""
    if strategy == FOR_YOU:
        return _ids(fields.get("fy")) if fields else []
    if strategy == TOGETHER:
        return together(page_id) if page_id else []
    if strategy == SIMILAR:
        return similar(page_id) if page_id else []
    # The visitor's highest-priority segment with a list, topped up by everyone's. Segments are
    # only asked about ("in"), never listed: in cache-safe mode a page that lists a visitor's
    # segments is never shared (personalization.cache).
    for segment in popular_segments():
        if segment in segments:
            return popular(segment) + popular("")
    return popular("")


def recommend(
    strategy: str,
    *,
    count: int = 4,
    page_id: int | None = None,
    fields: dict[str, str] | None = None,
    segments: Container[str] = (),
    exclude: Iterable[int] = (),
    pin: Sequence[int] = (),
    max_per_category: int = 0,
    diversify: bool = False,
) -> Recommendations:
    """Up to ``count`` page ids for this request by ``strategy``, topped up by its fallbacks.

    ``fields`` are the visitor's recommendation fields read by the request's round trip
    (:attr:`segments.api.Exchange.recommendations`; None without consent: "for you" then
    falls back at once), ``segments`` the visitor's segments (only asked about with ``in``,
    for "popular": their highest-priority segment with a list). The current page is never
    recommended on itself; pages that are not recommendable (unpublished, private, expired)
    never are."""
    if strategy not in FALLBACKS:
        strategy = POPULAR
    items = catalogue()
    banned = set(exclude)
    if page_id:
        banned.add(page_id)
    out: list[int] = []
    produced = ""
    for source in FALLBACKS[strategy]:
        found = candidates(source, page_id=page_id, fields=fields, segments=segments)
        ranked = apply_rules(
            found,
            count=count,
            allowed=items.allowed,
            categories=items.categories,
            exclude=banned | set(out),
            pin=() if out else pin,
            max_per_category=max_per_category,
            diversify=diversify,
        )
        if ranked and not produced:
            produced = source
        out += ranked[: count - len(out)]
        if len(out) >= count:
            break
    return Recommendations(out, produced, strategy)
