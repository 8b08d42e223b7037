"""Settings access for the personalization app: every ``PERSONALIZATION_*`` setting with its
default in :mod:`personalization.defaults`, read through :class:`tailored.conf.AppSettings`."""

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get
