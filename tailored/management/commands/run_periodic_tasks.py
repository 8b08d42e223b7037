"""Run the project's periodic tasks (``CELERY_BEAT_SCHEDULE``) once, in this process.

For sites that run without Celery workers and beat (``CELERY_TASK_ALWAYS_EAGER``, the embedded
backend): schedule it from cron instead of running beat (docs/installation.md, "Without Redis
and Celery"). Tasks are found by the names the schedule gives them, so every app's entries
merged into the schedule are run without this command knowing the apps.
"""

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Run entries of CELERY_BEAT_SCHEDULE once, in this process (for sites without Celery "
        "beat: call it from cron). Name the entries, or give --all."
    )

    def add_arguments(self, parser):
        parser.add_argument("entries", nargs="*", help="Names of CELERY_BEAT_SCHEDULE entries.")
        parser.add_argument("--all", action="store_true", dest="run_all", help="Run every entry.")

    def handle(self, *args, entries, run_all, **options):
        schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {}
        if run_all == bool(entries):
            raise CommandError("Name the schedule entries to run, or give --all (not both).")
        unknown = sorted(set(entries) - set(schedule))
        if unknown:
            raise CommandError(
                f"Not in CELERY_BEAT_SCHEDULE: {', '.join(unknown)}. "
                f"Entries: {', '.join(sorted(schedule)) or 'none'}."
            )
        current_app.loader.import_default_modules()  # the apps' tasks, as a worker finds them
        failed = []
        for name in entries or sorted(schedule):
            entry = schedule[name]
            task = current_app.tasks.get(entry["task"])
            if task is None:
                failed.append(name)
                self.stderr.write(f"{name}: no task named {entry['task']!r} is registered")
                continue
            result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
            if result.failed():
                failed.append(name)
                self.stderr.write(f"{name}: failed ({type(result.result).__name__})")
            else:
                self.stdout.write(f"{name}: done")
        if failed:
            raise CommandError(f"Failed: {', '.join(failed)}.")
