from django.urls import path

from . import views
from .rest.views import DecideView, EraseMyDataView, MyDataView, StateView

app_name = "consent"

urlpatterns = [
    path("", DecideView.as_view(), name="decide"),
    path("state/", StateView.as_view(), name="state"),
    path("preferences/", views.preferences, name="preferences"),
    path("my-data/", MyDataView.as_view(), name="my_data"),
    path("my-data/erase/", EraseMyDataView.as_view(), name="erase_my_data"),
]
