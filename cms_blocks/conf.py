"""Settings access for cms_blocks: every ``CMS_BLOCKS_*`` setting with its default in
:mod:`cms_blocks.defaults`, read through :class:`tailored.conf.AppSettings`."""

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get
