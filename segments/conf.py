"""Settings access for the segments app: every ``SEGMENTS_*`` setting with its default in
:mod:`segments.defaults`, read through :class:`tailored.conf.AppSettings`; and the app's
periodic tasks (``BEAT_SCHEDULE``) for a project's ``CELERY_BEAT_SCHEDULE``."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

# The segments app's periodic tasks, for a project to merge into its CELERY_BEAT_SCHEDULE
# (docs/installation.md).
BEAT_SCHEDULE = {
    # Drains partitions holding events no worker took (a crashed worker, a lost task).
    "segments-sweep": {"task": "segments.sweep", "schedule": timedelta(seconds=5)},
    # Copies consent decisions made while the fast store was unreachable into it (the outbox).
    "segments-consent-mirrors": {
        "task": "segments.sync_consent_mirrors",
        "schedule": timedelta(seconds=5),
    },
    # Visitors leave time-window segments on time (and enter time-based ones) without new events.
    "segments-reevaluate": {"task": "segments.reevaluate", "schedule": timedelta(seconds=30)},
    # Each segment's size once a day, with the version of its rule (segments.reporting.insights).
    "segments-snapshot": {"task": "segments.snapshot", "schedule": timedelta(days=1)},
}
