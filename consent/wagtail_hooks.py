"""The privacy officer's screens in the Wagtail admin: a "Privacy" menu and its views.

Everything here requires the permission ``consent.view_consent_log`` ("Can view the consent
log and privacy tools"): the menu is hidden without it and every view answers 403. The
permission can be given to a group in Settings → Groups. The officer's exports, erasures and
verifications appear in Reports → Site history (actions registered below).
"""

from django.contrib.auth.models import Permission
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import Menu, MenuItem, SubmenuMenuItem
from wagtail.admin.viewsets.base import ViewSet

from .admin_views import audit
from .admin_views.base import can_view_privacy
from .admin_views.decisions import DecisionsView
from .admin_views.log import ConsentLogView
from .admin_views.processing import ProcessingRecordView
from .admin_views.requests import DataSubjectExportView, DataSubjectRequestsView, EraseVisitorView
from .admin_views.verify import VerifyView


class PrivacyMenuItem(MenuItem):
    def is_shown(self, request):
        return can_view_privacy(request.user)


class PrivacyViewSet(ViewSet):
    """The privacy screens, under ``/admin/privacy/``, with a "Privacy" submenu."""

    name = "consent_privacy"
    url_prefix = "privacy"
    icon = "lock"
    menu_label = _("Privacy")
    menu_name = "privacy"
    menu_order = 8900  # just before Reports (9000)
    add_to_admin_menu = True

    # (url name, menu label, icon) of each screen, in menu order.
    screens = [
        ("log", _("Consent log"), "list-ul"),
        ("decisions", _("Decisions over time"), "tasks"),
        ("verify", _("Verify"), "success"),
        ("requests", _("Data-subject requests"), "user"),
        ("processing", _("Record of processing"), "doc-full"),
    ]

    def get_urlpatterns(self):
        return [
            path("", ConsentLogView.as_view(), name="log"),
            path("results/", ConsentLogView.as_view(results_only=True), name="log_results"),
            path("decisions/", DecisionsView.as_view(), name="decisions"),
            path(
                "decisions/results/",
                DecisionsView.as_view(results_only=True),
                name="decisions_results",
            ),
            path("verify/", VerifyView.as_view(), name="verify"),
            path("requests/", DataSubjectRequestsView.as_view(), name="requests"),
            path("requests/export/", DataSubjectExportView.as_view(), name="requests_export"),
            path("requests/erase/", EraseVisitorView.as_view(), name="requests_erase"),
            path("record-of-processing/", ProcessingRecordView.as_view(), name="processing"),
        ]

    def get_menu_item(self, order=None):
        items = [
            PrivacyMenuItem(
                label,
                reverse(self.get_url_name(url_name)),
                name=f"privacy-{url_name}",
                icon_name=icon,
                order=n,
            )
            for n, (url_name, label, icon) in enumerate(self.screens)
        ]
        return SubmenuMenuItem(
            self.menu_label,
            Menu(items=items),
            name=self.menu_name,
            icon_name=self.menu_icon,
            order=self.get_menu_item_order(order),
        )


@hooks.register("register_admin_viewset")
def register_privacy_viewset():
    return PrivacyViewSet()


@hooks.register("register_permissions")
def register_permissions():
    return Permission.objects.filter(content_type__app_label="consent", codename="view_consent_log")


@hooks.register("register_log_actions")
def register_log_actions(actions):
    for action, formatter in audit.FORMATTERS.items():
        actions.register_action(action)(formatter)
