"""Experiment statistics on sufficient statistics (pure: numpy and scipy, no Django).

The workers keep, per arm x goal (x segment), a :class:`SampleStats`: the number of visitors, the
sum and the sum of squares of the goal's value per visitor (for a conversion goal, the sum of 0/1
outcomes; its square is itself), and, for CUPED, the same of the visitor's pre-exposure covariate
plus the sum of their products, or of a vector of them (:class:`Covariates`). Everything here is
computed from those sums, so results never rescan the event log. The formulas are those of
GrowthBook's stats engine, ``gbstats`` 0.8.0 (MIT); ``tests/experiments/test_stats.py`` checks
them against fixtures ``gbstats`` produced
(``tests/experiments/fixtures/make_gbstats_fixtures.py``):

- relative lift ``(mean_t - mean_c) / mean_c`` with the delta-method variance
  ``var_t / (mean_c**2 n_t) + var_c mean_t**2 / (mean_c**4 n_c)``;
- frequentist: Welch's t-test on the lift (Welch-Satterthwaite degrees of freedom), or, by
  default, the always-valid confidence sequence of Waudby-Smith et al. (eq. 9 and 155 of
  arXiv:2103.06476v7) with gbstats' tuning parameter (the sample size at which the sequence is
  tightest; default 5000), so that an editor may look every day;
- Bayesian: a normal posterior on the lift (gbstats' default prior: improper flat; a proper
  normal prior on the relative effect optional), chance to win and risk (expected loss);
- CUPED: gbstats' ``RegressionAdjustedStatistic``, with ``theta`` the pooled covariance of the
  goal and the covariate over the pooled variance of the covariate; with several covariates
  (:class:`Covariates`: their sums, the sums of their products and of their products with the
  goal), the same regression adjustment with ``theta`` the pooled least-squares coefficients;
- sample-ratio mismatch (chi-square, as gbstats' ``check_srm``), Holm-Bonferroni and
  Benjamini-Hochberg adjusted p-values, and the sample needed per arm to detect a minimum
  effect.

The ``*_arrays`` functions take :class:`SampleStats` whose fields are numpy arrays (one
shape) and compute everything element-wise; the simulation harness uses them to analyse
thousands of experiments at once. The scalar functions call them.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_SEQUENTIAL_TUNING",
    "SRM_THRESHOLD",
    "Analysis",
    "Comparison",
    "Covariates",
    "SampleStats",
    "bayesian",
    "benjamini_hochberg",
    "compare_arrays",
    "frequentist",
    "frequentist_arrays",
    "holm",
    "independent_covariates",
    "power",
    "required_sample_per_arm",
    "sequential_halfwidth",
    "srm_p_value",
    "srm_p_value_periods",
    "srm_p_values",
]

DEFAULT_ALPHA = 0.05
DEFAULT_SEQUENTIAL_TUNING = 5000  # gbstats' sequential_tuning_parameter
SRM_THRESHOLD = 0.001  # a split is flagged as mismatched below this p-value

# gbstats' error messages for an analysis it cannot perform (the app shows "not enough data").
BASELINE_ZERO = "ZERO_NEGATIVE_BASELINE_VARIATION"
ZERO_VARIANCE = "ZERO_NEGATIVE_VARIANCE"
NO_UNITS = "NO_UNITS_IN_VARIATION"
_ERRORS = (None, BASELINE_ZERO, ZERO_VARIANCE, NO_UNITS)


@dataclass(frozen=True, slots=True)
class Covariates:
    """Sufficient statistics of a vector of ``k`` pre-exposure covariates ``x`` (CUPED with
    several covariates: regression adjustment): ``sums`` of ``x`` (shape ``(..., k)``),
    ``products``, the sums of ``x x^T`` (``(..., k, k)``), and ``cross``, the sums of the goal's
    value times ``x`` (``(..., k)``). Leading dimensions, if any, are those of the
    :class:`SampleStats` arrays they go with. Kept incrementally like the other sums (adding
    a visitor adds their ``x``, ``x x^T`` and ``y x``)."""

    sums: Any
    products: Any
    cross: Any

    def __post_init__(self):
        sums, products, cross = (np.asarray(a, dtype=float) for a in self)
        k = sums.shape[-1] if sums.ndim else 0
        if k < 1 or products.shape[-2:] != (k, k) or cross.shape[-1:] != (k,):
            raise ValueError("Covariates: sums (..., k), products (..., k, k), cross (..., k)")
        if not (np.isfinite(sums).all() and np.isfinite(products).all()):
            raise ValueError("Covariates must be finite")
        if not np.isfinite(cross).all():
            raise ValueError("Covariates must be finite")
        for name, value in zip(self.__slots__, (sums, products, cross), strict=True):
            object.__setattr__(self, name, value)

    def __iter__(self):
        return iter((self.sums, self.products, self.cross))

    @classmethod
    def of(cls, values, pre_values) -> "Covariates":
        """The statistics of individual goal values and their covariate rows (n x k)."""
        y = np.asarray(values, dtype=float)
        x = np.asarray(pre_values, dtype=float).reshape(len(y), -1)
        return cls(x.sum(axis=0), x.T @ x, x.T @ y)

    def __add__(self, other: "Covariates") -> "Covariates":
        return Covariates(
            self.sums + other.sums, self.products + other.products, self.cross + other.cross
        )

    def scaled(self, factor: float) -> "Covariates":
        return Covariates(self.sums * factor, self.products * factor, self.cross * factor)

    def take(self, indices: Sequence[int]) -> "Covariates":
        """The statistics of these covariates only (in this order)."""
        i = list(indices)
        return Covariates(
            self.sums[..., i], self.products[..., i, :][..., :, i], self.cross[..., i]
        )


@dataclass(frozen=True, slots=True)
class SampleStats:
    """Sufficient statistics of one arm x goal cell.

    ``n`` visitors; ``sum`` and ``sum_squares`` of the goal's value per visitor; for CUPED,
    ``pre_sum`` and ``pre_sum_squares`` of the pre-exposure covariate and ``cross_sum``, the sum
    of goal x covariate, or, for CUPED with several covariates, ``covariates``
    (:class:`Covariates`; used instead of the single covariate when both cells have them).
    Fields may be numpy arrays of one shape (for the ``*_arrays`` functions); scalar fields are
    checked. ``n`` may be fractional after discounting.
    """

    n: float
    sum: float
    sum_squares: float
    pre_sum: float = 0
    pre_sum_squares: float = 0
    cross_sum: float = 0
    covariates: Covariates | None = None

    def __post_init__(self):
        if isinstance(self.n, np.ndarray):
            return
        for name in ("n", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"SampleStats.{name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"SampleStats.{name} must be finite, not {value!r}")
        if self.n < 0 or self.sum_squares < 0 or self.pre_sum_squares < 0:
            raise ValueError("SampleStats: n and the sums of squares cannot be negative")

    @classmethod
    def of(cls, values, pre_values=None, *, covariates=None) -> "SampleStats":
        """The statistics of individual values (and their covariate, or their rows of
        ``covariates``, n x k), e.g. for tests."""
        x = np.asarray(values, dtype=float)
        if covariates is not None:
            return cls(
                len(x),
                float(x.sum()),
                float((x * x).sum()),
                covariates=Covariates.of(x, covariates),
            )
        if pre_values is None:
            return cls(len(x), float(x.sum()), float((x * x).sum()))
        y = np.asarray(pre_values, dtype=float)
        return cls(
            len(x),
            float(x.sum()),
            float((x * x).sum()),
            float(y.sum()),
            float((y * y).sum()),
            float((x * y).sum()),
        )

    def __add__(self, other: "SampleStats") -> "SampleStats":
        return SampleStats(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            self.pre_sum + other.pre_sum,
            self.pre_sum_squares + other.pre_sum_squares,
            self.cross_sum + other.cross_sum,
            None
            if self.covariates is None or other.covariates is None
            else self.covariates + other.covariates,
        )

    def scaled(self, factor: float) -> "SampleStats":
        """Every sum times ``factor`` (exponential discounting of old data)."""
        return SampleStats(
            self.n * factor,
            self.sum * factor,
            self.sum_squares * factor,
            self.pre_sum * factor,
            self.pre_sum_squares * factor,
            self.cross_sum * factor,
            None if self.covariates is None else self.covariates.scaled(factor),
        )

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0


@dataclass(frozen=True, slots=True)
class Analysis:
    """Treatment against control on one goal.

    ``lift`` is relative (0.1 = +10%), with its interval ``[ci_low, ci_high]`` (a confidence
    interval, an always-valid confidence sequence, or a Bayesian credible interval).
    ``p_value`` is set by :func:`frequentist`, ``chance_to_win`` by :func:`bayesian`; ``risk``
    is the expected relative loss of shipping the treatment (``risk_control``: of keeping the
    control). When the data cannot support an analysis (no visitors, a zero control mean, no
    variance) ``error`` says why, the interval is ``None``, the p-value 1 and the chance to win
    0.5, as in gbstats; ``lift`` is then the raw relative difference (0 for a zero control).
    """

    lift: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    chance_to_win: float | None
    risk: float | None
    control_mean: float
    treatment_mean: float
    n_control: float
    n_treatment: float
    lift_stddev: float = 0.0
    risk_control: float | None = None
    method: str = "sequential"
    cuped_theta: float | tuple[float, ...] | None = None  # one per covariate when several
    error: str | None = None

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (frequentist) -- the verdict an editor sees."""
        return (
            self.error is None and self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)
        )


class Comparison(NamedTuple):
    """Element-wise results of :func:`compare_arrays` (numpy arrays of the inputs' shape)."""

    lift: Any
    variance: Any  # of the lift estimate
    dof: Any
    control_mean: Any  # unadjusted
    treatment_mean: Any
    adjusted_diff: Any  # treatment - control, CUPED-adjusted when used
    n_control: Any
    n_treatment: Any
    theta: Any  # CUPED's theta (0 when not used; shape (..., k) with several covariates)
    error: Any  # index into _ERRORS (0: none)


def _as_arrays(s: SampleStats):
    return tuple(
        np.asarray(getattr(s, f), dtype=float)
        for f in ("n", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum")
    )


def _mean(n, total):
    return np.where(n > 0, total / np.where(n > 0, n, 1), 0.0)


def _variance(n, total, squares, proportion):
    if proportion:
        m = _mean(n, total)
        return m * (1 - m)
    safe = np.where(n > 1, n, 2)
    return np.where(n > 1, (squares - total**2 / safe) / (safe - 1), 0.0)


def _covariance(n, a, b, products):
    safe = np.where(n > 1, n, 2)
    return np.where(n > 1, (products - a * b / safe) / (safe - 1), 0.0)


def _covariance_matrix(n, sums, products):
    """Sample covariance matrices (..., k, k) from sums (..., k) and sums of products."""
    enough = np.asarray(n > 1)[..., None, None]
    safe = np.asarray(np.where(n > 1, n, 2))[..., None, None]
    outer = sums[..., :, None] * sums[..., None, :]
    return np.where(enough, (products - outer / safe) / (safe - 1), 0.0)


def _cross_covariance(n, sums, total, cross):
    """Sample covariances (..., k) of each covariate with the goal."""
    enough = np.asarray(n > 1)[..., None]
    safe = np.asarray(np.where(n > 1, n, 2))[..., None]
    return np.where(enough, (cross - sums * np.asarray(total)[..., None] / safe) / (safe - 1), 0.0)


def _regression_adjusted(control, treatment, var_a, var_b, proportion):
    """CUPED with a vector of covariates (regression adjustment): ``theta`` solves the pooled
    (both arms) normal equations ``S_xx theta = S_xy`` (a pseudo-inverse: a covariate without
    variance, or one that repeats another, gets no weight), each arm's mean is adjusted by
    ``theta . mean(x)`` and its variance becomes ``var(y) + theta' S_xx theta - 2 theta' S_xy``
    with that arm's own (co)variances. With one covariate this is exactly the single-covariate
    formula above (gbstats' RegressionAdjustedStatistic)."""
    (na, sa, qa, ca), (nb, sb, qb, cb) = control, treatment
    n = na + nb
    joint_post = _variance(n, sa + sb, qa + qb, proportion)
    joint_xx = _covariance_matrix(n, ca.sums + cb.sums, ca.products + cb.products)
    joint_xy = _cross_covariance(n, ca.sums + cb.sums, sa + sb, ca.cross + cb.cross)
    theta = (np.linalg.pinv(joint_xx) @ joint_xy[..., None])[..., 0]
    usable = (joint_post != 0) & np.any(np.diagonal(joint_xx, axis1=-2, axis2=-1) != 0, axis=-1)
    theta = np.where(np.asarray(usable)[..., None], theta, 0.0)
    means, variances = [], []
    for (n_arm, s_arm, _q, c_arm), var in ((control, var_a), (treatment, var_b)):
        xx = _covariance_matrix(n_arm, c_arm.sums, c_arm.products)
        xy = _cross_covariance(n_arm, c_arm.sums, s_arm, c_arm.cross)
        pre_mean = c_arm.sums / np.asarray(np.where(n_arm > 0, n_arm, 1))[..., None]
        means.append(_mean(n_arm, s_arm) - np.sum(theta * pre_mean, axis=-1))
        adjusted = (
            var
            + np.einsum("...i,...ij,...j->...", theta, xx, theta)
            - 2 * np.sum(theta * xy, axis=-1)
        )
        variances.append(np.where(usable, np.where(n_arm > 1, adjusted, 0.0), var))
    return theta, means[0], means[1], variances[0], variances[1]


def compare_arrays(
    control: SampleStats,
    treatment: SampleStats,
    *,
    proportion: bool = False,
    cuped: bool = False,
    covariate_proportion: bool = False,
) -> Comparison:
    """Lift, its delta-method variance and Welch's degrees of freedom, element-wise."""
    na, sa, qa, pa, pqa, xa = _as_arrays(control)
    nb, sb, qb, pb, pqb, xb = _as_arrays(treatment)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        umean_a, umean_b = _mean(na, sa), _mean(nb, sb)
        var_a = _variance(na, sa, qa, proportion)
        var_b = _variance(nb, sb, qb, proportion)
        mean_a, mean_b = umean_a, umean_b
        theta = np.zeros(np.broadcast(na, nb).shape)
        several = cuped and control.covariates is not None and treatment.covariates is not None
        if several:
            theta, mean_a, mean_b, var_a, var_b = _regression_adjusted(
                (na, sa, qa, control.covariates),
                (nb, sb, qb, treatment.covariates),
                var_a,
                var_b,
                proportion,
            )
        elif cuped:
            # gbstats' compute_theta: pooled covariance / pooled covariate variance; 0 (no
            # adjustment) when either pooled variance is exactly 0.
            n = na + nb
            joint_post = _variance(n, sa + sb, qa + qb, proportion)
            joint_pre = _variance(n, pa + pb, pqa + pqb, covariate_proportion)
            joint_cov = _covariance(n, sa + sb, pa + pb, xa + xb)
            usable = (joint_pre != 0) & (joint_post != 0)
            theta = np.where(usable, joint_cov / np.where(usable, joint_pre, 1), 0.0)
            pre_mean_a, pre_mean_b = _mean(na, pa), _mean(nb, pb)
            mean_a = umean_a - theta * pre_mean_a
            mean_b = umean_b - theta * pre_mean_b
            ra_var_a = (
                var_a
                + theta**2 * _variance(na, pa, pqa, covariate_proportion)
                - 2 * theta * _covariance(na, sa, pa, xa)
            )
            ra_var_b = (
                var_b
                + theta**2 * _variance(nb, pb, pqb, covariate_proportion)
                - 2 * theta * _covariance(nb, sb, pb, xb)
            )
            # RegressionAdjustedStatistic.variance is 0 for n <= 1
            var_a = np.where(usable, np.where(na > 1, ra_var_a, 0.0), var_a)
            var_b = np.where(usable, np.where(nb > 1, ra_var_b, 0.0), var_b)
        diff = mean_b - mean_a
        safe_umean_a = np.where(umean_a != 0, umean_a, 1)
        lift = diff / safe_umean_a
        safe_na, safe_nb = np.where(na > 0, na, 1), np.where(nb > 0, nb, 1)
        variance = var_b / (safe_umean_a**2 * safe_nb) + var_a * umean_b**2 / (
            safe_umean_a**4 * safe_na
        )
        dof = (var_b / safe_nb + var_a / safe_na) ** 2 / (
            var_b**2 / (safe_nb**2 * np.where(nb > 1, nb - 1, 1))
            + var_a**2 / (safe_na**2 * np.where(na > 1, na - 1, 1))
        )
    error = np.where(
        (mean_a == 0) | (umean_a == 0),
        1,
        np.where((var_a <= 0) | (var_b <= 0), 2, 0),
    )
    raw_lift = np.where(umean_a > 0, lift, 0.0)
    lift = np.where(error == 0, lift, raw_lift)
    return Comparison(lift, variance, dof, umean_a, umean_b, diff, na, nb, theta, error.astype(int))


def independent_covariates(
    control: SampleStats, treatment: SampleStats, *, tolerance: float = 1e-8
) -> tuple[int, ...]:
    """The covariates (indices into both cells' :class:`Covariates`, scalar cells) that a
    regression adjustment of these two cells can use: in order, each that varies within each
    cell and that the ones chosen before it do not repeat (linearly), within each cell and over
    both together. Each cell's covariance matrix of the chosen ones, and their pooled one, is
    then invertible and ``theta`` well defined.

    A covariate constant in a cell (all its visitors at one value: 0 for visitors enrolled
    before it was kept, say), or a copy or combination of others, makes a matrix singular.
    :func:`compare_arrays`' pseudo-inverse gives such a covariate no weight only where the
    pooled matrix is exactly singular, and sums of floats rarely are (a constant's variance
    comes out as rounding noise); worse, a covariate constant in each cell at different values
    is, to the regression, the arm itself, and adjusting for it removes the effect being
    measured. So it is left out here. ``tolerance`` is relative: to the covariate's mean square
    for its variance, to its variance for the part the chosen ones leave unexplained. Empty
    when either cell has no covariates or fewer than two visitors."""
    a, b = control.covariates, treatment.covariates
    if a is None or b is None or a.sums.ndim != 1:
        return ()
    groups = [
        (float(control.n), a.sums, a.products),
        (float(treatment.n), b.sums, b.products),
        (float(control.n) + float(treatment.n), a.sums + b.sums, a.products + b.products),
    ]
    if min(n for n, _s, _p in groups) < 2:
        return ()
    matrices = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for n, sums, products in groups:
            covariance = (products - np.outer(sums, sums) / n) / (n - 1)
            if not np.isfinite(covariance).all():
                return ()
            matrices.append((covariance, np.diagonal(products) / n))
    chosen: list[int] = []
    for i in range(len(a.sums)):
        if all(_independent(m, square, chosen, i, tolerance) for m, square in matrices):
            chosen.append(i)
    return tuple(chosen)


def _independent(covariance, mean_square, chosen, i, tolerance) -> bool:
    """Covariate ``i`` varies and the ``chosen`` ones do not explain it (nearly) all."""
    variance = covariance[i, i]
    if not variance > tolerance * mean_square[i]:
        return False
    if not chosen:
        return True
    between = covariance[chosen, i]
    explained = between @ np.linalg.solve(covariance[np.ix_(chosen, chosen)], between)
    return bool(variance - explained > tolerance * variance)


def _sequential_rho(alpha, tuning):
    # eq. 161 of arXiv:2103.06476v7, as gbstats
    return np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning)


def sequential_halfwidth(
    variance, n_total, *, alpha=DEFAULT_ALPHA, tuning=DEFAULT_SEQUENTIAL_TUNING
):
    """Half-width of the always-valid confidence sequence (eq. 9 of arXiv:2103.06476v7) for a
    lift estimate of ``variance`` after ``n_total`` visitors in both arms."""
    rho2 = _sequential_rho(alpha, tuning) ** 2
    n_total = np.asarray(n_total, dtype=float)
    s2 = variance * n_total
    return np.sqrt(s2) * np.sqrt(
        2 * (n_total * rho2 + 1) * np.log(np.sqrt(n_total * rho2 + 1) / alpha) / (n_total**2 * rho2)
    )


def frequentist_arrays(
    control: SampleStats,
    treatment: SampleStats,
    *,
    proportion: bool = False,
    alpha: float = DEFAULT_ALPHA,
    sequential: bool = True,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
    cuped: bool = False,
    covariate_proportion: bool = False,
):
    """``(comparison, ci_low, ci_high, p_value)`` element-wise (NaN interval where
    ``comparison.error`` is set, p-value 1 there)."""
    c = compare_arrays(
        control,
        treatment,
        proportion=proportion,
        cuped=cuped,
        covariate_proportion=covariate_proportion,
    )
    ok = c.error == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        variance = np.where(ok, c.variance, 1.0)
        se = np.sqrt(variance)
        if sequential:
            n_total = c.n_control + c.n_treatment
            width = sequential_halfwidth(variance, n_total, alpha=alpha, tuning=sequential_tuning)
            rho2 = _sequential_rho(alpha, sequential_tuning) ** 2
            st2 = c.lift**2 * n_total / variance
            tr2p1 = n_total * rho2 + 1
            # 1 / e-value, as gbstats' SequentialTwoSidedTTest.p_value
            p = np.minimum(np.sqrt(tr2p1) * np.exp(-rho2 * st2 / (2 * tr2p1)), 1.0)
        else:
            dof = np.where(ok, c.dof, 1.0)
            width = sps.t.ppf(1 - alpha / 2, dof) * se
            p = 2 * sps.t.sf(np.abs(c.lift / se), dof)
    ci_low = np.where(ok, c.lift - width, np.nan)
    ci_high = np.where(ok, c.lift + width, np.nan)
    return c, ci_low, ci_high, np.where(ok, p, 1.0)


def _scalar(x) -> float:
    return float(np.asarray(x))


def _theta(x) -> float | tuple[float, ...]:
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else tuple(float(v) for v in x)


def _optional(x) -> float | None:
    v = float(np.asarray(x))
    return None if math.isnan(v) else v


def frequentist(
    control: SampleStats,
    treatment: SampleStats,
    *,
    proportion: bool = False,
    alpha: float = DEFAULT_ALPHA,
    sequential: bool = True,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
    cuped: bool = False,
    covariate_proportion: bool = False,
) -> Analysis:
    """Welch's t-test on the relative lift, or (``sequential``, the default) gbstats'
    always-valid confidence sequence. ``proportion``: a conversion goal (variance p(1-p))."""
    _check_alpha(alpha)
    if sequential_tuning <= 0:
        raise ValueError("sequential_tuning must be positive")
    c, low, high, p = frequentist_arrays(
        control,
        treatment,
        proportion=proportion,
        alpha=alpha,
        sequential=sequential,
        sequential_tuning=sequential_tuning,
        cuped=cuped,
        covariate_proportion=covariate_proportion,
    )
    error = _ERRORS[int(c.error)]
    return Analysis(
        lift=_scalar(c.lift),
        ci_low=_optional(low),
        ci_high=_optional(high),
        p_value=_scalar(p),
        chance_to_win=None,
        risk=None,
        control_mean=_scalar(c.control_mean),
        treatment_mean=_scalar(c.treatment_mean),
        n_control=_scalar(c.n_control),
        n_treatment=_scalar(c.n_treatment),
        lift_stddev=0.0 if error else math.sqrt(_scalar(c.variance)),
        method="sequential" if sequential else "fixed",
        cuped_theta=_theta(c.theta) if cuped else None,
        error=error,
    )


def _risks(mu, sigma):
    """gbstats' get_risk in closed form: the expected loss of keeping the control
    (``E[max(d, 0)]``) and of shipping the treatment (``E[max(-d, 0)]``), d ~ N(mu, sigma)."""
    z = mu / sigma
    density = sigma * sps.norm.pdf(z)
    return mu * sps.norm.cdf(z) + density, density - mu * sps.norm.cdf(-z)


def bayesian(
    control: SampleStats,
    treatment: SampleStats,
    *,
    proportion: bool = False,
    cuped: bool = False,
    covariate_proportion: bool = False,
    inverse: bool = False,
    prior_mean: float = 0.0,
    prior_stddev: float = 0.1,
    proper_prior: bool = False,
    alpha: float = DEFAULT_ALPHA,
) -> Analysis:
    """gbstats' EffectBayesianABTest on the relative lift: chance to win, risk and a credible
    interval. The default prior is gbstats' default: improper (flat), so the posterior is
    ``N(lift, lift_variance)``; ``proper_prior`` uses ``N(prior_mean, prior_stddev**2)`` on
    the relative effect. ``inverse``: lower is better (e.g. a bounce guardrail)."""
    _check_alpha(alpha)
    c = compare_arrays(
        control,
        treatment,
        proportion=proportion,
        cuped=cuped,
        covariate_proportion=covariate_proportion,
    )
    code = int(c.error)
    if code != 1 and (float(c.n_control) == 0 or float(c.n_treatment) == 0):
        code = 3  # gbstats checks empty arms after the zero baseline, before the variance
    base = {
        "control_mean": _scalar(c.control_mean),
        "treatment_mean": _scalar(c.treatment_mean),
        "n_control": _scalar(c.n_control),
        "n_treatment": _scalar(c.n_treatment),
        "method": "bayesian",
        "cuped_theta": _theta(c.theta) if cuped else None,
        "p_value": None,
    }
    if code:
        return Analysis(
            lift=_scalar(c.lift),
            ci_low=None,
            ci_high=None,
            chance_to_win=0.5,
            risk=0.0,
            risk_control=0.0,
            error=_ERRORS[code],
            **base,
        )
    data_mean, data_variance = _scalar(c.lift), _scalar(c.variance)
    if proper_prior:
        prior_variance = prior_stddev**2
        precision = 1 / data_variance + 1 / prior_variance
        mean = (data_mean / data_variance + prior_mean / prior_variance) / precision
    else:
        precision = 1 / data_variance
        mean = data_mean
    sd = math.sqrt(1 / precision)
    chance = float(sps.norm.sf(0, mean, sd))
    if inverse:
        chance = 1 - chance
    low, high = sps.norm.ppf([alpha / 2, 1 - alpha / 2], mean, sd)
    risk_control, risk_treatment = (float(r) for r in _risks(mean, sd))
    if inverse:
        risk_control, risk_treatment = risk_treatment, risk_control
    return Analysis(
        lift=mean,
        ci_low=float(low),
        ci_high=float(high),
        chance_to_win=chance,
        risk=risk_treatment,
        risk_control=risk_control,
        lift_stddev=sd,
        **base,
    )


def _check_alpha(alpha):
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")


def srm_p_value(counts: Sequence[float], weights: Sequence[float]) -> float:
    """Chi-square p-value of the observed visitors per arm against the planned weights (gbstats'
    ``check_srm``: arms with a weight <= 0 are skipped; degrees of freedom = arms - 1). Flag a
    sample-ratio mismatch when it is below :data:`SRM_THRESHOLD`."""
    if len(counts) != len(weights):
        raise ValueError("srm_p_value needs one weight per arm")
    if len(counts) < 2:
        return 1.0
    total = sum(counts)
    if not total:
        return 1.0
    total_weight = sum(weights)
    statistic = 0.0
    for observed, weight in zip(counts, weights, strict=True):
        if weight <= 0:
            continue
        expected = weight / total_weight * total
        statistic += (observed - expected) ** 2 / expected
    return float(sps.chi2.sf(statistic, len(counts) - 1))


def srm_p_value_periods(
    counts: Sequence[float], periods: Sequence[tuple[float, Sequence[float]]]
) -> float:
    """:func:`srm_p_value` when the planned split changed while visitors were enrolled
    (assignment is sticky, so each visitor stays in the arm of the split they came under):
    ``periods`` are ``(visitors enrolled in the period, the weights then)``, and arm *i*
    expects ``sum over periods of visitors x w_i / sum(w)`` (GrowthBook's bandit SRM). Pearson's
    chi-square of ``counts`` against those, arms expecting no one skipped, ``arms - 1``
    degrees of freedom. With one period it is :func:`srm_p_value`."""
    arms = len(counts)
    if arms < 2:
        return 1.0
    expected = [0.0] * arms
    for visitors, weights in periods:
        if len(weights) != arms:
            raise ValueError("srm_p_value_periods needs one weight per arm in every period")
        total_weight = sum(w for w in weights if w > 0)
        if visitors <= 0 or total_weight <= 0:
            continue
        for i, weight in enumerate(weights):
            if weight > 0:
                expected[i] += visitors * weight / total_weight
    if not sum(counts) or not sum(expected):
        return 1.0
    statistic = sum(
        (observed - e) ** 2 / e for observed, e in zip(counts, expected, strict=True) if e > 0
    )
    return float(sps.chi2.sf(statistic, arms - 1))


def srm_p_values(counts, weights):
    """:func:`srm_p_value` for many experiments at once: ``counts`` of shape (..., arms)."""
    counts = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    keep = w > 0
    expected = np.where(keep, w / w.sum(), 1) * total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(keep, (counts - expected) ** 2 / expected, 0.0)
    statistic = terms.sum(axis=-1)
    return np.where(total[..., 0] > 0, sps.chi2.sf(statistic, counts.shape[-1] - 1), 1.0)


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be a flat sequence of numbers in [0, 1]")
    return p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order (reject where <= alpha).

    The i-th smallest p-value (1-based) is multiplied by ``m - i + 1``, made non-decreasing
    along the sorted order, and capped at 1; controls the family-wise error rate.
    """
    p = _pvalues(pvalues)
    m = len(p)
    if not m:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    result = np.empty(m)
    result[order] = adjusted
    return result.tolist()


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input's order; controls the false
    discovery rate. scipy's ``false_discovery_control``."""
    p = _pvalues(pvalues)
    if not len(p):
        return []
    return np.asarray(sps.false_discovery_control(p, method="bh")).tolist()


def _relative_se(baseline_mean, mde, variance_control, variance_treatment, n):
    mean_t = baseline_mean * (1 + mde)
    return np.sqrt(
        variance_treatment / (baseline_mean**2 * n)
        + variance_control * mean_t**2 / (baseline_mean**4 * n)
    )


def _arm_variances(baseline_mean, mde, stddev):
    if stddev is None:  # a conversion rate
        p_t = baseline_mean * (1 + mde)
        if not (0 < baseline_mean < 1 and 0 < p_t < 1):
            raise ValueError("a conversion rate and its lifted value must lie in (0, 1)")
        return baseline_mean * (1 - baseline_mean), p_t * (1 - p_t)
    if stddev <= 0:
        raise ValueError("stddev must be positive")
    return stddev**2, stddev**2


def power(
    n_per_arm: float,
    baseline_mean: float,
    mde: float,
    *,
    stddev: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    sequential: bool = True,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
) -> float:
    """Probability that the (two-sided) analysis detects a true relative lift ``mde`` with
    ``n_per_arm`` visitors in each of two arms (normal approximation). ``stddev`` None: a
    conversion goal with rate ``baseline_mean``; else a mean goal with that standard deviation
    per visitor in both arms."""
    _check_alpha(alpha)
    if baseline_mean == 0 or mde == 0:
        raise ValueError("baseline_mean and mde must be non-zero")
    var_c, var_t = _arm_variances(baseline_mean, mde, stddev)
    se = _relative_se(baseline_mean, mde, var_c, var_t, n_per_arm)
    if sequential:
        width = sequential_halfwidth(
            se**2, 2 * np.asarray(n_per_arm, float), alpha=alpha, tuning=sequential_tuning
        )
    else:
        width = sps.norm.ppf(1 - alpha / 2) * se
    effect = abs(mde)
    return float(sps.norm.cdf((effect - width) / se) + sps.norm.cdf((-effect - width) / se))


def required_sample_per_arm(
    baseline_mean: float,
    mde: float,
    *,
    stddev: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    power_target: float = 0.8,
    sequential: bool = True,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
) -> int:
    """Visitors needed per arm for :func:`power` to reach ``power_target`` at a true relative
    lift ``mde`` (e.g. 0.1), for the analysis that will be run: with sequential testing (the
    default) the always-valid interval is wider than a fixed-horizon one, so the plan is larger.
    """
    if not 0 < power_target < 1:
        raise ValueError("power_target must be between 0 and 1")

    def enough(n):
        return (
            power(
                n,
                baseline_mean,
                mde,
                stddev=stddev,
                alpha=alpha,
                sequential=sequential,
                sequential_tuning=sequential_tuning,
            )
            >= power_target
        )

    high = 2
    while not enough(high):
        high *= 2
        if high > 10**13:
            raise ValueError("the effect is too small to detect with any practical sample")
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high
