"""CUPED's covariate vector through the real pipeline (Redis, PostgreSQL): what the workers
keep per visitor is their totals before the first exposure, the Statistic sums are always
those of the assignments' vectors and goal values (enrolments, conversions, erasure), and on
visitors whose earlier behaviour predicts the goal the vector narrows the interval more than
the one covariate the workers kept before."""

import time

import numpy as np
import pytest
from wagtail.models import Page

from consent.privacy import erase_visitor, export_visitor
from experiments import runtime, stats
from experiments.covariates import COVARIATE_CROSS, COVARIATE_PRODUCTS, COVARIATE_SUMS, COVARIATES
from experiments.models import Assignment, Goal, Statistic
from experiments.results import analyse
from segments.api import get_backend
from tests.experiments.engine import consented, drain, experiment, send

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DAY = 86400.0
GOALS = (
    ("purchase", Goal.Metric.CONVERSION, {}),
    ("purchase", Goal.Metric.MEAN, {}),
)


@pytest.fixture(autouse=True)
def _fresh(backend):
    runtime.forget()
    yield
    runtime.forget()


@pytest.fixture
def page():
    return Page.objects.get(depth=1)


def _drain_all(keys):
    """Drain every partition these visitors' events went to, until nothing is left."""
    backend = get_backend()
    for key in {backend.partition_for(k): k for k in keys}.values():
        while drain(key):
            pass


def _recomputed(e) -> dict[tuple, list[float]]:
    """Each cell's sums recomputed from the assignments (vectors and goal values)."""
    goals = list(e.goals.all())
    out: dict[tuple, list[float]] = {}
    k = len(COVARIATES)
    for a in Assignment.objects.filter(experiment=e):
        x = np.array(a.covariate_vector())
        for goal in goals:
            y = float((a.values or {}).get(str(goal.pk), 0.0))
            for segment in ("", *a.segments):
                cell = out.setdefault((a.arm, goal.pk, segment), [0.0] * (3 + 2 * k + k * k))
                cell[0] += 1
                cell[1] += y
                cell[2] += y * y
                for i in range(k):
                    cell[3 + i] += x[i]
                    cell[3 + k + i] += x[i] * y
                    for j in range(k):
                        cell[3 + 2 * k + i * k + j] += x[i] * x[j]
    return out


def _kept(e) -> dict[tuple, list[float]]:
    """Each cell's sums as the workers kept them (empty cells left out)."""
    k = len(COVARIATES)
    out = {}
    for s in Statistic.objects.filter(experiment=e):
        if not s.n:
            continue
        products = [0.0] * (k * k)
        for (i, j), name in COVARIATE_PRODUCTS.items():
            products[i * k + j] = products[j * k + i] = getattr(s, name)
        out[(s.arm, s.goal_id, s.segment)] = [
            s.n,
            s.sum,
            s.sum_squares,
            *(getattr(s, name) for name in COVARIATE_SUMS),
            *(getattr(s, name) for name in COVARIATE_CROSS),
            *products,
        ]
    return out


def _assert_sums_match(e):
    kept, recomputed = _kept(e), _recomputed(e)
    assert set(kept) == set(recomputed)
    for cell, sums in recomputed.items():
        assert kept[cell] == pytest.approx(sums, rel=1e-9, abs=1e-9), cell


def test_the_covariates_are_the_visitors_totals_before_the_exposure(page):
    e = experiment(page=page, arms=(("default", 1.0), ("v1", 0.0)), goals=GOALS)
    key = consented("covariates-one")
    now = time.time()
    send(key, path="/a", ts=now - 3 * DAY)
    send(key, "purchase", value=12.5, ts=now - 3 * DAY + 60)
    send(key, path="/b", ts=now - DAY)
    send(key, path="/c", ts=now - DAY + 60)
    drain(key)  # before any exposure: not enrolled
    assert not Assignment.objects.filter(experiment=e).exists()
    # In one batch: a purchase before the exposure counts, the exposing page view and the
    # purchase after it (the goal) do not.
    send(key, "purchase", value=7.5, ts=now - 60)
    send(key, page=page.pk, ts=now)
    send(key, "purchase", value=30, ts=now + 1)
    drain(key)
    a = Assignment.objects.get(experiment=e)
    assert dict(zip(COVARIATES, a.covariates, strict=True)) == {
        "goal_events": 2,
        "page_views": 3,
        "active_days": 2,  # three days ago and yesterday; not the exposure's own day
        "revenue": 20.0,
    }
    assert a.covariate == 2  # the first, where it was kept before the vector
    _assert_sums_match(e)
    exported = export_visitor(key)["experiments.assignments"][0]
    assert exported["covariates"] == dict(zip(COVARIATES, a.covariates, strict=True))


def _history(key, rng, now, page_views, purchases):
    """Earlier page views and purchases, on days before today, in time order."""
    events = [("page_view", {"path": f"/p{n % 5}"}) for n in range(page_views)] + [
        ("purchase", {"value": float(rng.integers(10, 31))}) for _ in range(purchases)
    ]
    times = np.sort(now - rng.uniform(1, 15, size=len(events)) * DAY)
    for ts, n in zip(times, rng.permutation(len(events)), strict=True):
        name, properties = events[n]
        send(key, name, ts=float(ts), **properties)


def test_the_sums_are_the_assignments_through_enrolments_conversions_and_erasure(page):
    e = experiment(page=page, goals=GOALS)
    rng = np.random.default_rng(7)
    now = time.time()
    keys = [consented(f"covariates-sums-{n}") for n in range(12)]
    for key in keys:
        _history(key, rng, now, int(rng.integers(0, 6)), int(rng.integers(0, 3)))
    _drain_all(keys)
    for n, key in enumerate(keys):
        send(key, page=page.pk, ts=now)
        if n % 3 == 0:  # converting in the exposure's batch
            send(key, "purchase", value=float(n + 1), ts=now + 1)
    _drain_all(keys)
    _assert_sums_match(e)
    for n, key in enumerate(keys):
        if n % 2 == 0:  # later conversions: y moves, and with it the sums of x y
            send(key, "purchase", value=float(2 * n + 3), ts=now + 10)
    _drain_all(keys)
    _assert_sums_match(e)
    assert Statistic.objects.filter(experiment=e, segment="").exclude(x1y_sum=0).exists()
    for key in keys[:4]:
        erase_visitor(key)
    assert Assignment.objects.filter(experiment=e).count() == 8
    _assert_sums_match(e)


def test_the_covariate_vector_narrows_the_interval_more_than_one_covariate(page):
    """Simulated visitors whose earlier page views, days and purchases all come from how
    engaged they are, as does what they buy after the exposure: the workers' statistics
    adjusted with the vector give a narrower interval than with the goal's own earlier
    count alone (what the workers kept before)."""
    e = experiment(
        page=page,
        goals=(("purchase", Goal.Metric.MEAN, {}),),
        minimum_sample=50,
    )
    rng = np.random.default_rng(11)
    now = time.time()
    keys = [consented(f"covariates-sim-{n}") for n in range(500)]
    engagement = rng.gamma(2.0, 0.5, size=len(keys))  # mean 1
    for key, u in zip(keys, engagement, strict=True):
        _history(key, rng, now, int(rng.poisson(6 * u)), int(rng.poisson(0.4 * u)))
    _drain_all(keys)
    for key, u in zip(keys, engagement, strict=True):
        send(key, page=page.pk, ts=now)
        for n in range(int(rng.poisson(3 * u))):
            send(key, "purchase", value=float(rng.integers(10, 31)), ts=now + 1 + n)
    _drain_all(keys)
    assert Assignment.objects.filter(experiment=e).count() == len(keys)

    result = analyse(e)
    [cell] = [c for c in result["cells"] if c["arm"] == 1 and c["segment"] == ""]
    assert cell["shown"] and cell["cuped"]
    assert "page_views" in cell["cuped_covariates"] and len(cell["cuped_covariates"]) > 1
    vector = cell["ci_high"] - cell["ci_low"]

    rows = {s.arm: s for s in Statistic.objects.filter(experiment=e, segment="")}
    one = [
        stats.SampleStats(s.n, s.sum, s.sum_squares, s.x_sum, s.x_squares, s.xy_sum)
        for s in (rows[0], rows[1])
    ]
    single = stats.frequentist(*one, cuped=True, sequential=e.sequential)
    assert single.ci_high - single.ci_low > 0
    assert vector < 0.9 * (single.ci_high - single.ci_low)
