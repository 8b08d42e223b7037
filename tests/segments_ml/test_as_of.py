"""Issue #12: figures are reproducible as of any date. Training as of a past instant on a log
that holds later events gives the same model and figures as training on a log that holds only
the earlier events; the command, the task and the admin action all take the instant."""

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from segments.models import LoggedEvent
from segments_ml import tasks
from segments_ml import versions as registry
from segments_ml.models import MLModel, ModelVersion
from segments_ml.training import train_version
from tests.segments_ml.builders import customers, store

pytestmark = [pytest.mark.services, pytest.mark.django_db]

AS_OF = datetime.fromtimestamp(time.time() - 60 * 86400, tz=UTC).replace(microsecond=0)


@pytest.fixture
def shop():
    return store(customers(60, 90, time.time() - 3600, seed=11))


def models() -> tuple[MLModel, MLModel]:
    clusters = MLModel.objects.create(
        name="RFM",
        slug="rfm",
        kind="clustering",
        population_event="purchase",
        params={"k_min": 2, "k_max": 4},
    )
    propensity = MLModel.objects.create(
        name="Buys again",
        slug="buys-again",
        kind="propensity",
        target={"event": "purchase", "horizon_days": 30},
        population_event="purchase",
    )
    return clusters, propensity


def figures(version: ModelVersion) -> dict:
    assert version.status == "ready", version.error
    metrics = {k: v for k, v in version.metrics.items() if k != "seconds"}
    details = dict(version.details)
    return {
        "metrics": metrics,
        "details": details,
        "split": version.split,
        "rows": (version.train_rows, version.holdout_rows),
        "window": (version.data_start, version.data_end),
    }


def test_training_as_of_a_past_date_ignores_later_events(shop):
    clusters, propensity = models()
    later = LoggedEvent.objects.filter(occurred_at__gte=AS_OF).count()
    assert later > 100  # the log really holds events after the as-of date

    with_later = {
        m.slug: figures(train_version(registry.new_version(m).pk, as_of=AS_OF))
        for m in (clusters, propensity)
    }
    LoggedEvent.objects.filter(occurred_at__gte=AS_OF).delete()
    only_earlier = {
        m.slug: figures(train_version(registry.new_version(m).pk, as_of=AS_OF))
        for m in (clusters, propensity)
    }
    assert with_later == only_earlier
    assert with_later["rfm"]["split"] == {"as_of": AS_OF.isoformat()}
    assert with_later["buys-again"]["split"]["as_of"] == AS_OF.isoformat()
    holdout = datetime.fromisoformat(with_later["buys-again"]["split"]["holdout_cutoff"])
    assert holdout == AS_OF - timedelta(days=30)  # labels end by the as-of instant


def test_the_task_the_command_and_the_admin_action_train_as_of_a_date(shop, admin_client):
    clusters, _ = models()
    # The task: the instant travels on the version, the task's argument stays its id.
    version = tasks.queue_training(clusters, as_of=AS_OF)
    assert version.data_end == AS_OF
    assert tasks.train(version.pk) == "ready"
    version.refresh_from_db()
    assert version.split == {"as_of": AS_OF.isoformat()} and version.data_end == AS_OF

    day = AS_OF.date().isoformat()
    out = StringIO()
    call_command("segments_ml_train", "rfm", "--as-of", day, stdout=out)
    assert f"on the data as of {day}" in out.getvalue()
    newest = clusters.versions.order_by("-number").first()
    assert newest.status == "ready" and newest.data_end == datetime.fromisoformat(day).replace(
        tzinfo=UTC
    )
    with pytest.raises(CommandError, match="not a date"):
        call_command("segments_ml_train", "rfm", "--as-of", "yesterday")
    with pytest.raises(CommandError, match="future"):
        call_command("segments_ml_train", "rfm", "--as-of", "2999-01-01")

    url = reverse("ml_models:train", args=[clusters.pk])
    response = admin_client.post(url, {"as_of": day})
    assert response.status_code == 302
    queued = clusters.versions.order_by("-number").first()
    assert queued.status == "queued" and queued.data_end.date().isoformat() == day
    queued.delete()
    for hostile in ("not-a-date", "2011-13-45", "9999-12-31", "x" * 5000, "2011-01-01\x00"):
        response = admin_client.post(url, {"as_of": hostile}, follow=True)
        assert response.status_code == 200
        assert "Not trained" in response.content.decode()
    assert not clusters.versions.filter(status="queued").exists()
    assert timezone.is_aware(newest.data_end)
