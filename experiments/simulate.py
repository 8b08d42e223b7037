"""The simulation harness: do the statistics keep their promises? (pure: numpy/scipy.)

Every scenario simulates sufficient statistics directly (binomial and multinomial counts,
exact normal/Wishart draws of sums), vectorised over thousands of experiments, and analyses
them with experiments.stats and experiments.bandits exactly as the workers will. Each
:class:`Figure` carries its value, its target and whether it met it; ``python -m bench --only
experiments`` prints them (``--strict`` fails on a miss), and tests/experiments/
test_simulation.py runs the :data:`QUICK` scale with wider tolerances that still fail when a
method is wrong (e.g. sequential testing off).

Scenarios (the :data:`FULL` scale):

- A/A: 2,000 experiments x 30 looks, 1,000 visitors per arm between looks, 5% conversion;
  a false positive is any look whose interval excludes 0. Sequential (the default) against
  the fixed-horizon t-test re-run at each look (peeking).
- Power: a true +10% lift on 5%; the planned sample per arm from
  :func:`experiments.stats.required_sample_per_arm` (80%, sequential); 2,000 experiments
  analysed at 30 looks up to the plan; detected = the interval at the planned sample lies
  above 0.
- SRM: 100,000 visitors split 50/50, fair (20,000 runs) and with a 2-point skew (51/49).
- Bandit: 3 arms converting at 4/5/6%, 60,000 visitors in 60 periods of 1,000, Thompson
  sampling reweighted after each period, 30 seeds; regret against uniform allocation's; the
  same with each period's outcomes arriving 5 periods late; and with the rates reversed
  (6/5/4%) after 30,000 visitors, discounting 0.95 per period: the new best arm's share of
  the last 10,000 visitors.
- CUPED: visitors whose pre-exposure value correlates with the goal (rho 0.5, and 0.7),
  2,000 experiments of 5,000 visitors per arm, a true +2% lift; width of the 95% interval
  with and without CUPED and how often each contains the true lift. With correlation rho the
  regression adjustment removes rho**2 of the variance, so the interval narrows by
  1 - sqrt(1 - rho**2): 13.4% at rho 0.5 (variance -25%), 28.6% at rho 0.7. And with several
  pre-exposure features a profile holds (:data:`CUPED_FEATURES`), each at rho 0.5 with the
  goal and correlated with one another (:data:`CUPED_FEATURE_CORRELATION`): regression
  adjustment on all of them removes R^2 of the variance, R^2 = r' C^-1 r (r: the features'
  correlations with the goal, C: theirs with one another), so the interval narrows by
  1 - sqrt(1 - R^2); the figure is measured, and printed with rho per feature, R^2 and the
  theoretical width factor.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from .bandits import apply_floor, best_arm_probabilities
from .stats import (
    DEFAULT_ALPHA,
    SRM_THRESHOLD,
    Covariates,
    SampleStats,
    frequentist_arrays,
    required_sample_per_arm,
    srm_p_values,
)

__all__ = ["FULL", "QUICK", "Figure", "Scale", "run"]


@dataclass(frozen=True)
class Scale:
    """How big each scenario is, and the targets at that size (looser when smaller)."""

    name: str
    aa_experiments: int = 2000
    looks: int = 30
    aa_target: float = 0.055
    power_experiments: int = 2000
    power_target: float = 0.77
    srm_runs: int = 20_000
    srm_fair_target: float = 0.002
    srm_skew_runs: int = 2000
    srm_skew_target: float = 0.99
    bandit_seeds: int = 30
    bandit_draws: int = 10_000
    regret_target: float = 0.15
    delay_target: float = 2.0
    drift_target: float = 0.80
    cuped_experiments: int = 2000
    coverage_target: float = 0.94
    variance_reduction_target: float = 0.20
    narrower_target: float = 0.20


FULL = Scale("full")
# Fast versions for the test suite: fewer runs, wider tolerances; each would still fail if the
# method were wrong (peeking without sequential testing gives ~25% false positives, a bandit
# that does not learn has regret 100% of uniform's, no CUPED no narrowing, ...).
QUICK = Scale(
    "quick",
    aa_experiments=400,
    aa_target=0.08,
    power_experiments=400,
    power_target=0.70,
    srm_runs=5000,
    srm_fair_target=0.004,
    srm_skew_runs=300,
    srm_skew_target=0.97,
    bandit_seeds=8,
    bandit_draws=2000,
    regret_target=0.25,
    delay_target=2.5,
    drift_target=0.75,
    cuped_experiments=400,
    coverage_target=0.92,
    variance_reduction_target=0.15,
    narrower_target=0.20,
)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: float
    shown: str
    target: str
    passed: bool | None
    baseline: str = ""


@dataclass
class Report:
    scale: str
    figures: list[Figure] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)

    @property
    def passed(self) -> bool:
        return all(f.passed is not False for f in self.figures)


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _proportion_stats(n, conversions) -> SampleStats:
    return SampleStats(n, conversions, conversions)


def _cumulative_conversions(rng, experiments, looks, per_look, rate):
    return np.cumsum(rng.binomial(per_look, rate, size=(experiments, looks)), axis=1)


def aa_false_positives(scale: Scale, rng, report: Report, rate=0.05, per_look=1000):
    e, looks = scale.aa_experiments, scale.looks
    n = per_look * np.arange(1, looks + 1) * np.ones((e, 1))
    control = _proportion_stats(n, _cumulative_conversions(rng, e, looks, per_look, rate))
    treatment = _proportion_stats(n, _cumulative_conversions(rng, e, looks, per_look, rate))
    rates = {}
    for sequential in (True, False):
        _, low, high, _ = frequentist_arrays(
            control, treatment, proportion=True, sequential=sequential
        )
        rejected = (low > 0) | (high < 0)
        rates[sequential] = float(rejected.any(axis=1).mean())
        if not sequential:
            rates["single"] = float(rejected[:, -1].mean())
    report.figures.append(
        Figure(
            "aa_sequential",
            f"A/A false positives, sequential on, {looks} looks ({e:,} experiments)",
            rates[True],
            _pct(rates[True]),
            f"<= {_pct(scale.aa_target)}",
            rates[True] <= scale.aa_target,
        )
    )
    report.figures.append(
        Figure(
            "aa_peeking",
            f"A/A false positives, sequential OFF, {looks} looks (peeking)",
            rates[False],
            _pct(rates[False]),
            "why it is on: >= 2x the above",
            rates[False] >= 2 * max(rates[True], DEFAULT_ALPHA / 2),
            baseline=f"{_pct(rates['single'])} at one look",
        )
    )


def power_at_plan(scale: Scale, rng, report: Report, rate=0.05, lift=0.10):
    plan = required_sample_per_arm(rate, lift)
    fixed_plan = required_sample_per_arm(rate, lift, sequential=False)
    e, looks = scale.power_experiments, scale.looks
    per_look = -(-plan // looks)
    n = per_look * np.arange(1, looks + 1) * np.ones((e, 1))
    control = _proportion_stats(n, _cumulative_conversions(rng, e, looks, per_look, rate))
    treatment = _proportion_stats(
        n, _cumulative_conversions(rng, e, looks, per_look, rate * (1 + lift))
    )
    _, low, _, _ = frequentist_arrays(control, treatment, proportion=True)
    detected = float((low[:, -1] > 0).mean())
    any_look = float((low > 0).any(axis=1).mean())
    report.notes["power"] = {
        "plan_per_arm": plan,
        "fixed_horizon_plan_per_arm": fixed_plan,
        "visitors_per_arm_at_last_look": per_look * looks,
        "detected_at_any_look": any_look,
    }
    report.figures.append(
        Figure(
            "power",
            f"Power: true +10% lift on 5% detected at the plan ({plan:,}/arm)",
            detected,
            _pct(detected),
            f">= {_pct(scale.power_target, 0)} (planned 80%)",
            detected >= scale.power_target,
            baseline=f"{_pct(any_look)} by then at any look",
        )
    )


def srm(scale: Scale, rng, report: Report, visitors=100_000):
    fair = rng.multinomial(visitors, [0.5, 0.5], size=scale.srm_runs)
    skewed = rng.multinomial(visitors, [0.51, 0.49], size=scale.srm_skew_runs)
    fair_rate = float((srm_p_values(fair, [0.5, 0.5]) < SRM_THRESHOLD).mean())
    skew_rate = float((srm_p_values(skewed, [0.5, 0.5]) < SRM_THRESHOLD).mean())
    report.figures.append(
        Figure(
            "srm_skew",
            f"SRM: 50/50 split with a 2-point skew flagged ({visitors:,} visitors)",
            skew_rate,
            _pct(skew_rate),
            f">= {_pct(scale.srm_skew_target, 0)} of runs",
            skew_rate >= scale.srm_skew_target,
        )
    )
    report.figures.append(
        Figure(
            "srm_fair",
            f"SRM: fair 50/50 split flagged ({scale.srm_runs:,} runs)",
            fair_rate,
            _pct(fair_rate, 2),
            f"<= {_pct(scale.srm_fair_target, 1)} of runs",
            fair_rate <= scale.srm_fair_target,
        )
    )


def simulate_bandit(
    rng,
    *,
    seeds: int,
    rates: Callable[[int], np.ndarray],
    visitors: int = 60_000,
    period: int = 1000,
    delay: int = 0,
    discount: float | None = None,
    floor: float = 0.01,
    min_visitors: int = 100,
    draws: int = 10_000,
):
    """Thompson sampling on conversions for ``seeds`` independent bandits at once.

    Each period, ``period`` visitors are split by the current weights (multinomial), convert
    at ``rates(t)`` (the visitor index t at the period's start), and their outcomes reach the
    bandit ``delay`` periods later; then the weights are recomputed (equal until every arm has
    ``min_visitors`` observed visitors). Returns the pseudo-regret per seed and the visitors
    per arm and period, shape (periods, seeds, arms).
    """
    arms = len(rates(0))
    n = np.zeros((seeds, arms))
    conversions = np.zeros((seeds, arms))
    observed = np.zeros((seeds, arms))
    weights = np.full((seeds, arms), 1 / arms)
    regret = np.zeros(seeds)
    pending, allocations = [], []
    for start in range(0, visitors, period):
        p = rates(start)
        shown = rng.multinomial(min(period, visitors - start), weights)
        converted = rng.binomial(shown, p)
        regret += shown @ (p.max() - p)
        allocations.append(shown)
        pending.append((shown, converted))
        if len(pending) > delay:
            seen, won = pending.pop(0)
            if discount is not None:
                n *= discount
                conversions *= discount
            n += seen
            conversions += won
            observed += seen
        ready = (observed >= min_visitors).all(axis=1)
        if ready.any():
            best = best_arm_probabilities(n[ready], conversions[ready], draws=draws, rng=rng)
            weights[ready] = apply_floor(best, floor)
    return regret, np.array(allocations)


def bandits(scale: Scale, rng, report: Report, visitors=60_000):
    base = np.array([0.04, 0.05, 0.06])
    uniform_regret = float(visitors * (base.max() - base.mean()))
    common = {"seeds": scale.bandit_seeds, "visitors": visitors, "draws": scale.bandit_draws}
    regret, _ = simulate_bandit(rng, rates=lambda t: base, **common)
    delayed, _ = simulate_bandit(rng, rates=lambda t: base, delay=5, **common)
    ratio = float(regret.mean() / uniform_regret)
    delay_ratio = float(delayed.mean() / regret.mean())
    half = visitors // 2
    _, shown = simulate_bandit(
        rng, rates=lambda t: base if t < half else base[::-1], discount=0.95, **common
    )
    _, shown_static = simulate_bandit(
        rng, rates=lambda t: base if t < half else base[::-1], **common
    )
    last = shown[-10:].sum(axis=(0, 1))
    last_static = shown_static[-10:].sum(axis=(0, 1))
    share = float(last[0] / last.sum())
    share_static = float(last_static[0] / last_static.sum())
    report.notes["bandit"] = {
        "uniform_regret": uniform_regret,
        "regret": float(regret.mean()),
        "delayed_regret": float(delayed.mean()),
    }
    report.figures += [
        Figure(
            "bandit_regret",
            f"Bandit 4/5/6%, {visitors:,} visitors, {scale.bandit_seeds} seeds: regret",
            ratio,
            f"{_pct(ratio)} of uniform",
            f"<= {_pct(scale.regret_target, 0)} of uniform",
            ratio <= scale.regret_target,
            baseline=f"{regret.mean():.0f} vs {uniform_regret:.0f} conv.",
        ),
        Figure(
            "bandit_delay",
            "Bandit, rewards 5 reweighting periods late: regret",
            delay_ratio,
            f"{delay_ratio:.2f}x undelayed",
            f"<= {scale.delay_target:g}x undelayed",
            delay_ratio <= scale.delay_target,
        ),
        Figure(
            "bandit_drift",
            "Bandit, best arm changes half-way (discount 0.95): new best's share of last 10k",
            share,
            _pct(share),
            f">= {_pct(scale.drift_target, 0)}",
            share >= scale.drift_target,
            baseline=f"{_pct(share_static)} undiscounted",
        ),
    ]


def _normal_sums(rng, experiments, n, mean, cov):
    """Exact draws of the sums of n i.i.d. multivariate normal vectors (the goal, then the
    covariates): the sample mean ~ N(mean, cov/n), independent of the scatter matrix ~
    Wishart(n - 1, cov). Returns the sums (experiments, d) and the sums of products
    (experiments, d, d)."""
    means = rng.multivariate_normal(mean, np.asarray(cov) / n, size=experiments)
    scatter = sps.wishart.rvs(df=n - 1, scale=cov, size=experiments, random_state=rng)
    total = n * means
    return total, scatter + n * means[:, :, None] * means[:, None, :]


def _bivariate_sums(rng, experiments, n, mean, cov):
    """One covariate: :class:`SampleStats` with the single-covariate sums."""
    total, squares = _normal_sums(rng, experiments, n, mean, cov)
    return SampleStats(
        np.full(experiments, float(n)),
        total[:, 0],
        squares[:, 0, 0],
        total[:, 1],
        squares[:, 1, 1],
        squares[:, 0, 1],
    )


def _multivariate_sums(rng, experiments, n, mean, cov):
    """Several covariates: :class:`SampleStats` with :class:`Covariates`."""
    total, squares = _normal_sums(rng, experiments, n, mean, cov)
    return SampleStats(
        np.full(experiments, float(n)),
        total[:, 0],
        squares[:, 0, 0],
        covariates=Covariates(total[:, 1:], squares[:, 1:, 1:], squares[:, 0, 1:]),
    )


def _widths(control, treatment, lift):
    out = {}
    for cuped in (False, True):
        _, low, high, _ = frequentist_arrays(control, treatment, sequential=False, cuped=cuped)
        out[cuped] = {
            "width": np.median(high - low),
            "coverage": float(((low <= lift) & (lift <= high)).mean()),
        }
    narrower = float(1 - out[True]["width"] / out[False]["width"])
    return narrower, out[False]["coverage"], out[True]["coverage"]


def cuped_run(rng, experiments, rho, n=5000, lift=0.02):
    mu, sd, pre_mu, pre_sd = 10.0, 5.0, 8.0, 4.0
    cov = [[sd**2, rho * sd * pre_sd], [rho * sd * pre_sd, pre_sd**2]]
    control = _bivariate_sums(rng, experiments, n, [mu, pre_mu], cov)
    treatment = _bivariate_sums(rng, experiments, n, [mu * (1 + lift), pre_mu], cov)
    return _widths(control, treatment, lift)


# CUPED with several pre-exposure features, as a visitor's profile holds them: each correlates
# with the goal at rho 0.5, and they correlate with one another as such features do (revenue
# mostly comes from conversions; visits go with both; recency, a score where higher is more
# recent, least). Not tuned to the target: the combined R^2 follows from these numbers, and
# the harness prints it with the theoretical width factor sqrt(1 - R^2) beside the measured one.
CUPED_FEATURES = ("pre-period conversions", "pre-period revenue", "visits", "recency")
CUPED_FEATURE_RHO = (0.5, 0.5, 0.5, 0.5)
CUPED_FEATURE_CORRELATION = (
    (1.0, 0.7, 0.5, 0.3),
    (0.7, 1.0, 0.4, 0.25),
    (0.5, 0.4, 1.0, 0.4),
    (0.3, 0.25, 0.4, 1.0),
)
_FEATURE_MEANS = (2.0, 60.0, 8.0, 0.5)
_FEATURE_SDS = (1.5, 45.0, 4.0, 0.3)


def cuped_features_run(rng, experiments, n=5000, lift=0.02) -> dict:
    """The goal and the :data:`CUPED_FEATURES` as a multivariate normal; CUPED with all of
    them against no adjustment. Returns the narrowing, coverages, and the correlations: each
    feature's rho with the goal and the combined R^2, as set and as measured (pooled over the
    simulated visitors of the control arms)."""
    rho = np.asarray(CUPED_FEATURE_RHO)
    among = np.asarray(CUPED_FEATURE_CORRELATION)
    correlation = np.block([[np.ones((1, 1)), rho[None, :]], [rho[:, None], among]])
    sds = np.asarray((5.0, *_FEATURE_SDS))
    cov = correlation * np.outer(sds, sds)
    mean = np.asarray((10.0, *_FEATURE_MEANS))
    control = _multivariate_sums(rng, experiments, n, mean, cov)
    treatment = _multivariate_sums(rng, experiments, n, mean * np.r_[1 + lift, np.ones(4)], cov)
    narrower, cov_plain, cov_cuped = _widths(control, treatment, lift)
    r2 = float(rho @ np.linalg.solve(among, rho))
    # Measured: the sample correlation matrix of (goal, features), averaged over experiments.
    c = control.covariates
    total = np.concatenate([control.sum[:, None], c.sums], axis=1)
    d = total.shape[1]
    squares = np.empty((experiments, d, d))
    squares[:, 0, 0] = control.sum_squares
    squares[:, 0, 1:] = squares[:, 1:, 0] = c.cross
    squares[:, 1:, 1:] = c.products
    scatter = (squares - total[:, :, None] * total[:, None, :] / n) / (n - 1)
    scale = np.sqrt(np.diagonal(scatter, axis1=1, axis2=2))
    measured = (scatter / (scale[:, :, None] * scale[:, None, :])).mean(axis=0)
    measured_rho = measured[0, 1:]
    measured_r2 = float(measured_rho @ np.linalg.solve(measured[1:, 1:], measured_rho))
    return {
        "narrower": narrower,
        "coverage_plain": cov_plain,
        "coverage": cov_cuped,
        "features": list(CUPED_FEATURES),
        "rho": [float(r) for r in rho],
        "rho_measured": [float(r) for r in measured_rho],
        "r2": r2,
        "r2_measured": measured_r2,
        "width_factor_theory": float(np.sqrt(1 - r2)),
        "width_factor_measured": 1 - narrower,
        # How much the narrowing owes to the features' correlation with one another: the
        # theory if every pair correlated at r (the same rho with the goal).
        "narrower_if_pairs_at": {
            r: float(1 - np.sqrt(1 - len(rho) * 0.25 / (1 + (len(rho) - 1) * r)))
            for r in (0.3, 0.5, 0.7)
        },
    }


def cuped(scale: Scale, rng, report: Report):
    e = scale.cuped_experiments
    narrower, cov_plain, cov_cuped = cuped_run(rng, e, 0.5)
    variance_cut = 1 - (1 - narrower) ** 2
    narrower_07, _, cov_cuped_07 = cuped_run(rng, e, 0.7)
    several = cuped_features_run(rng, e)
    report.notes["cuped"] = several
    coverage = min(cov_plain, cov_cuped, cov_cuped_07, several["coverage"])
    k = len(several["features"])
    report.figures += [
        Figure(
            "cuped_variance",
            f"CUPED, rho 0.5 ({e:,} experiments): variance of the lift",
            variance_cut,
            f"-{_pct(variance_cut)}",
            f">= {_pct(scale.variance_reduction_target, 0)} smaller (theory 25%)",
            variance_cut >= scale.variance_reduction_target,
        ),
        Figure(
            "cuped_width_05",
            "CUPED, rho 0.5: 95% interval width",
            narrower,
            f"-{_pct(narrower)}",
            "theory -13.4% = 1-sqrt(1-rho^2)",
            abs(narrower - 0.134) <= 0.03,
        ),
        Figure(
            "cuped_width_07",
            "CUPED, rho 0.7: 95% interval width",
            narrower_07,
            f"-{_pct(narrower_07)}",
            f">= {_pct(scale.narrower_target, 0)} narrower (theory 28.6%)",
            narrower_07 >= scale.narrower_target,
        ),
        Figure(
            "cuped_features_width",
            f"CUPED, {k} pre-exposure features, rho "
            + "/".join(f"{r:.2f}" for r in several["rho_measured"])
            + f" each, R^2 {several['r2_measured']:.2f}: 95% interval width",
            several["narrower"],
            f"-{_pct(several['narrower'])}",
            f">= {_pct(scale.narrower_target, 0)} narrower",
            several["narrower"] >= scale.narrower_target,
            baseline=f"theory -{_pct(1 - several['width_factor_theory'])} = 1-sqrt(1-R^2)",
        ),
        Figure(
            "cuped_coverage",
            "CUPED: 95% intervals containing the true lift (worst of all runs)",
            coverage,
            _pct(coverage),
            f">= {_pct(scale.coverage_target, 0)}",
            coverage >= scale.coverage_target,
            baseline=f"{_pct(cov_plain)} without CUPED",
        ),
    ]


SCENARIOS = {
    "aa": aa_false_positives,
    "power": power_at_plan,
    "srm": srm,
    "bandit": bandits,
    "cuped": cuped,
}


def run(scale: Scale = FULL, *, seed: int = 2024, only=None) -> Report:
    """Run the scenarios (all, or those named in ``only``) at ``scale``."""
    report = Report(scale.name)
    for index, (name, scenario) in enumerate(SCENARIOS.items()):
        if only and name not in only:
            continue
        started = time.perf_counter()
        scenario(scale, np.random.default_rng([seed, index]), report)
        report.seconds[name] = time.perf_counter() - started
    return report
