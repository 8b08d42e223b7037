"""Settings access shared by every app of the suite.

Each app keeps its settings flat and prefixed (``CONSENT_*``, ``SEGMENTS_*``...), with the
default of every one of them in its own ``defaults.py``, and reads them through its
``conf.get_setting``, built here::

    # myapp/conf.py
    from tailored.conf import AppSettings

    from . import defaults

    settings = AppSettings(defaults)
    get_setting = settings.get

Values are read at call time, so ``override_settings`` (and pytest-django's ``settings``
fixture) work, and remembered per process, because the request path reads several on every
page view; the memory is forgotten whenever Django announces a changed setting
(``setting_changed``). The same shape as ``waffle/utils.py`` with ``waffle/defaults.py``.
"""

from types import ModuleType
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from . import defaults

_MISSING = object()


class AppSettings:
    """The settings of one app: every name in ``defaults`` (a module whose upper-case names are
    the settings, each with its default value), overridden by the project's settings."""

    def __init__(self, defaults: ModuleType) -> None:
        self.defaults = defaults
        self._cache: dict[str, Any] = {}
        # Held weakly (a bound method): the receiver lives as long as this object, which the
        # app's conf module keeps for the life of the process.
        setting_changed.connect(self._forget)

    def get(self, name: str) -> Any:
        """The project's value of ``name``, or its default. A name without a default in the
        app's ``defaults`` raises ``AttributeError``: every setting is declared there."""
        value = self._cache.get(name, _MISSING)
        if value is _MISSING:
            default = getattr(self.defaults, name)  # checked first, even when the project sets it
            value = self._cache[name] = getattr(django_settings, name, default)
        return value

    def names(self) -> list[str]:
        """Every setting of the app (the upper-case names of its ``defaults``), sorted."""
        return sorted(name for name in vars(self.defaults) if name.isupper())

    def _forget(self, **kwargs: Any) -> None:
        self._cache.clear()


# The foundation's own settings (the operations endpoints: health and metrics).
app_settings = AppSettings(defaults)
get_setting = app_settings.get
