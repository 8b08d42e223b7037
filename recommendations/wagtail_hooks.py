"""The "For you" model screen in the Wagtail admin (:mod:`recommendations.admin_views`): a menu
item for those who may view factor models, and the two permissions in the group editor."""

from django.contrib.auth.models import Permission
from django.urls import path
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.viewsets.base import ViewSet

from . import admin_views


class _MenuItem(MenuItem):
    def is_shown(self, request):
        return admin_views.can_view(request.user)


class FactorModelViewSet(ViewSet):
    """The versions of the factorisation model and their actions, under
    ``/admin/recommendation-model/``, next to the segment models' "Models" menu."""

    name = "recommendation_model"
    url_prefix = "recommendation-model"
    icon = "cogs"
    menu_label = _("“For you” model")
    menu_order = 8810
    add_to_admin_menu = True
    menu_item_class = _MenuItem  # shown only to those who may view the versions

    def get_urlpatterns(self):
        return [
            path("", admin_views.VersionsView.as_view(), name="index"),
            path(
                "results/",
                admin_views.VersionsView.as_view(results_only=True),
                name="index_results",
            ),
            path("<int:pk>/activate/", admin_views.ActivateView.as_view(), name="activate"),
            path("rollback/", admin_views.RollbackView.as_view(), name="rollback"),
            path("train/", admin_views.TrainView.as_view(), name="train"),
        ]


@hooks.register("register_admin_viewset")
def register_viewset():
    return FactorModelViewSet()


@hooks.register("register_permissions")
def register_permissions():
    return Permission.objects.filter(
        content_type__app_label="recommendations",
        codename__in=["view_factormodel", "change_factormodel"],
    )
