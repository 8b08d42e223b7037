"""Defaults of every ``PERSONALIZATION_*`` setting; read them with
:func:`personalization.conf.get_setting`."""

# Cache-safe mode (personalization.cache): the cookie holding a consented visitor's signed
# segment-set key, and how long it lasts.
PERSONALIZATION_SEGMENT_COOKIE_NAME = "tl_seg"
PERSONALIZATION_SEGMENT_COOKIE_MAX_AGE = 30 * 24 * 3600

# How often (seconds) each process re-reads the set of segments content has been seen to use
# from the shared cache.
PERSONALIZATION_CONTENT_SEGMENTS_REFRESH = 10.0
