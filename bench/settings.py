"""Benchmark settings: the demo site with the plugin, against the real services.

The orchestrator (:mod:`bench.request_cost`) passes where the services are through the
environment: ``BENCH_DATABASE_URL``, ``BENCH_REDIS_URL`` (empty: the embedded backend) and
``BENCH_KEY_PREFIX``. Celery never runs tasks in-process here: the request path only publishes
drain tasks to an in-memory broker, and the drain flag lives an hour, so a drain is scheduled
at most once per partition per run (the cost of publishing one is measured separately).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_DEBUG", "0")

import dj_database_url

from demo.settings import *  # noqa: F403

BENCH_DIR = Path(__file__).resolve().parent

DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECRET_KEY = "bench-only-secret-key-0123456789abcdef0123456789abcdef"  # noqa: S105
CONSENT_HASH_KEY = "bench-only-hash-key-0123456789abcdef0123456789abcdef"
# The channels benchmark's receiver listens on the loopback interface.
CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.0/8", "::1"]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DATABASE_URL", "sqlite:////tmp/tailored_bench.sqlite3"),
        conn_max_age=600,
    )
}

BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
BENCH_KEY_PREFIX = os.environ.get("BENCH_KEY_PREFIX", "tailored-bench")
if BENCH_REDIS_URL:
    SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {
            "URL": BENCH_REDIS_URL,
            "KEY_PREFIX": BENCH_KEY_PREFIX,
            "DRAIN_FLAG_TTL_MS": 3_600_000,
        },
    }
    # Django's cache in Redis, as docs/installation.md sets it for production: the consent
    # standing of a visitor's cookie (CONSENT_STATE_CACHE) is read from it on each page view.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BENCH_REDIS_URL,
            "KEY_PREFIX": BENCH_KEY_PREFIX,  # (removed with the run's other keys)
        }
    }
else:
    SEGMENTS_BACKEND = {"BACKEND": "segments.backends.embedded.EmbeddedBackend", "OPTIONS": {}}
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = f"{BENCH_KEY_PREFIX}-queue"
SEGMENTS_DRAIN_LINGER_MS = 0

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# The plugin's request-path pieces, removed by the "without the plugin" settings.
PLUGIN_MIDDLEWARE = [
    "consent.middleware.ConsentMiddleware",
    "personalization.middleware.PersonalizationMiddleware",
]

# Media (the demo's seeded images, model artifacts written by the ML benchmark) go to a
# temporary folder, never into the checkout.
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or str(
    Path(tempfile.gettempdir()) / "tailored-bench-media"
)
