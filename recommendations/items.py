"""Items are pages: any page type that mixes in :class:`RecommendableMixin` is an item.

The :class:`~recommendations.models.Item` row of such a page (its external id, category, text
and whether it may be recommended) follows the page: written when it is published,
unpublished, moved or deleted, and by :func:`sync_items` (the nightly rebuild; pages that
expire or become private without being published again are caught there). The request path
and the workers read the catalogue from a per-process cache (:func:`catalogue`).
"""

import time
from dataclasses import dataclass

from django.utils import timezone
from django.utils.html import strip_tags
from wagtail.models import Page, PageViewRestriction, get_page_models

from .conf import get_setting
from .models import Item


class RecommendableMixin:
    """Mix into a page model to make its pages items. Override the methods to say where a
    page keeps its external id, category and text; by default the page's ``external_id`` (or
    ``stock_code``) and ``category`` attributes, and its title, search description and
    searchable content."""

    def recommendation_external_id(self) -> str:
        return str(getattr(self, "external_id", "") or getattr(self, "stock_code", "") or "")

    def recommendation_category(self) -> str:
        return str(getattr(self, "category", "") or "")

    def recommendation_text(self) -> str:
        parts = [self.title, self.search_description or ""]
        body = getattr(self, "body", None)
        if body is not None and hasattr(body, "stream_block"):
            parts += map(str, body.stream_block.get_searchable_content(body))
        return strip_tags(" ".join(p for p in parts if p))


def item_models() -> list[type]:
    return [m for m in get_page_models() if issubclass(m, RecommendableMixin)]


def _recommendable(page: Page, restricted: set[str]) -> bool:
    if not page.live or page.expired:
        return False
    if page.expire_at is not None and page.expire_at <= timezone.now():
        return False
    return not any(page.path.startswith(path) for path in restricted)


def _restricted_paths() -> set[str]:
    return set(PageViewRestriction.objects.values_list("page__path", flat=True))


def sync_page(page: Page) -> None:
    """Bring the page's item row in step with the page (or remove it: not an item type)."""
    specific = page.specific
    if not isinstance(specific, RecommendableMixin):
        Item.objects.filter(page_id=page.pk).delete()
        return
    _save(specific, _restricted_paths())
    forget()


def _save(page, restricted: set[str]) -> None:
    external = page.recommendation_external_id()[:64]
    if external:  # another page held it before: the latest page takes it
        Item.objects.filter(external_id=external).exclude(page_id=page.pk).update(external_id="")
    Item.objects.update_or_create(
        page_id=page.pk,
        defaults={
            "external_id": external,
            "category": page.recommendation_category()[:64],
            "text": page.recommendation_text(),
            "recommendable": _recommendable(page, restricted),
        },
    )


def sync_items() -> int:
    """Every item page's row (and none for pages that are gone or no longer items)."""
    restricted = _restricted_paths()
    seen = []
    for model in item_models():
        for page in model.objects.all().iterator():
            _save(page, restricted)
            seen.append(page.pk)
    Item.objects.exclude(page_id__in=seen).delete()
    forget()
    return len(seen)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The items as the request path and the workers see them: page ids that may be
    recommended, every item's category, and external id -> page id."""

    allowed: frozenset[int]
    categories: dict[int, str]
    external: dict[str, int]
    known: frozenset[int]


_catalogue: tuple[float, Catalogue] | None = None


def catalogue() -> Catalogue:
    """The catalogue, read at most once per ``RECOMMENDATIONS_CACHE_SECONDS``."""
    global _catalogue
    now = time.monotonic()
    if _catalogue is None or now - _catalogue[0] > get_setting("RECOMMENDATIONS_CACHE_SECONDS"):
        rows = list(Item.objects.values_list("page_id", "external_id", "category", "recommendable"))
        _catalogue = (
            now,
            Catalogue(
                allowed=frozenset(p for p, _e, _c, ok in rows if ok),
                categories={p: c for p, _e, c, _ok in rows},
                external={e: p for p, e, _c, _ok in rows if e},
                known=frozenset(p for p, *_ in rows),
            ),
        )
    return _catalogue[1]


def item_of(properties: dict, items: Catalogue, names: tuple[str, ...]) -> int | None:
    """The item an event names (a known page id, or an item's external id), or None."""
    for name in names:
        value = properties.get(name)
        if value is None or isinstance(value, bool):
            continue
        if name == "page":
            try:
                page = int(value)
            except (TypeError, ValueError):
                continue
            if page in items.known:
                return page
        else:
            page = items.external.get(str(value))
            if page is not None:
                return page
    return None


def forget() -> None:
    """Read the catalogue again on next use (after an edit in this process; tests)."""
    global _catalogue
    _catalogue = None
