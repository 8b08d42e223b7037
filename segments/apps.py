from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    label = "segments"
    verbose_name = "Segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent.api import consent_changed

        from . import checks  # noqa: F401  (registers the system checks)
        from .receivers import on_consent_changed

        consent_changed.connect(on_consent_changed, dispatch_uid="segments.mirror_consent")
