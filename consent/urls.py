from django.urls import path

from . import views

app_name = "consent"

urlpatterns = [
    path("", views.decide, name="decide"),
    path("state/", views.state, name="state"),
    path("preferences/", views.preferences, name="preferences"),
    path("my-data/", views.my_data, name="my_data"),
    path("my-data/erase/", views.erase_my_data, name="erase_my_data"),
]
