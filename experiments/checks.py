"""System checks of the experiments app's settings (docs/checks.md)."""

import math

from django.core.checks import Error, register

from .conf import get_setting

_OPTIONAL = ("EXPERIMENTS_DEFINITIONS_CACHE_SECONDS",)  # None: no limit
_POSITIVE = (
    *_OPTIONAL,
    "EXPERIMENTS_REWEIGHT_SECONDS",
    "EXPERIMENTS_RESULTS_SECONDS",
    "EXPERIMENTS_ASSIGNMENT_RETENTION_DAYS",
)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    share = _number(get_setting("EXPERIMENTS_GLOBAL_HOLDOUT"))
    if share is None or not 0 <= share <= 1:
        errors.append(
            Error(
                "EXPERIMENTS_GLOBAL_HOLDOUT must be a share between 0 and 1.",
                hint="0.05 keeps 5% of consented visitors on default content while a global "
                "holdout experiment runs; 0 keeps no one.",
                id="experiments.E001",
            )
        )
    for name in _POSITIVE:
        if name in _OPTIONAL and get_setting(name) is None:
            continue
        value = _number(get_setting(name))
        if value is None or value <= 0:
            errors.append(
                Error(
                    f"{name} must be a positive number.",
                    hint="See docs/settings.md, 'experiments'.",
                    id="experiments.E002",
                )
            )
    return errors
