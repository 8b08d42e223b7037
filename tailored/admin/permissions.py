"""One permission check for every admin screen of the suite, answering with a deliberate 403.

Wagtail's own ``PermissionCheckedMixin`` raises ``PermissionDenied``, which the admin's
``require_admin_access`` turns into a redirect to the dashboard with a generic message: the
person would not learn which permission the screen needs. These screens answer 403 in the
admin's furniture instead, with a hint naming what to ask an administrator for.
"""

from collections.abc import Sequence

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

DEFAULT_HINT = _(
    "You do not have permission to see this page. Ask an administrator to add you to a group "
    "that has it."
)


def forbidden(request: HttpRequest, hint: str = DEFAULT_HINT) -> TemplateResponse:
    """The 403 page, in the admin's furniture, with ``hint`` (what permission to ask for)."""
    title = _("Permission denied")
    return TemplateResponse(
        request,
        "tailored/admin/forbidden.html",
        {"header_title": title, "page_title": title, "header_icon": "lock", "hint": hint},
        status=403,
    )


class AdminPermissionMixin(PermissionRequiredMixin):
    """Refuse (403, whatever the HTTP method) anyone who lacks the screen's permission.

    Django's ``PermissionRequiredMixin`` with two changes. The permissions (dotted names, all
    required) are in ``required_permissions``: Wagtail's generic views already use
    ``permission_required`` for an action name of their permission policy. And the refusal is
    the 403 page with ``permission_denied_message``, the per-screen hint, instead of an
    exception. Override ``has_permission()`` for anything else (any of several permissions, a
    check on one object; ``self.kwargs`` is set). Put it first among the view's bases so the
    check runs before any other ``dispatch``.
    """

    required_permissions: Sequence[str] | None = None
    permission_denied_message = DEFAULT_HINT

    def get_permission_required(self) -> Sequence[str]:
        if self.required_permissions is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} must set required_permissions or override has_permission()."
            )
        if isinstance(self.required_permissions, str):
            return (self.required_permissions,)
        return self.required_permissions

    def handle_no_permission(self) -> TemplateResponse:
        return forbidden(self.request, self.get_permission_denied_message())
