"""The demo site's Celery app: ``celery -A demo worker`` and ``celery -A demo beat``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
# Workers score models in small vectorised batches: one thread each is faster than a pool of
# OpenMP threads fighting over the cores (set before numpy or scikit-learn load).
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
