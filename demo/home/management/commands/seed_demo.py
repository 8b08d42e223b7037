"""Create the demo content: pages, segments, personalised variants and a running experiment.
Safe to run twice."""

import csv
import gzip
import io
from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from wagtail.models import Page, Site

from demo.home.images import banner_image
from demo.home.models import ContentPage, HomePage, ProductPage
from experiments.models import Arm, Experiment, Goal
from segments.api import load_mapping, segment_model

# A slice of the Online Retail catalogue (docs/recommendations.md): the 24 items most customers
# bought, as ``retail_products()`` reads them from the export. The demo makes a product page for
# each, its stock code the page's external id, so imported purchases map onto the pages.
RETAIL_PRODUCTS = [
    ("22423", "REGENCY CAKESTAND 3 TIER", "10.95"),
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55"),
    ("47566", "PARTY BUNTING", "4.65"),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", "1.69"),
    ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN", "4.95"),
    ("21212", "PACK OF 72 RETROSPOT CAKE CASES", "0.42"),
    ("85099B", "JUMBO BAG RED RETROSPOT", "1.65"),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", "2.55"),
    ("22457", "NATURAL SLATE HEART CHALKBOARD", "2.95"),
    ("22138", "BAKING SET 9 PIECE RETROSPOT", "4.95"),
    ("22960", "JAM MAKING SET WITH JARS", "4.25"),
    ("22469", "HEART OF WICKER SMALL", "1.45"),
    ("23298", "SPOTTY BUNTING", "4.95"),
    ("22961", "JAM MAKING SET PRINTED", "1.45"),
    ("20725", "LUNCH BAG RED RETROSPOT", "1.65"),
    ("23203", "JUMBO BAG DOILEY PATTERNS", "2.08"),
    ("22382", "LUNCH BAG SPACEBOY DESIGN", "1.65"),
    ("22139", "RETROSPOT TEA SET CERAMIC 11 PC", "4.25"),
    ("22470", "HEART OF WICKER LARGE", "2.55"),
    ("21034", "REX CASH+CARRY JUMBO SHOPPER", "0.95"),
    ("20728", "LUNCH BAG CARS BLUE", "1.65"),
    ("23355", "HOT WATER BOTTLE KEEP CALM", "4.95"),
    ("23245", "SET OF 3 REGENCY CAKE TINS", "4.95"),
    ("22666", "RECIPE BOX PANTRY YELLOW DESIGN", "2.95"),
]


def retail_products(path: str | Path, limit: int = 24) -> list[tuple[str, str, str]]:
    """(stock code, description, unit price) of the ``limit`` items most customers bought, read
    from the Online Retail export at ``path`` (how :data:`RETAIL_PRODUCTS` was made)."""
    columns = load_mapping("online-retail")  # the columns are named once, in the preset
    item = columns.properties["category"]
    buyers: dict[str, set] = {}
    described: dict[str, tuple[str, str]] = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            code, customer = row[item], row[columns.visitor]
            if not customer or not code[:1].isdigit() or row[columns.quantity].startswith("-"):
                continue
            buyers.setdefault(code, set()).add(customer)
            described.setdefault(code, (row["Description"].strip(), row[columns.value]))
    top = Counter({code: len(c) for code, c in buyers.items()}).most_common(limit)
    return [(code, *described[code]) for code, _n in top]


def _category(description: str) -> str:
    words = description.lower().split()
    for name, keys in (
        ("bags", ("bag", "bags")),
        ("kitchen", ("cake", "tin", "tins", "mug", "cup", "cups", "jar", "bottle", "lunch")),
        ("decoration", ("heart", "bunting", "ornament", "light", "holder", "lantern")),
    ):
        if any(k in words for k in keys):
            return name
    return "gifts"


def _recommendations(strategy: str, heading: str, count: int = 4) -> tuple:
    return (
        "recommendations",
        {"strategy": strategy, "count": count, "template": "cards", "heading": heading},
    )


SEGMENTS = [
    {
        "slug": "engaged",
        "name": "Engaged",
        "description": "Viewed at least 3 pages in the last 10 minutes.",
        "priority": 10,
        "rule": {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"},
    },
    {
        "slug": "regular",
        "name": "Regular",
        "description": "Viewed at least 10 pages in the last 7 days.",
        "priority": 5,
        "rule": {"type": "event_count", "event": "page_view", "min": 10, "window": "7d"},
    },
]


DEMO_EXPERIMENT = "home-banner"


def _personalised(default: str, variants: list[tuple[list[str], str]]) -> tuple:
    return (
        "personalised",
        {
            "default": [("paragraph", f"<p>{default}</p>")],
            "variants": [
                {"segments": segments, "match": "any", "content": [("paragraph", f"<p>{text}</p>")]}
                for segments, text in variants
            ],
        },
    )


def _welcome_block(guides: Page, shop: Page) -> tuple:
    """The home page's personalised section: an image and a call to action that differ for
    engaged visitors (default: browse the guides; engaged: a discount in the shop)."""
    welcome = banner_image("Welcome banner", "#0f3d3e", "Welcome to the shop")
    offer = banner_image("Engaged offer banner", "#8a3b12", "10% off for you: ENGAGED10")
    return (
        "personalised",
        {
            "default": [
                ("image", welcome),
                ("paragraph", "<p>Welcome! Have a look around our guides and products.</p>"),
                ("call_to_action", {"text": "Read our guides", "page": guides, "url": ""}),
            ],
            "variants": [
                {
                    "label": "Engaged visitors: discount",
                    "segments": ["engaged"],
                    "match": "any",
                    "content": [
                        ("image", offer),
                        (
                            "paragraph",
                            "<p>Thanks for exploring! As an engaged visitor, take 10% off "
                            "with code ENGAGED10.</p>",
                        ),
                        (
                            "call_to_action",
                            {"text": "Shop with 10% off", "page": shop, "url": ""},
                        ),
                    ],
                },
            ],
        },
    )


def _seed_experiment(home: HomePage) -> None:
    """A running experiment on the home page's personalised banner: engaged visitors see the
    default welcome or the discount variant, half each; the goals are a click on the banner and
    a visit to the shop page. Its results screen (Experiments in the admin) fills as you click
    around with consent. Kept as it is when it exists."""
    if Experiment.objects.filter(key=DEMO_EXPERIMENT).exists():
        return
    home = HomePage.objects.get(pk=home.pk)
    child = next((c for c in home.body if c.block_type == "personalised" and c.id), None)
    engaged = segment_model().objects.filter(slug="engaged").first()
    if child is None or engaged is None or not child.value["variants"]:
        return
    variant = child.value["variants"].bound_blocks[0]
    shop = home.get_children().filter(slug="ceramic-mug").first()
    experiment = Experiment.objects.create(
        name="Home banner: discount or welcome for engaged visitors",
        key=DEMO_EXPERIMENT,
        description="Engaged visitors click the banner more when it offers them a discount.",
        kind=Experiment.Kind.BLOCK,
        status=Experiment.Status.RUNNING,
        started_at=timezone.now(),
        page=home,
        block_id=str(child.id),
        segment=engaged,
        minimum_sample=5,  # a demo: figures appear after a few visitors
    )
    Arm.objects.create(experiment=experiment, index=0, name="Welcome (default)", key="default")
    Arm.objects.create(experiment=experiment, index=1, name="Discount", key=str(variant.id))
    Goal.objects.create(
        experiment=experiment,
        name="Clicks the banner",
        event="click",
        match={"block": str(child.id)},
        role=Goal.Role.PRIMARY,
        order=0,
    )
    if shop is not None:
        Goal.objects.create(
            experiment=experiment,
            name="Visits the shop",
            event="page_view",
            match={"path": f"/{shop.slug}/"},
            role=Goal.Role.SECONDARY,
            order=1,
        )


class Command(BaseCommand):
    help = "Seed the demo site: home, content and product pages, segments and variants."

    def add_arguments(self, parser):
        parser.add_argument("--admin-password", default="admin", help="Password of user 'admin'.")
        parser.add_argument(
            "--without-experiment",
            action="store_true",
            help="Do not start the demo experiment on the home page's banner (tests whose "
            "visitors must all see their segment's variant).",
        )

    @transaction.atomic
    def handle(self, *args, **options):
        Segment = segment_model()
        for spec in SEGMENTS:
            Segment.objects.update_or_create(slug=spec["slug"], defaults=spec)

        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", options["admin_password"])

        home = HomePage.objects.first()
        if home is None:
            root = Page.get_first_root_node()
            home = root.add_child(
                instance=HomePage(
                    title="Welcome",
                    slug="welcome",
                    intro="A Wagtail site that adapts to you, only once you agree to it.",
                    body=[("paragraph", "<p>Browse a few pages, then come back here.</p>")],
                )
            )
            site = Site.objects.filter(is_default_site=True).first()
            if site is None:
                Site.objects.create(hostname="localhost", root_page=home, is_default_site=True)
            else:
                old_root = site.root_page
                site.root_page = home
                site.save()
                if (
                    old_root.pk != home.pk
                    and old_root.specific_class is Page
                    and old_root.depth == 2
                ):
                    old_root.delete()  # Wagtail's placeholder welcome page

        if not home.get_children().exists():
            for title, text in [
                ("Guides", "How to choose, care for and repair what you buy."),
                ("About us", "A small shop that respects your privacy."),
            ]:
                home.add_child(
                    instance=ContentPage(
                        title=title, show_in_menus=True, body=[("paragraph", f"<p>{text}</p>")]
                    )
                )
            for title, price, category in [
                ("Ceramic mug", "12.50", "kitchen"),
                ("Linen apron", "24.00", "kitchen"),
                ("Garden trowel", "9.90", "garden"),
            ]:
                home.add_child(
                    instance=ProductPage(
                        title=title,
                        price=price,
                        category=category,
                        show_in_menus=True,
                        body=[
                            ("paragraph", f"<p>A fine {title.lower()}.</p>"),
                            _personalised(
                                "Free delivery on orders over £30.",
                                [
                                    (
                                        ["engaged"],
                                        "You seem to like browsing: free delivery "
                                        "on any order today.",
                                    )
                                ],
                            ),
                        ],
                    )
                )
        if not ProductPage.objects.exclude(stock_code="").exists():
            for code, description, price in RETAIL_PRODUCTS:
                title = description.capitalize()
                home.add_child(
                    instance=ProductPage(
                        title=title,
                        price=price or "1.00",
                        category=_category(description),
                        stock_code=code,
                        body=[
                            ("paragraph", f"<p>{title}, from our gift range.</p>"),
                            _recommendations("together", "Bought together"),
                            _recommendations("for_you", "For you"),
                        ],
                    )
                ).save_revision().publish()
            home.body.append(_recommendations("popular", "Popular now"))
            home.save_revision().publish()
        # The items, and the "similar pages" lists from the pages' text, which need nothing
        # about anyone: what a new visitor's product page shows at once ("bought together"
        # and "popular" fill in as consented visitors browse; the nightly task builds all of
        # them again).
        call_command("recommendations_rebuild", similar_only=True, stdout=io.StringIO())
        if not any(child.block_type == "personalised" for child in home.body):
            guides = home.get_children().filter(slug="guides").first()
            shop = home.get_children().filter(slug="ceramic-mug").first()
            if guides is not None and shop is not None:
                home.body.append(_welcome_block(guides, shop))
                home.save_revision().publish()
        if not options["without_experiment"]:
            _seed_experiment(home)
        self.stdout.write(self.style.SUCCESS("Demo seeded: log in to /admin/ as admin."))
