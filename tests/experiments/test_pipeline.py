"""The drain's experiments step against real Redis and PostgreSQL: enrolment on exposure,
sticky arms, goals as deltas of the sufficient statistics, and nothing counted twice."""

import time

import pytest
from django.db.models import Sum
from wagtail.models import Page

from experiments import assignment, runtime
from experiments.models import Assignment, Experiment, Goal, Statistic
from segments.api import get_backend
from tests.experiments.engine import consented, drain, experiment, redeliver, send

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh(backend):
    runtime.forget()
    yield
    runtime.forget()


@pytest.fixture
def page():
    return Page.objects.get(depth=1)


def _cells(e, segment=""):
    return {
        (s.arm, s.goal.event, s.goal.metric): (s.n, s.sum, s.sum_squares)
        for s in Statistic.objects.filter(experiment=e, segment=segment).select_related("goal")
    }


def test_a_page_view_enrols_and_a_goal_counts_once_through_a_redelivered_batch(page):
    e = experiment(
        page=page,
        goals=(
            ("purchase", Goal.Metric.CONVERSION, {}),
            ("purchase", Goal.Metric.MEAN, {}),
        ),
    )
    key = consented("pipeline-1")
    send(key, page=page.pk)
    entries = drain(key)
    a = Assignment.objects.get(experiment=e, visitor_key=key)
    expected = runtime.running().by_id[str(e.pk)].arm(key)
    assert a.arm == expected and a.exposures == 1
    assert a.probability == pytest.approx(0.5)
    fields = get_backend().visitor_data(key).fields
    assert fields[f"x:{e.pk}"] == f"1:{expected}"
    assert _cells(e) == {
        (expected, "purchase", "conversion"): (1, 0, 0),
        (expected, "purchase", "mean"): (1, 0, 0),
    }
    redeliver(key, entries)  # the same batch again: already logged, nothing counts
    assert Assignment.objects.get(pk=a.pk).exposures == 1

    send(key, "purchase", value=20)
    entries = drain(key)
    send(key, "purchase", value=5)
    drain(key)
    redeliver(key, entries)
    assert _cells(e) == {
        (expected, "purchase", "conversion"): (1, 1, 1),
        (expected, "purchase", "mean"): (1, 25, 625),
    }
    send(key, page=page.pk)
    drain(key)
    assert Assignment.objects.get(pk=a.pk).exposures == 2
    assert Statistic.objects.get(experiment=e, segment="", goal__metric="conversion").n == 1


def test_goal_match_window_and_events_before_exposure(page):
    e = experiment(
        page=page,
        goals=(("click", Goal.Metric.CONVERSION, {"block": "b1"}),),
    )
    e.goals.update(window_seconds=60)
    runtime.forget()
    key = consented("pipeline-2")
    send(key, "click", block="b1")  # before the first exposure: not counted
    send(key, page=page.pk)
    send(key, "click", block="other")  # does not match
    send(key, "click", block="b1", ts=time.time() + 3600)  # outside the window
    drain(key)
    (cell,) = _cells(e).values()
    assert cell == (1, 0, 0)
    send(key, "click", block="b1")
    drain(key)
    (cell,) = _cells(e).values()
    assert cell == (1, 1, 1)


def test_a_visitor_without_consent_is_never_enrolled(page):
    e = experiment(page=page)
    key = consented("pipeline-3")
    from consent.api import notice_version
    from segments.api import mirror_consent

    mirror_consent(key, frozenset(), notice_version(), time.time() + 3600)
    send(key, page=page.pk)
    drain(key)
    assert not Assignment.objects.filter(experiment=e).exists()
    assert not Statistic.objects.filter(experiment=e).exists()


def test_only_views_of_the_experiments_page_expose(page):
    e = experiment(page=page)
    key = consented("pipeline-4")
    send(key, page=page.pk + 1000)
    send(key)  # a page view without a page (not a Wagtail page)
    drain(key)
    assert not Assignment.objects.filter(experiment=e).exists()


def test_the_arm_is_sticky_across_weight_changes_and_a_version_bump_rerandomises(page):
    e = experiment(page=page, arms=(("default", 1.0), ("v1", 1.0), ("v2", 1.0)))
    keys = [consented(f"pipeline-sticky-{n}") for n in range(12)]
    for key in keys:
        send(key, page=page.pk)
        drain(key)
    before = dict(Assignment.objects.filter(experiment=e).values_list("visitor_key", "arm"))
    assert len(set(before.values())) > 1
    # Everything to arm 2 from now on, and coverage down: enrolled visitors keep their arm.
    e.arms.filter(index__in=[0, 1]).update(weight=0.0)
    e.coverage = 0.5
    e.save()
    running = runtime.running().by_id[str(e.pk)]
    backend = get_backend()
    for key in keys:
        sticky = backend.visitor_data(key).fields[f"x:{e.pk}"]
        assert running.arm(key, sticky) == before[key]
        send(key, page=page.pk)
        drain(key)
    assert dict(Assignment.objects.filter(experiment=e).values_list("visitor_key", "arm")) == (
        before
    )
    # A version bump: everyone enrolled afresh with the current weights (all to arm 2).
    e.assignment_version = 2
    e.coverage = 1.0
    e.save()
    for key in keys:
        send(key, page=page.pk)
        drain(key)
    after = Assignment.objects.filter(experiment=e)
    assert {a.arm for a in after} == {2}
    assert {a.assignment_version for a in after} == {2}
    cells = {s.arm: s.n for s in Statistic.objects.filter(experiment=e, segment="")}
    assert cells == {0: 0, 1: 0, 2: 12} or {k: v for k, v in cells.items() if v} == {2: 12}


def test_the_experiments_own_holdout(page):
    e = experiment(page=page, holdout_percent=50)
    keys = [consented(f"pipeline-holdout-{n}") for n in range(20)]
    for key in keys:
        send(key, page=page.pk)
        drain(key)
    arms = list(Assignment.objects.filter(experiment=e).values_list("arm", flat=True))
    assert len(arms) == 20
    held = arms.count(-1)
    assert 0 < held < 20
    running = runtime.running().by_id[str(e.pk)]
    assert held == sum(running.arm(k) == -1 for k in keys)
    assert Statistic.objects.get(experiment=e, arm=-1, segment="").n == held


def test_an_experiment_inside_a_segment_enrols_only_its_members(page):
    from tests.builders import segment

    s = segment("mobile", {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"})
    e = experiment(page=page, segment=s)
    inside, outside = consented("pipeline-seg-1"), consented("pipeline-seg-2")
    send(inside, page=page.pk, device="mobile")
    send(outside, page=page.pk, device="desktop")
    drain(inside)
    drain(outside)
    enrolled = set(Assignment.objects.filter(experiment=e).values_list("visitor_key", flat=True))
    assert enrolled == {inside}
    a = Assignment.objects.get(experiment=e)
    assert "mobile" in a.segments
    assert Statistic.objects.filter(experiment=e, segment="mobile").get().n == 1


def test_a_rebuild_of_the_fast_store_brings_the_sticky_arms_back(page):
    from consent.log import append_record
    from segments.stream.rebuild import rebuild

    e = experiment(page=page)
    key = consented("pipeline-rebuild")
    append_record(key, granted=frozenset({"personalization"}), denied=frozenset(), method="api")
    send(key, page=page.pk)
    drain(key)
    arm = Assignment.objects.get(experiment=e).arm
    rebuild()  # Redis lost its data: everything comes back from PostgreSQL
    assert get_backend().visitor_data(key).fields.get(f"x:{e.pk}") == f"1:{arm}"


def test_the_cuped_covariate_is_the_visitors_pre_exposure_count_of_the_primary_goal(page):
    e = experiment(page=page, arms=(("default", 1.0), ("v1", 0.0)))
    key = consented("pipeline-cuped")
    for _ in range(3):
        send(key, "purchase")
    drain(key)  # before any exposure: not enrolled, nothing counted
    assert not Assignment.objects.filter(experiment=e).exists()
    send(key, page=page.pk)
    send(key, "purchase")  # after the exposure: the goal, not the covariate
    drain(key)
    a = Assignment.objects.get(experiment=e)
    assert a.covariate == 3
    cell = Statistic.objects.get(experiment=e, arm=0, segment="")
    assert (cell.n, cell.sum, cell.x_sum, cell.x_squares, cell.xy_sum) == (1, 1, 3, 9, 3)


def _drain_all(keys):
    backend = get_backend()
    for key in {backend.partition_for(k): k for k in keys}.values():
        drain(key)


def test_globally_held_out_visitors_count_in_the_global_holdout_only(page, settings):
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.5
    e = experiment(page=page, goals=(("purchase", Goal.Metric.CONVERSION, {}),))
    # A visitor the holdout will hold out, enrolled in the block experiment before it starts.
    early = next(
        k
        for k in (consented(f"pipeline-global-early-{n}") for n in range(50))
        if assignment.hash(runtime.GLOBAL_HOLDOUT_SEED, k, 2) < 0.5
    )
    send(early, page=page.pk)
    drain(early)
    assert Assignment.objects.filter(experiment=e, visitor_key=early).exists()
    held = experiment(
        "global",
        kind="global_holdout",
        arms=(("default", 1.0), ("personalised", 1.0)),
        goals=(("purchase", Goal.Metric.CONVERSION, {}),),
    )
    gh = runtime.running().global_holdout
    keys = [consented(f"pipeline-global-{n}") for n in range(24)]
    for key in [*keys, early]:
        send(key, page=page.pk)
        send(key, "purchase")
    _drain_all([*keys, early])
    out = {k for k in [*keys, early] if gh.arm(k) == 0}
    assert early in out and out != {*keys, early}
    enrolled = set(Assignment.objects.filter(experiment=e).values_list("visitor_key", flat=True))
    # Held out, they saw default content: never (newly) enrolled in the block experiment.
    assert enrolled == ({*keys} - out) | {early}
    assert dict(Assignment.objects.filter(experiment=held).values_list("visitor_key", "arm")) == {
        k: (0 if k in out else 1) for k in [*keys, early]
    }
    cells = {s.arm: (s.n, s.sum) for s in Statistic.objects.filter(experiment=e, segment="") if s.n}
    converted_in_block = sum(total for _n, total in cells.values())
    # Everyone converted; in the block experiment only those who saw its arms: not the early
    # visitor, who converted while held out (nor is their exposure then counted).
    assert converted_in_block == len({*keys} - out)
    assert Assignment.objects.get(experiment=e, visitor_key=early).exposures == 1
    g = {s.arm: (s.n, s.sum) for s in Statistic.objects.filter(experiment=held, segment="")}
    assert g[0] == (len(out), len(out))


def test_mutually_exclusive_experiments_enrol_each_visitor_in_the_one_that_decides(page):
    first = experiment(
        "ns-first", page=page, block_id="b1", namespace="ns", namespace_end=0.5, holdout_percent=20
    )
    second = experiment("ns-second", page=page, block_id="b1", namespace="ns", namespace_start=0.5)
    keys = [consented(f"pipeline-ns-{n}") for n in range(30)]
    for key in keys:
        send(key, page=page.pk)
    _drain_all(keys)
    found = runtime.running()
    rows = list(Assignment.objects.filter(experiment__in=[first, second]))
    assert sorted(a.visitor_key for a in rows) == sorted(keys)  # each once
    for a in rows:
        decided = runtime.decider(found.block_chain(page.pk, "b1"), a.visitor_key, {}, set())
        assert decided is not None
        assert (decided[0].pk, decided[1]) == (a.experiment_id, a.arm)
    assert {a.experiment_id for a in rows} == {first.pk, second.pk}


def test_a_mid_run_weight_change_is_no_sample_ratio_mismatch(page):
    from experiments.models import SplitCount
    from experiments.results import analyse

    e = experiment(page=page, minimum_sample=10)
    first = [consented(f"pipeline-split-a{n}") for n in range(150)]
    for key in first:
        send(key, page=page.pk)
    _drain_all(first)
    e.arms.filter(index=1).update(weight=9.0)  # an editor moves new visitors to 10/90
    runtime.forget()
    second = [consented(f"pipeline-split-b{n}") for n in range(150)]
    for key in [*first, *second]:  # the first ones come back: sticky, not counted again
        send(key, page=page.pk)
    _drain_all([*first, *second])
    periods = {}
    for split, arm, n in SplitCount.objects.filter(experiment=e).values_list("split", "arm", "n"):
        periods.setdefault(split, {})[arm] = n
    assert set(periods) == {"0:0.5,1:0.5", "0:0.1,1:0.9"}
    assert sum(periods["0:0.5,1:0.5"].values()) == 150
    assert sum(periods["0:0.1,1:0.9"].values()) == 150
    srm = analyse(e)["srm"]
    assert srm["checked"] and not srm["flagged"]
    # Re-randomising takes earlier enrolments out of their split, as out of the statistics.
    e.assignment_version = 2
    e.save()
    runtime.forget()
    for key in first[:10]:
        send(key, page=page.pk)
    _drain_all(first[:10])
    counts = dict(
        SplitCount.objects.filter(experiment=e)
        .values_list("split")
        .annotate(total=Sum("n"))
        .values_list("split", "total")
    )
    # The 10 leave the 50/50 split and join the current 10/90 one.
    assert counts == {"0:0.5,1:0.5": 140, "0:0.1,1:0.9": 160}


def test_a_page_variant_published_or_unpublished_while_it_runs_changes_whom_the_drain_counts():
    """What the experiment's page serves is read with the experiments: publishing a variant
    without the block for the French reads them again (every process, at its next freshness
    check), and from then on the French are not counted in the block experiment; unpublished,
    they see the page's block again and are."""
    from tests.builders import home_page, page_variant, personalised_page, segment

    home_page()
    segment("french", {"type": "context", "attribute": "language", "op": "eq", "value": "fr"})
    page = personalised_page()
    e = experiment(page=page, block_id=page.body[0].id)
    assert runtime.running().page_points(page.pk).variants == ()
    stamp = Experiment.objects.get(pk=e.pk).updated_at
    variant = page_variant(page, "french", "LA PAGE FRANÇAISE")
    assert Experiment.objects.get(pk=e.pk).updated_at > stamp  # seen by the other processes
    french, other = consented("pipeline-fr"), consented("pipeline-en")
    send(french, page=page.pk, language="fr")
    send(other, page=page.pk, language="en")
    drain(french)
    drain(other)
    assert set(Assignment.objects.filter(experiment=e).values_list("visitor_key", flat=True)) == {
        other
    }
    variant.unpublish()
    send(french, page=page.pk, language="fr")
    drain(french)
    assert Assignment.objects.filter(experiment=e, visitor_key=french).exists()
