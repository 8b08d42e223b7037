"""Create the demo content: pages, segments and personalised variants. Safe to run twice."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from wagtail.models import Page, Site

from demo.home.models import ContentPage, HomePage, ProductPage
from segments.api import segment_model

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


class Command(BaseCommand):
    help = "Seed the demo site: home, content and product pages, segments and variants."

    def add_arguments(self, parser):
        parser.add_argument("--admin-password", default="admin", help="Password of user 'admin'.")

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
                    body=[
                        ("paragraph", "<p>Browse a few pages, then come back here.</p>"),
                        _personalised(
                            "Welcome! Have a look around our guides and products.",
                            [
                                (
                                    ["engaged"],
                                    "Thanks for exploring! As an engaged visitor, "
                                    "take 10% off with code ENGAGED10.",
                                ),
                            ],
                        ),
                    ],
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
        self.stdout.write(self.style.SUCCESS("Demo seeded: log in to /admin/ as admin."))
