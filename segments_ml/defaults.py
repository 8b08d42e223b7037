"""Defaults of the model-driven segments' settings (``SEGMENTS_ML_*``); read them with
:func:`segments_ml.conf.get_setting`."""

# A new version replaces the active one only if its primary metric (ROC AUC, or silhouette for
# clusterings) on the same held-out data is at most this much lower (or an editor overrides).
SEGMENTS_ML_ACTIVATION_TOLERANCE = 0.005
# Retrains from the schedule or from drift activate themselves when they pass that comparison.
SEGMENTS_ML_AUTO_ACTIVATE = True
# Population stability index above which a model is retrained (a model may set its own).
SEGMENTS_ML_DRIFT_THRESHOLD = 0.2
# Stored profiles sampled for a drift check.
SEGMENTS_ML_DRIFT_SAMPLE = 5000
# The admin warns about propensity models below this ROC AUC and clusters below this share.
SEGMENTS_ML_WEAK_AUC = 0.6
SEGMENTS_ML_MIN_CLUSTER_SHARE = 0.02
# A Celery worker's parent process imports scikit-learn and the scoring code before it forks
# its pool, and freezes them out of the garbage collector: the pool processes share those pages
# and none pays the import (about 2 s) on its first batch with a model.
SEGMENTS_ML_PRELOAD = True
