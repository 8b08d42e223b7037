"""Guardrail goals: each arm against the control with the same interval as every goal, read in
the goal's good direction (higher or lower is better); significant harm marks the arm
"guardrail failing" in the results (the screen and REST), keeps it out of the verdict, and
promoting it is refused."""

import pytest
from django.urls import reverse

from experiments import actions
from experiments.models import Experiment, Goal
from experiments.results import analyse, failing_guardrails
from tests.builders import personalised_page, segment
from tests.cms_blocks.helpers import login

from .helpers import conversions, experiment, statistic

pytestmark = pytest.mark.django_db


def with_guardrail(direction=Goal.Direction.LOWER, **fields):
    """Arm B converts twice as often as the control (primary goal, a clear win); the guardrail
    (unsubscribes) is 2% in the control and 6% in B."""
    segment("engaged")
    page = personalised_page()
    block_id = page.body[0].id
    variant = page.body[0].value["variants"].bound_blocks[0].id
    exp = experiment(
        arms=(("Control", "default", 1.0), ("B", variant, 1.0)),
        page=page,
        block_id=block_id,
        status=Experiment.Status.RUNNING,
        minimum_sample=10,
        **fields,
    )
    guardrail = Goal.objects.create(
        experiment=exp,
        name="Unsubscribes",
        event="unsubscribe",
        role=Goal.Role.GUARDRAIL,
        direction=direction,
        order=1,
    )
    statistic(exp, 0, conversions(2000, 100))
    statistic(exp, 1, conversions(2000, 200))
    statistic(exp, 0, conversions(2000, 40), goal=guardrail)
    statistic(exp, 1, conversions(2000, 120), goal=guardrail)
    return exp, guardrail


def cell(result, goal, arm=1, segment=""):
    return next(
        c
        for c in result["cells"]
        if c["goal"] == goal.pk and c["arm"] == arm and c["segment"] == segment
    )


def test_a_harmful_guardrail_fails_the_arm_and_there_is_no_winner():
    exp, guardrail = with_guardrail()
    result = analyse(exp)
    harm = cell(result, guardrail)
    assert harm["shown"] and harm["significant"] and harm["ci_low"] > 0
    assert harm["harm"] is True
    assert harm["chance_to_win"] < 0.01  # lower is better: a rise is a loss
    arms = {a["index"]: a for a in result["arms"]}
    assert arms[1]["guardrail_failing"] and not arms[0]["guardrail_failing"]
    assert result["verdict"] == "guardrail" and result["winner_arm"] is None
    assert [f["name"] for f in failing_guardrails(result, 1)] == ["Unsubscribes"]
    assert not cell(result, exp.goals.get(role=Goal.Role.PRIMARY))["harm"]


def test_the_same_rise_on_a_higher_is_better_guardrail_is_no_harm():
    exp, guardrail = with_guardrail(direction=Goal.Direction.HIGHER)
    result = analyse(exp)
    assert cell(result, guardrail)["significant"] and not cell(result, guardrail)["harm"]
    assert cell(result, guardrail)["chance_to_win"] > 0.99
    assert result["verdict"] == "winner" and result["winner_arm"] == 1
    assert not any(a["guardrail_failing"] for a in result["arms"])


def test_an_insignificant_move_is_no_harm():
    exp, guardrail = with_guardrail()
    guardrail.statistics.filter(arm=1).update(sum=44, sum_squares=44)
    result = analyse(exp)
    assert not cell(result, guardrail)["significant"] and not cell(result, guardrail)["harm"]
    assert result["verdict"] == "winner"


def test_a_lower_is_better_primary_goal_wins_by_going_down():
    exp, guardrail = with_guardrail()
    primary = exp.goals.get(role=Goal.Role.PRIMARY)
    primary.direction = Goal.Direction.LOWER
    primary.save()
    guardrail.delete()
    result = analyse(exp)
    assert result["verdict"] == "loser" and result["winner_arm"] == 0


def test_promoting_an_arm_that_fails_a_guardrail_is_refused():
    exp, _guardrail = with_guardrail()
    with pytest.raises(actions.ExperimentActionError, match="Unsubscribes"):
        actions.promote(exp, exp.arms.get(index=1))
    exp.refresh_from_db()
    assert exp.promoted_at is None and exp.status == Experiment.Status.RUNNING
    actions.promote(exp, exp.arms.get(index=0))  # the control may still be kept
    exp.refresh_from_db()
    assert exp.winner.index == 0


def test_the_results_screen_and_the_admin_refusal_say_so():
    exp, _guardrail = with_guardrail()
    client = login("runner", superuser=True)
    html = client.get(reverse("experiments:results", args=[exp.pk])).content.decode()
    assert 'data-guardrail="failing"' in html and "Unsubscribes" in html
    response = client.post(reverse("experiments:promote", args=[exp.pk]), {"arm": 1}, follow=True)
    assert "fails the guardrail" in response.content.decode()
    exp.refresh_from_db()
    assert exp.promoted_at is None


def test_the_rest_results_say_so():
    exp, guardrail = with_guardrail()
    data = (
        login("reader", "experiments.view_experiment_results")
        .get(f"/api/experiments/{exp.pk}/results/")
        .json()
    )
    assert [a["guardrail_failing"] for a in data["arms"]] == [False, True]
    assert cell(data, guardrail)["harm"] is True
    assert data["verdict"] == "guardrail"
    assert {g["name"]: g["direction"] for g in data["goals"]}["Unsubscribes"] == "lower"
