"""Request-cost settings of the ``consented-cluster`` scenario: the demo site with the plugin,
the fast store and event stream on a Redis Cluster of the run's own (three masters, started
by :mod:`bench.request_cost`, ``BENCH_CLUSTER_URL``); Django's cache stays on the plain Redis,
as a site keeps its cache and Celery broker apart from the cluster."""

import os

from bench.settings import *  # noqa: F403
from bench.settings import BENCH_KEY_PREFIX

SEGMENTS_BACKEND = {
    "BACKEND": "segments.backends.redis.RedisBackend",
    "OPTIONS": {
        "URL": os.environ["BENCH_CLUSTER_URL"],
        "CLUSTER": True,
        "KEY_PREFIX": BENCH_KEY_PREFIX,
        "DRAIN_FLAG_TTL_MS": 3_600_000,
    },
}
