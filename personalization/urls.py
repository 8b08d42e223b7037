"""URLs of the personalization REST API; include them under a prefix, e.g.
``api/personalization/``."""

from django.urls import path

from .rest.views import PageView, VisitorView

app_name = "personalization"

urlpatterns = [
    path("visitor/", VisitorView.as_view(), name="visitor"),
    path("pages/<int:pk>/", PageView.as_view(), name="page"),
]
