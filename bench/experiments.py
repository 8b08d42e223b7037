"""``python -m bench --only experiments [--quick] [--strict]``: the experiment statistics'
simulation harness (experiments.simulate), every figure next to its target, plus what one
assignment costs in Python.

Pure computation (numpy/scipy on simulated sufficient statistics): no database, no Redis, no
Django. About a minute on one core at the full scale (the bandit scenarios dominate: Thompson
sampling draws 10,000 posterior samples per arm, period and seed); ``--quick`` runs the
smaller scale the test suite uses, with its wider tolerances.
"""

import random
import timeit

from experiments import simulate
from experiments.assignment import Allocation, AllocationBatch
from experiments.covariates import COVARIATES

from .report import verdict


def _assignment_cost() -> dict:
    """µs per assignment for a new visitor, 20 experiments: one at a time and batched."""
    rng = random.Random(0)
    allocations = [
        Allocation(seed=f"experiment-{i}", weights=[0.5, 0.25, 0.25], coverage=0.9)
        for i in range(20)
    ]
    batch = AllocationBatch(allocations)
    values = [f"{rng.getrandbits(128):032x}" for _ in range(200)]

    def one_by_one():
        for value in values:
            for allocation in allocations:
                allocation.assign(value)

    def batched():
        for value in values:
            batch.assign(value)

    calls = len(values) * len(allocations)
    single = min(timeit.repeat(one_by_one, number=5, repeat=5)) / 5 / calls * 1e6
    together = min(timeit.repeat(batched, number=5, repeat=5)) / 5 / calls * 1e6
    return {"single_us": single, "batched_us": together, "experiments": len(allocations)}


def run(options) -> dict:
    scale = simulate.QUICK if getattr(options, "quick", False) else simulate.FULL
    report = simulate.run(scale)
    return {
        "scale": scale.name,
        "figures": [f.__dict__ for f in report.figures],
        "notes": report.notes,
        "seconds": report.seconds,
        "assignment": _assignment_cost(),
    }


def rows(result: dict) -> list[tuple]:
    out = [
        (f["label"], f["shown"], f["baseline"], "", f["target"], verdict(f["passed"]))
        for f in result["figures"]
    ]
    a = result["assignment"]
    out.append(
        (
            f"Assignment, new visitor, {a['experiments']} experiments batched (µs each)",
            f"{a['batched_us']:.2f}",
            f"{a['single_us']:.2f} one by one",
            f"{a['batched_us'] / a['single_us']:.2f}x",
            "",
            "",
        )
    )
    return out


def details(result: dict) -> str:
    power = result["notes"]["power"]
    bandit = result["notes"]["bandit"]
    seconds = ", ".join(f"{name} {s:.1f} s" for name, s in result["seconds"].items())
    return (
        f"Scale: {result['scale']} (see experiments/simulate.py for every scenario's set-up). "
        f"Sequential testing is gbstats' always-valid confidence sequence (tuning 5000, "
        f"alpha 0.05); a false positive is any of the 30 looks whose interval excludes 0. "
        f"Power plan: {power['plan_per_arm']:,} visitors per arm with sequential testing "
        f"({power['fixed_horizon_plan_per_arm']:,} for a single fixed-horizon look). Bandit: "
        f"60 reweightings of 1,000 visitors, floor 1%, 100 visitors per arm before the first; "
        f"mean regret {bandit['regret']:.0f} conversions ({bandit['delayed_regret']:.0f} "
        f"delayed) against {bandit['uniform_regret']:.0f} for uniform allocation. CUPED: with "
        f"one covariate at rho 0.5 no unbiased regression adjustment narrows the interval by "
        f"more than 1 - sqrt(1 - rho^2) = 13.4% (its variance by 25%): the harness checks the "
        f"variance at rho 0.5, that the "
        f"width matches theory, and the 20% width target at rho 0.7 and with several "
        f"pre-exposure features.{_features(result['notes'].get('cuped'))} The workers keep "
        f"the same kind of vector per enrolled visitor ({', '.join(COVARIATES)}: totals "
        f"before the first exposure), so the results screen adjusts with several covariates "
        f"too; how much it narrows there depends on how well a site's features predict its "
        f"goal, which the harness sets and production measures. Assignment: "
        f"GrowthBook hash v2 of a 32-character identifier, per experiment, best of 5 runs. "
        f"Time per scenario: {seconds}."
    )


def _features(notes) -> str:
    """The several-features CUPED scenario: its correlations, R^2 and width factors."""
    if not notes:
        return ""
    rho = ", ".join(
        f"{name} {measured:.3f} (set {set_:.2f})"
        for name, measured, set_ in zip(
            notes["features"], notes["rho_measured"], notes["rho"], strict=True
        )
    )
    pairs = ", ".join(f"{r} {100 * n:.1f}%" for r, n in notes["narrower_if_pairs_at"].items())
    return (
        f" Several features (experiments/simulate.py CUPED_FEATURE_CORRELATION among them), "
        f"rho with the goal as measured: {rho}; combined R^2 {notes['r2_measured']:.3f} "
        f"measured ({notes['r2']:.3f} set); width factor sqrt(1 - R^2) "
        f"{notes['width_factor_theory']:.3f} in theory, {notes['width_factor_measured']:.3f} "
        f"measured; coverage {100 * notes['coverage']:.1f}% with the adjustment, "
        f"{100 * notes['coverage_plain']:.1f}% without. The narrowing depends on how the "
        f"features correlate with one another: in theory, were every pair at r, "
        f"{pairs} (r: narrowing)."
    )
