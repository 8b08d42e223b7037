from django.core.management.base import BaseCommand

from consent.privacy import run_retention


class Command(BaseCommand):
    help = (
        "Purge events, features and consent records past their retention "
        "(Celery beat runs this daily)."
    )

    def handle(self, *args, **options):
        for target, removed in run_retention().items():
            self.stdout.write(f"{target}: {removed} removed")
