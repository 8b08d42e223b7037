from django.db import models
from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.fields import StreamField
from wagtail.models import Page

from cms_blocks.blocks import PersonalisedBlock
from cms_blocks.models import PageVariantMixin
from cms_blocks.preview import SegmentPreviewMixin


class BodyBlock(blocks.StreamBlock):
    heading = blocks.CharBlock(max_length=200)
    paragraph = blocks.RichTextBlock()
    personalised = PersonalisedBlock()


class HomePage(SegmentPreviewMixin, Page):
    intro = models.CharField(max_length=255, blank=True)
    body = StreamField(BodyBlock(), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    subpage_types = ["home.ContentPage", "home.ProductPage"]


class ContentPage(PageVariantMixin, SegmentPreviewMixin, Page):
    """A page of text; it can have whole-page variants for segments (see cms_blocks.models)."""

    body = StreamField(BodyBlock(), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("body")]
    promote_panels = [*Page.promote_panels, *PageVariantMixin.variant_panels]
    parent_page_types = ["home.HomePage"]
    subpage_types = []


class ProductPage(SegmentPreviewMixin, Page):
    price = models.DecimalField(max_digits=8, decimal_places=2)
    category = models.CharField(max_length=64, blank=True)
    body = StreamField(BodyBlock(), blank=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("price"),
        FieldPanel("category"),
        FieldPanel("body"),
    ]
    parent_page_types = ["home.HomePage"]
    subpage_types = []
