"""Multi-armed bandits on sufficient statistics (pure: numpy, no Django).

A bandit experiment re-weights its arms periodically (a Celery beat job; never per request)
with Thompson sampling: each arm's weight is the posterior probability that it is the best
arm, estimated by Monte Carlo from a seeded numpy Generator. Conversion goals use a
Beta(1 + conversions, 1 + visitors - conversions) posterior (uniform prior); mean goals a normal
posterior on the mean, N(mean, variance / n).

- ``floor``: every arm keeps at least this weight (default 1%), so a bad early run never
  starves an arm and the logged propensities stay away from 0 (inverse propensity weighting
  needs that).
- ``min_visitors``: until every arm has had this many visitors (default 100), weights stay
  equal.
- Discounting, for goals that drift: before adding a period's statistics, multiply the
  running statistics by a factor (``discounted``); old data then counts less and less.

Assignment stays sticky across reweightings (the app keeps each visitor's arm); the weights
only move where new visitors go. With each exposure the app records the probability the
visitor had of getting their arm, so that any other policy can be evaluated offline from the
logs with :func:`ipw_estimate`.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stats import SampleStats

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_FLOOR",
    "DEFAULT_MIN_VISITORS",
    "IPWEstimate",
    "apply_floor",
    "best_arm_probabilities",
    "discounted",
    "ipw_estimate",
    "thompson_weights",
]

DEFAULT_FLOOR = 0.01
DEFAULT_MIN_VISITORS = 100
DEFAULT_DRAWS = 10_000
KINDS = ("binomial", "gaussian")


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def best_arm_probabilities(
    n,
    total,
    sum_squares=None,
    *,
    kind: str = "binomial",
    draws: int = DEFAULT_DRAWS,
    rng=None,
) -> np.ndarray:
    """Posterior probability that each arm is the best, by Monte Carlo.

    ``n``, ``total`` (and for ``gaussian`` ``sum_squares``) are arrays of shape
    ``(..., arms)``; leading dimensions are independent bandits (the simulation runs many
    seeds at once). Returns an array of the same shape whose last axis sums to 1.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if draws < 1:
        raise ValueError("draws must be positive")
    gen = _generator(rng)
    n = np.asarray(n, dtype=float)
    total = np.asarray(total, dtype=float)
    shape = np.broadcast_shapes(n.shape, total.shape)
    arms = shape[-1]
    sample_shape = (*shape[:-1], draws, arms)
    if kind == "binomial":
        a = np.broadcast_to((1 + total)[..., None, :], sample_shape)
        b = np.broadcast_to((1 + n - total)[..., None, :], sample_shape)
        samples = gen.beta(a, b)
    else:
        if sum_squares is None:
            raise ValueError("a gaussian bandit needs the sums of squares")
        squares = np.asarray(sum_squares, dtype=float)
        safe_n = np.where(n > 0, n, 1)
        mean = np.where(n > 0, total / safe_n, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.where(n > 1, (squares - total**2 / safe_n) / (safe_n - 1), 0.0)
        # an arm with no spread yet gets the widest spread seen, so it is still explored
        widest = np.max(np.where(variance > 0, variance, 0), axis=-1, keepdims=True)
        variance = np.where(variance > 0, variance, np.where(widest > 0, widest, 1.0))
        sd = np.sqrt(variance / safe_n)
        samples = gen.normal(mean[..., None, :], sd[..., None, :], size=sample_shape)
    winners = samples.argmax(axis=-1)
    counts = (winners[..., None] == np.arange(arms)).sum(axis=-2)
    return counts / draws


def apply_floor(probabilities, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """``floor + (1 - arms * floor) * p``: every arm at least ``floor``, still summing to 1."""
    p = np.asarray(probabilities, dtype=float)
    arms = p.shape[-1]
    if not 0 <= floor * arms <= 1:
        raise ValueError("floor x arms must lie between 0 and 1")
    return floor + (1 - arms * floor) * p


def thompson_weights(
    arms: Sequence[SampleStats],
    *,
    kind: str = "binomial",
    floor: float = DEFAULT_FLOOR,
    min_visitors: float = DEFAULT_MIN_VISITORS,
    visitors: Sequence[float] | None = None,
    draws: int = DEFAULT_DRAWS,
    rng=None,
) -> list[float]:
    """The weights of the next period for a bandit whose arms have these statistics.

    ``visitors``: how many visitors each arm has had in all (for ``min_visitors``); defaults to
    ``arm.n``, which is smaller than that once the statistics are discounted. ``rng``: a seed
    or a numpy Generator (seed it, so that a rerun of the job gives the same weights).
    """
    if len(arms) < 2:
        raise ValueError("a bandit needs at least two arms")
    seen = [a.n for a in arms] if visitors is None else list(visitors)
    if len(seen) != len(arms):
        raise ValueError("visitors needs one count per arm")
    if min(seen) < min_visitors:
        return [1 / len(arms)] * len(arms)
    n = np.array([a.n for a in arms], dtype=float)
    total = np.array([a.sum for a in arms], dtype=float)
    if kind == "binomial" and ((total < 0).any() or (total > n).any()):
        raise ValueError("a conversion goal's sum must lie between 0 and n")
    p = best_arm_probabilities(
        n,
        total,
        np.array([a.sum_squares for a in arms], dtype=float),
        kind=kind,
        draws=draws,
        rng=rng,
    )
    return apply_floor(p, floor).tolist()


def discounted(
    running: Sequence[SampleStats], period: Sequence[SampleStats], factor: float
) -> list[SampleStats]:
    """The running statistics after one more period: old data times ``factor`` (0 < f <= 1;
    1 is no discounting), plus the new period's."""
    if not 0 < factor <= 1:
        raise ValueError("the discount factor must lie in (0, 1]")
    if len(running) != len(period):
        raise ValueError("one statistic per arm in both")
    return [old.scaled(factor) + new for old, new in zip(running, period, strict=True)]


@dataclass(frozen=True, slots=True)
class IPWEstimate:
    """The estimated mean reward per visitor of a policy, with its standard error."""

    value: float
    stderr: float
    n: int
    effective_sample_size: float  # (sum w)^2 / sum w^2: how many exposures it is worth


def ipw_estimate(
    arms: Sequence[int],
    probabilities: Sequence[float],
    rewards: Sequence[float],
    policy: Sequence[float] | None = None,
    *,
    target_probabilities: Sequence[float] | None = None,
    self_normalised: bool = False,
) -> IPWEstimate:
    """Value of a target policy from logged exposures (inverse propensity weighting).

    Each exposure is the arm shown, the probability the logging policy had of showing it
    (recorded at assignment), and the reward seen. The target policy is either ``policy``, one
    weight per arm (the same for every visitor), or ``target_probabilities``, the target's
    probability of the logged arm for each exposure (a contextual policy).

    IPW: ``mean(w * r)`` with ``w = target / logged``, unbiased when every arm the target may
    choose had a positive logged probability. Self-normalised: ``sum(w * r) / sum(w)``, a little
    biased but with much smaller variance when weights are large.
    """
    a = np.asarray(arms)
    p = np.asarray(probabilities, dtype=float)
    r = np.asarray(rewards, dtype=float)
    if not (a.ndim == p.ndim == r.ndim == 1 and len(a) == len(p) == len(r)):
        raise ValueError("arms, probabilities and rewards must be flat and of one length")
    if not len(a):
        raise ValueError("no exposures")
    if not np.isfinite(r).all():
        raise ValueError("rewards must be finite")
    if not ((p > 0) & (p <= 1)).all():
        raise ValueError("logged probabilities must lie in (0, 1]")
    if (policy is None) == (target_probabilities is None):
        raise ValueError("give either policy (weights per arm) or target_probabilities")
    if policy is not None:
        weights = np.asarray(policy, dtype=float)
        if not np.issubdtype(a.dtype, np.integer) or (a < 0).any() or (a >= len(weights)).any():
            raise ValueError("arms must be indices into policy")
        if (weights < 0).any() or not np.isclose(weights.sum(), 1):
            raise ValueError("policy weights must be non-negative and sum to 1")
        target = weights[a]
    else:
        target = np.asarray(target_probabilities, dtype=float)
        if target.shape != p.shape or not ((target >= 0) & (target <= 1)).all():
            raise ValueError("target_probabilities: one probability in [0, 1] per exposure")
    w = target / p
    n = len(w)
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0
    if self_normalised:
        total = w.sum()
        if total == 0:
            raise ValueError("the target policy never chooses a logged arm")
        value = float((w * r).sum() / total)
        stderr = float(np.sqrt(((w * (r - value)) ** 2).sum()) / total)
    else:
        terms = w * r
        value = float(terms.mean())
        stderr = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return IPWEstimate(value=value, stderr=stderr, n=n, effective_sample_size=ess)
