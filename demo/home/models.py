from django.core.exceptions import ValidationError
from django.db import models
from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.fields import StreamField
from wagtail.images.blocks import ImageChooserBlock
from wagtail.models import Page

from cms_blocks.blocks import PersonalisedBlock
from cms_blocks.models import PageVariantMixin
from cms_blocks.preview import SegmentPreviewMixin
from cms_blocks.recommendation_blocks import RecommendationsBlock
from recommendations.api import RecommendableMixin


class CallToActionValue(blocks.StructValue):
    @property
    def href(self) -> str:
        page = self.get("page")
        return (page.url if page is not None and page.live else None) or self.get("url") or ""


class CallToActionBlock(blocks.StructBlock):
    """A button: its text and where it leads (a page of the site or a web address)."""

    text = blocks.CharBlock(max_length=80, label="Button text")
    page = blocks.PageChooserBlock(required=False, label="Link to a page")
    url = blocks.URLBlock(required=False, label="or to a web address")

    class Meta:
        icon = "link"
        label = "Call to action"
        template = "home/blocks/call_to_action.html"
        value_class = CallToActionValue

    def clean(self, value):
        value = super().clean(value)
        if not value.get("page") and not value.get("url"):
            raise StructBlockValidationError(
                block_errors={"page": ValidationError("Choose a page or enter a web address.")}
            )
        return value


def section_blocks() -> list[tuple[str, blocks.Block]]:
    """What a section of a page is made of: the page body's blocks, and what each variant of
    a personalised block holds."""
    return [
        ("heading", blocks.CharBlock(max_length=200)),
        ("paragraph", blocks.RichTextBlock()),
        ("image", ImageChooserBlock(template="home/blocks/image.html")),
        ("call_to_action", CallToActionBlock()),
        # A variant may be a recommendations list: strategies compared in a block experiment.
        ("recommendations", RecommendationsBlock()),
    ]


class BodyBlock(blocks.StreamBlock):
    heading = blocks.CharBlock(max_length=200)
    paragraph = blocks.RichTextBlock()
    image = ImageChooserBlock(template="home/blocks/image.html")
    call_to_action = CallToActionBlock()
    # Default content and variants made of the same blocks as the page: text, images, buttons.
    personalised = PersonalisedBlock(section_blocks())
    # A list of pages chosen for the visitor (bought together, for you, similar, popular).
    recommendations = RecommendationsBlock()


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


class ProductPage(RecommendableMixin, SegmentPreviewMixin, Page):
    """A product: an item for recommendations, its ``stock_code`` the external id that
    imported purchases (Online Retail's stock code) name."""

    price = models.DecimalField(max_digits=8, decimal_places=2)
    category = models.CharField(max_length=64, blank=True)
    stock_code = models.CharField(max_length=64, blank=True)
    body = StreamField(BodyBlock(), blank=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("price"),
        FieldPanel("category"),
        FieldPanel("stock_code"),
        FieldPanel("body"),
    ]
    parent_page_types = ["home.HomePage"]
    subpage_types = []
