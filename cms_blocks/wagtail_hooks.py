from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSet

from segments.api import segment_model


class SegmentViewSet(SnippetViewSet):
    model = segment_model()
    icon = "group"
    menu_label = "Segments"
    menu_order = 250
    add_to_admin_menu = True
    list_display = ["name", "slug", "priority", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]


register_snippet(SegmentViewSet)
