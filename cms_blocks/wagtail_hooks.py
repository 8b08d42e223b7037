"""Segments as snippets (with the visual rule builder and a history of changes), and the
editors' screens, mounted by viewsets: rule checks, previews as segments with share links and
the visitor lookup (``EditorToolsViewSet``, the lookup with its own menu item), and the results
(a "Results" menu: ``ResultsViewSetGroup``)."""

from django.contrib import messages
from django.contrib.auth.models import Permission
from django.urls import path, reverse, reverse_lazy
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.menus.pages import PageMenuItem
from wagtail.admin.ui.tables import Column
from wagtail.admin.viewsets.base import ViewSet, ViewSetGroup
from wagtail.admin.widgets.button import Button
from wagtail.log_actions import LogFormatter, log
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import EditView, SnippetViewSet

from segments.api import describe_rule, may_view_visitors, segment_model

from . import variant_hooks  # noqa: F401  (registers its hooks: variants follow their page)
from .admin_views.members import EXPORT_ACTION, EXPORT_PERMISSION, StaticMembersExportView
from .admin_views.preview import SHARE_ACTION, PreviewAsView, PreviewRenderView
from .admin_views.results import BlockReportView, SegmentResultsDetailView, SegmentResultsIndexView
from .admin_views.rule_check import RuleCheckView
from .admin_views.segment_usage import (
    SegmentDeleteView,
    SegmentIndexView,
    UsageCountColumn,
    refuse_bulk_delete,
)
from .admin_views.visitor import VisitorLookupView
from .forms import SegmentForm, problem_messages
from .permissions import can_preview_page, can_view_results
from .preview import supports_segment_preview

CHANGE_ACTION = "cms_blocks.segment.change"
TRACKED_FIELDS = (
    "name",
    "slug",
    "description",
    "rule",
    "priority",
    "enabled",
    "persist_for",
    "sample_percent",
    "static",
)


def _shown(field: str, value):
    if field == "rule":
        return describe_rule(value)
    if field == "enabled":
        return "enabled" if value else "disabled"
    if field == "static":
        return "static" if value else "dynamic"
    if field == "persist_for":
        return value or "not persistent"
    if field == "sample_percent":
        return "all matching visitors" if value is None else f"{value}%"
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


def rule_status(segment) -> str:
    """ "" for a rule the engine accepts; else why it is broken. A stored rule can be refused
    after it was saved (an older version wrote it, a data migration or the ORM changed it, or a
    condition type or feature it names is gone): the segment is then evaluated for no one and
    its members are held as they are (docs/rules.md)."""
    problems = problem_messages(segment.rule)
    if not problems:
        return ""
    return _("Broken: %(problems)s") % {"problems": "; ".join(problems)}


class SegmentEditView(EditView):
    """Logs, besides Wagtail's "Edited", which fields changed from what to what; warns when
    the stored rule is broken."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        status = rule_status(self.object) if self.request.method == "GET" else ""
        if status:
            messages.warning(
                self.request,
                _(
                    "This segment's stored rule does not compile, so it is evaluated for no one "
                    "and its members are kept as they are. %(status)s"
                )
                % {"status": status},
            )
        return context

    @cached_property
    def header_more_buttons(self):
        buttons = list(super().header_more_buttons)
        if self.object.static and self.request.user.has_perm(EXPORT_PERMISSION):
            url = reverse("cms_blocks_admin:static_members_export", args=[self.object.pk])
            buttons.append(
                Button(_("Export members (CSV)"), url=url, icon_name="download", priority=40)
            )
        return buttons

    def save_instance(self):
        before = {f: self.form.initial.get(f) for f in TRACKED_FIELDS}
        instance = super().save_instance()
        changes = segment_changes(before, instance)
        if changes:
            log(instance, CHANGE_ACTION, user=self.request.user, data={"changes": changes})
        return instance


class SegmentViewSet(SnippetViewSet):
    model = segment_model()
    icon = "group"
    menu_label = _("Segments")
    menu_order = 250
    add_to_admin_menu = True
    list_display = [
        "name",
        "slug",
        "priority",
        "enabled",
        Column("rule_status", label=_("Rule problem"), accessor=rule_status),
        UsageCountColumn(),
        "updated_at",
    ]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]
    edit_view_class = SegmentEditView
    index_view_class = SegmentIndexView
    delete_view_class = SegmentDeleteView  # lists its usage; protected while in use
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("slug"),
            FieldPanel("description"),
            FieldPanel("rule"),
            FieldPanel("priority"),
            FieldPanel("enabled"),
            MultiFieldPanel(
                [FieldPanel("persist_for"), FieldPanel("sample_percent"), FieldPanel("static")],
                heading=_("Membership"),
            ),
        ],
        base_form_class=SegmentForm,
    )


register_snippet(SegmentViewSet)
hooks.register("before_delete_snippet", refuse_bulk_delete)  # segments in use stay


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

    @actions.register_action(EXPORT_ACTION)
    class MembersExported(LogFormatter):
        label = _("Export members")

        def format_message(self, log_entry):
            data = log_entry.data or {}
            return _("Exported the %(count)s members of the static segment") % {
                "count": data.get("members", "?")
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


class EditorToolsViewSet(ViewSet):
    """The rule builder's check endpoint and the preview screens, under ``/admin/tailored/``.
    No menu item: they are reached from the segment editor and from each page's header."""

    name = "cms_blocks_admin"
    url_prefix = "tailored"

    def get_urlpatterns(self):
        return [
            path("rules/check/", RuleCheckView.as_view(), name="rule_check"),
            path("preview/<int:page_id>/", PreviewAsView.as_view(), name="preview_as"),
            path(
                "preview/<int:page_id>/render/", PreviewRenderView.as_view(), name="preview_render"
            ),
            path("visitor/", VisitorLookupView.as_view(), name="visitor"),
            path(
                "segments/<int:pk>/members.csv",
                StaticMembersExportView.as_view(),
                name="static_members_export",
            ),
        ]


class VisitorLookupMenuItem(MenuItem):
    def is_shown(self, request):
        return may_view_visitors(request.user)


@hooks.register("register_admin_menu_item")
def register_visitor_lookup_menu_item():
    return VisitorLookupMenuItem(
        _("Visitor lookup"),
        reverse_lazy("cms_blocks_admin:visitor"),
        name="visitor-lookup",
        icon_name="user",
        order=255,
    )


class ResultsMenuItem(MenuItem):
    def is_shown(self, request):
        return can_view_results(request.user)


class SegmentResultsViewSet(ViewSet):
    """The segment dashboard and each segment's results, under ``/admin/tailored/results/``."""

    name = "cms_blocks_results"
    url_prefix = "tailored/results"
    icon = "group"
    menu_label = _("Segments")
    menu_name = "results-segments"
    menu_item_class = ResultsMenuItem

    def get_urlpatterns(self):
        return [
            path("", SegmentResultsIndexView.as_view(), name="index"),
            path(
                "results/", SegmentResultsIndexView.as_view(results_only=True), name="index_results"
            ),
            path("segment/<slug:slug>/", SegmentResultsDetailView.as_view(), name="segment"),
            path(
                "segment/<slug:slug>/results/",
                SegmentResultsDetailView.as_view(results_only=True),
                name="segment_results",
            ),
        ]


class BlockResultsViewSet(ViewSet):
    """Blocks and variants, under ``/admin/tailored/results/blocks/``."""

    name = "cms_blocks_block_results"
    url_prefix = "tailored/results/blocks"
    icon = "table"
    menu_label = _("Blocks and variants")
    menu_name = "results-blocks"
    menu_item_class = ResultsMenuItem

    def get_urlpatterns(self):
        return [
            path("", BlockReportView.as_view(), name="index"),
            path("results/", BlockReportView.as_view(results_only=True), name="index_results"),
        ]


class ResultsViewSetGroup(ViewSetGroup):
    """The "Results" menu, shown to users who may view results (``cms_blocks.view_results``)."""

    menu_label = _("Results")
    menu_name = "results"
    menu_icon = "table"
    menu_order = 260
    items = (SegmentResultsViewSet, BlockResultsViewSet)


@hooks.register("register_admin_viewset")
def register_viewsets():
    return [EditorToolsViewSet(), ResultsViewSetGroup()]


@hooks.register("register_permissions")
def register_permissions():
    return Permission.objects.filter(content_type__app_label="cms_blocks", codename="view_results")
