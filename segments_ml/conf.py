"""Settings access for model-driven segments: defaults from :mod:`segments_ml.defaults`, read at
call time so ``override_settings`` works."""

from typing import Any

from django.conf import settings

from . import defaults


def get_setting(name: str) -> Any:
    return getattr(settings, name, getattr(defaults, name))
