"""Builders for test data: small functions instead of big fixtures."""

from collections.abc import Sequence

from django.core.management import call_command
from django.test import Client
from wagtail.models import Page, Site

from demo.home.images import banner_image
from demo.home.models import ContentPage, HomePage
from segments.models import Segment

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

ENGAGED_RULE = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}


def segment(slug: str = "engaged", rule: dict | None = None, **fields) -> Segment:
    return Segment.objects.create(
        slug=slug, name=fields.pop("name", slug.title()), rule=rule or ENGAGED_RULE, **fields
    )


def browser() -> Client:
    """A test client that looks like a browser (bots are not recorded)."""
    return Client(HTTP_USER_AGENT=BROWSER_UA)


def consenting_browser(action: str = "accept_all", **data) -> Client:
    client = browser()
    response = client.post("/consent/", {"action": action, **data})
    assert response.status_code == 303, response.content
    return client


def demo_site(*, experiment: bool = False) -> None:
    """The demo's content; without its running experiment on the home banner unless
    ``experiment`` (otherwise half the engaged visitors would see the default there)."""
    call_command("seed_demo", verbosity=0, without_experiment=not experiment)


def image(title: str = "Banner", colour: str = "#0f3d3e"):
    """A Wagtail image (a drawn PNG banner) titled ``title``: the same one for the same title."""
    return banner_image(title, colour)


# -- pages --------------------------------------------------------------------------------------


def home_page() -> HomePage:
    """The demo's home page (seeded by ``demo_site()``), or a bare one made the default site's
    root when there is none: enough to serve pages without seeding the whole demo."""
    home = HomePage.objects.first()
    if home is None:
        home = Page.get_first_root_node().add_child(
            instance=HomePage(title="Welcome", slug="welcome")
        )
        Site.objects.update_or_create(
            is_default_site=True, defaults={"root_page": home, "hostname": "localhost"}
        )
    return home


def paragraph(text: str) -> tuple[str, str]:
    """A paragraph StreamField item; ``text`` is its inner HTML."""
    return ("paragraph", f"<p>{text}</p>")


def personalised_block(default: str, variants: Sequence[tuple] = ()) -> tuple[str, dict]:
    """A ``personalised`` StreamField item (cms_blocks PersonalisedBlock, as the demo's
    ``BodyBlock`` names it): ``default`` for everyone, else the first of ``variants`` the
    visitor qualifies for. A variant is ``(segments, text)`` or ``(segments, text, match)``:
    one slug or a list of slugs, a paragraph's inner HTML, ``"any"`` (default) or ``"all"``."""
    return (
        "personalised",
        {
            "default": [paragraph(default)],
            "variants": [
                {
                    "segments": [segments] if isinstance(segments, str) else list(segments),
                    "match": match[0] if match else "any",
                    "content": [paragraph(text)],
                }
                for segments, text, *match in variants
            ],
        },
    )


def _publish(page: Page, parent: Page, live: bool) -> Page:
    parent.add_child(instance=page)
    if live:
        page.save_revision().publish()
    return page


def personalised_page(
    parent: Page | None = None,
    *,
    variants: Sequence[tuple] = (("engaged", "ENGAGED offer"),),
    default: str = "Standard offer",
    slug: str = "offers",
    title: str = "Offers",
    live: bool = True,
    before: Sequence[tuple] = (),
    **fields,
) -> ContentPage:
    """A demo ``ContentPage`` under ``parent`` (default: :func:`home_page`) whose body is
    ``before`` (StreamField items, e.g. ``[("heading", "Offers")]``) then one personalised
    block (see :func:`personalised_block` for ``variants``). Published with a revision when
    ``live``, else a draft."""
    page = ContentPage(
        title=title,
        slug=slug,
        body=[*before, personalised_block(default, variants)],
        live=live,
        **fields,
    )
    return _publish(page, parent or home_page(), live)


def page_variant(
    canonical: ContentPage,
    segments: str | Sequence[str],
    text: str = "Variant",
    *,
    slug: str | None = None,
    title: str | None = None,
    match: str = "any",
    live: bool = True,
    **fields,
) -> ContentPage:
    """A whole-page variant of ``canonical`` (cms_blocks PageVariantMixin) for ``segments``
    (one slug or a list), a sibling whose body is one paragraph of ``text``: served at the
    canonical URL to visitors in ``any`` (or ``all``) of them. Published when ``live``."""
    slugs = [segments] if isinstance(segments, str) else list(segments)
    slug = slug or f"{canonical.slug}-{'-'.join(slugs)}"
    page = ContentPage(
        title=title or f"{canonical.title} ({slug})",
        slug=slug,
        variant_of=canonical,
        variant_segments=slugs,
        variant_match=match,
        body=[paragraph(text)],
        live=live,
        **fields,
    )
    return _publish(page, canonical.get_parent(), live)


# -- model-driven segments (segments_ml) ----------------------------------------------------------

_ML_MODELS = {
    "propensity": {
        "name": "Buys again",
        "slug": "buys-again",
        "target": {"event": "purchase", "horizon_days": 30},
        "population_event": "purchase",
    },
    "clustering": {
        "name": "RFM",
        "slug": "rfm",
        "population_event": "purchase",
        "params": {"k_min": 2, "k_max": 4},
    },
}


def ml_model(kind: str = "propensity", **fields):
    """A segments_ml ``MLModel``: by default "Buys again" (a propensity: will a buyer buy
    again within 30 days), or with ``kind="clustering"`` "RFM" (2 to 4 clusters of buyers);
    ``fields`` replace the defaults. Train it with ``segments_ml.training.train_version``."""
    # Imported here: segments_ml is an optional app, installed only with scikit-learn.
    from segments_ml.models import MLModel

    return MLModel.objects.create(kind=kind, **{**_ML_MODELS[kind], **fields})
