"""experiments.stats against GrowthBook's stats engine (gbstats 0.8.0) on the fixtures it
produced (fixtures/make_gbstats_fixtures.py: hundreds of random sufficient statistics, small
and large n, conversions and means, CUPED), plus the rest of the module's behaviour."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from experiments.stats import (
    SRM_THRESHOLD,
    Covariates,
    SampleStats,
    bayesian,
    benjamini_hochberg,
    compare_arrays,
    frequentist,
    holm,
    power,
    required_sample_per_arm,
    srm_p_value,
    srm_p_value_periods,
    srm_p_values,
)

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "gbstats_cases.json").read_text())
CASES = FIXTURES["cases"]
TOLERANCE = 1e-6


COMPARED = {"values": 0}


def close(ours, theirs, what):
    if theirs is None:  # gbstats gave +-inf / nan
        return
    COMPARED["values"] += 1
    assert ours is not None, what
    assert math.isclose(ours, theirs, rel_tol=TOLERANCE, abs_tol=TOLERANCE), (
        f"{what}: ours {ours!r} gbstats {theirs!r}"
    )


def stats_of(cell):
    return SampleStats(**cell)


def options(case):
    return {
        "proportion": case["proportion"],
        "cuped": case["cuped"],
        "covariate_proportion": case["covariate_proportion"],
    }


def test_the_fixtures_cover_what_they_claim():
    assert FIXTURES["gbstats_version"] == "0.8.0"
    assert len(CASES) >= 500
    kinds = {c["kind"] for c in CASES}
    assert kinds == {"proportion", "mean", "cuped_mean", "cuped_proportion"}
    analysed = [c for c in CASES if not c["gbstats"]["fixed"]["error"]]
    assert len(analysed) >= 400
    assert sum(1 for c in CASES if min(c["control"]["n"], c["treatment"]["n"]) <= 10) >= 50
    assert sum(1 for c in analysed if c["cuped"]) >= 150
    assert sum(1 for c in analysed if c["gbstats"]["sequential"]["p_value"] < 0.05) >= 30


@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_frequentist_matches_gbstats(method):
    for case in CASES:
        expected = case["gbstats"][method]
        result = frequentist(
            stats_of(case["control"]),
            stats_of(case["treatment"]),
            alpha=case["alpha"],
            sequential=method == "sequential",
            sequential_tuning=case["tuning"],
            **options(case),
        )
        what = f"case {case['id']} ({case['kind']}) {method}"
        assert result.error == expected["error"], what
        close(result.p_value, expected["p_value"], f"{what} p-value")
        if expected["error"]:
            assert result.ci_low is None and result.ci_high is None
            continue
        close(result.lift, expected["expected"], f"{what} lift")
        close(result.ci_low, expected["ci"][0], f"{what} ci low")
        close(result.ci_high, expected["ci"][1], f"{what} ci high")
        close(result.lift_stddev, expected["stddev"], f"{what} stddev")
    assert COMPARED["values"] >= 2000


def test_bayesian_matches_gbstats():
    for case in CASES:
        expected = case["gbstats"]["bayesian"]
        prior = case["prior"]
        result = bayesian(
            stats_of(case["control"]),
            stats_of(case["treatment"]),
            inverse=case["inverse"],
            prior_mean=prior["mean"],
            prior_stddev=prior["stddev"],
            proper_prior=prior["proper"],
            **options(case),
        )
        what = f"case {case['id']} ({case['kind']}) bayesian"
        assert result.error == expected["error"], what
        close(result.chance_to_win, expected["chance_to_win"], f"{what} chance to win")
        close(result.risk_control, expected["risk"][0], f"{what} risk (control)")
        close(result.risk, expected["risk"][1], f"{what} risk (treatment)")
        if expected["error"]:
            continue
        close(result.lift, expected["expected"], f"{what} lift")
        close(result.ci_low, expected["ci"][0], f"{what} ci low")
        close(result.ci_high, expected["ci"][1], f"{what} ci high")
        close(result.lift_stddev, expected["stddev"], f"{what} stddev")


def test_srm_matches_gbstats():
    for case in FIXTURES["srm"]:
        close(srm_p_value(case["counts"], case["weights"]), case["p_value"], case)
        vectorised = srm_p_values([case["counts"]], case["weights"])[0]
        close(float(vectorised), case["p_value"], case)


def test_srm_flags_a_skewed_split_and_not_a_fair_one():
    assert srm_p_value([50_000, 50_000], [0.5, 0.5]) == 1.0
    assert srm_p_value([51_000, 49_000], [0.5, 0.5]) < SRM_THRESHOLD
    assert srm_p_value([50_100, 49_900], [0.5, 0.5]) > SRM_THRESHOLD
    assert srm_p_value([0, 0], [0.5, 0.5]) == 1.0
    with pytest.raises(ValueError):
        srm_p_value([1, 2, 3], [0.5, 0.5])


def test_srm_over_weight_periods_expects_each_periods_split():
    # One period is the plain check.
    for case in FIXTURES["srm"][:50]:
        n = sum(case["counts"])
        assert srm_p_value_periods(case["counts"], [(n, case["weights"])]) == pytest.approx(
            srm_p_value(case["counts"], case["weights"]), rel=1e-12, abs=1e-15
        )
    # Sticky assignment through a change from 50/50 to 20/80: 10,000 visitors then 10,000.
    rng = np.random.default_rng(13)
    runs = 2000
    first = rng.binomial(10_000, 0.5, runs)
    second = rng.binomial(10_000, 0.2, runs)
    periods = [(10_000, [0.5, 0.5]), (10_000, [0.2, 0.8])]
    fair = [
        srm_p_value_periods([a + b, 20_000 - a - b], periods) < SRM_THRESHOLD
        for a, b in zip(first, second, strict=True)
    ]
    assert np.mean(fair) <= 0.005
    # Against the latest weights alone, every one of those fair runs would be flagged.
    assert (
        srm_p_value([int(first[0] + second[0]), int(20_000 - first[0] - second[0])], [0.2, 0.8])
        < SRM_THRESHOLD
    )
    # A real skew (arm 0 loses a tenth of its visitors, in both periods) is still caught.
    lost_first = rng.binomial(first, 0.1)
    lost_second = rng.binomial(second, 0.1)
    skewed = [
        srm_p_value_periods(
            [a + b - x - y, 20_000 - a - b],
            [(10_000 - x, [0.5, 0.5]), (10_000 - y, [0.2, 0.8])],
        )
        < SRM_THRESHOLD
        for a, b, x, y in zip(first, second, lost_first, lost_second, strict=True)
    ]
    assert np.mean(skewed) >= 0.95
    assert srm_p_value_periods([0, 0], periods) == 1.0
    with pytest.raises(ValueError):
        srm_p_value_periods([1, 2], [(3, [1, 1, 1])])


def test_welch_without_sequential_uses_welchs_degrees_of_freedom_on_the_lift():
    """The fixed-horizon test is Welch's: its degrees of freedom are scipy's Welch-Satterthwaite
    ones on the raw data, and its statistic is the lift over its delta-method standard error."""
    rng = np.random.default_rng(1)
    a = rng.normal(10, 3, 400)
    b = rng.normal(10.6, 4, 300)
    result = frequentist(SampleStats.of(a), SampleStats.of(b), sequential=False)
    comparison = compare_arrays(SampleStats.of(a), SampleStats.of(b))
    welch = sps.ttest_ind(b, a, equal_var=False)
    assert float(comparison.dof) == pytest.approx(welch.df)
    assert result.method == "fixed"
    assert result.control_mean == pytest.approx(a.mean())
    assert result.treatment_mean == pytest.approx(b.mean())
    assert result.lift == pytest.approx(b.mean() / a.mean() - 1)
    se = math.sqrt(
        b.var(ddof=1) / (a.mean() ** 2 * len(b))
        + a.var(ddof=1) * b.mean() ** 2 / (a.mean() ** 4 * len(a))
    )
    assert result.lift_stddev == pytest.approx(se)
    assert result.p_value == pytest.approx(2 * sps.t.sf(result.lift / se, welch.df))
    half = sps.t.ppf(0.975, welch.df) * se
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (result.lift - half, result.lift + half)
    )


def test_sequential_interval_is_wider_than_the_fixed_one_and_contains_it():
    control = SampleStats(20_000, 1_000, 1_000)
    treatment = SampleStats(20_000, 1_100, 1_100)
    fixed = frequentist(control, treatment, proportion=True, sequential=False)
    sequential = frequentist(control, treatment, proportion=True)
    assert sequential.method == "sequential"
    assert sequential.ci_low < fixed.ci_low < fixed.lift < fixed.ci_high < sequential.ci_high
    assert sequential.p_value > fixed.p_value
    assert fixed.lift == pytest.approx(0.1)


def test_cuped_narrows_the_interval_with_a_correlated_covariate():
    rng = np.random.default_rng(2)
    pre_a, pre_b = rng.normal(5, 2, 5000), rng.normal(5, 2, 5000)
    post_a = 10 + 1.5 * (pre_a - 5) + rng.normal(0, 2, 5000)
    post_b = 10.5 + 1.5 * (pre_b - 5) + rng.normal(0, 2, 5000)
    a, b = SampleStats.of(post_a, pre_a), SampleStats.of(post_b, pre_b)
    plain = frequentist(a, b)
    adjusted = frequentist(a, b, cuped=True)
    assert adjusted.cuped_theta == pytest.approx(1.5, abs=0.1)
    assert adjusted.ci_high - adjusted.ci_low < 0.75 * (plain.ci_high - plain.ci_low)
    assert adjusted.lift == pytest.approx(0.05, abs=0.01)
    assert plain.cuped_theta is None


def as_one_of_several(cell) -> SampleStats:
    """A fixture's cell with its covariate given as a vector of one (Covariates)."""
    return SampleStats(
        cell["n"],
        cell["sum"],
        cell["sum_squares"],
        covariates=Covariates([cell["pre_sum"]], [[cell["pre_sum_squares"]]], [cell["cross_sum"]]),
    )


def test_several_covariates_reduce_to_gbstats_cuped_with_one():
    """The regression adjustment on a covariate vector, given one covariate, is gbstats'
    CUPED: every CUPED fixture (a covariate that is not a 0/1 proportion) to 1e-6."""
    cases = [c for c in CASES if c["cuped"] and not c["covariate_proportion"]]
    assert len(cases) >= 100
    for case in cases:
        control, treatment = (
            as_one_of_several(case["control"]),
            as_one_of_several(case["treatment"]),
        )
        for method in ("fixed", "sequential"):
            expected = case["gbstats"][method]
            result = frequentist(
                control,
                treatment,
                alpha=case["alpha"],
                sequential=method == "sequential",
                sequential_tuning=case["tuning"],
                **options(case),
            )
            what = f"case {case['id']} {method}, one covariate of several"
            assert result.error == expected["error"], what
            close(result.p_value, expected["p_value"], f"{what} p-value")
            if not expected["error"]:
                close(result.ci_low, expected["ci"][0], f"{what} ci low")
                close(result.ci_high, expected["ci"][1], f"{what} ci high")
        expected = case["gbstats"]["bayesian"]
        prior = case["prior"]
        result = bayesian(
            control,
            treatment,
            inverse=case["inverse"],
            prior_mean=prior["mean"],
            prior_stddev=prior["stddev"],
            proper_prior=prior["proper"],
            **options(case),
        )
        assert result.error == expected["error"]
        close(result.chance_to_win, expected["chance_to_win"], f"case {case['id']} bayesian")


def test_several_covariates_recover_the_regression_and_narrow_more_than_one():
    rng = np.random.default_rng(3)
    coefficients = np.array([1.0, 0.5, -0.8])
    mixing = np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.3, 0.4, 1.0]])

    def arm(mean, n=6000):
        x = rng.normal(size=(n, 3)) @ mixing.T  # correlated covariates
        return mean + x @ coefficients + rng.normal(0, 1.5, n), x

    (ya, xa), (yb, xb) = arm(10.0), arm(10.3)
    several = frequentist(
        SampleStats.of(ya, covariates=xa), SampleStats.of(yb, covariates=xb), cuped=True
    )
    assert several.cuped_theta == pytest.approx(coefficients, abs=0.05)
    assert several.lift == pytest.approx(0.03, abs=0.01)
    width = several.ci_high - several.ci_low
    for j in range(3):
        one = frequentist(SampleStats.of(ya, xa[:, j]), SampleStats.of(yb, xb[:, j]), cuped=True)
        assert width < 0.9 * (one.ci_high - one.ci_low)


def test_covariate_sums_are_kept_incrementally():
    """Adding the statistics of two batches of visitors gives those of all of them (what the
    workers do), and discounting scales every sum."""
    rng = np.random.default_rng(4)
    y, x = rng.normal(size=500), rng.normal(size=(500, 3))
    whole = SampleStats.of(y, covariates=x)
    parts = SampleStats.of(y[:200], covariates=x[:200]) + SampleStats.of(
        y[200:], covariates=x[200:]
    )
    for a, b in zip(whole.covariates, parts.covariates, strict=True):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(whole.scaled(0.5).covariates.products, whole.covariates.products / 2)
    with pytest.raises(ValueError):
        Covariates([1.0, 2.0], [[1.0]], [1.0, 2.0])
    with pytest.raises(ValueError):
        Covariates([math.nan], [[1.0]], [1.0])


def test_bayesian_chance_to_win_and_risk_behave():
    control = SampleStats(10_000, 500, 500)
    better = bayesian(control, SampleStats(10_000, 600, 600), proportion=True)
    worse = bayesian(control, SampleStats(10_000, 420, 420), proportion=True)
    assert better.chance_to_win > 0.99 and better.p_value is None
    assert worse.chance_to_win < 0.01
    assert better.risk < 1e-4 < better.risk_control
    assert worse.risk > worse.risk_control
    # a proper prior centred on 0 pulls the estimate towards 0
    shrunk = bayesian(
        control,
        SampleStats(10_000, 600, 600),
        proportion=True,
        proper_prior=True,
        prior_stddev=0.05,
    )
    assert 0 < shrunk.lift < better.lift


def test_analyses_that_cannot_be_done_say_why():
    empty = SampleStats(0, 0, 0)
    some = SampleStats(100, 10, 10)
    assert frequentist(empty, some, proportion=True).error == "ZERO_NEGATIVE_BASELINE_VARIATION"
    assert frequentist(some, empty, proportion=True).error == "ZERO_NEGATIVE_VARIANCE"
    assert bayesian(some, empty, proportion=True).error == "NO_UNITS_IN_VARIATION"
    result = frequentist(some, SampleStats(100, 100, 100), proportion=True)
    assert result.error == "ZERO_NEGATIVE_VARIANCE" and result.p_value == 1.0
    assert not result.significant
    assert result.lift == pytest.approx(9.0)  # the raw difference is still reported


def test_sample_stats_reject_nonsense():
    with pytest.raises(ValueError):
        SampleStats(-1, 0, 0)
    with pytest.raises(ValueError):
        SampleStats(10, math.nan, 0)
    with pytest.raises(TypeError):
        SampleStats("10", 0, 0)
    with pytest.raises(ValueError):
        frequentist(SampleStats(10, 1, 1), SampleStats(10, 2, 2), alpha=0)
    merged = SampleStats(10, 5, 5) + SampleStats(30, 10, 10)
    assert merged == SampleStats(40, 15, 15)
    assert SampleStats(10, 4, 6).scaled(0.5) == SampleStats(5, 2, 3)


def _holm_reference(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _bh_reference(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i], reverse=True)
    adjusted, running = [0.0] * m, 1.0
    for rank, i in enumerate(order):
        running = min(running, p[i] * m / (m - rank))
        adjusted[i] = running
    return adjusted


def test_multiple_testing_corrections():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    assert benjamini_hochberg(p) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    rng = np.random.default_rng(3)
    for _ in range(200):
        values = rng.uniform(0, 1, rng.integers(1, 30)) ** 3
        assert holm(values) == pytest.approx(_holm_reference(list(values)))
        assert benjamini_hochberg(values) == pytest.approx(_bh_reference(list(values)))
    assert holm([]) == [] and benjamini_hochberg([]) == []
    with pytest.raises(ValueError):
        holm([0.1, 1.5])
    with pytest.raises(ValueError):
        benjamini_hochberg([math.nan])


def test_required_sample_per_arm():
    fixed = required_sample_per_arm(0.05, 0.1, sequential=False)
    # the textbook formula on the relative (delta-method) scale
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    textbook = z**2 * (0.055 * 0.945 + 0.05 * 0.95 * 1.1**2) / (0.05**2 * 0.1**2)
    assert fixed == pytest.approx(textbook, rel=0.01)
    sequential = required_sample_per_arm(0.05, 0.1)
    assert sequential > 1.3 * fixed
    assert power(sequential, 0.05, 0.1) >= 0.8 > power(sequential - 1, 0.05, 0.1)
    means = required_sample_per_arm(20.0, 0.05, stddev=30.0, sequential=False)
    assert means == pytest.approx(z**2 * 900 * (1 + 1.05**2) / (400 * 0.05**2), rel=0.01)
    with pytest.raises(ValueError):
        required_sample_per_arm(1.5, 0.1)
    with pytest.raises(ValueError):
        required_sample_per_arm(0.05, 0.0)
