"""What every privacy screen shares: the permission and the base view."""

from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from tailored.admin.permissions import AdminPermissionMixin

PERMISSION = "consent.view_consent_log"


def can_view_privacy(user) -> bool:
    """Whether ``user`` may use the privacy screens (superusers may)."""
    return user.has_perm(PERMISSION)


class PrivacyPermissionMixin(AdminPermissionMixin):
    """Refuse (403) anyone without ``consent.view_consent_log``, whatever the HTTP method."""

    required_permissions = [PERMISSION]
    permission_denied_message = _(
        "The privacy screens need the permission “Can view the consent log and privacy "
        "tools”. Ask an administrator to grant it to you, or to a group you belong to."
    )


class PrivacyView(PrivacyPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    header_icon = "lock"

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]
