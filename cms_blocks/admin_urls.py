from django.urls import path

from . import admin_views

urlpatterns = [
    path("rules/check/", admin_views.RuleCheckView.as_view(), name="rule_check"),
]
