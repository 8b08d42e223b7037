"""Test settings: the demo's settings against the real PostgreSQL and Redis.

``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` point elsewhere. When a service is unreachable the
suite falls back to SQLite / the embedded backend and skips the tests marked ``services``,
unless ``CI=true``, where conftest makes the run fail instead.
"""

import os
import socket
from urllib.parse import urlsplit

import dj_database_url

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("CONSENT_HASH_KEY", "test-hash-key-0123456789abcdef0123456789abcdef")

from demo.settings import *  # noqa: F403
from demo.settings import BASE_DIR

DEBUG = False
ALLOWED_HOSTS = ["*"]


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_AVAILABLE = reachable(TEST_DATABASE_URL, 5432)
REDIS_AVAILABLE = reachable(TEST_REDIS_URL, 6379)

if POSTGRES_AVAILABLE:
    DATABASES = {"default": dj_database_url.parse(TEST_DATABASE_URL)}
    # A worker process started by the tests connects straight to the test database.
    if os.environ.get("TAILORED_WORKER_DB_NAME"):
        DATABASES["default"]["NAME"] = os.environ["TAILORED_WORKER_DB_NAME"]
    # ... possibly through a proxy that a fault test cuts (tests/support/faults.py).
    if os.environ.get("TAILORED_WORKER_DB_PORT"):
        DATABASES["default"]["HOST"] = "127.0.0.1"
        DATABASES["default"]["PORT"] = int(os.environ["TAILORED_WORKER_DB_PORT"])
        DATABASES["default"]["OPTIONS"] = {"connect_timeout": 2}
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "t.sqlite3"}
    }

# One key prefix and one Celery queue per test run, shared with the worker processes it starts.
TEST_RUN_ID = os.environ.setdefault("TAILORED_TEST_RUN", f"run{os.getpid()}")
if REDIS_AVAILABLE:
    SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": TEST_REDIS_URL, "KEY_PREFIX": f"tailored-test-{TEST_RUN_ID}"},
    }
    CELERY_BROKER_URL = os.environ.get("TEST_BROKER_URL", TEST_REDIS_URL)
else:
    SEGMENTS_BACKEND = {"BACKEND": "segments.backends.embedded.EmbeddedBackend", "OPTIONS": {}}
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True  # tests that need a real worker switch this off
# Snapshots are taken when a test says so (the demo's embedded setting is tested on its own).
EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = None
CELERY_TASK_DEFAULT_QUEUE = f"tailored-test-{TEST_RUN_ID}"
SEGMENTS_DRAIN_LINGER_MS = 0
# Tests read the co-occurrence sums right after a drain: written with every batch.
RECOMMENDATIONS_FLUSH_SECONDS = 0
# A test may give the worker processes it starts another drain-lock lifetime.
if os.environ.get("TAILORED_LOCK_TTL_MS"):
    SEGMENTS_LOCK_TTL_MS = int(os.environ["TAILORED_LOCK_TTL_MS"])

# ... and another lifetime of the running experiments' in-memory copy (a test that starts and
# stops experiments while a worker runs).
if os.environ.get("TAILORED_EXPERIMENTS_TTL"):
    EXPERIMENTS_DEFINITIONS_CACHE_SECONDS = float(os.environ["TAILORED_EXPERIMENTS_TTL"])

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# A test may run the channels' retry schedule faster in the worker processes it starts.
if os.environ.get("TAILORED_CHANNELS_RETRY_SCHEDULE"):
    CHANNELS_RETRY_SCHEDULE = [
        float(s) for s in os.environ["TAILORED_CHANNELS_RETRY_SCHEDULE"].split(",")
    ]
# ... and the lease of a destination's sender shorter (to see a killed worker taken over).
if os.environ.get("TAILORED_CHANNELS_SEND_LEASE"):
    CHANNELS_SEND_LEASE = float(os.environ["TAILORED_CHANNELS_SEND_LEASE"])
# The channels tests' receivers are real HTTP servers on the loopback interface.
CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.0/8", "::1"]
