"""Settings access for the consent app: every ``CONSENT_*`` setting with its default in
:mod:`consent.defaults`, read through :class:`tailored.conf.AppSettings`; and the app's
periodic tasks (``BEAT_SCHEDULE``) for a project's ``CELERY_BEAT_SCHEDULE``."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

# The consent app's periodic tasks, for a project to merge into its CELERY_BEAT_SCHEDULE
# (docs/installation.md): without them due erasures and retention never run.
BEAT_SCHEDULE = {
    # Safety net: erasures that are due (after a withdrawal's delay, or whose task was lost).
    "consent-due-erasures": {
        "task": "consent.process_due_erasures",
        "schedule": timedelta(minutes=1),
    },
    # Purges every app's data past its retention (registered retention handlers).
    "privacy-retention": {"task": "consent.retention", "schedule": timedelta(days=1)},
}
