"""URLs of the segments app's REST API; include them under a prefix, e.g. ``api/``."""

from django.urls import path

from .rest.views import EventIntakeView, VisitorFeaturesView

app_name = "segments"

urlpatterns = [
    path("events/", EventIntakeView.as_view(), name="events"),
    path("visitors/features/", VisitorFeaturesView.as_view(), name="visitor_features"),
]
