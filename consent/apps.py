from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    label = "consent"
    verbose_name = "Consent and privacy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
