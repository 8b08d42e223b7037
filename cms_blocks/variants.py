"""Whole-page variants follow their page: what happens to a page happens to its variants.

- **Deleting** a page deletes its variants, wherever they are in the tree: also when the page
  goes with an ancestor, in a bulk action or from code (``page.delete()``, a queryset's
  ``delete()``). A variant is never left behind as an ordinary live page, reachable at its own
  URL and listed in the sitemap.
- **Unpublishing** a page unpublishes its live variants (also when it expires on schedule or is
  unpublished with its parent).
- **Moving** a page moves the variants that sit beside it (under the same parent) to its new
  parent, so they stay beside it; a move that a variant cannot follow (its slug is taken there,
  or its type may not live there) is refused with :class:`VariantMoveError` before anything
  moves.

Wired to Wagtail's and Django's signals (``pre_delete``/``post_delete`` of pages,
``page_unpublished``, ``pre_page_move``/``post_page_move``) in :mod:`cms_blocks.apps`, so every
path does it; each variant goes through Wagtail's own action (delete, unpublish, move), so it
is logged in the page history under the editor who acted. The admin hooks
(:mod:`cms_blocks.variant_hooks`) list the variants on the confirmation screens and refuse when
the editor may not do the same to one of them.
"""

import functools
from collections.abc import Iterable

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from wagtail.actions.delete_page import DeletePageAction
from wagtail.actions.move_page import MovePageAction
from wagtail.actions.unpublish_page import UnpublishPageAction
from wagtail.models import Page

from segments.api import segment_choices

from .models import PageVariantMixin
from .naming import segments_name


class VariantMoveError(ValidationError):
    """A page cannot move because a variant beside it cannot follow it there."""


@functools.cache
def variant_models() -> tuple[type[Page], ...]:
    """The concrete page models that can have whole-page variants."""
    return tuple(
        model
        for model in apps.get_models()
        if issubclass(model, PageVariantMixin) and issubclass(model, Page)
    )


def variants_of(page: Page) -> list[Page]:
    """The variants (specific pages, live or not) of ``page``, in tree order. Every page model
    that can have variants is asked, not only the page's own: a variant written past the
    editor's form (the ORM, a data migration) may have another type, and must follow too."""
    found = []
    for model in variant_models():
        found += model.objects.filter(variant_of_id=page.pk)
    return sorted(found, key=lambda p: p.path)


def variants_in_subtree(page: Page) -> list[Page]:
    """The variants of ``page`` and of its descendants (what deleting ``page`` deletes with it),
    in tree order."""
    found = []
    for model in variant_models():
        found += model.objects.filter(variant_of__path__startswith=page.path)
    return sorted(found, key=lambda p: p.path)


def siblings_to_move(page: Page, parent: Page) -> list[Page]:
    """The variants of ``page`` that are children of ``parent`` (beside it before a move)."""
    found = []
    for model in variant_models():
        found += model.objects.child_of(parent).filter(variant_of_id=page.pk)
    return sorted(found, key=lambda p: p.path)


def segments_words(variant, names: dict[str, str] | None = None) -> str:
    """Who a page variant is for, by segment name: "French or Mobile"."""
    names = dict(segment_choices()) if names is None else names
    slugs = variant.variant_segments if isinstance(variant.variant_segments, list) else []
    return segments_name(
        [s for s in slugs if isinstance(s, str)], variant.variant_match == "all", names
    )


def describe(variant, names: dict[str, str] | None = None) -> str:
    """A variant as editors know it: its title and who it is for."""
    return _("“%(title)s” for %(segments)s") % {
        "title": variant.get_admin_display_title(),
        "segments": segments_words(variant, names),
    }


# -- deletion -------------------------------------------------------------------------------------
def remember_variants(sender, instance, **kwargs) -> None:
    """``pre_delete`` of a page: note its variants before the deletion unsets their link."""
    variants = variants_of(instance) if isinstance(instance, Page) else []
    if variants:
        instance._tailored_variants = [v.pk for v in variants]


def delete_variants(sender, instance, **kwargs) -> None:
    """``post_delete`` of a page: delete its variants that the same deletion did not take (those
    elsewhere in the tree), through Wagtail's delete action (descendants, history)."""
    ids = instance.__dict__.pop("_tailored_variants", None)
    if not ids:
        return
    # Those the same deletion removed (under the same ancestor) are already gone.
    for variant in Page.objects.filter(pk__in=ids).specific().order_by("path"):
        if getattr(variant, "variant_of_id", None) is None:  # its link was unset: an orphan
            DeletePageAction(variant).execute(skip_permission_checks=True)


# -- unpublishing ---------------------------------------------------------------------------------
def unpublish_variants(sender, instance, **kwargs) -> None:
    """``page_unpublished``: unpublish the page's live variants too."""
    if not isinstance(instance, PageVariantMixin) or instance.is_variant:
        return
    for variant in variants_of(instance):
        if variant.live:
            UnpublishPageAction(variant).execute(skip_permission_checks=True)


# -- moving ---------------------------------------------------------------------------------------
def move_problems(page: Page, destination: Page, variants: Iterable[Page] | None = None) -> list:
    """Why the variants beside ``page`` could not follow it under ``destination`` (empty when
    they can): each a message naming the variant."""
    if variants is None:
        variants = siblings_to_move(page, page.get_parent())
    problems = []
    for variant in variants:
        if not Page._slug_is_available(variant.slug, destination, page=variant):
            problems.append(
                _(
                    "its variant %(variant)s cannot move with it: the slug “%(slug)s” is "
                    "already used there"
                )
                % {"variant": describe(variant), "slug": variant.slug}
            )
        elif not variant.can_move_to(destination):
            problems.append(
                _("its variant %(variant)s cannot move with it: its type may not be placed there")
                % {"variant": describe(variant)}
            )
    return problems


MOVE_REFUSED = _l("“%(page)s” cannot move to “%(destination)s”: %(problems)s.")


def check_move(sender, instance, parent_page_before, parent_page_after, **kwargs) -> None:
    """``pre_page_move``: refuse a move that a variant beside the page cannot follow.

    Also refreshes the tree position of the page about to move: a variant already moved with
    its page and then moved again from a list loaded before (a bulk move selecting both) would
    otherwise be moved from where it no longer is."""
    fresh = Page.objects.filter(pk=instance.pk).values("path", "depth", "numchild").first()
    if fresh:
        for name, value in fresh.items():
            setattr(instance, name, value)
    if parent_page_before.pk == parent_page_after.pk:
        return  # reordering among siblings: the variants stay where they are
    problems = move_problems(instance, parent_page_after)
    if problems:
        raise VariantMoveError(
            MOVE_REFUSED
            % {
                "page": instance.get_admin_display_title(),
                "destination": parent_page_after.get_admin_display_title(),
                "problems": "; ".join(problems),
            }
        )


def move_variants(sender, instance, parent_page_before, parent_page_after, **kwargs) -> None:
    """``post_page_move``: move the variants that were beside the page to its new parent."""
    if parent_page_before.pk == parent_page_after.pk:
        return
    for variant in siblings_to_move(instance, parent_page_before):
        MovePageAction(variant, parent_page_after, pos="last-child").execute(
            skip_permission_checks=True
        )
