from django.conf import settings
from django.core.checks import Error, register

from consent import api as consent
from tailored.checks import subclass_index

MIDDLEWARE_PATH = "personalization.middleware.PersonalizationMiddleware"
CONSENT_MIDDLEWARE = "consent.middleware.ConsentMiddleware"


@register()
def check_middleware(app_configs=None, **kwargs):
    middleware = list(settings.MIDDLEWARE)
    index = subclass_index(MIDDLEWARE_PATH, middleware)
    if index == -1:
        return [
            Error(
                "PersonalizationMiddleware is not installed.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE, after '{CONSENT_MIDDLEWARE}'.",
                id="personalization.E001",
            )
        ]
    if subclass_index(CONSENT_MIDDLEWARE, middleware) > index:
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
# Compared by exact path: the cache-safe middleware are themselves subclasses of these.
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
    update = subclass_index(CACHE_UPDATE, middleware)
    fetch = subclass_index(CACHE_FETCH, middleware)
    if update == -1 and fetch == -1:
        return []
    if update == -1 or fetch == -1:
        return [
            Error(
                "Only one half of the cache-safe middleware is installed.",
                hint=f"Install both '{CACHE_UPDATE}' (first) and '{CACHE_FETCH}' (last).",
                id="personalization.E003",
            )
        ]
    errors = []
    personalization = subclass_index(MIDDLEWARE_PATH, middleware)
    if personalization != -1 and fetch < personalization:
        errors.append(
            Error(
                "The cache-safe FetchFromCacheMiddleware comes before PersonalizationMiddleware.",
                hint=f"Put '{CACHE_FETCH}' last: the lookup needs the visitor's consent and "
                "context.",
                id="personalization.E004",
            )
        )
    late = [m for m in MUST_FOLLOW_UPDATE if 0 <= subclass_index(m, middleware) < update]
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
