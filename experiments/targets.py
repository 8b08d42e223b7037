"""What an experiment can test, read from the pages themselves: the personalised blocks of a
page with their variants, and a page's whole-page variants.

experiments sits below cms_blocks, so it never imports it: a personalised block is any
StreamField child whose block has a ``variants(value)`` method (cms_blocks'
``PersonalisedBlock``), and a whole-page variant is a page of any model with a ``variant_of``
foreign key to its canonical page and ``variant_segments`` (cms_blocks' ``PageVariantMixin``).
"""

from dataclasses import dataclass

from django.apps import apps
from django.db.models import ForeignKey
from wagtail.fields import StreamField
from wagtail.models import Page

from .models import DEFAULT_KEY

__all__ = [
    "PERSONALISED_KEY",
    "Option",
    "block_options",
    "holdout_options",
    "page_options",
    "page_variant_models",
    "page_variants",
    "personalised_blocks",
]

# What the treatment arm of a holdout experiment shows: the usual choice by segments.
PERSONALISED_KEY = "personalised"


@dataclass(frozen=True)
class Option:
    """Something an arm can show: ``key`` is what :attr:`experiments.models.Arm.key` stores."""

    key: str
    name: str
    segments: tuple[str, ...] = ()


def stream_fields(page: Page) -> list[str]:
    return [f.name for f in page._meta.get_fields() if isinstance(f, StreamField)]


def personalised_blocks(page: Page) -> dict[str, tuple[str, object, object]]:
    """The page's personalised blocks (top level of its StreamFields), by StreamField id:
    ``(field name, block, value)``."""
    page = page.specific
    found = {}
    for name in stream_fields(page):
        for child in getattr(page, name) or ():
            if child.id and callable(getattr(child.block, "variants", None)):
                found[str(child.id)] = (name, child.block, child.value)
    return found


def block_options(page: Page, block_id: str) -> list[Option] | None:
    """The default then each variant of the page's block ``block_id`` (None: no such block)."""
    found = personalised_blocks(page).get(block_id)
    if found is None:
        return None
    _name, block, value = found
    return distinct_names(
        [
            Option(v.key, str(v.name), tuple(sorted(v.segments)))
            for v in block.variants(value)  # type: ignore[attr-defined]
        ]
    )


def distinct_names(options: list[Option]) -> list[Option]:
    """The options with names an editor can tell apart in the results: two variants named
    alike (unlabelled, for the same segments) become "spring (1)" and "spring (2)"."""
    counts: dict[str, int] = {}
    for option in options:
        counts[option.name] = counts.get(option.name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for option in options:
        if counts[option.name] > 1:
            seen[option.name] = seen.get(option.name, 0) + 1
            option = Option(option.key, f"{option.name} ({seen[option.name]})", option.segments)
        out.append(option)
    return out


def page_variant_models() -> list[type[Page]]:
    """Page models that can have whole-page variants."""
    found = []
    for model in apps.get_models():
        if not issubclass(model, Page):
            continue
        names = {f.name for f in model._meta.get_fields()}
        if "variant_of" not in names or "variant_segments" not in names:
            continue
        field = model._meta.get_field("variant_of")
        if isinstance(field, ForeignKey) and field.model is model:
            found.append(model)
    return found


def page_variants(page: Page) -> list[Page]:
    """The whole-page variants of ``page`` (specific pages, live or not)."""
    found = []
    for model in page_variant_models():
        found += model.objects.filter(variant_of_id=page.pk).order_by("path")
    return found


def page_options(page: Page) -> list[Option]:
    """The canonical page (``"default"``) then each of its variants (key: its page id)."""
    options = [Option(DEFAULT_KEY, str(page.title))]
    for variant in page_variants(page):
        options.append(
            Option(str(variant.pk), str(variant.title), tuple(variant.variant_segments or ()))
        )
    return distinct_names(options)


def holdout_options() -> list[Option]:
    """The arms of a holdout experiment: default content against the usual personalised
    choice (what personalization decides shows for any arm key other than a variant's)."""
    return [Option(DEFAULT_KEY, "Default content"), Option(PERSONALISED_KEY, "Personalised")]
