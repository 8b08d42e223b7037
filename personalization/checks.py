from django.conf import settings
from django.core.checks import Error, register

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
