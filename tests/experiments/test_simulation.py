"""The simulation harness at its quick scale (experiments.simulate.QUICK): every figure of
``python -m bench --only experiments`` with fewer runs and wider tolerances, which still fail
when a method is wrong -- shown here by running some scenarios with the method broken."""

import numpy as np
import pytest

from bench import experiments as bench_experiments
from experiments import simulate
from experiments.stats import Covariates, SampleStats, frequentist_arrays


@pytest.fixture(scope="module")
def report():
    return simulate.run(simulate.QUICK, seed=11)


@pytest.mark.parametrize(
    "key",
    [
        "aa_sequential",
        "aa_peeking",
        "power",
        "srm_skew",
        "srm_fair",
        "bandit_regret",
        "bandit_delay",
        "bandit_drift",
        "cuped_variance",
        "cuped_width_05",
        "cuped_width_07",
        "cuped_features_width",
        "cuped_coverage",
    ],
)
def test_every_figure_meets_its_quick_target(report, key):
    figure = report.figure(key)
    assert figure.passed, f"{figure.label}: {figure.shown} (target {figure.target})"


def test_peeking_without_sequential_testing_inflates_false_positives(report):
    assert report.figure("aa_peeking").value > 0.15
    assert report.figure("aa_sequential").value < 0.06


def test_the_plan_is_the_sequential_one(report):
    notes = report.notes["power"]
    assert notes["plan_per_arm"] > 1.5 * notes["fixed_horizon_plan_per_arm"]
    assert notes["visitors_per_arm_at_last_look"] >= notes["plan_per_arm"]


def test_a_bandit_that_does_not_learn_fails_the_regret_target():
    """Without reweighting (min_visitors never reached) regret is uniform allocation's."""
    rng = np.random.default_rng(3)
    base = np.array([0.04, 0.05, 0.06])
    regret, _ = simulate.simulate_bandit(
        rng, seeds=4, rates=lambda t: base, min_visitors=10**9, draws=100
    )
    assert regret.mean() / 600 > simulate.QUICK.regret_target


def test_the_aa_scenario_catches_an_anti_conservative_interval(monkeypatch):
    """A 'sequential' test that is really a fixed-horizon one fails the A/A target."""
    original = frequentist_arrays

    def broken(control, treatment, **kwargs):
        kwargs["sequential"] = False
        return original(control, treatment, **kwargs)

    monkeypatch.setattr(simulate, "frequentist_arrays", broken)
    report = simulate.run(simulate.QUICK, seed=5, only=["aa"])
    assert not report.figure("aa_sequential").passed
    assert not report.passed


def test_cuped_figures_catch_a_broken_adjustment(monkeypatch):
    """With the covariate's sum corrupted (negated), the adjustment no longer narrows the
    interval and the CUPED figure fails: the harness measures, it does not print theory."""
    original = frequentist_arrays

    def flipped(control, treatment, **kwargs):
        if kwargs.get("cuped"):

            def negate(s):
                c = s.covariates
                return SampleStats(
                    s.n,
                    s.sum,
                    s.sum_squares,
                    -s.pre_sum,
                    s.pre_sum_squares,
                    s.cross_sum,
                    None if c is None else Covariates(-c.sums, c.products, c.cross),
                )

            return original(negate(control), negate(treatment), **kwargs)
        return original(control, treatment, **kwargs)

    monkeypatch.setattr(simulate, "frequentist_arrays", flipped)
    report = simulate.run(simulate.QUICK, seed=5, only=["cuped"])
    assert not report.figure("cuped_width_07").passed
    assert not report.figure("cuped_features_width").passed


def test_the_features_figure_prints_its_correlations_and_theory(report):
    """rho per feature and R^2 as measured in the label, the theoretical narrowing
    1 - sqrt(1 - R^2) beside the measured one, and the notes hold both width factors."""
    figure = report.figure("cuped_features_width")
    notes = report.notes["cuped"]
    measured = "/".join(f"{r:.2f}" for r in notes["rho_measured"])
    assert f"rho {measured} each, R^2 {notes['r2_measured']:.2f}" in figure.label
    assert "1-sqrt(1-R^2)" in figure.baseline
    assert notes["r2"] == pytest.approx(notes["r2_measured"], abs=0.02)
    assert notes["width_factor_measured"] == pytest.approx(notes["width_factor_theory"], abs=0.02)
    assert all(r == pytest.approx(0.5, abs=0.02) for r in notes["rho_measured"])


def test_the_bench_prints_every_figure_with_its_target(capsys):
    result = {
        "scale": "quick",
        "figures": [f.__dict__ for f in simulate.run(simulate.QUICK, seed=2, only=["srm"]).figures],
        "notes": {
            "power": {"plan_per_arm": 1, "fixed_horizon_plan_per_arm": 1},
            "bandit": {"regret": 1, "delayed_regret": 1, "uniform_regret": 1},
        },
        "seconds": {"srm": 0.1},
        "assignment": {"single_us": 4.0, "batched_us": 1.5, "experiments": 20},
    }
    rows = bench_experiments.rows(result)
    assert [r[5] for r in rows[:2]] == ["PASS", "PASS"]
    assert all(r[4] for r in rows[:2])  # a target next to every figure
    assert "Assignment" in rows[-1][0]
    assert "CUPED" in bench_experiments.details(result)


def test_strict_exits_non_zero_when_a_target_is_missed(monkeypatch):
    from bench import __main__ as bench_main

    def failing_run(scale, **kwargs):
        r = simulate.Report(scale.name)
        r.figures.append(simulate.Figure("x", "a figure", 1.0, "1", "<= 0", False))
        r.notes = {
            "power": {"plan_per_arm": 1, "fixed_horizon_plan_per_arm": 1},
            "bandit": {"regret": 1, "delayed_regret": 1, "uniform_regret": 1},
        }
        return r

    monkeypatch.setattr(simulate, "run", failing_run)
    monkeypatch.setattr(
        bench_experiments,
        "_assignment_cost",
        lambda: {"single_us": 1.0, "batched_us": 1.0, "experiments": 20},
    )
    assert bench_main.main(["--only", "experiments", "--quick", "--strict"]) == 1
    assert bench_main.main(["--only", "experiments", "--quick"]) == 0
