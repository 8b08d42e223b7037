"""The recommendations app's public Python API: what the layers above (cms_blocks, the demo)
may use."""

from .items import RecommendableMixin, catalogue, sync_items, sync_page
from .lists import (
    DESCRIPTIONS,
    FALLBACKS,
    STRATEGIES,
    Recommendations,
    item_pages,
    recommend,
)

__all__ = [
    "DESCRIPTIONS",
    "FALLBACKS",
    "STRATEGIES",
    "RecommendableMixin",
    "Recommendations",
    "catalogue",
    "forget",
    "item_pages",
    "recommend",
    "strategy_choices",
    "sync_items",
    "sync_page",
]

_LABELS = {
    "for_you": "For you",
    "together": "Bought or viewed together",
    "similar": "Similar pages",
    "popular": "Popular in this segment",
}


def strategy_choices() -> list[tuple[str, str]]:
    """(value, label) of every strategy, for choice blocks."""
    return [(s, _LABELS[s]) for s in STRATEGIES]


def forget() -> None:
    """Read the catalogue and every shared list again on next use (tests; after an import)."""
    from . import items, lists

    items.forget()
    lists.forget()
