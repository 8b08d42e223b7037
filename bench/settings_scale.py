"""Settings of the scale benchmark (bench/scale.py): the pipeline benchmark's, with the fast
store and event stream on a Redis of the run's own (one server, or a cluster of three
masters) while the Celery broker stays on the shared Redis."""

import os

from bench.settings_pipeline import *  # noqa: F403
from bench.settings_pipeline import BENCH_KEY_PREFIX

SEGMENTS_BACKEND = {
    "BACKEND": "segments.backends.redis.RedisBackend",
    "OPTIONS": {
        "URL": os.environ["BENCH_STORE_URL"],
        "CLUSTER": os.environ.get("BENCH_STORE_CLUSTER") == "1",
        "KEY_PREFIX": BENCH_KEY_PREFIX,
        "PARTITIONS": int(os.environ.get("BENCH_PARTITIONS", "12")),
        "DRAIN_FLAG_TTL_MS": 3_600_000,
        # The load generator shares two cores with four worker processes, PostgreSQL and
        # three Redis servers: a slow answer must not open the request path's breaker.
        "REQUEST_TIMEOUT": 2.0,
    },
}
SEGMENTS_SLOW_CALL_SECONDS = 2.0
SEGMENTS_FAILURE_BACKOFF = 0.5
