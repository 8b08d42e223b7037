"""The export of a static segment's members: their pseudonymous keys and when they were found,
as CSV, for users with ``segments.export_segment_members`` (given to groups in Settings →
Groups). Each export is written to Wagtail's audit log (who, which segment, how many)."""

import csv

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from django.views import View
from wagtail.log_actions import log

from segments.api import segment_model, static_members
from tailored.admin.permissions import AdminPermissionMixin
from tailored.spreadsheet import safe_cell

EXPORT_PERMISSION = "segments.export_segment_members"
EXPORT_ACTION = "cms_blocks.segment.export_members"


class _Echo:
    """A file-like object whose ``write`` returns the line (streamed CSV, Django's recipe)."""

    def write(self, value):
        return value


class StaticMembersExportView(AdminPermissionMixin, View):
    required_permissions = (EXPORT_PERMISSION,)
    permission_denied_message = _(
        "Exporting a static segment's members needs the permission “Can export the "
        "pseudonymous members of static segments”. Ask an administrator to add you to a group "
        "that has it."
    )

    def get(self, request, pk: int):
        segment = get_object_or_404(segment_model(), pk=pk)
        if not segment.static:
            raise Http404("Only a static segment has a fixed list of members.")
        members = static_members(segment)
        log(
            segment,
            EXPORT_ACTION,
            user=request.user,
            data={"segment": segment.slug, "members": members.count()},
        )
        writer = csv.writer(_Echo())
        rows = (
            writer.writerow([safe_cell(key), added.isoformat()])
            for key, added in members.iterator(chunk_size=2000)
        )
        response = StreamingHttpResponse(
            (
                line
                for part in ([writer.writerow(["visitor_key", "added_at"])], rows)
                for line in part
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="segment-{segment.slug}-members.csv"'
        )
        response["Cache-Control"] = "no-store"
        return response
