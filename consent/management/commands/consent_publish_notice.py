from django.core.management.base import BaseCommand

from consent.notices import publish


class Command(BaseCommand):
    help = "Publish a new notice version if the banner/policy text or the purposes changed."

    def add_arguments(self, parser):
        parser.add_argument("--banner-text")
        parser.add_argument("--policy-text")

    def handle(self, *args, **options):
        notice = publish(options["banner_text"], options["policy_text"])
        self.stdout.write(f"Notice in force: version {notice.version} ({notice.text_hash[:12]}…)")
