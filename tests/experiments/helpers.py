"""Builders for the experiments' editor tests: an experiment with its arms and goals, and the
sufficient statistics the workers would have kept."""

from collections.abc import Sequence

from experiments.covariates import COVARIATE_CROSS, COVARIATE_PRODUCTS, COVARIATE_SUMS
from experiments.models import Arm, Experiment, Goal, Statistic
from experiments.stats import SampleStats


def experiment(
    key: str = "banner-test",
    *,
    arms: Sequence[tuple[str, str, float]] = (("Control", "default", 1.0), ("B", "v-b", 1.0)),
    goals: Sequence[tuple[str, str, str]] = (("Clicks", "click", "conversion"),),
    **fields,
) -> Experiment:
    """A block experiment (draft unless ``status`` says otherwise) with ``arms`` (name, key,
    weight) and ``goals`` (name, event, metric; the first is primary)."""
    fields.setdefault("name", key.replace("-", " ").title())
    fields.setdefault("kind", Experiment.Kind.BLOCK)
    exp = Experiment.objects.create(key=key, **fields)
    for index, (name, arm_key, weight) in enumerate(arms):
        Arm.objects.create(experiment=exp, index=index, name=name, key=arm_key, weight=weight)
    for order, (name, event, metric) in enumerate(goals):
        Goal.objects.create(
            experiment=exp,
            name=name,
            event=event,
            metric=metric,
            order=order,
            role=Goal.Role.PRIMARY if order == 0 else Goal.Role.SECONDARY,
        )
    return exp


def statistic(exp: Experiment, arm: int, sample: SampleStats, goal=None, segment: str = ""):
    """A cell's row: the sample's covariate vector (``covariates``, up to COVARIATES' length)
    if it has one, else its single covariate."""
    sums = {
        "x_sum": sample.pre_sum,
        "x_squares": sample.pre_sum_squares,
        "xy_sum": sample.cross_sum,
    }
    c = sample.covariates
    if c is not None:
        k = len(c.sums)
        sums = {name: float(c.sums[i]) for i, name in enumerate(COVARIATE_SUMS[:k])}
        sums |= {name: float(c.cross[i]) for i, name in enumerate(COVARIATE_CROSS[:k])}
        sums |= {
            name: float(c.products[i, j])
            for (i, j), name in COVARIATE_PRODUCTS.items()
            if i < k and j < k
        }
    return Statistic.objects.create(
        experiment=exp,
        arm=arm,
        goal=goal or exp.goals.first(),
        segment=segment,
        n=sample.n,
        sum=sample.sum,
        sum_squares=sample.sum_squares,
        **sums,
    )


def conversions(n: int, converted: int) -> SampleStats:
    return SampleStats(n, float(converted), float(converted))
