"""Defaults of every ``CONSENT_*`` setting; read them with :func:`consent.conf.get_setting`."""

# Secret for keyed hashing (HMAC-SHA256) of identifiers. Never stored in the database.
# Required when DEBUG is off (check consent.E003).
CONSENT_HASH_KEY = ""

# Purposes a visitor can grant. "necessary" is always on and needs no consent.
CONSENT_PURPOSES = ["necessary", "analytics", "personalization", "marketing"]

# Version of the notice (banner and policy text). Consent given under another version no
# longer counts.
CONSENT_NOTICE_VERSION = "1"

# How long a consent decision lasts, in seconds (about six months).
CONSENT_MAX_AGE = 183 * 24 * 3600

# Name of the cookie holding the signed consent reference.
CONSENT_COOKIE_NAME = "tailored_consent"
CONSENT_COOKIE_SECURE = False
CONSENT_COOKIE_SAMESITE = "Lax"
CONSENT_COOKIE_DOMAIN = None
CONSENT_COOKIE_PATH = "/"
