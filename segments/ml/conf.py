"""Configuration of model-driven segments that a project merges into its own settings."""

from datetime import timedelta

# The periodic tasks of model-driven segments, for a project to merge into its
# CELERY_BEAT_SCHEDULE (docs/installation.md): retrain models that are due (weekly by default),
# check drift, re-score stored visitors.
BEAT_SCHEDULE = {
    "segments-ml-retrain": {"task": "segments.ml.retrain_due", "schedule": timedelta(days=1)},
    "segments-ml-drift": {"task": "segments.ml.check_drift", "schedule": timedelta(days=1)},
    "segments-ml-rescore": {"task": "segments.ml.rescore", "schedule": timedelta(days=1)},
}
