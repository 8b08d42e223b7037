"""Settings access for the segments app: every ``SEGMENTS_*`` setting with its default in
:mod:`segments.defaults`, read through :class:`tailored.conf.AppSettings`."""

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get
