"""The same page with wagtail-personalisation instead of the plugin (its own virtualenv).

wagtail-personalisation has no middleware: its ``before_serve_page`` hooks record the visit in
the session and re-test every enabled segment's rules on each page view. The page's templates
are the plain ones (see :mod:`bench.settings_baseline`) plus a list of the visitor's segments,
where the demo lists ``request.segments``.
"""

from copy import deepcopy

from bench import pages
from bench.settings_baseline import *  # noqa: F403
from bench.settings_baseline import INSTALLED_APPS, TEMPLATES

INSTALLED_APPS = [
    "wagtail_personalisation",
    "wagtail_modeladmin",
    "wagtailfontawesomesvg",
    *INSTALLED_APPS,
]
TEMPLATES = deepcopy(TEMPLATES)
TEMPLATES[0]["DIRS"] = [pages.derive("wp"), *TEMPLATES[0]["DIRS"][1:]]
