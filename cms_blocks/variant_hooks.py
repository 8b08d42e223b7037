"""The admin side of page variants: the page variants report with its "Create variant" action
(also in each page's header and listing menu), and variants following their page
(:mod:`cms_blocks.variants`).

The delete and move confirmation screens list the variants that go with the page (unpublishing
shows them in the page's usage, as references to it), the success message names them, and the
action is refused, with a message naming the variant, when the editor may not do the same to
one of them. Bulk actions get the same checks; a variant selected together with its page is
left to follow the page (acting on it a second time would act on a stale copy).
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse, reverse_lazy
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.messages import render
from wagtail.admin.ui.menus.pages import PageMenuItem
from wagtail.admin.viewsets.base import ViewSet
from wagtail.admin.widgets.button import ListingButton
from wagtail.models import Page
from wagtail.permission_policies.pages import PagePermissionPolicy

from segments.api import segment_choices

from .admin_views.variants import CreateVariantView, PageVariantsReportView, can_create_variant
from .models import variant_index
from .variants import (
    MOVE_REFUSED,
    describe,
    move_problems,
    segments_words,
    siblings_to_move,
    variant_models,
    variants_in_subtree,
    variants_of,
)

_STASH = "_tailored_variants_done"


@hooks.register("before_serve_page")
def note_served_page(page, request, serve_args, serve_kwargs):
    """Note which page this request serves (a variant's canonical page: the one whose URL the
    visitor asked for), so the page view recorded for it says so and experiments on that page
    count the exposure (segments.api.page_view, experiments.pipeline)."""
    request._tailored_page_id = getattr(page, "variant_of_id", None) or page.pk


def _say(level, request, message: str, variants=()) -> None:
    """A Wagtail admin message with the variants as a list under it."""
    names = dict(segment_choices())
    detail = (
        format_html(
            '<ul class="tailored-variant-list">{}</ul>',
            format_html_join("", "<li>{}</li>", ((describe(v, names),) for v in variants)),
        )
        if variants
        else ""
    )
    level(request, render(message, None, detail=detail))


def _outside(variants, page: Page) -> list[Page]:
    """The variants not under ``page`` (those under it go with it as its descendants)."""
    return [v for v in variants if not v.path.startswith(page.path)]


def delete_refused(user, page: Page, variants) -> list[Page]:
    """The variants deleting ``page`` would delete that ``user`` may not delete."""
    return [v for v in _outside(variants, page) if not v.permissions_for_user(user).can_delete()]


def move_refusal(user, page: Page, destination: Page) -> tuple[str, list[Page]] | None:
    """Why ``page`` may not move under ``destination`` with the variants beside it (the
    message and those variants), or None."""
    parent = page.get_parent()
    if parent is None or parent.pk == destination.pk:
        return None
    variants = siblings_to_move(page, parent)
    problems = move_problems(page, destination, variants)
    problems += [
        _("you may not move its variant %(variant)s there") % {"variant": describe(v)}
        for v in variants
        if not v.permissions_for_user(user).can_move_to(destination)
    ]
    if not problems:
        return None
    message = MOVE_REFUSED % {
        "page": page.get_admin_display_title(),
        "destination": destination.get_admin_display_title(),
        "problems": "; ".join(problems),
    }
    return str(message), variants


def _site_name_mistyped(request) -> bool:
    # Wagtail shows the confirmation screen again when the site name was typed wrong.
    typed = request.POST.get("confirm_site_name")
    return bool(typed) and typed != getattr(settings, "WAGTAIL_SITE_NAME", "wagtail")


@hooks.register("before_delete_page")
def before_delete_page(request, page):
    variants = variants_in_subtree(page)
    if not variants:
        return None
    if request.method == "POST" and not _site_name_mistyped(request):
        refused = delete_refused(request.user, page, variants)
        if refused:
            _say(
                messages.error,
                request,
                _(
                    "“%(page)s” was not deleted: its variants below would be deleted with it, "
                    "and you may not delete them. Ask an administrator, or have them deleted "
                    "first."
                )
                % {"page": page.get_admin_display_title()},
                refused,
            )
            return redirect("wagtailadmin_pages:delete", page.pk)
        setattr(request, _STASH, variants)  # named once they are gone
        return None
    _say(
        messages.warning,
        request,
        _("Deleting this page also deletes its page variants:"),
        variants,
    )
    return None


@hooks.register("after_delete_page")
def after_delete_page(request, page):
    variants = getattr(request, _STASH, None)
    if variants:
        _say(messages.success, request, _("Its page variants were deleted too:"), variants)


@hooks.register("before_move_page")
def before_move_page(request, page, destination):
    refusal = move_refusal(request.user, page, destination)
    if refusal:
        _say(messages.error, request, *refusal)
        return redirect("wagtailadmin_pages:move", page.pk)
    parent = page.get_parent()
    variants = siblings_to_move(page, parent) if parent and parent.pk != destination.pk else []
    if not variants:
        return None
    if request.method == "POST":
        setattr(request, _STASH, variants)
    else:
        _say(
            messages.warning, request, _("Moving this page also moves its page variants:"), variants
        )
    return None


@hooks.register("after_move_page")
def after_move_page(request, page):
    variants = getattr(request, _STASH, None)
    if variants:
        _say(messages.success, request, _("Its page variants moved too:"), variants)


def _unpublish_refused(user, page: Page) -> tuple[list[Page], list[Page]]:
    live = [v for v in variants_of(page) if v.live]
    return live, [v for v in live if not v.permissions_for_user(user).can_unpublish()]


@hooks.register("before_unpublish_page")
def before_unpublish_page(request, page):
    live, refused = _unpublish_refused(request.user, page)
    if refused:
        _say(
            messages.error,
            request,
            _(
                "“%(page)s” was not unpublished: its live variants below would be unpublished "
                "with it, and you may not unpublish them. Ask an administrator."
            )
            % {"page": page.get_admin_display_title()},
            refused,
        )
        return redirect("wagtailadmin_pages:unpublish", page.pk)
    if live:
        setattr(request, _STASH, live)
    return None


@hooks.register("after_unpublish_page")
def after_unpublish_page(request, page):
    variants = getattr(request, _STASH, None)
    if variants:
        _say(messages.success, request, _("Its page variants were unpublished too:"), variants)


@hooks.register("before_bulk_action")
def before_bulk_action(request, action_type, objects, action):
    """Pages only: leave out variants selected with their page (they follow it), and refuse,
    naming the variants, what a variant could not follow."""
    if action_type not in ("delete", "move", "unpublish") or not objects:
        return None
    if not all(isinstance(obj, Page) for obj in objects):
        return None
    selected = {obj.pk for obj in objects}
    objects[:] = [
        obj
        for obj in objects
        if getattr(obj.specific_deferred, "variant_of_id", None) not in selected
    ]
    for page in objects:
        page = page.specific_deferred
        refusal = None
        if action_type == "delete":
            refused = delete_refused(request.user, page, variants_in_subtree(page))
            if refused:
                refusal = (
                    _(
                        "Nothing was deleted: deleting “%(page)s” would also delete its "
                        "variants below, and you may not delete them."
                    )
                    % {"page": page.get_admin_display_title()},
                    refused,
                )
        elif action_type == "move":
            refusal = move_refusal(request.user, page, action.cleaned_form.cleaned_data["chooser"])
        else:
            refused = _unpublish_refused(request.user, page)[1]
            if refused:
                refusal = (
                    _(
                        "Nothing was unpublished: unpublishing “%(page)s” would also unpublish "
                        "its live variants below, and you may not unpublish them."
                    )
                    % {"page": page.get_admin_display_title()},
                    refused,
                )
        if refusal:
            _say(messages.error, request, *refusal)
            return redirect(action.next_url)
    return None


# -- the page variants report and "Create variant" ------------------------------------------------
class PageVariantsViewSet(ViewSet):
    """Reports → Page variants (which pages have variants, for which segments) and the
    "Create variant" screen, under ``/admin/tailored/variants/``."""

    name = "cms_blocks_variants"
    url_prefix = "tailored/variants"

    def get_urlpatterns(self):
        return [
            path("", PageVariantsReportView.as_view(), name="index"),
            path(
                "results/", PageVariantsReportView.as_view(results_only=True), name="index_results"
            ),
            path("<int:page_id>/create/", CreateVariantView.as_view(), name="create"),
        ]


@hooks.register("register_admin_viewset")
def register_page_variants_viewset():
    return PageVariantsViewSet()


class PageVariantsMenuItem(MenuItem):
    def is_shown(self, request):
        return PagePermissionPolicy().user_has_any_permission(request.user, ["change"])


@hooks.register("register_reports_menu_item")
def register_page_variants_menu_item():
    return PageVariantsMenuItem(
        _("Page variants"),
        reverse_lazy("cms_blocks_variants:index"),
        name="page-variants",
        icon_name="user",
        order=900,
    )


class CreateVariantButton(PageMenuItem):
    label = _("Create variant")
    icon_name = "user"
    url_name = "cms_blocks_variants:create"

    def is_shown(self, user):
        return can_create_variant(user, self.page.specific_deferred)


@hooks.register("register_page_header_buttons")
def create_variant_header_button(page, user, view_name, next_url=None):
    yield CreateVariantButton(page=page, priority=67)


@hooks.register("register_page_listing_more_buttons")
def create_variant_listing_button(page, user, next_url=None):
    yield CreateVariantButton(page=page, priority=6)


def has_variants(page: Page) -> bool:
    """Whether ``page`` has page variants, from the per-process index (no query per page)."""
    return any(variant_index.has_variants(model, page.pk) for model in variant_models())


@hooks.register("register_page_listing_buttons")
def variants_listing_button(page, user, next_url=None):
    """In Wagtail's page explorer, a page with variants says so and for whom ("Variants:
    French speakers; Mobile"), leading to the page variants report."""
    if not has_variants(page):
        return
    names = dict(segment_choices())
    whom = "; ".join(segments_words(v, names) for v in variants_of(page))
    label = _("Variants: %(segments)s") % {"segments": whom}
    yield ListingButton(
        label,
        url=f"{reverse('cms_blocks_variants:index')}?has_variants=yes",
        icon_name="user",
        attrs={"data-tailored-variants": str(page.pk), "title": label},
        priority=40,
    )
