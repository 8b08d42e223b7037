"""The admin dashboard's total lift of personalization, from the global holdout."""

import pytest
from django.utils import timezone

from experiments.models import Experiment
from experiments.results import personalization_lift
from tests.cms_blocks.helpers import login
from tests.experiments.helpers import conversions, experiment, statistic

pytestmark = pytest.mark.django_db


def _holdout(status=Experiment.Status.RUNNING, **fields):
    return experiment(
        "global-holdout",
        kind=Experiment.Kind.GLOBAL_HOLDOUT,
        arms=(("Held out", "default", 0.05), ("Personalised", "personalised", 0.95)),
        goals=(("Purchases", "purchase", "conversion"),),
        status=status,
        started_at=timezone.now(),
        minimum_sample=100,
        **fields,
    )


def test_no_global_holdout_no_figure():
    experiment("banner", status=Experiment.Status.RUNNING)
    assert personalization_lift() is None
    _holdout(status=Experiment.Status.DRAFT)
    assert personalization_lift() is None


def test_the_lift_of_the_personalised_arm_over_the_held_out_one():
    exp = _holdout()
    statistic(exp, 0, conversions(500, 50))  # 10%
    statistic(exp, 1, conversions(9500, 1140))  # 12%
    lift = personalization_lift()
    assert lift["shown"] and lift["goal"] == "Purchases"
    assert lift["held_out"] == 500 and lift["personalised"] == 9500
    assert lift["lift"] == pytest.approx(0.2)
    assert lift["lift_percent"] == pytest.approx(20.0)
    assert lift["ci_low"] < 0.2 < lift["ci_high"]


def test_too_few_visitors_show_no_figure():
    exp = _holdout()
    statistic(exp, 0, conversions(40, 4))
    statistic(exp, 1, conversions(900, 100))
    lift = personalization_lift()
    assert not lift["shown"] and lift["lift"] is None
    assert lift["held_out"] == 40


def test_the_dashboard_shows_it_to_those_who_read_results():
    exp = _holdout()
    statistic(exp, 0, conversions(500, 50))
    statistic(exp, 1, conversions(9500, 1140))
    boss = login("boss", superuser=True)
    html = " ".join(boss.get("/admin/").content.decode().split())
    assert 'data-testid="personalization-lift"' in html
    assert "<strong>+20.0%</strong>" in html and "on Purchases" in html
    assert f"/admin/experiments/{exp.pk}/results/" in html
    editor = login("editor", "wagtailadmin.access_admin")
    assert 'data-testid="personalization-lift"' not in editor.get("/admin/").content.decode()
