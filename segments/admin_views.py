"""The stream's dead letters in the Wagtail admin (Reports → Stream dead letters): each
partition's backlog, and the entries the drain gave up on, with the actions to requeue (once
the cause is fixed) or discard them. Behind the permission ``segments.manage_stream``.

Only what an operator needs to judge an entry is shown: its partition, when and after how many
attempts it was given up, the error's class, the event's name and a prefix of the visitor's
pseudonymous key; never the event's properties."""

from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.generic import TemplateView, View
from wagtail.admin import messages
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from tailored.admin.permissions import AdminPermissionMixin

from . import dead_letters as stream
from . import events as _events

PERMISSION = "segments.manage_stream"


def can_manage_stream(user) -> bool:
    return user.has_perm(PERMISSION)


class StreamPermissionMixin(AdminPermissionMixin):
    required_permissions = [PERMISSION]
    permission_denied_message = _l(
        "This page needs the permission “Can see and repair the event stream's dead letters”. "
        "Ask an administrator to grant it to you, or to a group you belong to."
    )


class DeadLettersView(StreamPermissionMixin, WagtailAdminTemplateMixin, TemplateView):
    template_name = "segments/admin/dead_letters.html"
    page_title = _l("Stream dead letters")
    header_icon = "warning"

    def get_context_data(self, **kwargs):
        rows = []
        for letter in stream.dead_letters():
            event = _events.decode_entry(letter.fields)
            rows.append(
                {
                    "letter": letter,
                    "name": event[1] if event else _("(unreadable)"),
                    "visitor": (letter.fields.get("k") or "")[:8],
                }
            )
        return super().get_context_data(rows=rows, stats=stream.stream_stats(), **kwargs)


class DeadLetterActionView(StreamPermissionMixin, View):
    """``POST partition, entry_id, action=requeue|discard``; back to the listing."""

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return super().dispatch(request, *args, **kwargs)

    def post(self, request):
        action = request.POST.get("action")
        entry_id = request.POST.get("entry_id", "")
        try:
            partition = int(request.POST.get("partition", ""))
        except ValueError:
            partition = -1
        if action not in ("requeue", "discard") or partition < 0 or not entry_id:
            messages.error(request, _("Unknown dead letter or action."))
        elif action == "requeue" and stream.requeue_dead_letter(partition, entry_id):
            messages.success(request, _("Requeued: the drain will try it again."))
        elif action == "discard" and stream.discard_dead_letter(partition, entry_id):
            messages.success(request, _("Discarded."))
        else:
            messages.warning(request, _("That dead letter is no longer there."))
        return redirect(reverse("segments_dead_letters"))
