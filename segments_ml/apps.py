from django.apps import AppConfig

from . import metrics


class SegmentsMLConfig(AppConfig):
    """Model-driven segments (clusters, propensity scores), an optional app installed with the
    ``[ml]`` extra. It plugs into the segments pipeline through :mod:`segments.extensions` and
    :func:`segments.api.register_condition`; nothing in ``segments`` names it."""

    name = "segments_ml"
    label = "segments_ml"
    verbose_name = "Model-driven segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from segments import api as segments

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            conditions,  # noqa: F401  (registers the model and cluster rule conditions)
        )
        from .models import model_reference_problems

        segments.register_profile_scorer("segments_ml", _score)
        segments.register_explainer("segments_ml", _explain)
        segments.register_rule_reference_validator("segments_ml", model_reference_problems)


# numpy and the estimators load on first use, in the workers and the admin, never at start-up
# of a web process (scikit-learn's import is about 2 s and 128 MiB).
def _score(profiles: list, now: float) -> None:
    from .scoring import score_profiles  # lazy: numpy

    with metrics.scoring(len(profiles)):
        score_profiles(profiles, now)


def _explain(profile, rules: dict, now: float) -> dict:
    from .explain import explain_segments  # lazy: numpy

    return explain_segments(profile, rules, now)
