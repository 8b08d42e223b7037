"""Defaults of every ``CONSENT_*`` setting; read them with :func:`consent.conf.get_setting`."""

# Secret for keyed hashing (HMAC-SHA256) of identifiers. Never stored in the database.
# Required when DEBUG is off (check consent.E003).
CONSENT_HASH_KEY = ""
# Without CONSENT_HASH_KEY and with DEBUG off, derive a key from SECRET_KEY (warning
# consent.W001) instead of refusing to start. Only for throwaway deployments (previews, CI).
CONSENT_ALLOW_DERIVED_HASH_KEY = False

# Purposes a visitor can grant. "necessary" is always on and needs no consent.
CONSENT_PURPOSES = ["necessary", "analytics", "personalization", "marketing"]

# How long a consent decision lasts, in seconds (about six months).
CONSENT_MAX_AGE = 183 * 24 * 3600

# Name of the cookie holding the signed consent reference. A name starting with "__Host-"
# (e.g. "__Host-tailored_consent") is always Secure, Path=/ and without Domain.
CONSENT_COOKIE_NAME = "tailored_consent"
# The cookie's Secure attribute; None: on unless DEBUG (warning consent.W003 when off in
# production).
CONSENT_COOKIE_SECURE = None
CONSENT_COOKIE_SAMESITE = "Lax"
CONSENT_COOKIE_DOMAIN = None
CONSENT_COOKIE_PATH = "/"

# The first notice's texts (later versions are published from the admin or with
# publish_notice()). The banner shows the current notice's banner text.
CONSENT_DEFAULT_BANNER_TEXT = (
    "With your permission we remember which pages you visit to adapt this site to you. "
    "Nothing about you is stored unless you accept. You can change your mind at any time."
)
CONSENT_DEFAULT_POLICY_TEXT = (
    "We record the pages you view and the actions you take on this site, under a random "
    "pseudonymous identifier, only for the purposes you grant. You can download or erase this "
    "data from the privacy settings page at any time."
)
# How long a process may use its cached copy of the current notice version, in seconds.
CONSENT_NOTICE_CACHE_SECONDS = 10.0

# Purposes switched off by a Global Privacy Control signal (Sec-GPC: 1) unless the visitor
# opts in explicitly while sending it; and whether Do-Not-Track (DNT: 1) counts the same way.
CONSENT_GPC_PURPOSES = ["marketing", "personalization"]
CONSENT_HONOR_DNT = False

# Google Consent Mode v2 signals and the purposes that grant them.
CONSENT_GOOGLE_CONSENT_MODE = {
    "ad_storage": "marketing",
    "ad_user_data": "marketing",
    "ad_personalization": "marketing",
    "analytics_storage": "analytics",
}

# Secret for the consent log's hash chain; defaults to one derived from CONSENT_HASH_KEY. Set
# it explicitly before rotating CONSENT_HASH_KEY, or old records stop verifying.
CONSENT_CHAIN_KEY = ""
# Earlier hashing keys, newest first: a returning visitor's data is re-keyed to the current key.
CONSENT_PREVIOUS_HASH_KEYS: list[str] = []

# After withdrawing a purpose, data collected under it is erased after this delay (seconds).
CONSENT_WITHDRAWAL_ERASURE_DELAY = 3600
# Consent records are kept this many days after they stop being current (legal claims).
CONSENT_RECORD_RETENTION_DAYS = 6 * 365

# The erasure journal (consent.journal): every completed erasure, outside the database, so
# privacy_replay_erasures can apply them again after a restore. A storage alias of STORAGES
# (preferably its own, private, write-once storage, not the public media storage) and the
# folder inside it.
CONSENT_ERASURE_JOURNAL_STORAGE = "default"
CONSENT_ERASURE_JOURNAL_PREFIX = "tailored-erasure-journal/"

# Rate limit of each consent endpoint per client (keyed hash of the address), in DRF's
# "requests/period" syntax; None switches it off. Replaces CONSENT_RATE_LIMIT and
# CONSENT_RATE_LIMIT_WINDOW (check consent.E009).
CONSENT_RATE = "30/min"
# The cache alias holding the rate-limit counters of every endpoint of the suite.
CONSENT_RATE_LIMIT_CACHE = "default"
# The cache alias holding each identifier's latest consent record number, by which old copies
# of a consent cookie are recognised (consent.standing). Shared by every process (Redis) in
# production; a miss is answered from the database.
CONSENT_STATE_CACHE = "default"

# "server": the banner is rendered for each visitor. "client": the page carries a neutral
# banner and consent.js fetches the visitor's state, so cached pages are safe to share.
CONSENT_BANNER_MODE = "server"

# Recipients and processors, listed in the record of processing (Art. 30).
CONSENT_RECIPIENTS: list[str] = []
CONSENT_CONTROLLER = ""

# The purpose under which a logged-in account is linked to the visitor's profile.
CONSENT_LINK_PURPOSE = "personalization"
