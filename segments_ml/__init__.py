"""Model-driven segments: datasets from the event log, clustering, propensity models, their
registry, drift, scoring in the workers and explanations.

Only workers, management commands and the admin reach this package, lazily: the modules that
train (:mod:`.clustering`, :mod:`.propensity`, :mod:`.training`) import scikit-learn, which
costs about two seconds and must never happen on the request path. :mod:`.scoring` and
:mod:`.explain` need only numpy (and unpickle the stored estimators, verified first).
"""
