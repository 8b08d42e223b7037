from django.urls import path

from . import admin_views

urlpatterns = [
    path("rules/check/", admin_views.RuleCheckView.as_view(), name="rule_check"),
    path("preview/<int:page_id>/", admin_views.PreviewAsView.as_view(), name="preview_as"),
    path(
        "preview/<int:page_id>/render/",
        admin_views.PreviewRenderView.as_view(),
        name="preview_render",
    ),
    path("results/", admin_views.SegmentResultsIndexView.as_view(), name="results"),
    path(
        "results/segment/<slug:slug>/",
        admin_views.SegmentResultsDetailView.as_view(),
        name="results_segment",
    ),
    path("results/blocks/", admin_views.BlockReportView.as_view(), name="results_blocks"),
]
