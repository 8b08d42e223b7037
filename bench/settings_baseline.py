"""The same demo site and page without the plugin: its middleware removed and the page's
templates without its tags (consent banner, Consent Mode signals, ``request.segments``...),
derived from the current templates by :mod:`bench.pages`.

The plugin's apps stay installed only because the demo's page models import its StreamField
block; installed apps without their middleware and tags do nothing on a page request.
"""

from copy import deepcopy

from bench import pages
from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE, PLUGIN_MIDDLEWARE, TEMPLATES

MIDDLEWARE = [m for m in MIDDLEWARE if m not in PLUGIN_MIDDLEWARE]
TEMPLATES = deepcopy(TEMPLATES)
TEMPLATES[0]["DIRS"] = [pages.derive("plain"), *TEMPLATES[0]["DIRS"]]
