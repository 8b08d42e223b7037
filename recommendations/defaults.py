"""Defaults of every ``RECOMMENDATIONS_*`` setting; read them with
:func:`recommendations.conf.get_setting`."""

# How much one event of each kind counts towards "bought or viewed together" and "popular"
# (events of other kinds, and events naming no known item, count nothing).
RECOMMENDATIONS_EVENT_WEIGHTS = {"page_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}

# Co-occurrence and popularity lose half their weight every this many days (time decay).
RECOMMENDATIONS_HALF_LIFE_DAYS = 30.0

# How many of a visitor's latest items are kept in their fast-store hash: a new item
# co-occurs with these, and "for you" is built from them.
RECOMMENDATIONS_RECENT_ITEMS = 20

# A new item co-occurs with this many of the visitor's latest items (at most
# RECOMMENDATIONS_RECENT_ITEMS): the pairs an event adds, the drain's main cost, grow with it.
RECOMMENDATIONS_PAIR_ITEMS = 10

# How many items a visitor's "for you" list holds (in the fast store) and every other list
# kept per item or per segment.
RECOMMENDATIONS_LIST_LENGTH = 20

# Event properties that name an item, tried in order: ``page`` (a Wagtail page id, as page
# views carry it) first, then external ids (an imported purchase's ``StockCode`` is its
# ``category`` in the Online Retail preset).
RECOMMENDATIONS_ITEM_PROPERTIES = ("page", "item", "category")

# Items a visitor bought are left out of their "for you" list.
RECOMMENDATIONS_EXCLUDE_BOUGHT = True

# Each process keeps the lists of items (popular, together, similar) and the catalogue of
# recommendable items in memory and reads them again after this many seconds.
RECOMMENDATIONS_CACHE_SECONDS = 30.0

# The drain's workers gather co-occurrence and popularity increments for this many seconds and
# write them together (one row per distinct pair); 0 writes every batch's at once.
RECOMMENDATIONS_FLUSH_SECONDS = 5.0
