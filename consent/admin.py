"""The consent log in Django's admin, for sites that use it next to Wagtail's.

The records, notices and erasures are privacy data: Django's default ``view`` permission on
the models is not enough to see them, the same permission as the Wagtail privacy screens is
(``consent.view_consent_log``), and nobody can add, change or delete them here.
"""

from django.contrib import admin

from .models import ConsentRecord, ErasureRequest, Notice

PRIVACY_PERMISSION = "consent.view_consent_log"


class PrivacyAdmin(admin.ModelAdmin):
    """The consent log is evidence: the admin shows it to holders of the privacy permission
    only, and offers no add, change or delete."""

    def has_module_permission(self, request):
        return request.user.has_perm(PRIVACY_PERMISSION)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(PRIVACY_PERMISSION)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(PrivacyAdmin):
    list_display = ["seq", "visitor_key", "created_at", "method", "granted", "notice_version"]
    list_filter = ["method", "notice_version", "gpc"]
    search_fields = ["visitor_key"]
    date_hierarchy = "created_at"


@admin.register(Notice)
class NoticeAdmin(PrivacyAdmin):
    list_display = ["version", "published_at", "text_hash"]


@admin.register(ErasureRequest)
class ErasureRequestAdmin(PrivacyAdmin):
    list_display = ["visitor_key", "reason", "requested_at", "due_at", "completed_at"]
    list_filter = ["reason"]
