from django.conf import settings
from django.core.checks import Error, register

from consent import api as consent

MIDDLEWARE_PATH = "personalization.middleware.PersonalizationMiddleware"
CONSENT_MIDDLEWARE = "consent.middleware.ConsentMiddleware"


@register()
def check_middleware(app_configs=None, **kwargs):
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE_PATH not in middleware:
        return [
            Error(
                "PersonalizationMiddleware is not installed.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE, after '{CONSENT_MIDDLEWARE}'.",
                id="personalization.E001",
            )
        ]
    if CONSENT_MIDDLEWARE in middleware and middleware.index(CONSENT_MIDDLEWARE) > middleware.index(
        MIDDLEWARE_PATH
    ):
        return [
            Error(
                "PersonalizationMiddleware comes before ConsentMiddleware.",
                hint="Move 'consent.middleware.ConsentMiddleware' above it: personalization "
                "needs the visitor's verified consent.",
                id="personalization.E002",
            )
        ]
    return []


CACHE_UPDATE = "personalization.cache.UpdateCacheMiddleware"
CACHE_FETCH = "personalization.cache.FetchFromCacheMiddleware"
DJANGO_CACHE = {
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
    "django.middleware.cache.CacheMiddleware",
}
MUST_FOLLOW_UPDATE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    CONSENT_MIDDLEWARE,
)


@register()
def check_cache_safe_mode(app_configs=None, **kwargs):
    """Cache-safe mode (personalization.cache): both halves, in the right places."""
    middleware = list(settings.MIDDLEWARE)
    update, fetch = CACHE_UPDATE in middleware, CACHE_FETCH in middleware
    if not update and not fetch:
        return []
    if update != fetch:
        return [
            Error(
                "Only one half of the cache-safe middleware is installed.",
                hint=f"Install both '{CACHE_UPDATE}' (first) and '{CACHE_FETCH}' (last).",
                id="personalization.E003",
            )
        ]
    errors = []
    if MIDDLEWARE_PATH in middleware and middleware.index(CACHE_FETCH) < middleware.index(
        MIDDLEWARE_PATH
    ):
        errors.append(
            Error(
                "The cache-safe FetchFromCacheMiddleware comes before PersonalizationMiddleware.",
                hint=f"Put '{CACHE_FETCH}' last: the lookup needs the visitor's consent and "
                "context.",
                id="personalization.E004",
            )
        )
    late = [
        m
        for m in MUST_FOLLOW_UPDATE
        if m in middleware and middleware.index(m) < (middleware.index(CACHE_UPDATE))
    ]
    if late:
        errors.append(
            Error(
                "The cache-safe UpdateCacheMiddleware comes after middleware that sets cookies.",
                hint=f"Put '{CACHE_UPDATE}' first, before {', '.join(late)}.",
                id="personalization.E005",
            )
        )
    if DJANGO_CACHE.intersection(middleware):
        errors.append(
            Error(
                "Django's own cache middleware is installed next to the cache-safe one.",
                hint="Replace it: the cache-safe middleware are drop-in replacements.",
                id="personalization.E006",
            )
        )
    if consent.banner_mode() != "client":
        errors.append(
            Error(
                "Cache-safe mode needs CONSENT_BANNER_MODE = 'client'.",
                hint="In server mode the banner differs per visitor (and carries a CSRF "
                "token), so pages showing it cannot be shared.",
                id="personalization.E007",
            )
        )
    return errors
