"""How personalised content performs: impressions and clicks per page, block and variant.

The editor's per-block report builds on :func:`variant_report` (and may add per-segment
breakdowns from membership history); keep its signature and row fields stable.
"""

from dataclasses import dataclass
from datetime import datetime

from segments.api import variant_counts


@dataclass(frozen=True, slots=True)
class VariantRow:
    """One variant of one personalised block on one page.

    ``page_id``: the page's id (``None`` if events named none); ``block``: the block key (its
    StreamField id); ``variant``: ``"default"`` or the variant's list-item id; ``impressions``
    and ``clicks``: event counts; ``visitors``: distinct (pseudonymous) visitors with an
    impression or a click of it. ``ctr``: clicks per impression (0.0 without impressions).
    """

    page_id: int | None
    block: str
    variant: str
    impressions: int
    clicks: int
    visitors: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


def variant_report(page=None, since: datetime | None = None) -> list[VariantRow]:
    """Rows of (page, block, variant, impressions, clicks, visitors), segment-agnostic, for
    all pages or one (a page or its id), from ``since`` (an aware datetime) on. Counts come
    from the durable event log (consented visitors only), aggregated in the database."""
    page_id = getattr(page, "pk", page)
    return [VariantRow(**row) for row in variant_counts(page=page_id, since=since)]
