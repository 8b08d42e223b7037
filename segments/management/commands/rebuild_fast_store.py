from django.core.management.base import BaseCommand

from segments.stream.rebuild import rebuild


class Command(BaseCommand):
    help = (
        "Rebuild features, memberships and the consent mirror in the fast store from the durable "
        "event log and consent records (after losing Redis, or after changing feature logic)."
    )

    def handle(self, *args, **options):
        stats = rebuild()
        self.stdout.write(
            f"{stats['visitors']} visitors, {stats['events']} events replayed, "
            f"{stats['consents']} consent states restored, {stats['skipped']} visitors left out "
            "(consent withdrawn, erasure pending or erased, or no consent record)"
        )
