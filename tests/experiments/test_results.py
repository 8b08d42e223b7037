"""experiments.results on hand-built sufficient statistics: the figures are experiments.stats'
on the same inputs, the SRM check turns a verdict into a warning, small cells show nothing,
the adjusted p-values span goals x arms x segments, and snapshots store the analysis."""

import math

import numpy as np
import pytest
from django.db.models import F

from experiments import stats
from experiments.conf import BEAT_SCHEDULE
from experiments.models import Experiment, ResultSnapshot, SplitCount, Statistic
from experiments.results import analyse
from experiments.snapshots import snapshot_results
from experiments.stats import SampleStats

from .helpers import conversions, experiment, statistic

pytestmark = pytest.mark.django_db


def cell(result, arm, goal=None, segment=""):
    goal = goal or result["goals"][0]["id"]
    return next(
        c
        for c in result["cells"]
        if c["arm"] == arm and c["goal"] == goal and c["segment"] == segment
    )


def test_figures_agree_with_stats_on_the_same_inputs():
    exp = experiment(sequential=True, sequential_tuning=3000, alpha=0.1, minimum_sample=50)
    control, treatment = conversions(1000, 100), conversions(1000, 130)
    statistic(exp, 0, control)
    statistic(exp, 1, treatment)

    result = analyse(exp)

    freq = stats.frequentist(
        control, treatment, proportion=True, alpha=0.1, sequential=True, sequential_tuning=3000
    )
    bayes = stats.bayesian(control, treatment, proportion=True, alpha=0.1)
    b = cell(result, 1)
    assert b["shown"] and b["method"] == "sequential"
    assert b["lift"] == pytest.approx(freq.lift, abs=1e-12)
    assert b["ci_low"] == pytest.approx(freq.ci_low, abs=1e-12)
    assert b["ci_high"] == pytest.approx(freq.ci_high, abs=1e-12)
    assert b["p_value"] == pytest.approx(freq.p_value, abs=1e-12)
    assert b["chance_to_win"] == pytest.approx(bayes.chance_to_win, abs=1e-12)
    assert b["risk"] == pytest.approx(bayes.risk, abs=1e-12)
    assert not b["cuped"]
    assert cell(result, 0)["control"] and "lift" not in cell(result, 0)
    assert [a["visitors"] for a in result["arms"]] == [1000, 1000]
    assert not result["srm"]["flagged"] and result["srm"]["checked"]


def test_fixed_horizon_when_sequential_is_off():
    exp = experiment(sequential=False, minimum_sample=10)
    control, treatment = conversions(500, 50), conversions(500, 80)
    statistic(exp, 0, control)
    statistic(exp, 1, treatment)
    freq = stats.frequentist(control, treatment, proportion=True, sequential=False)
    b = cell(analyse(exp), 1)
    assert b["method"] == "fixed"
    assert b["p_value"] == pytest.approx(freq.p_value, abs=1e-12)
    assert b["ci_low"] == pytest.approx(freq.ci_low, abs=1e-12)


def test_cuped_where_the_covariate_is_present():
    exp = experiment(goals=[("Revenue", "purchase", "mean")], minimum_sample=3)
    control = SampleStats.of([1, 0, 3, 2, 5, 1], [1, 0, 2, 2, 4, 1])
    treatment = SampleStats.of([2, 1, 4, 3, 5, 2], [1, 1, 3, 2, 4, 1])
    statistic(exp, 0, control)
    statistic(exp, 1, treatment)
    freq = stats.frequentist(control, treatment, cuped=True)
    b = cell(analyse(exp), 1)
    assert b["cuped"]
    assert b["ci_low"] == pytest.approx(freq.ci_low, abs=1e-12)
    plain = stats.frequentist(control, treatment)
    assert b["ci_low"] != pytest.approx(plain.ci_low, abs=1e-9)


def test_sample_ratio_mismatch_is_a_warning_instead_of_a_verdict():
    exp = experiment(minimum_sample=10)
    # Weights 1:1 but 1000 against 1200 visitors: p far below 0.001; B clearly better.
    statistic(exp, 0, conversions(1000, 50))
    statistic(exp, 1, conversions(1200, 240))
    result = analyse(exp)
    assert result["srm"]["p_value"] == pytest.approx(stats.srm_p_value([1000, 1200], [1, 1]))
    assert result["srm"]["flagged"]
    assert result["verdict"] == "srm" and result["winner_arm"] is None

    # The same data with weights 5:6 is a fair split: the verdict is given.
    exp.arms.filter(index=1).update(weight=1.2)
    result = analyse(exp)
    assert not result["srm"]["flagged"]
    assert result["verdict"] == "winner" and result["winner_arm"] == 1


def test_bandits_are_not_checked_for_sample_ratio_mismatch():
    exp = experiment(mode=Experiment.Mode.BANDIT, minimum_sample=10)
    statistic(exp, 0, conversions(100, 5))
    statistic(exp, 1, conversions(900, 90))
    assert not analyse(exp)["srm"]["checked"]


def test_cells_below_the_minimum_sample_show_no_figure():
    exp = experiment(minimum_sample=100)
    statistic(exp, 0, conversions(500, 50))
    statistic(exp, 1, conversions(500, 90))
    statistic(exp, 0, conversions(99, 10), segment="engaged")
    statistic(exp, 1, conversions(150, 40), segment="engaged")
    result = analyse(exp)
    assert result["segments"] == ["", "engaged"]
    assert cell(result, 1)["shown"]
    small = cell(result, 1, segment="engaged")
    assert not small["shown"] and "lift" not in small and "p_holm" not in small
    assert small["n"] == 150


def test_adjusted_p_values_span_goals_arms_and_segments():
    exp = experiment(
        arms=[("A", "default", 1), ("B", "b", 1), ("C", "c", 1)],
        goals=[("Clicks", "click", "conversion"), ("Sign-ups", "signup", "conversion")],
        minimum_sample=10,
    )
    clicks, signups = exp.goals.all()
    data = {
        (clicks, ""): [(1000, 100), (1000, 125), (1000, 104)],
        (signups, ""): [(1000, 30), (1000, 33), (1000, 50)],
        (clicks, "engaged"): [(300, 30), (300, 45), (300, 31)],
    }
    for (goal, segment), arms in data.items():
        for arm, (n, k) in enumerate(arms):
            statistic(exp, arm, conversions(n, k), goal=goal, segment=segment)
    result = analyse(exp)
    tested = [c for c in result["cells"] if c["shown"]]
    assert len(tested) == 6  # 2 treatments x 3 (goal, segment) cells
    raw = [c["p_value"] for c in tested]
    assert [c["p_holm"] for c in tested] == pytest.approx(stats.holm(raw))
    assert [c["p_bh"] for c in tested] == pytest.approx(stats.benjamini_hochberg(raw))
    assert all(c["p_holm"] >= c["p_value"] for c in tested)


def test_progress_towards_the_planned_sample():
    exp = experiment(minimum_detectable_effect=0.2, minimum_sample=10)
    statistic(exp, 0, conversions(400, 40))
    statistic(exp, 1, conversions(300, 33))
    progress = analyse(exp)["progress"]
    required = stats.required_sample_per_arm(0.1, 0.2, sequential=True)
    assert progress["required_per_arm"] == required
    assert progress["smallest_arm"] == 300
    assert progress["fraction"] == pytest.approx(300 / required)
    assert progress["power"] == pytest.approx(stats.power(300, 0.1, 0.2))


def test_no_data_is_not_an_error():
    exp = experiment()
    result = analyse(exp)
    assert result["verdict"] == "inconclusive"
    assert result["progress"]["required_per_arm"] is None
    assert [a["visitors"] for a in result["arms"]] == [0, 0]
    assert all(not c["shown"] for c in result["cells"])


def test_results_are_json_safe_without_nan():
    import json

    exp = experiment(minimum_sample=1)
    statistic(exp, 0, conversions(10, 0))  # a zero baseline: no analysis possible
    statistic(exp, 1, conversions(10, 3))
    result = analyse(exp)
    text = json.dumps(result, allow_nan=False)
    assert "NaN" not in text
    assert cell(result, 1)["error"] == stats.BASELINE_ZERO


def test_snapshot_task_stores_one_snapshot_per_running_experiment():
    running = experiment("running", status=Experiment.Status.RUNNING, minimum_sample=1)
    experiment("draft")
    statistic(running, 0, conversions(100, 10))
    statistic(running, 1, conversions(100, 20))
    assert snapshot_results.apply().get() == 1
    (snap,) = ResultSnapshot.objects.all()
    assert snap.experiment == running
    assert snap.data["experiment"] == running.pk
    assert math.isclose(cell(snap.data, 1)["lift"], 1.0)
    entry = BEAT_SCHEDULE["experiments-snapshot-results"]
    assert entry["task"] == snapshot_results.name


def test_the_per_experiment_holdout_is_compared_and_checked_at_its_share():
    # A 10% holdout: of the visitors enrolled, 10% are held out and 45% go to each arm.
    exp = experiment(minimum_sample=10, holdout_percent=10)
    statistic(exp, 0, conversions(1000, 100))
    statistic(exp, 1, conversions(1000, 120))
    statistic(exp, -1, conversions(220, 11))  # experiments.models.HOLDOUT_ARM
    result = analyse(exp)
    holdout = next(a for a in result["arms"] if a["index"] == -1)
    assert holdout["name"] == "Holdout" and holdout["visitors"] == 220
    assert result["srm"]["p_value"] == pytest.approx(
        stats.srm_p_value([220, 1000, 1000], [0.1, 0.45, 0.45])
    )
    assert not result["srm"]["flagged"]
    # Half the planned holdout is a mismatch, like any arm's.
    Statistic.objects.filter(experiment=exp, arm=-1).update(n=100, sum=5, sum_squares=5)
    assert analyse(exp)["srm"]["flagged"]
    Statistic.objects.filter(experiment=exp, arm=-1).update(n=220, sum=11, sum_squares=11)
    result = analyse(exp)
    assert cell(result, -1)["shown"] and cell(result, -1)["lift"] == pytest.approx(-0.5)


def test_the_global_holdouts_srm_uses_its_configured_share_not_its_arms_weights(settings):
    # Created in the admin, a global holdout's arms carry weights 1 and 1, but visitors are
    # split by EXPERIMENTS_GLOBAL_HOLDOUT (5% held out).
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.05
    exp = experiment(
        "global",
        kind=Experiment.Kind.GLOBAL_HOLDOUT,
        arms=(("Held out", "default", 1.0), ("Personalised", "personalised", 1.0)),
        minimum_sample=10,
    )
    statistic(exp, 0, conversions(500, 20))
    statistic(exp, 1, conversions(9500, 475))
    srm = analyse(exp)["srm"]
    assert srm["checked"] and not srm["flagged"]
    assert srm["p_value"] == pytest.approx(stats.srm_p_value([500, 9500], [0.05, 0.95]))
    # Half held out, half personalised is a mismatch at 5%.
    Statistic.objects.filter(experiment=exp, arm=0).update(n=5000)
    Statistic.objects.filter(experiment=exp, arm=1).update(n=5000)
    assert analyse(exp)["srm"]["flagged"]


def _split(exp, split: str, counts: dict[int, float]):
    for arm, n in counts.items():
        SplitCount.objects.create(experiment=exp, split=split, arm=arm, n=n)
        Statistic.objects.get_or_create(
            experiment=exp, arm=arm, goal=exp.goals.first(), segment="", defaults={"n": 0}
        )
        Statistic.objects.filter(experiment=exp, arm=arm, segment="").update(n=F("n") + n)


def test_the_srm_check_expects_each_weight_periods_own_split():
    # 50/50 for 4,000 visitors, then 10/90 for 6,000: sticky arms make 2,600 / 7,400 fair.
    exp = experiment(minimum_sample=10, arms=(("A", "default", 1.0), ("B", "v-b", 9.0)))
    _split(exp, "0:0.5,1:0.5", {0: 2000, 1: 2000})
    _split(exp, "0:0.1,1:0.9", {0: 600, 1: 5400})
    srm = analyse(exp)["srm"]
    assert srm["checked"] and not srm["flagged"]
    assert srm["p_value"] == pytest.approx(1.0)
    # Against the current 10/90 alone the same counts would be a glaring mismatch.
    assert stats.srm_p_value([2600, 7400], [0.1, 0.9]) < 1e-100
    # A genuinely skewed run across the same periods is still flagged.
    Statistic.objects.filter(experiment=exp, arm=0).update(n=2600 - 150)
    Statistic.objects.filter(experiment=exp, arm=1).update(n=7400 + 150)
    srm = analyse(exp)["srm"]
    assert srm["flagged"] and srm["p_value"] < stats.SRM_THRESHOLD


def test_a_bandits_srm_is_checked_against_its_weights_period_by_period():
    exp = experiment(
        minimum_sample=10,
        mode=Experiment.Mode.BANDIT,
        arms=(("A", "default", 0.2), ("B", "v-b", 0.8)),
    )
    statistic(exp, 0, conversions(300, 10))
    statistic(exp, 1, conversions(300, 12))
    assert not analyse(exp)["srm"]["checked"]  # no period kept: when it moved is unknown
    Statistic.objects.all().delete()
    _split(exp, "0:0.5,1:0.5", {0: 500, 1: 500})
    _split(exp, "0:0.2,1:0.8", {0: 200, 1: 800})
    srm = analyse(exp)["srm"]
    assert srm["checked"] and not srm["flagged"]
    Statistic.objects.filter(experiment=exp, arm=0).update(n=900)
    assert analyse(exp)["srm"]["flagged"]


def _visitors(rng, n, shift=0.0):
    """Goal values and four covariates: the first and the last predict the goal, the second
    is the same for everyone, the third repeats the first (a multiple of it)."""
    x0 = rng.poisson(2.0, n).astype(float)
    x3 = rng.normal(size=n)
    y = x0 + 2 * x3 + rng.normal(size=n) + 5 + shift
    return y, np.column_stack([x0, np.full(n, 3.0), 2 * x0, x3])


def test_cuped_with_the_covariate_vector_leaves_out_constant_and_repeated_covariates():
    """A covariate the same for every visitor, or one repeating another, would make the
    regression's matrix singular: the analysis uses the others, and its figures are those of
    the regression adjustment on them alone (finite, no exception)."""
    exp = experiment(goals=[("Revenue", "purchase", "mean")], minimum_sample=10)
    rng = np.random.default_rng(3)
    (ya, xa), (yb, xb) = _visitors(rng, 400), _visitors(rng, 400, shift=0.3)
    statistic(exp, 0, SampleStats.of(ya, covariates=xa))
    statistic(exp, 1, SampleStats.of(yb, covariates=xb))
    b = cell(analyse(exp), 1)
    assert b["cuped"] and b["cuped_covariates"] == ["goal_events", "revenue"]
    used = stats.frequentist(
        SampleStats.of(ya, covariates=xa[:, [0, 3]]),
        SampleStats.of(yb, covariates=xb[:, [0, 3]]),
        cuped=True,
    )
    for name in ("lift", "ci_low", "ci_high", "p_value"):
        assert math.isfinite(b[name])
        assert b[name] == pytest.approx(getattr(used, name), rel=1e-9)
    one = stats.frequentist(SampleStats.of(ya, xa[:, 0]), SampleStats.of(yb, xb[:, 0]), cuped=True)
    assert b["ci_high"] - b["ci_low"] < 0.8 * (one.ci_high - one.ci_low)


def test_covariates_constant_in_a_cell_are_left_out():
    """Visitors enrolled before the vector was kept count 0 for the covariates after the first:
    in a cell of only them (here the control) those are constant, and so is the second in the
    other cell. To the regression such a covariate is the arm itself (adjusting for it took
    the whole effect away: lift 0); the analysis is gbstats' CUPED on the first covariate,
    exactly as before the vector."""
    exp = experiment(goals=[("Revenue", "purchase", "mean")], minimum_sample=10)
    rng = np.random.default_rng(4)
    (ya, xa), (yb, xb) = _visitors(rng, 300), _visitors(rng, 300, shift=0.3)
    xa[:, 1:] = 0.0
    statistic(exp, 0, SampleStats.of(ya, covariates=xa))
    statistic(exp, 1, SampleStats.of(yb, covariates=xb))
    b = cell(analyse(exp), 1)
    assert b["cuped"] and b["cuped_covariates"] == ["goal_events"]
    one = stats.frequentist(SampleStats.of(ya, xa[:, 0]), SampleStats.of(yb, xb[:, 0]), cuped=True)
    for name in ("lift", "ci_low", "ci_high", "p_value"):
        assert b[name] == pytest.approx(getattr(one, name), abs=1e-12)


def test_a_covariate_at_a_different_constant_in_each_cell_is_left_out():
    exp = experiment(goals=[("Revenue", "purchase", "mean")], minimum_sample=10)
    rng = np.random.default_rng(5)
    (ya, xa), (yb, xb) = _visitors(rng, 300), _visitors(rng, 300, shift=0.3)
    xa[:, 1] = 5.0  # every control visitor at 5, every treatment visitor at 3
    statistic(exp, 0, SampleStats.of(ya, covariates=xa))
    statistic(exp, 1, SampleStats.of(yb, covariates=xb))
    b = cell(analyse(exp), 1)
    assert b["cuped_covariates"] == ["goal_events", "revenue"]
    assert b["lift"] > 0.02 and b["significant"]
