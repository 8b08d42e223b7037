"""Settings of the "blocks" benchmark: the bench settings, plus a pages cache in Redis for the
cache-safe mode (whose middleware list the worker installs on a second WSGI handler)."""

from bench.settings import *  # noqa: F403
from bench.settings import BENCH_KEY_PREFIX, BENCH_REDIS_URL, MIDDLEWARE

CONSENT_BANNER_MODE = "client"  # required by cache-safe mode; the same for both handlers
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "pages": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BENCH_REDIS_URL,
            "KEY_PREFIX": f"{BENCH_KEY_PREFIX}:pages",  # deleted with the run's other keys
        }
        if BENCH_REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    ),
}
CACHE_MIDDLEWARE_ALIAS = "pages"
CACHE_MIDDLEWARE_SECONDS = 600
CACHE_MIDDLEWARE_KEY_PREFIX = ""
CACHE_SAFE_MIDDLEWARE = [
    "personalization.cache.UpdateCacheMiddleware",
    *MIDDLEWARE,
    "personalization.cache.FetchFromCacheMiddleware",
]
SILENCED_SYSTEM_CHECKS = ["personalization.E003"]  # the plain handler runs without the mode
