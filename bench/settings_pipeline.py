"""Settings of the pipeline benchmarks: the bench settings with a real Redis broker, so drains
run in real Celery worker processes (see bench/pipeline.py)."""

import os

from bench.settings import *  # noqa: F403
from bench.settings import BENCH_KEY_PREFIX, BENCH_REDIS_URL

CELERY_BROKER_URL = BENCH_REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = f"{BENCH_KEY_PREFIX}-queue"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
SEGMENTS_BACKEND = {
    "BACKEND": "segments.backends.redis.RedisBackend",
    "OPTIONS": {"URL": BENCH_REDIS_URL, "KEY_PREFIX": BENCH_KEY_PREFIX},
}
SEGMENTS_DRAIN_LINGER_MS = int(os.environ.get("BENCH_LINGER_MS", "250"))
SEGMENTS_DEFINITIONS_CACHE_SECONDS = 3600.0
CONSENT_NOTICE_CACHE_SECONDS = 3600.0

# The replay without recommendations (bench/pipeline.py's with/without ratio): no event weighs
# anything, so the recommendations step does no work.
if os.environ.get("BENCH_RECOMMENDATIONS") == "off":
    RECOMMENDATIONS_EVENT_WEIGHTS = {}
