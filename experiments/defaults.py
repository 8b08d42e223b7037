"""Defaults of every ``EXPERIMENTS_*`` setting; read them with
:func:`experiments.conf.get_setting`."""

# The share of consented visitors kept on default content everywhere while a global-holdout
# experiment runs (the total lift of personalization is measured against them).
EXPERIMENTS_GLOBAL_HOLDOUT = 0.05

# Each process keeps the running experiments (with their arms and weights) in memory and reads
# them again when the segments' freshness check (SEGMENTS_DEFINITIONS_CHECK_SECONDS, one small
# query the request path makes for the segments anyway) sees an experiment or arm added,
# deleted or saved: the request path never queries them. A number: also read them again after
# this many seconds (for writes that leave updated_at alone; None: never).
EXPERIMENTS_DEFINITIONS_CACHE_SECONDS = None

# How often the beat job recomputes the weights of running bandits (Thompson sampling).
EXPERIMENTS_REWEIGHT_SECONDS = 3600

# How often the results of running experiments are computed and kept as a snapshot.
EXPERIMENTS_RESULTS_SECONDS = 3600

# For sites without Celery beat (the embedded demo): when set, reading a running experiment's
# results (the results screen, the REST endpoint) also keeps them as a snapshot if the last one
# is at least this many seconds old. None: only the beat job takes snapshots.
EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = None

# Assignments (a visitor's arm, exposures and goal values) are purged this many days after
# the visitor last saw the experiment (the daily privacy retention job).
EXPERIMENTS_ASSIGNMENT_RETENTION_DAYS = 395
