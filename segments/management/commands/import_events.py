from django.core.management.base import BaseCommand, CommandError

from segments.backends import get_backend
from segments.events import EventError
from segments.events.importer import ImportFileError, Mapping, import_file
from segments.stream import drain as pipeline


class Command(BaseCommand):
    help = (
        "Backfill events from a CSV or JSON Lines export (optionally .gz). Visitor ids are "
        "replaced by keyed hashes. Example for the Online Retail data: import_events "
        "online_retail.csv.gz --visitor CustomerID --time InvoiceDate --value UnitPrice "
        "--quantity Quantity --prop category=StockCode --prop country=Country "
        "--prop order_id=InvoiceNo --source retail --assume-consent --process"
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--visitor", required=True, help="Column with the visitor's id.")
        parser.add_argument("--time", required=True, help="Column with the event time.")
        parser.add_argument("--time-format", help="strptime format (default: ISO 8601 or epoch).")
        parser.add_argument("--timezone", default="UTC", help="Zone of times without one.")
        parser.add_argument("--event-name", default="purchase", help="Name of every event.")
        parser.add_argument("--event-column", help="Column with the event name instead.")
        parser.add_argument("--value", help="Column with the (unit) value.")
        parser.add_argument("--quantity", help="Column multiplied with --value.")
        parser.add_argument(
            "--prop",
            action="append",
            default=[],
            metavar="NAME=COLUMN",
            help="Copy a column into an event property (repeatable).",
        )
        parser.add_argument("--source", default="import", help="Name of the source system.")
        parser.add_argument(
            "--assume-consent",
            action="store_true",
            help="Consent was obtained by the source system: record it (method 'api') for each "
            "imported visitor. Without it, events of visitors without consent are dropped.",
        )
        parser.add_argument(
            "--process",
            action="store_true",
            help="Drain the stream in this process afterwards (otherwise the workers do).",
        )

    def handle(self, *args, **options):
        properties = {}
        for item in options["prop"]:
            name, sep, column = item.partition("=")
            if not sep or not name or not column:
                raise CommandError(f"--prop expects NAME=COLUMN, not {item!r}.")
            properties[name] = column
        mapping = Mapping(
            visitor=options["visitor"],
            time=options["time"],
            event_name=options["event_name"],
            event_column=options["event_column"],
            value=options["value"],
            quantity=options["quantity"],
            properties=properties,
            time_format=options["time_format"],
            timezone=options["timezone"],
            source=options["source"],
        )
        try:
            stats = import_file(options["file"], mapping, assume_consent=options["assume_consent"])
        except (OSError, ImportFileError, EventError) as exc:
            raise CommandError(str(exc)) from exc
        for error in stats.errors:
            self.stderr.write(error)
        self.stdout.write(
            f"{stats.rows} rows, {stats.events} events queued for {stats.visitors} visitors "
            f"({stats.skipped} rows skipped, {stats.no_consent} events without consent dropped, "
            f"{stats.consents_recorded} consents recorded) in {stats.seconds:.1f} s"
        )
        if options["process"]:
            processed = 0
            for partition in range(get_backend().partitions):
                while True:
                    result = pipeline.drain_partition(partition, max_seconds=3600)
                    processed += result.processed
                    if not result.more:
                        break
            self.stdout.write(f"{processed} events processed")
