"""The experiments app's public Python API: what the layers above (personalization,
cms_blocks) may use."""

from .runtime import HOLDOUT_ARM, Running, RunningExperiment, decider
from .runtime import forget as forget_running
from .runtime import running as running_experiments

__all__ = [
    "HOLDOUT_ARM",
    "Running",
    "RunningExperiment",
    "decider",
    "forget_running",
    "running_experiments",
]
