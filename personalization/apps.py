from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    label = "personalization"
    verbose_name = "Personalization"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
