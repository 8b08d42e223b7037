from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError

from segments.backends import get_backend
from segments.conf import get_setting
from segments.events import EventError
from segments.events.importer import PRESETS, ImportFileError, Mapping, import_file, load_mapping
from segments.stream import drain as pipeline

# Command-line options that set one field of the mapping (and override --mapping's).
_FIELDS = {
    "visitor": "visitor",
    "time": "time",
    "time_format": "time_format",
    "timezone": "timezone",
    "event_name": "event_name",
    "event_column": "event_column",
    "value": "value",
    "quantity": "quantity",
    "source": "source",
}


class Command(BaseCommand):
    help = (
        "Backfill events from a CSV or JSON Lines export (optionally .gz). Visitor ids are "
        "replaced by keyed hashes. Importing is idempotent by content: a file imported again "
        "(under any name, in any order) adds nothing. The events are processed in this "
        "process unless --no-process hands them to the workers. Example for the Online Retail "
        "data: import_events online_retail.csv.gz --mapping online-retail --assume-consent "
        "--as-of 2011-12-10"
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument(
            "--mapping",
            help="Which column plays which role: a preset ("
            + ", ".join(sorted(PRESETS))
            + "), a JSON file, or inline JSON such as "
            '\'{"visitor": "customer", "time": "at", "event": "purchase", "price": "amount"}\'. '
            "The options below override it.",
        )
        parser.add_argument("--visitor", help="Column with the visitor's id.")
        parser.add_argument("--time", help="Column with the event time.")
        parser.add_argument("--time-format", help="strptime format (default: ISO 8601 or epoch).")
        parser.add_argument("--timezone", help="Zone of times without one (default UTC).")
        parser.add_argument("--event-name", help="Name of every event (default purchase).")
        parser.add_argument("--event-column", help="Column with the event name instead.")
        parser.add_argument("--value", help="Column with the (unit) value.")
        parser.add_argument("--quantity", help="Column multiplied with --value.")
        parser.add_argument(
            "--prop",
            action="append",
            default=[],
            metavar="NAME=COLUMN",
            help="Copy a column into an event property (repeatable; added to the mapping's).",
        )
        parser.add_argument("--source", help="Name of the source system (default import).")
        parser.add_argument(
            "--as-of",
            help="Import as of this date or instant (ISO 8601, UTC unless it says otherwise; "
            "default now): later rows are not imported, and rows older than "
            "SEGMENTS_EVENT_RETENTION_DAYS before it are refused (counted).",
        )
        parser.add_argument(
            "--assume-consent",
            action="store_true",
            help="Consent was obtained by the source system: record it (method 'api') for each "
            "imported visitor. Without it, events of visitors without consent are dropped.",
        )
        processing = parser.add_mutually_exclusive_group()
        processing.add_argument(
            "--process",
            action="store_true",
            default=True,
            help="Process the events in this process before returning (the default).",
        )
        processing.add_argument(
            "--no-process",
            dest="process",
            action="store_false",
            help="Queue the events and ask the workers to process them (a drain task per "
            "partition is scheduled now; Celery beat is not needed).",
        )

    def handle(self, *args, **options):
        mapping = self._mapping(options)
        as_of = _instant(options["as_of"]) if options["as_of"] else None
        try:
            stats = import_file(
                options["file"], mapping, assume_consent=options["assume_consent"], as_of=as_of
            )
        except (OSError, ImportFileError, EventError) as exc:
            raise CommandError(str(exc)) from exc
        for error in stats.errors:
            self.stderr.write(error)
        days = get_setting("SEGMENTS_EVENT_RETENTION_DAYS")
        self.stdout.write(
            f"{stats.rows} rows, {stats.events} events queued for {stats.visitors} visitors "
            f"({stats.skipped} rows skipped, {stats.no_consent} events without consent dropped, "
            f"{stats.too_old} rows older than the {days}-day retention window refused, "
            f"{stats.after_as_of} rows after the as-of time left out, "
            f"{stats.consents_recorded} consents recorded) in {stats.seconds:.1f} s"
        )
        if as_of is not None and (datetime.now(UTC) - as_of).days >= days:
            self.stdout.write(
                f"Note: the as-of time is more than {days} days ago: the daily retention job "
                "will purge these events (and recompute the profiles) when it next runs."
            )
        if not stats.partitions:
            return
        if options["process"]:
            processed = 0
            for partition in sorted(stats.partitions):
                while True:
                    result = pipeline.drain_partition(partition, max_seconds=3600)
                    processed += result.processed
                    if not result.more:
                        break
            busy = sorted(stats.partitions & set(get_backend().pending_partitions()))
            self.stdout.write(
                f"{processed} events processed ({stats.events - processed} already in the log, "
                "no longer consented"
                + (f", or being processed by the workers in partitions {busy}" if busy else "")
                + ")"
            )
        else:
            # The workers drain them now, not when Celery beat's sweep next finds them.
            from segments.tasks import drain  # Celery: only when handing over to workers

            for partition in sorted(stats.partitions):
                try:
                    drain.delay(partition)
                except Exception as exc:  # the sweep drains the partition later
                    self.stderr.write(f"Could not schedule a drain: {type(exc).__name__}")
            self.stdout.write(f"drains scheduled for {len(stats.partitions)} partitions")

    def _mapping(self, options) -> Mapping:
        try:
            data = load_mapping(options["mapping"]).to_dict() if options["mapping"] else {}
            for option, name in _FIELDS.items():
                if options[option] is not None:
                    data[name] = options[option]
            properties = dict(data.get("properties") or {})
            for item in options["prop"]:
                name, sep, column = item.partition("=")
                if not sep or not name or not column:
                    raise CommandError(f"--prop expects NAME=COLUMN, not {item!r}.")
                properties[name] = column
            data["properties"] = properties
            if not data.get("visitor") or not data.get("time"):
                raise CommandError("Give --mapping, or --visitor and --time.")
            return Mapping.from_dict(data)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc


def _instant(value: str) -> datetime:
    """An --as-of value: a date means the end of that day (UTC), so the whole day counts."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--as-of: not a date or time: {value!r}") from exc
    if len(value) <= 10:  # a date alone
        moment = datetime.combine(moment.date(), time.max)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
