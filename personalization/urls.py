"""URLs of the personalization REST API; include them under a prefix, e.g.
``api/personalization/``."""

from django.urls import path, re_path

from .rest.views import PageView, VisitorView

app_name = "personalization"

urlpatterns = [
    path("visitor/", VisitorView.as_view(), name="visitor"),
    # Any segment: an id that is not a number is the endpoint's own 404 (JSON), not the site's.
    re_path(r"^pages/(?P<pk>[^/]+)/$", PageView.as_view(), name="page"),
]
