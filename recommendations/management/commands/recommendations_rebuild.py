"""``python manage.py recommendations_rebuild [--similar-only]``: the nightly rebuild, now, in
this process (or only its items and "similar pages" lists)."""

from django.core.management.base import BaseCommand

from recommendations.tasks import rebuild_all


class Command(BaseCommand):
    help = (
        "What the nightly task (recommendations.rebuild) does, now and in this process: sync "
        "the items with their pages, count the co-occurrence and popularity sums afresh from "
        "the durable log (consented, unerased visitors only), and build the similar-pages "
        "lists from the pages' text (with the [ml] extra)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--similar-only",
            action="store_true",
            help="Only sync the items and build the similar-pages lists (the sums stay).",
        )

    def handle(self, *args, **options):
        counts = rebuild_all(sums=not options["similar_only"])
        self.stdout.write(", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
