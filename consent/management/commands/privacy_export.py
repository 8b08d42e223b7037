import json

from django.core.management.base import BaseCommand

from consent.privacy import export_csv, export_subject

from ._subject import add_subject_arguments, subject_from_options


class Command(BaseCommand):
    help = (
        "Export everything held about one data subject (access / portability request), named "
        "by their pseudonymous key, their cookie's identifier (--raw), a customer id of an "
        "import source (--source, --external-id) or a linked account (--user, --username)."
    )

    def add_arguments(self, parser):
        add_subject_arguments(parser)
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, **options):
        data = export_subject(subject_from_options(options))
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
