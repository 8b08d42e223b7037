"""run_periodic_tasks: a site without Celery beat (tasks eager, in-process) runs the schedule's
entries from cron. What matters most: an erasure due after a withdrawal's delay, which nothing
else would ever run there, is carried out. Real PostgreSQL and Redis."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from consent.models import ConsentRecord, ErasureRequest
from segments.models import LoggedEvent
from tests.builders import consenting_browser, demo_site

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def run(*args) -> str:
    out = io.StringIO()
    call_command("run_periodic_tasks", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_an_erasure_that_came_due_is_carried_out(backend):
    demo_site()
    client = consenting_browser()
    client.get("/guides/")
    key = ConsentRecord.objects.get().visitor_key
    assert LoggedEvent.objects.filter(visitor_key=key).exists()
    # Due after a withdrawal's delay: its own task ran early (eager) and found it not due; in
    # this test its on-commit task never runs at all. Only the schedule's sweep runs it now.
    request = ErasureRequest.objects.create(
        visitor_key=key, reason="withdrawal", due_at=timezone.now() - timedelta(seconds=1)
    )
    assert "consent-due-erasures: done" in run("consent-due-erasures")
    request.refresh_from_db()
    assert request.completed_at is not None
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()


def test_several_entries_and_the_whole_schedule(backend, settings):
    assert run("segments-snapshot", "privacy-retention").splitlines() == [
        "segments-snapshot: done",
        "privacy-retention: done",
    ]
    settings.CELERY_BEAT_SCHEDULE = {
        "a": {"task": "segments.snapshot", "schedule": 60},
        "b": {"task": "consent.process_due_erasures", "schedule": 60},
    }
    assert run("--all").splitlines() == ["a: done", "b: done"]


def test_mistakes_are_refused_with_a_message(settings):
    with pytest.raises(CommandError, match="Not in CELERY_BEAT_SCHEDULE: nope"):
        run("nope")
    with pytest.raises(CommandError, match="or give --all"):
        run()
    settings.CELERY_BEAT_SCHEDULE = {"x": {"task": "no.such.task", "schedule": 60}}
    with pytest.raises(CommandError, match="Failed: x"):
        run("x")
