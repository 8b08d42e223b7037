"""Train a model from the durable event log, now or as of a past instant, in this process (or
queued for a worker with ``--queue``), and print the version's figures: the same path as the
admin's Train action and the scheduled retrains (segments_ml.training.train_version)."""

import json

from django.core.management.base import BaseCommand, CommandError

from segments_ml import tasks
from segments_ml import versions as lifecycle
from segments_ml.models import MLModel


class Command(BaseCommand):
    help = (
        "Train a model (by slug) from the durable event log. --as-of DATE trains on the log as "
        "it stood at that instant: later events are ignored and features are computed then, "
        "so the figures can be reproduced later."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="The model's slug.")
        parser.add_argument(
            "--as-of",
            dest="as_of",
            help="Train on the data as it stood at this instant: a date (its midnight, UTC) or "
            "an ISO date and time. Default: now.",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the training to a Celery worker instead of training in this process.",
        )
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Activate the new version if it is not worse than the active one.",
        )

    def handle(self, *args, **options):
        model = MLModel.objects.filter(slug=options["model"]).first()
        if model is None:
            known = ", ".join(MLModel.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"no model {options['model']!r}; models: {known or 'none'}.")
        as_of = None
        if options["as_of"]:
            try:
                as_of = lifecycle.parse_as_of(options["as_of"])
            except ValueError as exc:
                raise CommandError(f"--as-of: {exc}") from exc
        if lifecycle.training_in_progress(model):
            raise CommandError(f"a training of {model.slug} is already under way.")
        if options["queue"]:
            version = tasks.queue_training(model, trigger="command", as_of=as_of)
            self.stdout.write(f"Queued {version} for a worker.")
            return
        # scikit-learn: loaded only when this process trains
        from segments_ml.training import train_version

        version = train_version(lifecycle.new_version(model, trigger="command", as_of=as_of).pk)
        if version.status != "ready":
            raise CommandError(f"{version} failed: {version.error}")
        end = version.data_end.isoformat() if version.data_end else "?"
        self.stdout.write(f"Trained {version} on the data as of {end}.")
        metrics = {k: v for k, v in version.metrics.items() if not isinstance(v, list | dict)}
        self.stdout.write(json.dumps(metrics, sort_keys=True))
        for cluster in (version.details or {}).get("clusters", []):
            self.stdout.write(
                f"  [{cluster['key']}] {cluster['name']}: {cluster['size']} "
                f"({cluster.get('name_reason', '')})"
            )
        if options["activate"]:
            try:
                lifecycle.activate(version, user="command")
            except lifecycle.ActivationRefused as exc:
                raise CommandError(f"not activated: {exc}") from exc
            self.stdout.write(f"Activated {version}.")
