from django.apps import AppConfig


class TailoredConfig(AppConfig):
    """Installed for its templates and static files (the admin's 403 page, chart styles) and
    the system checks of the operations endpoints' settings; the foundation has no models."""

    name = "tailored"
    verbose_name = "Tailored"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
