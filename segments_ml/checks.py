"""System checks of model-driven segments."""

import importlib.util

from django.core.checks import Error, register


@register()
def check_scikit_learn(app_configs=None, **kwargs):
    """segments_ml is installed but its extra is not: say how to fix it, not an ImportError
    in the first worker that trains."""
    if importlib.util.find_spec("sklearn") is None:  # not imported: web processes stay light
        return [
            Error(
                "segments_ml is in INSTALLED_APPS but scikit-learn is not installed.",
                hint="pip install 'wagtail-tailored[ml]', or remove segments_ml from "
                "INSTALLED_APPS.",
                id="segments_ml.E001",
            )
        ]
    return []
