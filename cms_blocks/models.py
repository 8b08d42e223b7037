"""Page variants: a whole page that some segments see instead of the original.

A variant is an ordinary page of the same type whose ``variant_of`` points at the original and
that names the segments it is for. Visitors keep the original URL: the original's ``serve``
picks the first live, public variant the visitor qualifies for and renders it there. Variants
are tried by the highest priority among their segments (``Segment.priority``), then in page-tree
order (the order of the explorer). A variant never appears in menus, search or sitemaps, its
``<link rel="canonical">`` names the original, and a direct request for its own URL is
redirected to the original. Drafts, scheduled, expired and privacy-restricted variants are never
served (only the published version of a variant is ever shown). Variants follow their page:
deleted, unpublished and moved with it (:mod:`cms_blocks.variants`).

Serving a page that has no variants costs no query: each process keeps the ids of the pages
that have any (one small query per page type, again after ``CMS_BLOCKS_VARIANT_INDEX_SECONDS``
or at once when this process saves or deletes a page); only those pages look their variants up.
A page's first variant therefore reaches the other processes within that many seconds.

Usage::

    class ContentPage(PageVariantMixin, Page):
        content_panels = [*Page.content_panels, FieldPanel("body")]
        promote_panels = [*Page.promote_panels, *PageVariantMixin.variant_panels]
"""

import logging
import threading
import time

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, PageChooserPanel
from wagtail.search.index import remove_object

from personalization.api import Candidate, decide
from segments.api import segment_choices, segment_priorities

from .conf import get_setting
from .references import segment_references

logger = logging.getLogger(__name__)


class _VariantIndex:
    """Per process: the ids of the pages of each page type that have variants."""

    def __init__(self):
        self._by_model: dict[type, tuple[float, frozenset[int]]] = {}
        self._lock = threading.Lock()

    def has_variants(self, model: type, pk: int) -> bool:
        entry = self._by_model.get(model)
        if entry is None or entry[0] <= time.monotonic():
            with self._lock:
                ttl = float(get_setting("CMS_BLOCKS_VARIANT_INDEX_SECONDS"))
                ids = frozenset(
                    model.objects.filter(variant_of__isnull=False)
                    .values_list("variant_of_id", flat=True)
                    .distinct()
                )
                entry = (time.monotonic() + ttl, ids)
                self._by_model[model] = entry
        return pk in entry[1]

    def forget(self, *args, **kwargs) -> None:
        self._by_model = {}


variant_index = _VariantIndex()


def _slugs(stored) -> frozenset[str]:
    """A variant's stored segments as slugs: a list as saved by the form; one slug or anything
    else written past it (a data migration, the ORM) reads as that slug or as none."""
    if isinstance(stored, str):
        return frozenset((stored,))
    if isinstance(stored, list | tuple):
        return frozenset(s for s in stored if isinstance(s, str))
    return frozenset()


class SegmentSlugsField(models.JSONField):
    """A list of segment slugs, edited as checkboxes of the existing segments. Declares the
    segments it names to Wagtail's reference index (their usage, see cms_blocks.references)."""

    def extract_references(self, value):
        yield from segment_references(_slugs(value))

    def formfield(self, **kwargs):
        return forms.MultipleChoiceField(
            choices=segment_choices,
            required=not self.blank,
            widget=forms.CheckboxSelectMultiple,
            label=self.verbose_name.capitalize(),
            help_text=self.help_text,
        )


class PageVariantMixin(models.Model):
    """Makes a page type able to have whole-page variants for segments (see the module)."""

    variant_of = models.ForeignKey(
        "wagtailcore.Page",
        verbose_name=_("variant of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_(
            "Make this page a variant of another page of the same type: visitors in the "
            "segments below see it at that page's address instead."
        ),
    )
    variant_segments = SegmentSlugsField(
        _("variant segments"),
        default=list,
        blank=True,
        help_text=_("Visitors in these segments see this variant."),
    )
    variant_match = models.CharField(
        _("variant match"),
        max_length=3,
        choices=[("any", _("in any of them")), ("all", _("in all of them"))],
        default="any",
    )

    variant_panels = [
        MultiFieldPanel(
            [
                PageChooserPanel("variant_of"),
                FieldPanel("variant_segments"),
                FieldPanel("variant_match"),
            ],
            heading=_("Personalisation: page variant"),
        )
    ]

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.is_variant:
            self.show_in_menus = False  # also when saved from code, not the admin form
        result = super().save(*args, **kwargs)
        if self.is_variant:
            remove_object(self)  # indexed before it became a variant
        return result

    @property
    def is_variant(self) -> bool:
        return self.variant_of_id is not None

    @property
    def canonical_page(self):
        """The page whose URL is canonical for this content: the original for a variant."""
        return self.variant_of if self.is_variant else self

    def clean(self) -> None:
        super().clean()
        if not self.is_variant:
            return
        original = self.variant_of.specific
        if original.pk == self.pk:
            raise ValidationError({"variant_of": _("A page cannot be a variant of itself.")})
        if type(original) is not type(self):
            raise ValidationError({"variant_of": _("A variant must be a page of the same type.")})
        if original.is_variant:
            raise ValidationError({"variant_of": _("A variant cannot be a variant of a variant.")})
        if not self.variant_segments:
            raise ValidationError(
                {"variant_segments": _("Choose the segments this variant is for.")}
            )
        self.show_in_menus = False

    # -- serving ---------------------------------------------------------------------------

    def live_variants(self) -> list[tuple[int, frozenset[str], bool]]:
        """(page id, segments, match all) of this page's servable variants, in priority order:
        the highest priority among a variant's segments first, then page-tree order."""
        rows = [
            (pk, _slugs(segments), match == "all")
            for pk, segments, match in type(self)
            .objects.live()
            .public()
            .filter(variant_of=self)
            .order_by("path")
            .values_list("pk", "variant_segments", "variant_match")
        ]
        if len(rows) > 1:
            priority = segment_priorities()
            rows.sort(key=lambda r: -max((priority.get(s, 0) for s in r[1]), default=0))
        return rows

    def variant_for(self, request):
        """The variant this request's visitor should see instead of this page, or ``None``.
        Never raises: whatever goes wrong choosing, the visitor gets this page."""
        if self.is_variant or not variant_index.has_variants(type(self), self.pk):
            return None
        try:
            return self._choose_variant(request)
        except Exception as exc:  # like a personalised block: default content, never a 500
            logger.warning("Page variant choice fell back to the original: %s", type(exc).__name__)
            return None

    def _choose_variant(self, request):
        variants = self.live_variants()
        if not variants:
            return None
        index = decide(
            request,
            [Candidate(segments, pk, match_all) for pk, segments, match_all in variants],
            keys=[str(pk) for pk, _segments, _match in variants],
            page_id=self.pk,
        ).index
        if index is None:
            return None
        # Loaded from the live table: the published version, never a draft revision.
        return type(self).objects.live().public().filter(pk=variants[index][0]).first()

    def serve(self, request, *args, **kwargs):
        if self.is_variant:
            if getattr(request, "_tailored_variant", None) is self:
                return super().serve(request, *args, **kwargs)
            original = self.variant_of
            url = original.get_url(request) if original.live else None
            if not url:
                raise Http404
            return HttpResponseRedirect(url)  # temporary: the variant may stop being one
        variant = self.variant_for(request)
        if variant is None:
            return super().serve(request, *args, **kwargs)
        request._tailored_variant = variant
        return variant.serve(request, *args, **kwargs)

    # -- out of menus, search and sitemaps ---------------------------------------------------

    @classmethod
    def get_indexed_objects(cls):
        return super().get_indexed_objects().filter(variant_of__isnull=True)

    def get_sitemap_urls(self, request=None):
        return [] if self.is_variant else super().get_sitemap_urls(request)


class Results(models.Model):
    """Carries the editors' "view results" permission; holds no data (no table).

    Managing segments (the snippet's add/change/delete permissions), viewing results and the
    privacy screens (``consent.view_consent_log``) are separate permissions, each given to
    groups in Settings → Groups.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_results", _("Can view segment results and block reports"))]
        verbose_name = _("segment results")
        verbose_name_plural = _("segment results")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
