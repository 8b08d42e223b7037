"""The "Models" menu of the Wagtail admin: create and edit models (a ModelViewSet, with the
model's own add/change/delete/view permissions), and each model's page with its versions,
charts, drift and the train / activate / rollback actions (segments_ml.admin_views)."""

from django.db import models
from django.db.models import Prefetch
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.ui.tables import Column, TitleColumn
from wagtail.admin.viewsets.model import ModelViewSet

from tailored.forms import StrictJSONField

from . import admin_views
from .models import MLModel, ModelVersion


class ActiveColumn(Column):
    """The active version and its main metric, from ``active_versions`` (prefetched by the
    listing's queryset: no query per row)."""

    def get_value(self, instance):
        version = next(iter(instance.active_versions), None)
        if version is None:
            return _("none")
        name, value = version.primary_metric
        return (
            f"v{version.number} ({name} {value:.3f})" if value is not None else f"v{version.number}"
        )


class MLModelViewSet(ModelViewSet):
    model = MLModel
    icon = "cogs"
    menu_label = _("Models")
    menu_order = 8800
    add_to_admin_menu = True
    name = "ml_models"
    url_prefix = "ml-models"
    form_fields = [
        "name",
        "slug",
        "description",
        "kind",
        "algorithm",
        "target",
        "population_event",
        "features",
        "params",
        "training_days",
        "retrain_days",
        "drift_threshold",
    ]
    list_display = [
        TitleColumn(
            "name",
            label=_("Name"),
            get_url=lambda obj: reverse("ml_models:detail", args=[obj.pk]),
        ),
        "slug",
        "kind",
        ActiveColumn("active", label=_("Active version")),
    ]

    def formfield_for_dbfield(self, db_field, **kwargs):
        # target, features, params: typed JSON, read as any JSON from outside is.
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StrictJSONField)
        return super().formfield_for_dbfield(db_field, **kwargs)

    def get_index_view_kwargs(self, **kwargs):
        # One query for every listed model's active version (its ``model`` is set from the
        # listing, so ``primary_metric`` needs no query either).
        queryset = MLModel.objects.prefetch_related(
            Prefetch(
                "versions",
                queryset=ModelVersion.objects.filter(is_active=True),
                to_attr="active_versions",
            )
        )
        return super().get_index_view_kwargs(queryset=queryset, **kwargs)

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/", admin_views.ModelDetailView.as_view(), name="detail"),
            path("<int:pk>/train/", admin_views.TrainView.as_view(), name="train"),
            path("<int:pk>/rollback/", admin_views.RollbackView.as_view(), name="rollback"),
            path(
                "versions/<int:pk>/activate/",
                admin_views.ActivateView.as_view(),
                name="activate",
            ),
        ]


@hooks.register("register_admin_viewset")
def register_models_viewset():
    return MLModelViewSet()
