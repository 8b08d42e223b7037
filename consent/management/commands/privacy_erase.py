from django.core.management.base import BaseCommand

from consent.privacy import erase_subject

from ._subject import add_subject_arguments, subject_from_options


class Command(BaseCommand):
    help = (
        "Erase everything held about one data subject, in the database, the fast store and the "
        "event stream; later events for them are dropped. Keeps the consent records and a "
        "minimal erasure record. Name them by pseudonymous key, cookie identifier (--raw), "
        "import source and customer id (--source, --external-id) or linked account (--user, "
        "--username)."
    )

    def add_arguments(self, parser):
        add_subject_arguments(parser)

    def handle(self, *args, **options):
        for request in erase_subject(subject_from_options(options)):
            self.stdout.write(self.style.SUCCESS(f"Erased: {request.result}"))
