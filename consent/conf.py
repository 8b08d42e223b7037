"""Settings access for the consent app: defaults from consent.defaults, remembered per process and
forgotten whenever a setting changes (``override_settings``, the ``settings`` test fixture),
because the request path reads several on every page view."""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import defaults

_cache: dict[str, Any] = {}
_MISSING = object()


def get_setting(name: str) -> Any:
    value = _cache.get(name, _MISSING)
    if value is _MISSING:
        value = _cache[name] = getattr(settings, name, getattr(defaults, name))
    return value


@receiver(setting_changed, dispatch_uid="consent.conf.forget")
def _forget(**kwargs) -> None:
    _cache.clear()
