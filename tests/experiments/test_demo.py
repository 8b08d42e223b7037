"""``manage.py seed_demo`` starts an experiment on the home page's personalised banner (the
default against the engaged variant, inside the engaged segment) with a click goal and a page
view goal; it can start, its results screen opens, and seeding twice changes nothing."""

import pytest
from django.urls import reverse

from demo.home.models import HomePage
from experiments import actions, targets
from experiments.models import Experiment
from tests.builders import demo_site
from tests.cms_blocks.helpers import login

pytestmark = pytest.mark.django_db


def test_the_demo_runs_an_experiment_on_the_home_banner():
    demo_site(experiment=True)
    demo_site(experiment=True)
    exp = Experiment.objects.get()
    home = HomePage.objects.get()
    assert exp.status == Experiment.Status.RUNNING and exp.page_id == home.pk
    assert exp.segment.slug == "engaged"
    options = targets.block_options(home, exp.block_id)
    assert [a.key for a in exp.arms.all()] == [o.key for o in options]  # default, the variant
    goals = {g.event: g for g in exp.goals.all()}
    assert goals["click"].match == {"block": exp.block_id}
    assert goals["page_view"].match == {"path": "/ceramic-mug/"}
    assert actions.problems(exp) == []
    response = login("admin2", superuser=True).get(reverse("experiments:results", args=[exp.pk]))
    assert response.status_code == 200


def test_tests_get_the_demo_without_it():
    demo_site()
    assert not Experiment.objects.exists()


def test_the_demo_results_fill_over_time_without_beat(settings):
    """The embedded demo runs no beat: looking at the results keeps a snapshot when the last
    is EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS old, each the analysis of its own time."""
    import os
    from datetime import timedelta

    import demo.settings
    from experiments.models import ResultSnapshot, Statistic
    from experiments.results import analyse

    if not os.environ.get("REDIS_URL"):
        assert demo.settings.EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS == 60
    settings.EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = 60
    demo_site(experiment=True)
    exp = Experiment.objects.get()
    goal = exp.goals.get(role="primary")
    client = login("admin2", superuser=True)
    url = reverse("experiments:results", args=[exp.pk])

    def look(visitors: int, clicks: tuple[int, int]):
        for arm, converted in enumerate(clicks):
            Statistic.objects.update_or_create(
                experiment=exp,
                arm=arm,
                goal=goal,
                segment="",
                defaults={"n": visitors, "sum": converted, "sum_squares": converted},
            )
        assert client.get(url).status_code == 200

    look(10, (1, 5))
    assert ResultSnapshot.objects.filter(experiment=exp).count() == 1
    look(20, (2, 12))  # within the minute: no new point
    assert ResultSnapshot.objects.filter(experiment=exp).count() == 1
    ResultSnapshot.objects.update(computed_at=models_now() - timedelta(seconds=61))
    look(40, (4, 24))
    snapshots = list(ResultSnapshot.objects.filter(experiment=exp).order_by("computed_at"))
    assert len(snapshots) == 2
    first, second = (next(c for c in s.data["cells"] if c["arm"] == 1) for s in snapshots)
    assert (first["n"], second["n"]) == (10, 40)  # each what the statistics were then
    assert second["lift"] == pytest.approx(analyse(exp)["cells"][1]["lift"])
    html = client.get(url).content.decode()
    assert "Cumulative lift" in html
    for snapshot in snapshots:  # a point of the chart each (and "now")
        assert snapshot.computed_at.strftime("%m-%d %H:%M") in html
    ResultSnapshot.objects.update(computed_at=models_now() - timedelta(seconds=61))
    assert client.get(f"/api/experiments/{exp.pk}/results/").status_code == 200  # REST too
    assert ResultSnapshot.objects.filter(experiment=exp).count() == 3

    settings.EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = None  # with beat: the job's only
    ResultSnapshot.objects.update(computed_at=models_now() - timedelta(days=1))
    look(50, (5, 30))
    assert ResultSnapshot.objects.filter(experiment=exp).count() == 3


def test_a_stopped_experiment_keeps_no_more_snapshots(settings):
    from experiments.models import ResultSnapshot

    settings.EXPERIMENTS_SNAPSHOT_ON_READ_SECONDS = 60
    demo_site(experiment=True)
    exp = Experiment.objects.get()
    actions.stop(exp)
    login("admin2", superuser=True).get(reverse("experiments:results", args=[exp.pk]))
    assert not ResultSnapshot.objects.exists()


def models_now():
    from django.utils import timezone

    return timezone.now()
