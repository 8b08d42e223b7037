from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .conf import get_setting


@register()
def check_backend(app_configs=None, **kwargs):
    config = get_setting("SEGMENTS_BACKEND")
    if not isinstance(config, dict) or "BACKEND" not in config:
        return [
            Error(
                "SEGMENTS_BACKEND must be a dict with a 'BACKEND' dotted path.",
                hint="For example {'BACKEND': 'segments.backends.redis.RedisBackend', "
                "'OPTIONS': {'URL': 'redis://127.0.0.1:6379/0'}}.",
                id="segments.E001",
            )
        ]
    try:
        import_string(config["BACKEND"])
    except ImportError as exc:
        return [
            Error(
                f"SEGMENTS_BACKEND cannot be imported: {exc}.",
                hint="Check the dotted path of the backend class.",
                id="segments.E002",
            )
        ]
    from .registry import get_backend

    try:
        backend = get_backend()
    except Exception as exc:  # a misconfigured option surfaces here, not at request time
        return [
            Error(
                f"SEGMENTS_BACKEND could not be created: {exc}.",
                hint="Check SEGMENTS_BACKEND['OPTIONS'] (for Redis: 'URL').",
                id="segments.E003",
            )
        ]
    if not backend.ping():
        return [
            Warning(
                "The segments backend (fast store and event stream) is unreachable.",
                hint="Start Redis or fix REDIS_URL. Until then pages show default content and "
                "no behaviour is recorded.",
                id="segments.W001",
            )
        ]
    return []


@register()
def check_purpose(app_configs=None, **kwargs):
    from consent.api import purposes

    purpose = get_setting("SEGMENTS_PURPOSE")
    if purpose not in purposes():
        return [
            Error(
                f"SEGMENTS_PURPOSE {purpose!r} is not one of CONSENT_PURPOSES.",
                hint="Name the consent purpose under which behaviour may be recorded.",
                id="segments.E004",
            )
        ]
    return []


@register()
def check_event_rate(app_configs=None, **kwargs):
    from consent.api import rate_problem

    problem = rate_problem(get_setting("SEGMENTS_EVENT_RATE"))
    if problem:
        return [
            Error(
                f"SEGMENTS_EVENT_RATE is not a rate: {problem}.",
                hint='Use DRF\'s "requests/period" syntax, e.g. "120/min", or None for no limit.',
                id="segments.E005",
            )
        ]
    return []
