"""Settings of the demo site, from the environment.

- ``DATABASE_URL``: PostgreSQL in production; a SQLite file by default.
- ``REDIS_URL``: Redis for the event stream, fast store and Celery broker; unset = embedded
  in-process backends, with Celery tasks run in-process (no services needed).
- ``CONSENT_HASH_KEY``: the secret for keyed hashing of identifiers (required without DEBUG).
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS``.
"""

import importlib.util
import os
from pathlib import Path

import dj_database_url

from consent import conf as consent_conf
from experiments import conf as experiments_conf
from recommendations import conf as recommendations_conf
from segments import conf as segments_conf

# Modules bound to lower-case names: upper-case names here become settings.
from tailored_channels import conf as channels_conf

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(__file__).resolve().parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

# Model-driven segments need scikit-learn (pip install 'wagtail-tailored[ml]'); the demo runs
# without them when it is not installed.
ML_INSTALLED = importlib.util.find_spec("sklearn") is not None

INSTALLED_APPS = [
    "demo.home",
    "cms_blocks",
    "personalization",
    "experiments",
    "recommendations",
    "tailored_channels",
    *(["segments_ml"] if ML_INSTALLED else []),  # the optional [ml] extra
    "segments",
    "consent",
    "tailored",
    "cookie_consent",
    "rest_framework",
    "rest_framework.authtoken",  # tokens for headless clients of the experiments' results API
    "drf_spectacular",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.sitemaps",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "consent.middleware.ConsentMiddleware",
    "personalization.middleware.PersonalizationMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'demo.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static_collected"
STATICFILES_DIRS = [DEMO_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tailored API",
    "DESCRIPTION": "Event intake and headless personalization (see docs/delivery.md).",
    "VERSION": "1",
    # 3.1: JSON Schema proper, so the schema can say what the validators check (propertyNames).
    "OAS_VERSION": "3.1.0",
    "PREPROCESSING_HOOKS": ["personalization.rest.schema.public_api_only"],
}

WAGTAIL_SITE_NAME = "Tailored demo"
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "segments": {"handlers": ["console"], "level": "INFO"},
        "consent": {"handlers": ["console"], "level": "INFO"},
    },
}

# --- Consent, segments, personalization ----------------------------------------------------
# The demo runs with a fixed key while DEBUG is on; without DEBUG the key must come from the
# environment (system check consent.E003).
CONSENT_HASH_KEY = os.environ.get(
    "CONSENT_HASH_KEY", "demo-only-hash-key-not-for-production-0123456789" if DEBUG else ""
)

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {
            "URL": REDIS_URL,
            "KEY_PREFIX": os.environ.get("SEGMENTS_KEY_PREFIX", "tailored"),
        },
    }
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
    CELERY_TASK_ALWAYS_EAGER = False
else:
    SEGMENTS_BACKEND = {"BACKEND": "segments.backends.embedded.EmbeddedBackend", "OPTIONS": {}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True  # the same tasks, run in-process
    # No beat runs here: the experiments' results screen keeps a snapshot when it is looked at
    # and the last is a minute old, so its lift chart fills as you click around.
    EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = 60

CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
# A worker outlives its broker: when the connection drops (Redis restarted, a network reset) it
# reconnects, retrying for ever, instead of exiting; tasks it had started are cancelled and,
# acknowledged late, delivered again (every task here is idempotent). Dead connections are
# noticed by timeouts and health checks, not after the kernel's TCP timeout. See
# docs/installation.md, "Redis persistence and faults".
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_HEARTBEAT = 0  # (the Redis transport has no AMQP heartbeats; health checks instead)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 10,
    "retry_on_timeout": True,
    # Longer than any task runs (a drain hands over after SEGMENTS_DRAIN_MAX_SECONDS): a task
    # whose worker died is delivered again after this long.
    "visibility_timeout": 3600,
}
# Every app's periodic tasks, merged (docs/installation.md lists them).
CELERY_BEAT_SCHEDULE = {
    **segments_conf.BEAT_SCHEDULE,
    **consent_conf.BEAT_SCHEDULE,
    **experiments_conf.BEAT_SCHEDULE,
    **recommendations_conf.BEAT_SCHEDULE,
    **channels_conf.BEAT_SCHEDULE,
}
if ML_INSTALLED:  # model-driven segments: retrain models due (weekly by default), drift, re-score
    from segments_ml import conf as segments_ml_conf

    CELERY_BEAT_SCHEDULE |= segments_ml_conf.BEAT_SCHEDULE
