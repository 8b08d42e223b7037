"""Admin views beyond the viewsets' own: replaying a delivery, exporting or reconciling a
destination on demand, and the privacy officer's list of withdrawals and erasures not yet
confirmed by their destinations."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from tailored.admin.permissions import AdminPermissionMixin

from . import propagation
from .delivery import replay
from .models import Delivery, Destination

MANAGE = "tailored_channels.manage_destinations"
PRIVACY = "consent.view_consent_log"


class ManagePermissionMixin(AdminPermissionMixin):
    required_permissions = [MANAGE]
    permission_denied_message = _(
        "Destinations need the permission “Can manage destinations and their deliveries”. "
        "Ask an administrator to grant it to you, or to a group you belong to."
    )


class ReplayView(ManagePermissionMixin, View):
    """POST: send a delivery again, with its id."""

    def post(self, request, pk):
        delivery = get_object_or_404(Delivery, pk=pk)
        replay(delivery)
        messages.success(request, _("The delivery will be sent again."))
        return redirect("channels_deliveries:inspect", delivery.pk)


class SyncView(ManagePermissionMixin, View):
    """POST: reconcile a mirror destination (and write a file destination's export) now."""

    def post(self, request, pk):
        from .tasks import export, reconcile_one

        destination = get_object_or_404(Destination, pk=pk)
        if destination.mode == Destination.Mode.MIRROR:
            reconcile_one.delay(destination.pk)
        elif destination.kind == Destination.Kind.FILE:
            export.delay(destination.pk)
        messages.success(request, _("The destination will be brought up to date."))
        return redirect("channels_destinations:edit", destination.pk)


class PropagationsView(AdminPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    """Withdrawals and erasures each destination has not confirmed yet, oldest first, with the
    last attempt's outcome: they are retried until they succeed."""

    required_permissions = [PRIVACY]
    permission_denied_message = _(
        "This screen needs the permission “Can view the consent log and privacy tools”."
    )
    template_name = "channels/propagations.html"
    page_title = _("Withdrawals and erasures at destinations")
    header_icon = "lock"

    def get_breadcrumbs_items(self):
        return [*self.breadcrumbs_items, {"url": "", "label": self.get_page_title()}]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["pending"] = list(propagation.pending()[:500])
        return context
