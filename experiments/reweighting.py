"""Bandit reweighting: a running bandit's arm weights from its results so far (beat job).

Thompson sampling (:func:`experiments.bandits.thompson_weights`) on the primary goal's
statistics of everyone enrolled (segment "", the experiment's own holdout left out): a
conversion goal as Beta-Bernoulli, a mean goal as Gaussian, with the experiment's floor, its
minimum of visitors per arm before the first reweighting, and its discount of old data. The
weights go to the arms' ``weight`` (what new visitors are hashed with; a visitor already
enrolled keeps their arm: experiments.runtime) and to a :class:`WeightHistory` row, which also
keeps what the next reweighting continues from (each arm's cumulative statistics and their
discounted running totals).

Discounting works per period: the period's statistics are the cumulative ones minus those at
the previous reweighting, and the running totals are the previous running totals times the
discount plus the period's. The random draws are seeded by the experiment and the number of
reweightings so far, so a job delivered twice computes the same weights.
"""

from django.db import transaction
from django.utils import timezone

from .bandits import discounted, thompson_weights
from .models import Arm, Experiment, Goal, Statistic, WeightHistory
from .runtime import forget
from .stats import SampleStats


def _primary(experiment: Experiment) -> Goal | None:
    goals = list(experiment.goals.order_by("order", "pk"))
    for goal in goals:
        if goal.role == Goal.Role.PRIMARY:
            return goal
    return goals[0] if goals else None


def _cell_weights(experiment, arms, goal, cells, state, rng) -> tuple[list[float], dict]:
    """Thompson weights of one cell (everyone, or one segment) from its cumulative statistics
    ``cells`` (arm index -> Statistic) and the state the previous reweighting left for it;
    returns the weights and the cell's next state."""
    cumulative = [
        [cells[a.index].n, cells[a.index].sum, cells[a.index].sum_squares]
        if a.index in cells
        else [0.0, 0.0, 0.0]
        for a in arms
    ]
    before = state.get("cumulative") or [[0.0, 0.0, 0.0]] * len(arms)
    running_before = state.get("running") or [[0.0, 0.0, 0.0]] * len(arms)
    if len(before) != len(arms) or len(running_before) != len(arms):
        before = running_before = [[0.0, 0.0, 0.0]] * len(arms)  # arms changed: start over
    period = [
        SampleStats(max(c[0] - b[0], 0.0), c[1] - b[1], max(c[2] - b[2], 0.0))
        for c, b in zip(cumulative, before, strict=True)
    ]
    running = discounted(
        [SampleStats(max(r[0], 0.0), r[1], max(r[2], 0.0)) for r in running_before],
        period,
        min(max(experiment.bandit_discount, 1e-9), 1.0),
    )
    kind = "binomial" if goal.metric == Goal.Metric.CONVERSION else "gaussian"
    if kind == "binomial":  # rounding of the running sums must not leave 0 <= sum <= n
        running = [SampleStats(r.n, min(max(r.sum, 0.0), r.n), r.sum_squares) for r in running]
    weights = thompson_weights(
        running,
        kind=kind,
        floor=experiment.bandit_floor,
        min_visitors=experiment.bandit_minimum,
        visitors=[c[0] for c in cumulative],
        rng=rng,
    )
    ready = min(c[0] for c in cumulative) >= experiment.bandit_minimum
    return [float(w) for w in weights], {
        "cumulative": cumulative,
        "running": [[r.n, r.sum, r.sum_squares] for r in running],
        "ready": ready,
    }


def reweight(experiment: Experiment, *, now=None) -> list[float] | None:
    """Reweight one bandit; returns the new weights (None: it has no goal or too few arms).

    Everyone's weights go to the arms; a bandit inside no segment also gets weights per
    segment (Thompson sampling per segment: what converts best for one segment may not for
    another), for each segment whose visitors reached the minimum in every arm."""
    now = now or timezone.now()
    arms = list(experiment.arms.order_by("index"))
    goal = _primary(experiment)
    if len(arms) < 2 or goal is None:
        return None
    rows = Statistic.objects.filter(experiment=experiment, goal=goal, arm__gte=0)
    by_segment: dict[str, dict[int, Statistic]] = {}
    for row in rows:
        by_segment.setdefault(row.segment, {})[row.arm] = row
    previous = experiment.weight_history.order_by("-computed_at", "-pk").first()
    state = previous.state if previous is not None and previous.state else {}
    rounds = experiment.weight_history.count()
    seed = experiment.pk * 1_000_003 + rounds
    weights, everyone = _cell_weights(experiment, arms, goal, by_segment.get("", {}), state, seed)
    segment_states: dict[str, dict] = {}
    segment_weights: dict[str, list[float]] = {}
    if experiment.segment_id is None:
        earlier = state.get("segments") or {}
        for number, slug in enumerate(sorted(s for s in by_segment if s)):
            cell_weights, cell_state = _cell_weights(
                experiment, arms, goal, by_segment[slug], earlier.get(slug) or {}, seed + number + 1
            )
            segment_states[slug] = cell_state
            if cell_state["ready"]:
                segment_weights[slug] = cell_weights
    with transaction.atomic():
        for arm, weight in zip(arms, weights, strict=True):
            arm.weight = float(weight)
        Arm.objects.bulk_update(arms, ["weight"])
        experiment.segment_weights = segment_weights
        # updated_at moves: the other processes' freshness check sees the new weights.
        Experiment.objects.filter(pk=experiment.pk).update(
            segment_weights=segment_weights, updated_at=timezone.now()
        )
        WeightHistory.objects.create(
            experiment=experiment,
            computed_at=now,
            weights=weights,
            state={**everyone, "segments": segment_states},
        )
    forget()  # this process assigns with the new weights at once; the others at their next check
    return weights


def reweight_all(now=None) -> int:
    """Reweight every running bandit experiment."""
    done = 0
    running = Experiment.objects.filter(
        status=Experiment.Status.RUNNING, mode=Experiment.Mode.BANDIT
    )
    for experiment in running:
        if reweight(experiment, now=now) is not None:
            done += 1
    return done
