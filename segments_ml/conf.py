"""Settings access for model-driven segments: every ``SEGMENTS_ML_*`` setting with its default in
:mod:`segments_ml.defaults`, read through :class:`tailored.conf.AppSettings`; and the app's
periodic tasks (``BEAT_SCHEDULE``) for a project's ``CELERY_BEAT_SCHEDULE``."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

# The periodic tasks of model-driven segments, for a project to merge into its
# CELERY_BEAT_SCHEDULE (docs/installation.md): retrain models that are due (weekly by default),
# check drift, re-score stored visitors.
BEAT_SCHEDULE = {
    "segments-ml-retrain": {"task": "segments.ml.retrain_due", "schedule": timedelta(days=1)},
    "segments-ml-drift": {"task": "segments.ml.check_drift", "schedule": timedelta(days=1)},
    "segments-ml-rescore": {"task": "segments.ml.rescore", "schedule": timedelta(days=1)},
}
