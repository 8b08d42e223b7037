"""The drain's experiments step: enrolment, exposures and goals, from the batch's events.

Registered with the segments drain (:func:`segments.api.register_batch_step`), it sees each
batch's consented visitors after their memberships are settled, with the events newly written
to the durable log (a batch delivered again brings none, so nothing counts twice):

- **Exposure and enrolment.** A ``page_view`` whose ``page`` is the page of a running
  experiment (any page view, for the global holdout) exposes the visitor to the experiments
  whose arm decided something that view showed them, and to no other
  (:meth:`experiments.runtime.Running.served`, from the visitor's sticky arms, their segments
  as the drain sees their memberships after the batch or as the page view's recorded context
  decides a context-only segment, and the decision chains the request path uses): the global
  holdout alone for a visitor it holds out; for the page's variants, and for each block of the
  page or page variant served to them (resolved as the request path chose it), the first
  experiment the visitor is eligible for and enrolled in. The first exposure enrols them:
  their arm (:meth:`experiments.runtime.RunningExperiment.arm`, the function the request path
  uses), its probability, the split it was drawn from (each arm's share, counted in
  :class:`~experiments.models.SplitCount` for the sample-ratio check), the covariates CUPED
  uses (:func:`pre_exposure`: the visitor's totals before this exposure, from their profile:
  how many times they had sent the experiment's primary goal event, their page views, the days
  they were active, their revenue) and the segments they were in. The sticky ``x:<id>`` field
  goes to the fast store with the batch. Later exposures count on the
  :class:`~experiments.models.Assignment` row.
- **Goals.** An event of an enrolled visitor whose name is a goal's event and whose properties
  hold the goal's ``match`` (exact values), at or after the first exposure and within the
  goal's window, moves the visitor's value of that goal: a conversion to 1 (once), a mean by
  the value property. The change goes to the :class:`~experiments.models.Statistic` rows of
  the visitor's arm (segment "" and each segment of their enrolment) as deltas of the sums
  (the sums of goal x covariate included: they change with the goal's value).
  While the global holdout holds the visitor out, their goals count for it alone.
- An assignment version bump re-randomises: the earlier row's contribution is taken out of the
  statistics (and of its split's count) and the visitor is enrolled afresh on their next
  exposure.

Everything is written in one transaction (upserts; statistics as increments), before the batch
is committed to the fast store.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction

from segments.api import (
    ASSIGNMENT_PREFIX,
    DAY,
    PURCHASE,
    BatchVisitor,
    FieldChanges,
    context_segments,
)

from . import runtime
from .covariates import COVARIATE_CROSS, COVARIATE_PRODUCTS, COVARIATE_SUMS, COVARIATES
from .models import Assignment, Goal, SplitCount, Statistic

STEP_NAME = "experiments"
_K = len(COVARIATES)
_PAIRS = tuple(COVARIATE_PRODUCTS)  # (i, j), i <= j, in the columns' order
# A cell's increments, in this order: n, the goal's sums, then the covariates' (their sums,
# the sums of their products, the sums of their products with the goal).
_FIELDS = (
    "n",
    "sum",
    "sum_squares",
    *COVARIATE_SUMS,
    *COVARIATE_PRODUCTS.values(),
    *COVARIATE_CROSS,
)
_SUMS = 3
_PRODUCTS = _SUMS + _K
_CROSS = _PRODUCTS + len(_PAIRS)


@dataclass(frozen=True, slots=True)
class _Goal:
    pk: int
    id: str
    experiment_id: int
    event: str
    match: tuple
    mean: bool
    value_property: str
    window: float

    def matches(self, name: str, properties: dict) -> bool:
        if name != self.event:
            return False
        return all(properties.get(k) == v for k, v in self.match)

    def value(self, old: float, properties: dict) -> float | None:
        """The visitor's new value after this event, or None when it does not change."""
        if not self.mean:
            return None if old >= 1 else 1.0
        raw = properties.get(self.value_property)
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            return None
        try:
            amount = float(raw)
        except ValueError:
            return None
        if not math.isfinite(amount) or amount == 0:
            return None
        return old + amount


_goals: tuple[int, dict[int, tuple[_Goal, ...]], dict[int, str]] | None = None


def goals_of(running: runtime.Running) -> tuple[dict[int, tuple[_Goal, ...]], dict[int, str]]:
    """The goals of the running experiments (read once per definitions load), and each
    experiment's covariate event (its primary goal's event)."""
    global _goals
    if _goals is not None and _goals[0] == running.generation:
        return _goals[1], _goals[2]
    by_experiment: dict[int, list[_Goal]] = defaultdict(list)
    covariate: dict[int, str] = {}
    rows = Goal.objects.filter(experiment_id__in=[e.pk for e in running.experiments]).order_by(
        "experiment_id", "order", "pk"
    )
    for g in rows:
        match = tuple(sorted((g.match or {}).items())) if isinstance(g.match, dict) else ()
        by_experiment[g.experiment_id].append(
            _Goal(
                g.pk,
                str(g.pk),
                g.experiment_id,
                g.event,
                match,
                g.metric == Goal.Metric.MEAN,
                g.value_property,
                float(g.window_seconds),
            )
        )
        if g.role == Goal.Role.PRIMARY and g.experiment_id not in covariate:
            covariate[g.experiment_id] = g.event
    for pk, goals in by_experiment.items():
        covariate.setdefault(pk, goals[0].event)
    result = {k: tuple(v) for k, v in by_experiment.items()}
    _goals = (running.generation, result, covariate)
    return result, covariate


class _Deltas:
    """Statistic increments per (experiment, arm, goal, segment)."""

    def __init__(self):
        self.cells: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * len(_FIELDS))
        # Enrolments per (experiment, split, arm): the sample-ratio check's weight periods.
        self.splits: dict[tuple[int, str, int], float] = defaultdict(float)

    def add(self, a: Assignment, goal_ids, sign: float, y: dict[int, float]) -> None:
        """Add (sign 1) or remove (-1) a visitor's whole contribution."""
        if a.split:
            self.splits[(a.experiment_id, a.split, a.arm)] += sign
        x = a.covariate_vector()
        products = [x[i] * x[j] for i, j in _PAIRS]
        for goal_id in goal_ids:
            value = y.get(goal_id, 0.0)
            for segment in ("", *a.segments):
                cell = self.cells[(a.experiment_id, a.arm, goal_id, segment)]
                cell[0] += sign
                cell[1] += sign * value
                cell[2] += sign * value * value
                for i in range(_K):
                    cell[_SUMS + i] += sign * x[i]
                    cell[_CROSS + i] += sign * x[i] * value
                for p, product in enumerate(products):
                    cell[_PRODUCTS + p] += sign * product

    def change(self, a: Assignment, goal_id: int, old: float, new: float) -> None:
        """A visitor's goal value moved from ``old`` to ``new``: the sums that hold y."""
        x = a.covariate_vector()
        for segment in ("", *a.segments):
            cell = self.cells[(a.experiment_id, a.arm, goal_id, segment)]
            cell[1] += new - old
            cell[2] += new * new - old * old
            for i in range(_K):
                cell[_CROSS + i] += x[i] * (new - old)

    def save(self) -> None:
        self._save_splits()
        # In one order everywhere: drains of other partitions upsert the same cells, and rows
        # locked in different orders could deadlock.
        rows = sorted((*k, *v) for k, v in self.cells.items() if any(v))
        if not rows:
            return
        table = connection.ops.quote_name(Statistic._meta.db_table)
        columns = ("experiment_id", "arm", "goal_id", "segment", *_FIELDS)
        quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
        increments = ", ".join(
            f"{connection.ops.quote_name(f)} = {table}.{connection.ops.quote_name(f)} + "
            f"excluded.{connection.ops.quote_name(f)}"
            for f in _FIELDS
        )
        # Identifiers only (the model's table and columns, quoted); the values are parameters.
        placeholders = ", ".join(["%s"] * len(columns))
        sql = (
            f"INSERT INTO {table} ({quoted}) VALUES ({placeholders}) "  # noqa: S608
            f"ON CONFLICT (experiment_id, arm, goal_id, segment) DO UPDATE SET {increments}"
        )
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _save_splits(self) -> None:
        rows = sorted((*k, n) for k, n in self.splits.items() if n)
        if not rows:
            return
        table = connection.ops.quote_name(SplitCount._meta.db_table)
        q = connection.ops.quote_name
        # Identifiers only (the model's table and columns, quoted); the values are parameters.
        sql = (
            f"INSERT INTO {table} ({q('experiment_id')}, {q('split')}, {q('arm')}, {q('n')}) "  # noqa: S608
            f"VALUES (%s, %s, %s, %s) ON CONFLICT (experiment_id, split, arm) "
            f"DO UPDATE SET {q('n')} = {table}.{q('n')} + excluded.{q('n')}"
        )
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def _values(a: Assignment) -> dict[int, float]:
    out = {}
    for k, v in (a.values or {}).items():
        try:
            out[int(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def step(visitors: list[BatchVisitor], now: float) -> dict[str, FieldChanges]:
    """The batch step (module docstring): returns the sticky fields to write."""
    running = runtime.running()
    if not running:
        return {}
    changes: dict[str, FieldChanges] = {}
    # A rebuild of the fast store hands visitors over with no stored field at all (a live
    # drain's always hold the consent copy): their sticky arms come back from the table.
    restore(running, [v.key for v in visitors if not v.fields], changes)
    busy = [v for v in visitors if v.events]
    if not busy:
        return changes
    goals, covariate_events = goals_of(running)
    goal_events = {g.event for gs in goals.values() for g in gs}
    keys = [
        v.key for v in busy if any(e.name == "page_view" or e.name in goal_events for e in v.events)
    ]
    if not keys:
        return changes
    existing: dict[str, dict[int, Assignment]] = defaultdict(dict)
    for a in Assignment.objects.filter(
        experiment_id__in=[e.pk for e in running.experiments], visitor_key__in=keys
    ):
        existing[a.visitor_key][a.experiment_id] = a
    by_pk = {e.pk: e for e in running.experiments}
    deltas = _Deltas()
    touched: dict[tuple[str, int], Assignment] = {}
    wanted = set(keys)
    for visitor in busy:
        if visitor.key not in wanted:
            continue
        mine = existing.get(visitor.key, {})
        values: dict[int, dict[int, float]] = {pk: _values(a) for pk, a in mine.items()}
        for event in visitor.events:
            if event.name == "page_view":
                _expose(
                    visitor, event, running, goals, covariate_events, mine, values, deltas,
                    touched, changes,
                )  # fmt: skip
            if event.name in goal_events:
                # A visitor the global holdout holds out sees default content everywhere:
                # their goals count in its comparison only, never in another experiment's arm.
                held = running.in_global_holdout(
                    visitor.key, _assignments(visitor, by_pk, mine, changes)
                )
                only = running.global_holdout.pk if held else None  # type: ignore[union-attr]
                _convert(visitor.key, event, by_pk, goals, mine, values, deltas, touched, only)
        for pk, a in mine.items():
            if (visitor.key, pk) in touched:
                a.values = {str(g): v for g, v in values[pk].items() if v}
    if not touched and not any(c.set for c in changes.values()):
        return changes
    with transaction.atomic():
        if touched:
            # Upserted on (experiment, visitor): a re-randomised visitor's row is replaced.
            Assignment.objects.bulk_create(
                [_row(a) for a in touched.values()],
                update_conflicts=True,
                unique_fields=["experiment", "visitor_key"],
                update_fields=[
                    "arm",
                    "assignment_version",
                    "probability",
                    "first_exposed_at",
                    "last_exposed_at",
                    "exposures",
                    "covariate",
                    "covariates",
                    "segments",
                    "values",
                    "split",
                ],
            )
        deltas.save()
    return changes


def restore(running: runtime.Running, keys: list[str], changes: dict[str, FieldChanges]) -> None:
    """The sticky fields of these visitors' current assignments in running experiments."""
    if not keys:
        return
    by_pk = {e.pk: e for e in running.experiments}
    rows = Assignment.objects.filter(experiment_id__in=list(by_pk), visitor_key__in=keys)
    for key, pk, arm, version in rows.values_list(
        "visitor_key", "experiment_id", "arm", "assignment_version"
    ):
        experiment = by_pk[pk]
        if version == experiment.version:
            changes.setdefault(key, FieldChanges()).set[ASSIGNMENT_PREFIX + experiment.id] = (
                experiment.sticky_value(arm)
            )


def _row(a: Assignment) -> Assignment:
    return Assignment(
        experiment_id=a.experiment_id,
        visitor_key=a.visitor_key,
        arm=a.arm,
        assignment_version=a.assignment_version,
        probability=a.probability,
        first_exposed_at=a.first_exposed_at,
        last_exposed_at=a.last_exposed_at,
        exposures=a.exposures,
        covariate=a.covariate,
        covariates=a.covariates,
        segments=a.segments,
        values=a.values,
        split=a.split,
    )


def _assignments(visitor: BatchVisitor, by_pk, mine, changes) -> dict[str, str]:
    """The visitor's sticky arms ({experiment id: sticky value}) as the request path reads
    them, with this batch's enrolments and the drain's own rows (which win) added."""
    prefix = ASSIGNMENT_PREFIX
    found = {f[len(prefix) :]: v for f, v in visitor.fields.items() if f.startswith(prefix)}
    pending = changes.get(visitor.key)
    if pending is not None:
        found.update({f[len(prefix) :]: v for f, v in pending.set.items() if f.startswith(prefix)})
    for pk, a in mine.items():
        experiment = by_pk.get(pk)
        if experiment is not None and a.assignment_version == experiment.version:
            found[experiment.id] = experiment.sticky_value(a.arm)
    return found


def _segments_at(visitor: BatchVisitor, event) -> frozenset[str]:
    """The visitor's segments as of a page view: memberships after the batch, and the
    context-only segments its recorded context decides."""
    stored = frozenset(s for s, until in visitor.memberships.items() if until > event.ts)
    return stored | context_segments(event.properties, event.ts, visitor_key=visitor.key)


def pre_exposure(visitor: BatchVisitor, ts: float, goal_event: str | None) -> list[float]:
    """The visitor's covariates (:mod:`experiments.covariates`, in order) as of an exposure
    at ``ts``: their totals before it, nothing after. The profile the step sees has the whole
    batch applied, so the batch's events at or after ``ts`` are taken back out:

    - the times they sent ``goal_event`` (the experiment's primary goal's event; 0 without);
    - their page views (the exposing page view is not before itself);
    - the days they were active, before the exposure's own day (UTC days, within the 400 the
      profile counts; every event the batch holds at or after ``ts`` is on that day or later);
    - their revenue (the ``value`` of their purchases).
    """
    profile = visitor.profile
    later = [e for e in visitor.events if e.ts >= ts]
    counts: dict[str, int] = defaultdict(int)
    spent = 0.0
    for e in later:
        counts[e.name] += 1
        if e.name == PURCHASE:
            spent += _amount(e.properties.get("value"))
    totals = profile.totals

    def before(name: str | None) -> float:
        return 0.0 if name is None else float(max(totals.get(name, 0) - counts[name], 0))

    today = int(ts // DAY)
    days = set()
    for key, tiers in profile.buckets.items():
        if "@" not in key:  # a dimension's counter repeats its event's days
            days.update(d for d, n in (tiers.get("d") or {}).items() if n and d < today)
    return [before(goal_event), before("page_view"), float(len(days)), profile.revenue - spent]


def _amount(value) -> float:
    """A purchase's value as the profile adds it to revenue."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def _expose(
    visitor, event, running, goals, covariate_events, mine, values, deltas, touched, changes,
) -> None:  # fmt: skip
    page = event.properties.get("page")
    page_id = page if isinstance(page, int) and not isinstance(page, bool) else None
    if not running.on_page(page_id):
        return
    when = datetime.fromtimestamp(event.ts, tz=UTC)
    segments = _segments_at(visitor, event)
    by_pk = {e.pk: e for e in running.experiments}
    # Only the experiments whose arm decided what this page view showed (the request path's
    # own decision: runtime.Running.served): one whose content the visitor did not see (held
    # out globally, passed over by a namespace or coverage, decided before it) counts nothing.
    served = running.served(
        page_id, visitor.key, _assignments(visitor, by_pk, mine, changes), segments
    )
    for experiment, arm in served.items():
        a = mine.get(experiment.pk)
        sticky_field = ASSIGNMENT_PREFIX + experiment.id
        if a is not None and a.assignment_version == experiment.version:
            a.exposures += 1
            a.last_exposed_at = max(a.last_exposed_at, when)
            touched[(visitor.key, experiment.pk)] = a
            value = experiment.sticky_value(a.arm)
            if visitor.fields.get(sticky_field) != value:  # lost from the store: written again
                changes.setdefault(visitor.key, FieldChanges()).set[sticky_field] = value
            continue
        goal_ids = [g.pk for g in goals.get(experiment.pk, ())]
        if a is not None:  # an earlier version: forgotten, and out of the statistics
            deltas.add(a, goal_ids, -1.0, values.get(experiment.pk, {}))
        covariates = pre_exposure(visitor, event.ts, covariate_events.get(experiment.pk))
        a = Assignment(
            experiment_id=experiment.pk,
            visitor_key=visitor.key,
            arm=arm,
            assignment_version=experiment.version,
            probability=experiment.probability(arm, segments),
            first_exposed_at=when,
            last_exposed_at=when,
            exposures=1,
            covariate=covariates[0],
            covariates=covariates,
            segments=sorted(segments),
            values={},
            # The split this visitor was enrolled under: the sample-ratio check expects each
            # split's enrolments to follow it (weights and coverage change while it runs).
            split=runtime.split_key(experiment.split(segments)),
        )
        mine[experiment.pk] = a
        values[experiment.pk] = {}
        touched[(visitor.key, experiment.pk)] = a
        deltas.add(a, goal_ids, 1.0, {})
        changes.setdefault(visitor.key, FieldChanges()).set[sticky_field] = experiment.sticky_value(
            arm
        )


def _convert(key, event, by_pk, goals, mine, values, deltas, touched, only=None) -> None:
    for pk, a in mine.items():
        if only is not None and pk != only:
            continue
        experiment = by_pk.get(pk)
        if experiment is None or a.assignment_version != experiment.version:
            continue  # an earlier version's assignment: its goals no longer count
        first = a.first_exposed_at.timestamp()
        for goal in goals.get(pk, ()):
            if not goal.matches(event.name, event.properties):
                continue
            if not first <= event.ts <= first + goal.window:
                continue
            current = values[pk].get(goal.pk, 0.0)
            new = goal.value(current, event.properties)
            if new is None:
                continue
            values[pk][goal.pk] = new
            deltas.change(a, goal.pk, current, new)
            touched[(key, pk)] = a
