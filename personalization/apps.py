from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    label = "personalization"
    verbose_name = "Personalization"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent.api import register_standing_source

        from . import checks  # noqa: F401  (registers the system checks)
        from .visitor import consent_standing

        # Whether a consent cookie still counts is answered in the round trip a consented
        # page view makes to the fast store anyway (no cache read of its own).
        register_standing_source("personalization", consent_standing)
