"""The analysis of one experiment, from its sufficient statistics (never the event log).

:func:`analyse` reads the experiment's :class:`~experiments.models.Statistic` rows (one query),
and for every goal x segment ("" is everyone) compares each arm with the control (the first
arm) with :mod:`experiments.stats`:

- relative lift with its interval and p-value: the always-valid confidence sequence by default
  (``experiment.sequential``, ``sequential_tuning``, ``alpha``), Welch's t-test otherwise;
- Bayesian chance to win and risk (gbstats' default prior);
- CUPED-adjusted with the pre-exposure covariates the workers keep (:mod:`experiments.covariates`)
  that both cells carry (a non-zero sum of their squares) and that vary without repeating one
  another (:func:`_adjustment`): several at once where several qualify, the first alone
  exactly as gbstats' CUPED, none where none does;
- a figure only where both cells have ``experiment.minimum_sample`` visitors (``shown``);
- each goal read in its good direction (``Goal.direction``: higher or lower is better): the
  chance to win, the risk and the verdict; a **guardrail** goal whose interval lies wholly on
  the bad side (significant harm, the same always-valid interval as every goal) marks the cell
  ``harm`` and, for everyone (segment ""), the arm ``guardrail_failing``: such an arm is never
  the verdict's winner, and :func:`experiments.actions.promote` refuses to publish it;
- Holm-Bonferroni and Benjamini-Hochberg adjusted p-values across every shown goal x arm x
  segment comparison;
- the sample-ratio-mismatch check of the arms' visitors (the holdout's included) against the
  split each was enrolled under (:func:`_srm`: weight changes, a bandit's reweightings and a
  global holdout's configured share are no mismatch). Flagged (p < 0.001), the result carries
  a warning and no verdict;
- progress towards the planned sample: the visitors per arm the primary goal needs to detect
  ``minimum_detectable_effect`` with 80% power, for the analysis that is run.

The result is a plain JSON-serialisable dict: the admin screen, the REST endpoint and the
snapshots (:mod:`experiments.snapshots`, the charts over time) all show the same thing.
"""

import math
from dataclasses import replace
from typing import Any

from django.utils import timezone

from . import runtime, stats
from .covariates import COVARIATE_CROSS, COVARIATE_PRODUCTS, COVARIATE_SUMS, COVARIATES
from .models import Experiment, Goal, SplitCount, Statistic

__all__ = ["POWER_TARGET", "analyse", "failing_guardrails", "primary_goal"]

POWER_TARGET = 0.8
HOLDOUT_NAME = "Holdout"


def _number(value: float | None) -> float | None:
    """JSON has no NaN nor infinity: they become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def primary_goal(goals: list[Goal]) -> Goal | None:
    """The first primary goal (else the first goal): the one the plan and the verdict are about."""
    return next((g for g in goals if g.role == Goal.Role.PRIMARY), goals[0] if goals else None)


def _covariates(row: Statistic) -> stats.Covariates | None:
    """The row's sums of the covariate vector (None if any is not a finite number)."""
    k = len(COVARIATES)
    products = [[0.0] * k for _ in range(k)]
    for (i, j), name in COVARIATE_PRODUCTS.items():
        products[i][j] = products[j][i] = float(getattr(row, name))
    try:
        return stats.Covariates(
            [float(getattr(row, name)) for name in COVARIATE_SUMS],
            products,
            [float(getattr(row, name)) for name in COVARIATE_CROSS],
        )
    except ValueError:
        return None


def _sample(row: Statistic | None) -> stats.SampleStats:
    if row is None:
        return stats.SampleStats(0, 0.0, 0.0)
    return stats.SampleStats(
        float(row.n),
        float(row.sum),
        max(float(row.sum_squares), 0.0),
        float(row.x_sum),
        max(float(row.x_squares), 0.0),
        float(row.xy_sum),
        _covariates(row),
    )


def _single(sample: stats.SampleStats) -> stats.SampleStats:
    """The cell with its first covariate only (gbstats' CUPED on the scalar sums)."""
    return stats.SampleStats(
        sample.n,
        sample.sum,
        sample.sum_squares,
        sample.pre_sum,
        sample.pre_sum_squares,
        sample.cross_sum,
    )


def _adjustments(control: stats.SampleStats, treatment: stats.SampleStats) -> list[tuple[int, ...]]:
    """The CUPED adjustments to try, best first, as the covariates each uses: those both cells
    carry that vary and do not repeat one another (:func:`stats.independent_covariates`: a
    covariate constant in the cells, or a copy of another, would make the regression's matrix
    singular), then the first of them alone, then none (:func:`_compare` shows the first whose
    figures are all finite)."""
    chosen = stats.independent_covariates(control, treatment)
    out = [chosen, chosen[:1], ()]
    return [c for n, c in enumerate(out) if c not in out[:n]]


def _adjusted(
    covariates: tuple[int, ...], control: stats.SampleStats, treatment: stats.SampleStats
) -> tuple[stats.SampleStats, stats.SampleStats]:
    """The two cells as the analysis with these covariates reads them: the first covariate
    alone on the scalar sums (gbstats' CUPED, the figures from before the vector was kept),
    several as a :class:`stats.Covariates` of those only."""
    if covariates in ((), (0,)):
        return _single(control), _single(treatment)
    return (
        replace(control, covariates=control.covariates.take(covariates)),
        replace(treatment, covariates=treatment.covariates.take(covariates)),
    )


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _compare(
    experiment: Experiment, goal: Goal, control: stats.SampleStats, treatment: stats.SampleStats
) -> dict[str, Any]:
    proportion = goal.metric == Goal.Metric.CONVERSION
    for covariates in _adjustments(control, treatment):
        a, b = _adjusted(covariates, control, treatment)
        cuped = bool(covariates)
        freq = stats.frequentist(
            a,
            b,
            proportion=proportion,
            alpha=experiment.alpha,
            sequential=experiment.sequential,
            sequential_tuning=experiment.sequential_tuning,
            cuped=cuped,
        )
        bayes = stats.bayesian(
            a,
            b,
            proportion=proportion,
            cuped=cuped,
            alpha=experiment.alpha,
            inverse=goal.direction == Goal.Direction.LOWER,
        )
        interval = (freq.ci_low, freq.ci_high) if freq.error is None else ()
        if _finite(freq.lift, freq.p_value, bayes.chance_to_win, bayes.risk, *interval):
            break
    return {
        "lift": _number(freq.lift),
        "ci_low": _number(freq.ci_low),
        "ci_high": _number(freq.ci_high),
        "p_value": _number(freq.p_value),
        "significant": freq.significant,
        "method": freq.method,
        "chance_to_win": _number(bayes.chance_to_win),
        "risk": _number(bayes.risk),
        "cuped": cuped,
        "cuped_covariates": [COVARIATES[i] for i in covariates],
        "error": freq.error,
    }


def _better(goal: Goal, lift: float | None) -> bool:
    """Whether a lift goes the goal's good way."""
    if lift is None:
        return False
    return lift < 0 if goal.direction == Goal.Direction.LOWER else lift > 0


def _harm(goal: Goal, cell: dict[str, Any]) -> bool:
    """A guardrail's cell whose interval lies wholly on the bad side of 0: significant harm.
    The interval is the one every goal gets (the always-valid confidence sequence by
    default, CUPED-adjusted where it can be); it is not widened for the number of
    comparisons, on purpose: a guardrail is there to catch harm, and a correction would let
    more harm through to spare a false alarm that costs only a look."""
    if goal.role != Goal.Role.GUARDRAIL or not cell.get("significant"):
        return False
    low, high = cell.get("ci_low"), cell.get("ci_high")
    if low is None or high is None:
        return False
    return low > 0 if goal.direction == Goal.Direction.LOWER else high < 0


def failing_guardrails(result: dict[str, Any], arm: int) -> list[dict[str, Any]]:
    """The guardrail goals ``arm`` significantly harms, for everyone, in an :func:`analyse`
    result: ``{"goal", "name", "lift", "ci_low", "ci_high"}`` each ([] when none)."""
    names = {g["id"]: g["name"] for g in result["goals"]}
    return [
        {
            "goal": c["goal"],
            "name": names.get(c["goal"], ""),
            "lift": c.get("lift"),
            "ci_low": c.get("ci_low"),
            "ci_high": c.get("ci_high"),
        }
        for c in result["cells"]
        if c["arm"] == arm and c["segment"] == "" and c.get("harm")
    ]


def _progress(experiment: Experiment, goal: Goal | None, cells: dict, arms: list[int]) -> dict:
    """Visitors per arm needed for the primary goal, and how far the smallest arm is."""
    out: dict[str, Any] = {
        "goal": goal.pk if goal else None,
        "required_per_arm": None,
        "smallest_arm": 0,
        "fraction": None,
        "power": None,
    }
    if goal is None or not arms:
        return out
    samples = [cells.get((goal.pk, "", arm)) for arm in arms]
    out["smallest_arm"] = int(min((s.n if s else 0) for s in samples))
    control = samples[0]
    if control is None or not control.n:
        return out
    baseline = control.mean
    stddev = None
    if goal.metric == Goal.Metric.MEAN:
        variance = control.sum_squares / control.n - baseline**2
        stddev = math.sqrt(variance) if variance > 0 else None
        if stddev is None:
            return out
    kwargs = {
        "stddev": stddev,
        "alpha": experiment.alpha,
        "sequential": experiment.sequential,
        "sequential_tuning": experiment.sequential_tuning,
    }
    try:
        required = stats.required_sample_per_arm(
            baseline, experiment.minimum_detectable_effect, power_target=POWER_TARGET, **kwargs
        )
        current = (
            stats.power(
                out["smallest_arm"], baseline, experiment.minimum_detectable_effect, **kwargs
            )
            if out["smallest_arm"]
            else 0.0
        )
    except ValueError:  # no baseline yet (0% converting), or an effect too small to plan for
        return out
    out.update(
        required_per_arm=required,
        fraction=min(out["smallest_arm"] / required, 1.0),
        power=_number(current),
    )
    return out


def _srm(experiment: Experiment, arms: list, indices: list[int], visitors: dict) -> dict:
    """The sample-ratio check of the enrolled visitors per arm (the experiment's own holdout
    included) against the split each was enrolled under (:class:`SplitCount`: the sum over
    splits of its visitors x its shares, so that a mid-run change of weights, coverage or
    holdout, or a bandit's reweighting, is no mismatch). Visitors enrolled before splits were
    kept are expected at the configured split (``RunningExperiment.split``: a global holdout's
    is EXPERIMENTS_GLOBAL_HOLDOUT, not its arms' weights); a bandit without any kept split is
    not checked (its weights changed on purpose, and when is unknown)."""
    out: dict[str, Any] = {"checked": False, "p_value": None, "flagged": False}
    if len(arms) < 2 or not sum(visitors[i] for i in indices):
        return out
    periods: dict[str, float] = {}
    for key, n in SplitCount.objects.filter(experiment=experiment).values_list("split", "n"):
        periods[key] = periods.get(key, 0.0) + n
    if experiment.mode == Experiment.Mode.BANDIT and not periods:
        return out
    splits = [(n, runtime.parse_split(key)) for key, n in periods.items() if n > 0]
    current = runtime.build(experiment, arms, None).split()
    indices = sorted(set(indices) | {i for _n, split in splits for i in split} | set(current))
    earlier = sum(visitors.get(i, 0) for i in indices) - sum(n for n, _split in splits)
    if earlier > 0:
        splits.append((earlier, current))
    p = stats.srm_p_value_periods(
        [visitors.get(i, 0) for i in indices],
        [(n, [split.get(i, 0.0) for i in indices]) for n, split in splits],
    )
    return {"checked": True, "p_value": p, "flagged": p < stats.SRM_THRESHOLD}


def analyse(experiment: Experiment) -> dict[str, Any]:
    """Everything the results screen shows about ``experiment``, as a JSON-serialisable dict:

    - ``arms``: index, name, key, weight, visitors (everyone segment, the most any goal saw),
      control, guardrail_failing;
    - ``goals``: id, name, role, metric, event, direction (``"higher"`` or ``"lower"``);
    - ``cells``: one per goal x segment x arm: ``n``, ``mean`` and, for arms other than the
      control and where ``shown``, ``lift``, ``ci_low``, ``ci_high``, ``p_value``, ``p_holm``,
      ``p_bh``, ``chance_to_win``, ``risk``, ``cuped``, ``cuped_covariates`` (the names of
      the covariates it adjusted with), ``significant``;
    - ``srm``: ``p_value``, ``flagged``, ``checked``;
    - ``progress``: of the primary goal (see :func:`_progress`);
    - ``verdict``: ``"srm"`` (a warning instead of a verdict), ``"winner"`` (a treatment
      beats the control on the primary goal, in its good direction, and fails no guardrail),
      ``"guardrail"`` (treatments beat the control but each fails a guardrail),
      ``"loser"``, or ``"inconclusive"``; ``winner_arm``: the arm the verdict names (None
      otherwise);
    - per cell ``harm`` (a guardrail goal significantly worse than the control) and per arm
      ``guardrail_failing`` (harm on a guardrail for everyone; see
      :func:`failing_guardrails`).
    """
    arms = list(experiment.arms.order_by("index"))
    goals = list(experiment.goals.all())
    rows = Statistic.objects.filter(experiment=experiment)
    cells: dict[tuple[int, str, int], stats.SampleStats] = {}
    for row in rows:
        cells[(row.goal_id, row.segment, row.arm)] = _sample(row)
    arm_indices = [a.index for a in arms]
    # Indices with statistics but no Arm row: the per-experiment holdout (default content).
    extra = sorted({arm for (_g, _s, arm) in cells} - set(arm_indices))
    all_indices = arm_indices + extra
    names = {a.index: a.name for a in arms} | dict.fromkeys(extra, HOLDOUT_NAME)
    segments = sorted({segment for (_g, segment, _a) in cells}, key=lambda s: (s != "", s))
    if "" not in segments:
        segments.insert(0, "")

    visitors = {
        index: int(
            max((s.n for (g, seg, a), s in cells.items() if a == index and seg == ""), default=0)
        )
        for index in all_indices
    }

    out_cells: list[dict[str, Any]] = []
    control_index = arm_indices[0] if arm_indices else None
    for goal in goals:
        for segment in segments:
            control = cells.get((goal.pk, segment, control_index))
            for index in all_indices:
                sample = cells.get((goal.pk, segment, index))
                if sample is None and segment:
                    continue
                sample = sample or stats.SampleStats(0, 0.0, 0.0)
                cell: dict[str, Any] = {
                    "goal": goal.pk,
                    "segment": segment,
                    "arm": index,
                    "control": index == control_index,
                    "n": sample.n,
                    "mean": _number(sample.mean),
                    "shown": False,
                    "harm": False,
                }
                if index != control_index and control is not None:
                    enough = min(sample.n, control.n) >= experiment.minimum_sample
                    cell["shown"] = enough
                    if enough:
                        cell.update(_compare(experiment, goal, control, sample))
                        cell["harm"] = _harm(goal, cell)
                out_cells.append(cell)

    tested = [c for c in out_cells if c["shown"] and c.get("p_value") is not None]
    if tested:
        pvalues = [min(max(c["p_value"], 0.0), 1.0) for c in tested]
        for cell, p_holm, p_bh in zip(
            tested, stats.holm(pvalues), stats.benjamini_hochberg(pvalues), strict=True
        ):
            cell["p_holm"], cell["p_bh"] = p_holm, p_bh

    srm = _srm(experiment, arms, all_indices, visitors)

    failing = {c["arm"] for c in out_cells if c["segment"] == "" and c["harm"]}
    goal = primary_goal(goals)
    verdict, winner = "inconclusive", None
    if srm["flagged"]:
        verdict = "srm"
    elif goal is not None:
        decided = [
            c
            for c in out_cells
            if c["goal"] == goal.pk and c["segment"] == "" and c["shown"] and c["significant"]
        ]
        better = [c for c in decided if _better(goal, c["lift"])]
        safe = [c for c in better if c["arm"] not in failing]
        sign = -1 if goal.direction == Goal.Direction.LOWER else 1
        if safe:
            verdict = "winner"
            winner = max(safe, key=lambda c: sign * c["lift"])["arm"]
        elif better:
            verdict = "guardrail"  # better on the primary goal, but harmful on a guardrail
        elif decided:
            verdict = "loser"
            winner = control_index

    return {
        "experiment": experiment.pk,
        "key": experiment.key,
        "status": experiment.status,
        "computed_at": timezone.now().isoformat(),
        "method": "sequential" if experiment.sequential else "fixed",
        "alpha": experiment.alpha,
        "minimum_sample": experiment.minimum_sample,
        "arms": [
            {
                "index": index,
                "name": names[index],
                "key": next((a.key for a in arms if a.index == index), "default"),
                "weight": next((a.weight for a in arms if a.index == index), None),
                "visitors": visitors[index],
                "control": index == control_index,
                "guardrail_failing": index in failing,
            }
            for index in all_indices
        ],
        "goals": [
            {
                "id": g.pk,
                "name": g.name,
                "role": g.role,
                "metric": g.metric,
                "event": g.event,
                "direction": g.direction,
            }
            for g in goals
        ],
        "segments": segments,
        "cells": out_cells,
        "srm": srm,
        "progress": _progress(experiment, goal, cells, arm_indices),
        "verdict": verdict,
        "winner_arm": winner,
    }


def personalization_lift() -> dict[str, Any] | None:
    """The total lift of personalization, as the global holdout measures it: the running (or
    else the latest) global-holdout experiment's primary goal, personalised visitors against
    those held out on default content everywhere, for everyone. ``None`` without such an
    experiment; ``shown`` is False until both arms reach the experiment's minimum sample.

    Keys: ``experiment`` (pk), ``name``, ``goal`` (its name), ``metric``, ``shown``, ``lift``,
    ``ci_low``, ``ci_high`` (relative, as fractions; ``*_percent`` the same in percent),
    ``significant``, ``held_out`` and ``personalised`` (visitors),
    ``srm`` (the split is flagged: no figure is to be trusted)."""
    experiments = Experiment.objects.filter(kind=Experiment.Kind.GLOBAL_HOLDOUT).exclude(
        status=Experiment.Status.DRAFT
    )
    experiment = (
        experiments.filter(status=Experiment.Status.RUNNING).order_by("-started_at").first()
        or experiments.order_by("-started_at", "-pk").first()
    )
    if experiment is None:
        return None
    result = analyse(experiment)
    goal = next((g for g in result["goals"] if g["role"] == "primary"), None)
    goal = goal or (result["goals"][0] if result["goals"] else None)
    arms = [a for a in result["arms"] if a["index"] >= 0]
    out: dict[str, Any] = {
        "experiment": experiment.pk,
        "name": experiment.name,
        "goal": goal["name"] if goal else None,
        "metric": goal["metric"] if goal else None,
        "shown": False,
        "lift": None,
        "ci_low": None,
        "ci_high": None,
        "significant": False,
        "held_out": arms[0]["visitors"] if arms else 0,
        "personalised": sum(a["visitors"] for a in arms[1:]),
        "srm": result["srm"]["flagged"],
    }
    if goal is None or len(arms) < 2:
        return out
    cell = next(
        (
            c
            for c in result["cells"]
            if c["goal"] == goal["id"] and c["segment"] == "" and c["arm"] == arms[1]["index"]
        ),
        None,
    )
    if cell is not None and cell["shown"]:
        out.update(
            shown=True,
            lift=cell.get("lift"),
            ci_low=cell.get("ci_low"),
            ci_high=cell.get("ci_high"),
            significant=bool(cell.get("significant")),
        )
        for name in ("lift", "ci_low", "ci_high"):
            value = out[name]
            out[f"{name}_percent"] = None if value is None else value * 100
    return out
