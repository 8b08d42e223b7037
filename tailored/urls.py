"""``path("-/", include("tailored.urls"))``: ``-/health/live/``, ``-/health/ready/``,
``-/metrics/`` (docs/operations.md)."""

from django.urls import path

from . import views

app_name = "tailored"

urlpatterns = [
    path("health/live/", views.live, name="live"),
    path("health/ready/", views.ready, name="ready"),
    path("metrics/", views.prometheus, name="metrics"),
]
