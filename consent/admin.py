from django.contrib import admin

from .models import ConsentRecord, ErasureRequest, Notice


class ReadOnlyAdmin(admin.ModelAdmin):
    """The consent log is evidence: the admin shows it and offers no add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    list_display = ["seq", "visitor_key", "created_at", "method", "granted", "notice_version"]
    list_filter = ["method", "notice_version", "gpc"]
    search_fields = ["visitor_key"]
    date_hierarchy = "created_at"


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdmin):
    list_display = ["version", "published_at", "text_hash"]


@admin.register(ErasureRequest)
class ErasureRequestAdmin(ReadOnlyAdmin):
    list_display = ["visitor_key", "reason", "requested_at", "due_at", "completed_at"]
    list_filter = ["reason"]
