"""Public URLs: include with ``path("tailored/", include("cms_blocks.urls"))`` before Wagtail's
own URLs."""

from django.urls import path

from . import views

app_name = "cms_blocks"

urlpatterns = [
    path("share/<str:token>/", views.share, name="share"),
]
