"""OpenAPI generation (drf-spectacular) hooks."""


def public_api_only(endpoints, **kwargs):
    """Keep the site's public API (under ``/api/``) and leave Wagtail's admin API out."""
    return [e for e in endpoints if e[0].startswith("/api/")]
