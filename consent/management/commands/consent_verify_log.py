from django.core.management.base import BaseCommand, CommandError

from consent.models import ChainHead
from consent.privacy import verify_log


class Command(BaseCommand):
    help = (
        "Verify the consent log's hash chain: detects modified, deleted, inserted or reordered "
        "records. Exits with status 1 if anything is wrong. Prints the head hash: keep a copy "
        "elsewhere to detect a truncation of the newest records too."
    )

    def handle(self, *args, **options):
        checked, problems = verify_log()
        head = ChainHead.objects.get(pk=1)
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(
                f"Consent log verification FAILED: {len(problems)} problem(s) in {checked} records."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Consent log OK: {checked} records, head #{head.last_seq} {head.last_hash}"
            )
        )
