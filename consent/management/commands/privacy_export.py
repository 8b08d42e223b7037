import json

from django.core.management.base import BaseCommand, CommandError

from consent.hashing import is_identifier
from consent.identity import visitor_key
from consent.privacy import export_csv, export_visitor


class Command(BaseCommand):
    help = "Export everything held about one pseudonymous visitor (access / portability request)."

    def add_arguments(self, parser):
        parser.add_argument(
            "id", help="The visitor's pseudonymous key (or, with --raw, their identifier)."
        )
        parser.add_argument(
            "--raw", action="store_true", help="ID is the raw identifier from the visitor's cookie."
        )
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, **options):
        key = _key(options["id"], options["raw"])
        data = export_visitor(key)
        text = (
            export_csv(data)
            if options["format"] == "csv"
            else json.dumps(data, indent=2, default=str)
        )
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as f:
                f.write(text)
            self.stderr.write(f"Wrote {options['output']}")
        else:
            self.stdout.write(text)


def _key(value: str, raw: bool) -> str:
    value = value.strip().lower()
    if not is_identifier(value):
        raise CommandError("Expected 32 hexadecimal characters.")
    return visitor_key(value) if raw else value
