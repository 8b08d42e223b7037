"""experiments.bandits: Thompson-sampling weights, floor, minimum visitors, discounting, and
the inverse-propensity estimate of a policy's value."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from experiments.bandits import (
    apply_floor,
    best_arm_probabilities,
    discounted,
    ipw_estimate,
    thompson_weights,
)
from experiments.stats import SampleStats


def conversions(n, k):
    return SampleStats(n, k, k)


def test_equal_weights_until_every_arm_has_the_minimum():
    arms = [conversions(5000, 100), conversions(5000, 400), conversions(99, 1)]
    assert thompson_weights(arms, rng=1) == pytest.approx([1 / 3] * 3)
    arms[2] = conversions(100, 1)
    weights = thompson_weights(arms, rng=1)
    assert weights != pytest.approx([1 / 3] * 3)
    assert thompson_weights(arms, min_visitors=0, rng=1) == weights


def test_min_visitors_counts_all_visitors_not_discounted_ones():
    arms = [conversions(60, 3), conversions(60, 9)]  # discounted: n fell below 100
    assert thompson_weights(arms, rng=2) == [0.5, 0.5]
    weights = thompson_weights(arms, visitors=[800, 800], rng=2)
    assert weights[1] > 0.8


def test_floor_keeps_every_arm_alive_and_weights_sum_to_one():
    arms = [conversions(20_000, 200), conversions(20_000, 1_000), conversions(20_000, 1_400)]
    weights = thompson_weights(arms, rng=3)
    assert sum(weights) == pytest.approx(1)
    assert weights[0] == pytest.approx(0.01) and weights[1] == pytest.approx(0.01)
    assert weights[2] == pytest.approx(0.98)
    weights = thompson_weights(arms, floor=0.05, rng=3)
    assert min(weights) == pytest.approx(0.05)
    assert apply_floor([0.0, 1.0], 0.0).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        apply_floor([0.5, 0.5], 0.6)


def test_seeded_weights_are_reproducible():
    arms = [conversions(1000, 50), conversions(1000, 55)]
    assert thompson_weights(arms, rng=7) == thompson_weights(arms, rng=7)
    assert thompson_weights(arms, rng=7) != thompson_weights(arms, rng=8)


def test_beta_bernoulli_probability_matches_numerical_integration():
    a = (1 + 50, 1 + 950)
    b = (1 + 62, 1 + 938)
    # P(B > A) = integral of pdf_B(x) * cdf_A(x)
    exact, _ = integrate.quad(
        lambda x: sps.beta.pdf(x, *b) * sps.beta.cdf(x, *a), 0, 0.2, limit=200
    )
    p = best_arm_probabilities([1000, 1000], [50, 62], draws=200_000, rng=4)
    assert p[1] == pytest.approx(exact, abs=0.005)
    weights = thompson_weights([conversions(1000, 50), conversions(1000, 62)], floor=0, rng=4)
    assert weights[1] == pytest.approx(exact, abs=0.01)


def test_gaussian_probability_matches_the_normal_formula():
    rng = np.random.default_rng(5)
    a = SampleStats.of(rng.normal(10, 4, 400))
    b = SampleStats.of(rng.normal(10.5, 4, 400))
    se2 = sum((s.sum_squares - s.sum**2 / s.n) / (s.n - 1) / s.n for s in (a, b))
    exact = sps.norm.cdf((b.mean - a.mean) / math.sqrt(se2))
    weights = thompson_weights([a, b], kind="gaussian", floor=0, draws=200_000, rng=5)
    assert weights[1] == pytest.approx(exact, abs=0.005)


def test_batched_probabilities_are_independent_bandits():
    n = np.array([[1000, 1000], [1000, 1000]])
    k = np.array([[50, 80], [80, 50]])
    p = best_arm_probabilities(n, k, rng=6)
    assert p.shape == (2, 2)
    assert p[0, 1] > 0.99 and p[1, 0] > 0.99
    assert np.allclose(p.sum(axis=-1), 1)


def test_discounting_weighs_old_data_down():
    running = [conversions(1000, 100), conversions(1000, 50)]
    period = [conversions(100, 2), conversions(100, 10)]
    after = discounted(running, period, 0.5)
    assert after[0] == SampleStats(600, 52, 52)
    assert discounted(running, period, 1.0)[1] == conversions(1100, 60)
    # with drift (arm 0 was best, arm 1 is now), a discounted bandit follows, an undiscounted
    # one lags behind its old data
    old = [conversions(10_000, 1_000), conversions(10_000, 500)]
    fast, slow = old, old
    for _ in range(10):
        fast = discounted(fast, period, 0.5)
        slow = discounted(slow, period, 1.0)
    fast_weights = thompson_weights(fast, visitors=[11_000, 11_000], rng=9)
    slow_weights = thompson_weights(slow, visitors=[11_000, 11_000], rng=9)
    assert fast_weights[1] > 0.9 and slow_weights[1] < 0.1
    with pytest.raises(ValueError):
        discounted(running, period, 0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        thompson_weights([conversions(200, 10)])
    with pytest.raises(ValueError):
        thompson_weights([conversions(200, 300), conversions(200, 10)])
    with pytest.raises(ValueError):
        thompson_weights([conversions(200, 3), conversions(200, 10)], kind="poisson")
    with pytest.raises(ValueError):
        best_arm_probabilities([10, 10], [1, 2], kind="gaussian")


def _logged(rng, size, logging, rates):
    arms = rng.choice(len(logging), size=size, p=logging)
    rewards = (rng.random(size) < np.asarray(rates)[arms]).astype(float)
    return arms, np.asarray(logging)[arms], rewards


def test_ipw_is_unbiased_and_its_interval_covers():
    rates = [0.04, 0.05, 0.06]
    logging = [0.5, 0.3, 0.2]
    target = [0.01, 0.01, 0.98]
    truth = float(np.dot(target, rates))
    rng = np.random.default_rng(10)
    plain, normalised, covered = [], [], 0
    for _ in range(300):
        arms, probabilities, rewards = _logged(rng, 20_000, logging, rates)
        estimate = ipw_estimate(arms, probabilities, rewards, target)
        plain.append(estimate.value)
        covered += abs(estimate.value - truth) <= 1.96 * estimate.stderr
        normalised.append(
            ipw_estimate(arms, probabilities, rewards, target, self_normalised=True).value
        )
    assert np.mean(plain) == pytest.approx(truth, abs=0.0008)
    assert np.mean(normalised) == pytest.approx(truth, abs=0.0008)
    assert 0.9 <= covered / 300 <= 0.99
    # a naive average of the logged rewards estimates the logging policy, not the target
    assert abs(np.mean(rewards) - truth) > 0.008


def test_ipw_of_the_logging_policy_is_the_observed_mean():
    rng = np.random.default_rng(11)
    arms, probabilities, rewards = _logged(rng, 5000, [0.5, 0.5], [0.1, 0.2])
    estimate = ipw_estimate(arms, probabilities, rewards, [0.5, 0.5], self_normalised=True)
    assert estimate.value == pytest.approx(rewards.mean())
    assert estimate.effective_sample_size == pytest.approx(5000)
    contextual = ipw_estimate(arms, probabilities, rewards, target_probabilities=probabilities)
    assert contextual.value == pytest.approx(rewards.mean())


def test_ipw_refuses_bad_logs():
    with pytest.raises(ValueError):
        ipw_estimate([0, 1], [0.5, 0.0], [1, 0], [0.5, 0.5])  # zero propensity
    with pytest.raises(ValueError):
        ipw_estimate([0, 2], [0.5, 0.5], [1, 0], [0.5, 0.5])  # arm out of range
    with pytest.raises(ValueError):
        ipw_estimate([0, 1], [0.5, 0.5], [1], [0.5, 0.5])  # lengths differ
    with pytest.raises(ValueError):
        ipw_estimate([0, 1], [0.5, 0.5], [1, 0], [0.7, 0.7])  # not a distribution
    with pytest.raises(ValueError):
        ipw_estimate([0, 1], [0.5, 0.5], [1, 0])  # no target
    with pytest.raises(ValueError):
        ipw_estimate([], [], [], [0.5, 0.5])
