"""Settings access for the consent app: every ``CONSENT_*`` setting with its default in
:mod:`consent.defaults`, read through :class:`tailored.conf.AppSettings`."""

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get
