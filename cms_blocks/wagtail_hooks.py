"""Segments as snippets (with the visual rule builder and a history of changes), and the
editors' screens: rule checks, previews as segments, share links and results."""

from django.contrib.auth.models import Permission
from django.urls import include, path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import Menu, MenuItem, SubmenuMenuItem
from wagtail.admin.panels import FieldPanel, ObjectList
from wagtail.admin.ui.menus.pages import PageMenuItem
from wagtail.log_actions import LogFormatter, log
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import CreateView, EditView, SnippetViewSet

from segments.api import describe_rule, segment_model

from . import admin_urls
from .admin_views import SHARE_ACTION
from .forms import SegmentForm
from .permissions import can_preview_page, can_view_results
from .preview import supports_segment_preview

CHANGE_ACTION = "cms_blocks.segment.change"
TRACKED_FIELDS = ("name", "slug", "description", "rule", "priority", "enabled")


def _shown(field: str, value):
    if field == "rule":
        return describe_rule(value)
    if field == "enabled":
        return "enabled" if value else "disabled"
    return value


def segment_changes(before: dict, instance) -> list[dict]:
    """What changed in a segment, field by field (rules as their descriptions and JSON)."""
    changes = []
    for field in TRACKED_FIELDS:
        old, new = before.get(field), getattr(instance, field)
        if old == new:
            continue
        change = {"field": field, "before": _shown(field, old), "after": _shown(field, new)}
        if field == "rule":
            change["before_json"], change["after_json"] = old, new
        changes.append(change)
    return changes


class SegmentEditView(EditView):
    """Logs, besides Wagtail's "Edited", which fields changed from what to what."""

    def save_instance(self):
        before = {f: self.form.initial.get(f) for f in TRACKED_FIELDS}
        instance = super().save_instance()
        changes = segment_changes(before, instance)
        if changes:
            log(instance, CHANGE_ACTION, user=self.request.user, data={"changes": changes})
        return instance


class SegmentCreateView(CreateView):
    pass


class SegmentViewSet(SnippetViewSet):
    model = segment_model()
    icon = "group"
    menu_label = _("Segments")
    menu_order = 250
    add_to_admin_menu = True
    list_display = ["name", "slug", "priority", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]
    edit_view_class = SegmentEditView
    add_view_class = SegmentCreateView
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("slug"),
            FieldPanel("description"),
            FieldPanel("rule"),
            FieldPanel("priority"),
            FieldPanel("enabled"),
        ],
        base_form_class=SegmentForm,
    )


register_snippet(SegmentViewSet)


@hooks.register("register_log_actions")
def register_log_actions(actions):
    @actions.register_action(SHARE_ACTION)
    class ShareLinkCreated(LogFormatter):
        label = _("Share preview link")

        def format_message(self, log_entry):
            data = log_entry.data or {}
            who = ", ".join(data.get("segments") or []) or _("no segment")
            consent = _("with consent") if data.get("consented") else _("without consent")
            return _("Preview link shared (as %(who)s, %(consent)s, until %(until)s)") % {
                "who": who,
                "consent": consent,
                "until": data.get("expires_at", "?"),
            }

    @actions.register_action(CHANGE_ACTION)
    class SegmentChange(LogFormatter):
        label = _("Change segment")

        def format_message(self, log_entry):
            parts = []
            for change in (log_entry.data or {}).get("changes", []):
                # Plain text: every template showing log messages escapes them.
                parts.append(
                    f"{change.get('field', '?')} from “{change.get('before', '')}” "
                    f"to “{change.get('after', '')}”"
                )
            return _("Changed %(changes)s") % {"changes": "; ".join(parts)} if parts else ""


class PreviewAsSegmentsButton(PageMenuItem):
    label = _("Preview as segments")
    icon_name = "view"
    url_name = "cms_blocks_admin:preview_as"

    def is_shown(self, user):
        return supports_segment_preview(self.page) and can_preview_page(user, self.page)


@hooks.register("register_page_header_buttons")
def page_header_buttons(page, user, view_name, next_url=None):
    yield PreviewAsSegmentsButton(page=page, priority=66)


@hooks.register("register_page_listing_more_buttons")
def page_listing_more_buttons(page, user, next_url=None):
    yield PreviewAsSegmentsButton(page=page, priority=5)


class ResultsMenuItem(MenuItem):
    def is_shown(self, request):
        return can_view_results(request.user)


@hooks.register("register_admin_menu_item")
def register_results_menu():
    items = [
        ResultsMenuItem(
            _("Segments"),
            reverse("cms_blocks_admin:results"),
            name="results-segments",
            icon_name="group",
            order=0,
        ),
        ResultsMenuItem(
            _("Blocks and variants"),
            reverse("cms_blocks_admin:results_blocks"),
            name="results-blocks",
            icon_name="table",
            order=1,
        ),
    ]
    return ResultsSubmenu(
        _("Results"), Menu(items=items), name="results", icon_name="table", order=260
    )


class ResultsSubmenu(SubmenuMenuItem):
    def is_shown(self, request):
        return can_view_results(request.user)


@hooks.register("register_admin_urls")
def register_admin_urls():
    return [path("tailored/", include((admin_urls.urlpatterns, "cms_blocks_admin")))]


@hooks.register("register_permissions")
def register_permissions():
    return Permission.objects.filter(content_type__app_label="cms_blocks", codename="view_results")
