from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from consent.privacy import replay_erasures


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since: expected an ISO 8601 date or time, got {value!r}.") from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "After restoring the database from a backup: apply again every erasure in the erasure "
        "journal that the restored database does not know as done (PostgreSQL and the fast "
        "store). Run it before the site takes traffic again, and before rebuild_fast_store. "
        "Exits non-zero if a journal file was altered or forged (it is refused)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            type=_moment,
            help="Only erasures completed at or after this time (UTC unless it says): when the "
            "backup was taken, or a little before. Default: the whole journal.",
        )

    def handle(self, *args, **options):
        result = replay_erasures(since=options["since"])
        self.stdout.write(
            f"{result.entries} journalled erasures: {result.replayed} applied again, "
            f"{result.already_applied} already in the database"
        )
        for problem in result.invalid:
            self.stderr.write(f"Refused {problem.name}: {problem.problem}")
        if result.failed:
            self.stderr.write(
                f"{result.failed} erasure(s) could not be applied now (see the log): "
                "run the command again once the database and the fast store are reachable."
            )
        if result.invalid or result.failed:
            raise CommandError(
                f"{len(result.invalid)} journal file(s) refused, {result.failed} not applied."
            )
