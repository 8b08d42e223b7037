from django.core.management.base import BaseCommand

from consent.privacy import erase_visitor

from .privacy_export import _key


class Command(BaseCommand):
    help = (
        "Erase everything held about one pseudonymous visitor, in the database, the fast store "
        "and the event stream; later events for that id are dropped. Keeps the consent records "
        "and a minimal erasure record."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "id", help="The visitor's pseudonymous key (or, with --raw, their identifier)."
        )
        parser.add_argument("--raw", action="store_true")

    def handle(self, *args, **options):
        request = erase_visitor(_key(options["id"], options["raw"]))
        self.stdout.write(self.style.SUCCESS(f"Erased: {request.result}"))
