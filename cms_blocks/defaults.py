"""Defaults of every ``CMS_BLOCKS_*`` setting (read with :func:`cms_blocks.conf.get_setting`)."""

# Events that count as conversions in the results (editors can change them per report).
CMS_BLOCKS_CONVERSION_EVENTS = ["purchase", "signup"]
# A conversion counts for the variant of a block the visitor saw last, at most this long before.
CMS_BLOCKS_ATTRIBUTION_DAYS = 7
# The longest a share link may be valid, in days.
CMS_BLOCKS_SHARE_MAX_DAYS = 30
# How long a process trusts its list of the pages that have whole-page variants, in seconds
# (a process that saves or deletes a page refreshes it at once; others within this time).
CMS_BLOCKS_VARIANT_INDEX_SECONDS = 10
# The card templates an editor can choose for a recommendations block: name -> (label,
# template). Each template gets ``pages`` (the recommended pages, specific), ``heading``,
# ``strategy``, ``block_key`` and ``page_id`` (see cms_blocks/recommendations/cards.html).
CMS_BLOCKS_RECOMMENDATION_TEMPLATES = {
    "cards": ("Cards", "cms_blocks/recommendations/cards.html"),
    "list": ("Compact list", "cms_blocks/recommendations/list.html"),
}
