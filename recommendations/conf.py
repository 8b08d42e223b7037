"""Settings access for the recommendations app: every ``RECOMMENDATIONS_*`` setting with its
default in :mod:`recommendations.defaults`; and the app's periodic tasks (``BEAT_SCHEDULE``)."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

# For a project's CELERY_BEAT_SCHEDULE (docs/recommendations.md): the nightly rebuild of the
# co-occurrence and popularity counts from the durable log (erased visitors' contributions
# leave them there) and of the "similar pages" lists from the pages' text.
BEAT_SCHEDULE = {
    "recommendations-rebuild": {
        "task": "recommendations.rebuild",
        "schedule": timedelta(days=1),
    },
    # The "for you" factorisation model, retrained (and evaluated, and activated when it
    # beats popular) daily: an erased visitor leaves it within a day.
    "recommendations-train": {
        "task": "recommendations.train",
        "schedule": timedelta(days=1),
    },
}
