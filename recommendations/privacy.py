"""What the recommendations app holds about a visitor, for the consent app's data-subject
requests and record of processing (registered in ``RecommendationsConfig.ready()``).

Per visitor: their recent items, the items they bought and their "for you" list, in their
fast-store hash (``r:`` fields), erased and re-keyed with it by the segments app (an erasure
removes them at once). The co-occurrence and popularity sums hold no visitor key: an erased
visitor's contribution leaves them at the next rebuild from the durable log
(``recommendations.rebuild``, nightly: ``docs/recommendations.md``).
"""

from django.utils.translation import gettext_lazy as _

from consent.api import RetentionPeriod
from segments.api import RECOMMENDATION_PREFIX, get_backend

from .pipeline import BOUGHT, FOR_YOU, RECENT


def _ids(value: str | None) -> list[int]:
    return [int(p) for p in (value or "").split(",") if p.isdigit()]


def export(visitor_key: str) -> dict[str, list[dict]]:
    fields = get_backend().visitor_data(visitor_key).fields
    if not any(f.startswith(RECOMMENDATION_PREFIX) for f in fields):
        return {}
    return {
        "lists": [
            {
                "recent_items": _ids(fields.get(RECENT)),
                "bought_items": _ids(fields.get(BOUGHT)),
                "for_you": _ids(fields.get(FOR_YOU)),
            }
        ]
    }


def erase(visitor_key: str, purposes: frozenset[str]) -> int:
    """Nothing of the visitor's is kept outside their hash (erased by the segments app); the
    aggregate sums forget them at the next rebuild."""
    return 0


PROCESSING_CATEGORIES = [
    (
        _("Recommendations (personalization)"),
        _(
            "Under the personalization purpose: the pages the visitor viewed, put in a cart or "
            "bought lately and the list of items recommended to them, kept with their profile. "
            "Their behaviour also counts, without their identifier, towards which items are "
            "viewed or bought together and which are popular."
        ),
    ),
]


def _rebuild_period() -> int:
    return 86400


PROCESSING_RETENTION = [
    RetentionPeriod(
        _("A visitor's contribution to items viewed or bought together"),
        _rebuild_period,
        _("until the next rebuild after their erasure (at most %(duration)s)"),
    ),
]
