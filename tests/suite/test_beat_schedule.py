"""Each app exposes its periodic tasks as a value (``conf.BEAT_SCHEDULE``) that a project merges
into its ``CELERY_BEAT_SCHEDULE``; the demo does exactly that, and every task it names exists."""

from pathlib import Path

from django.apps import apps
from django.conf import settings

from demo import celery_app
from tests.support.first_party import submodules

INSTALLATION = Path(__file__).resolve().parents[2] / "docs" / "installation.md"


def schedules(*, shipped: bool = False) -> dict[str, dict]:
    """Every schedule the installed apps expose (their ``conf.BEAT_SCHEDULE``), or with
    ``shipped`` those of every app the distribution ships."""
    return {
        conf.__name__: conf.BEAT_SCHEDULE
        for _config, conf in submodules("conf", shipped=shipped)
        if hasattr(conf, "BEAT_SCHEDULE")
    }


def test_the_demo_schedules_every_periodic_task_of_every_installed_app():
    found = schedules()
    expected = {"consent.conf", "segments.conf"}
    if apps.is_installed("segments_ml"):
        expected.add("segments_ml.conf")
    assert expected <= set(found)
    merged = {name: entry for schedule in found.values() for name, entry in schedule.items()}
    assert len(merged) == sum(len(s) for s in found.values())  # no entry hides another's
    assert merged == settings.CELERY_BEAT_SCHEDULE


def test_every_scheduled_task_is_one_a_worker_registers():
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    for schedule in schedules().values():
        for name, entry in schedule.items():
            assert entry["task"] in celery_app.tasks, name


def test_the_installation_guide_lists_every_entry():
    guide = INSTALLATION.read_text()
    for schedule in schedules(shipped=True).values():
        for name, entry in schedule.items():
            assert f"| `{name}` | `{entry['task']}` |" in guide, name
