"""URLs of the experiments' REST API; include them under a prefix, e.g. ``api/experiments/``."""

from django.urls import path

from .rest.views import ExperimentListView, ExperimentResultsView

app_name = "experiments_api"

urlpatterns = [
    path("", ExperimentListView.as_view(), name="list"),
    # Any segment reaches the view, which answers a JSON 404 for what is not an id.
    path("<str:pk>/results/", ExperimentResultsView.as_view(), name="results"),
]
