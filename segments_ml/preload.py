"""Loading the model code once in a Celery worker's parent process (``worker_init``), before the
pool forks: each pool process then starts with scikit-learn imported (shared copy-on-write pages
instead of about 128 MiB and 2 s each), and freezing what is loaded out of the garbage
collector keeps the collector from touching, and so copying, those shared pages."""

import gc
import logging

from .conf import get_setting

logger = logging.getLogger(__name__)


def preload_for_workers(**kwargs) -> bool:
    if not get_setting("SEGMENTS_ML_PRELOAD"):
        return False
    try:
        # What unpickling the registry's artifacts and scoring need.
        import scipy.special  # noqa: F401
        import sklearn.calibration
        import sklearn.ensemble
        import sklearn.linear_model
        import sklearn.mixture
        import sklearn.pipeline
        import sklearn.preprocessing  # noqa: F401

        from . import scoring  # noqa: F401
    except ImportError as exc:  # the worker still runs; models load on first use
        logger.warning("Could not preload the model code: %s", exc)
        return False
    gc.collect()
    gc.freeze()
    return True
