"""Settings access for the experiments app: every ``EXPERIMENTS_*`` setting with its default in
:mod:`experiments.defaults`; and the app's periodic tasks (``BEAT_SCHEDULE``) for a project's
``CELERY_BEAT_SCHEDULE``."""

from datetime import timedelta

from tailored.conf import AppSettings

from . import defaults

app_settings = AppSettings(defaults)
get_setting = app_settings.get

# The experiments app's periodic tasks, for a project to merge into its CELERY_BEAT_SCHEDULE
# (docs/installation.md). Their period is the setting's default: a project that changes
# EXPERIMENTS_REWEIGHT_SECONDS sets the entry's schedule too.
BEAT_SCHEDULE = {
    # Running bandits' weights from their arms' results so far (experiments.tasks.reweight).
    "experiments-reweight": {
        "task": "experiments.reweight",
        "schedule": timedelta(seconds=defaults.EXPERIMENTS_REWEIGHT_SECONDS),
    },
    # Running experiments' results, kept as snapshots (the results screen's charts over time).
    "experiments-snapshot-results": {
        "task": "experiments.snapshots.snapshot_results",
        "schedule": timedelta(seconds=defaults.EXPERIMENTS_RESULTS_SECONDS),
    },
}
