"""Evaluate every strategy offline on Online Retail (protocol: docs/recommendations.md)."""

import importlib.util
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

DEFAULT_DATA = os.environ.get(
    "BENCH_RETAIL_DATA", "/work/shared/data/online_retail/online_retail.csv.gz"
)


class Command(BaseCommand):
    help = (
        "Precision, recall, nDCG, hit rate @10 and coverage of every recommendation strategy "
        "on Online Retail (time split at 2011-09-10), next to the targets."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", default=DEFAULT_DATA, help="The Online Retail export.")
        parser.add_argument(
            "--strict", action="store_true", help="Exit non-zero when a target is missed."
        )

    def handle(self, *args, **options):
        if importlib.util.find_spec("numpy") is None or importlib.util.find_spec("scipy") is None:
            raise CommandError("The evaluation needs the [ml] extra (numpy, scipy, implicit).")
        path = Path(options["data"])
        if not path.exists():
            raise CommandError(f"No such file: {path} (set --data or BENCH_RETAIL_DATA).")
        from recommendations import evaluation

        report = evaluation.run(path)
        self.stdout.write(evaluation.table(report))
        if options["strict"] and not all(met for _t, _m, met in report.verdicts):
            raise CommandError("A target was missed.")
