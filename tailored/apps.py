from django.apps import AppConfig


class TailoredConfig(AppConfig):
    """Installed only for its templates and static files (the admin's 403 page, chart styles):
    the foundation has no models and wires nothing up."""

    name = "tailored"
    verbose_name = "Tailored"
