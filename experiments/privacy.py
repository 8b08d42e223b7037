"""What the experiments app holds about a visitor, for the consent app's data-subject requests,
retention and record of processing (registered in ``ExperimentsConfig.ready()``).

Per visitor: one :class:`~experiments.models.Assignment` row per experiment they were enrolled
in (arm, its probability, exposures, the CUPED covariates -- their totals before the first
exposure, named in :mod:`experiments.covariates` --, segments at enrolment, their goal
values), and the sticky copy of the arm in the fast store (``x:<id>`` fields of their hash,
erased and re-keyed with it by the segments app). The :class:`~experiments.models.Statistic`
rows are sums over visitors (no key): an erasure takes the visitor's contribution out of them,
so results no longer count the visitor at all; a purge by retention does not (the visitor's
row is gone, the sums it was part of stay, as in any aggregate report).
"""

from datetime import timedelta

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from consent.api import RetentionPeriod
from segments.api import ASSIGNMENT_PREFIX, get_backend, tracking_purpose

from .conf import get_setting
from .covariates import COVARIATES
from .models import Assignment, Goal
from .pipeline import _Deltas, _values


def export(visitor_key: str) -> dict[str, list[dict]]:
    rows = Assignment.objects.filter(visitor_key=visitor_key).select_related("experiment")
    goals = {
        g.pk: g.name for g in Goal.objects.filter(experiment_id__in=[a.experiment_id for a in rows])
    }
    fields = get_backend().visitor_data(visitor_key).fields
    return {
        "assignments": [
            {
                "experiment": a.experiment.key,
                "arm": a.arm,
                "assignment_version": a.assignment_version,
                "probability": a.probability,
                "first_exposed_at": a.first_exposed_at.isoformat(),
                "last_exposed_at": a.last_exposed_at.isoformat(),
                "exposures": a.exposures,
                "covariate": a.covariate,
                "covariates": dict(zip(COVARIATES, a.covariate_vector(), strict=True)),
                "segments": a.segments,
                "split": a.split,
                "goal_values": {goals.get(int(k), k): v for k, v in (a.values or {}).items()},
            }
            for a in rows.order_by("first_exposed_at", "pk")
        ],
        "sticky_assignments": [
            {"experiment": k[len(ASSIGNMENT_PREFIX) :], "assignment": v}
            for k, v in sorted(fields.items())
            if k.startswith(ASSIGNMENT_PREFIX)
        ],
    }


def _withdraw(rows: list[Assignment]) -> None:
    """Take these visitors' contributions out of the statistics."""
    if not rows:
        return
    goal_ids: dict[int, list[int]] = {}
    for experiment_id, goal_id in Goal.objects.filter(
        experiment_id__in={a.experiment_id for a in rows}
    ).values_list("experiment_id", "pk"):
        goal_ids.setdefault(experiment_id, []).append(goal_id)
    deltas = _Deltas()
    for a in rows:
        deltas.add(a, goal_ids.get(a.experiment_id, ()), -1.0, _values(a))
    deltas.save()


def erase(visitor_key: str, purposes: frozenset[str]) -> int:
    """Erase the visitor's assignments (collected under the tracking purpose) and their
    contribution to the statistics. The sticky copies in the fast store go with the visitor's
    hash (segments' erasure)."""
    if purposes and tracking_purpose() not in purposes:
        return 0
    with transaction.atomic():
        rows = list(Assignment.objects.select_for_update().filter(visitor_key=visitor_key))
        _withdraw(rows)
        return Assignment.objects.filter(pk__in=[a.pk for a in rows]).delete()[0]


def rekey(old_key: str, new_key: str) -> None:
    """Move the assignments to the rotated key (the sticky copies move with the visitor's
    hash). An experiment the new key is enrolled in already keeps the new key's row; the old
    one is withdrawn from the statistics (one visitor counts once)."""
    with transaction.atomic():
        taken = set(
            Assignment.objects.filter(visitor_key=new_key).values_list("experiment_id", flat=True)
        )
        duplicates = list(Assignment.objects.filter(visitor_key=old_key, experiment_id__in=taken))
        _withdraw(duplicates)
        Assignment.objects.filter(pk__in=[a.pk for a in duplicates]).delete()
        Assignment.objects.filter(visitor_key=old_key).update(visitor_key=new_key)


def retention(now) -> dict[str, int]:
    """Purge assignments last exposed more than ``EXPERIMENTS_ASSIGNMENT_RETENTION_DAYS``
    before ``now`` (their contribution to the statistics stays: module docstring)."""
    cutoff = now - timedelta(days=get_setting("EXPERIMENTS_ASSIGNMENT_RETENTION_DAYS"))
    removed = 0
    rows = Assignment.objects.filter(last_exposed_at__lt=cutoff)
    while True:
        batch = list(rows.values_list("pk", flat=True)[:5000])
        if not batch:
            return {"assignments": removed}
        removed += Assignment.objects.filter(pk__in=batch).delete()[0]


# The record of processing (Art. 30): experimentation is part of personalization (the same
# purpose, the same consent: nobody without it is enrolled or counted).
PROCESSING_CATEGORIES = [
    (
        _("Experiment assignments (personalization)"),
        _(
            "Under the personalization purpose: which experiments the visitor took part in, the "
            "arm they were shown (and its probability), when and how often they saw it, the "
            "segments they were in, totals of their earlier activity (goal events, page views, "
            "active days, revenue: for variance reduction) "
            "and their results for the experiment's goals. Results are reported only as "
            "totals per arm and segment."
        ),
    ),
]


def _assignment_retention() -> int:
    return get_setting("EXPERIMENTS_ASSIGNMENT_RETENTION_DAYS") * 86400


PROCESSING_RETENTION = [
    RetentionPeriod(
        _("Experiment assignments"),
        _assignment_retention,
        _("%(duration)s after the visitor last saw the experiment"),
    ),
]
