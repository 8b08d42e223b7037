"""The bandit reweighting beat job: Thompson weights from the statistics the drain keeps, with
the experiment's floor, minimum and discount; enrolled visitors keep their arm."""

import pytest
from wagtail.models import Page

from experiments import runtime, tasks
from experiments.models import Experiment, Goal, Statistic, WeightHistory
from tests.experiments.engine import consented, drain, experiment, send

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fresh(backend):
    runtime.forget()
    yield
    runtime.forget()


def bandit(**fields) -> Experiment:
    return experiment(
        "bandit",
        page=Page.objects.get(depth=1),
        mode=Experiment.Mode.BANDIT,
        arms=(("default", 1.0), ("v1", 1.0), ("v2", 1.0)),
        **fields,
    )


def results(e, per_arm):
    goal = e.goals.get(role=Goal.Role.PRIMARY)
    for arm, (n, conversions) in enumerate(per_arm):
        Statistic.objects.update_or_create(
            experiment=e,
            arm=arm,
            goal=goal,
            segment="",
            defaults={"n": n, "sum": conversions, "sum_squares": conversions},
        )


def weights(e):
    return list(e.arms.order_by("index").values_list("weight", flat=True))


def test_weights_stay_equal_until_every_arm_has_its_minimum():
    e = bandit(bandit_minimum=100)
    results(e, [(99, 1), (500, 50), (500, 100)])
    assert tasks.reweight() == 1
    assert weights(e) == pytest.approx([1 / 3] * 3)
    assert WeightHistory.objects.get(experiment=e).weights == pytest.approx([1 / 3] * 3)


def test_the_best_arm_gets_most_weight_and_every_arm_keeps_its_floor():
    e = bandit(bandit_floor=0.05)
    results(e, [(2000, 80), (2000, 100), (2000, 160)])
    tasks.reweight()
    w = weights(e)
    assert sum(w) == pytest.approx(1)
    assert w[2] > 0.8 and min(w) >= 0.05 - 1e-9
    history = WeightHistory.objects.get(experiment=e)
    assert history.weights == pytest.approx(w)
    assert history.state["cumulative"][2] == [2000, 160, 160]
    assert runtime.running().by_id[str(e.pk)].weights == pytest.approx(tuple(w))


def test_discounting_lets_new_data_outweigh_old():
    e = bandit(bandit_discount=0.01, bandit_floor=0.0)
    results(e, [(2000, 40), (2000, 40), (2000, 200)])  # arm 2 was best
    tasks.reweight()
    assert weights(e)[2] > 0.9
    # Since then arm 0 is the best by far: with old data discounted away, it takes over.
    results(e, [(4000, 440), (4000, 80), (4000, 240)])
    tasks.reweight()
    assert weights(e)[0] > 0.9
    assert WeightHistory.objects.filter(experiment=e).count() == 2


def test_enrolled_visitors_keep_their_arm_across_reweightings():
    e = bandit()
    page = e.page
    keys = [consented(f"bandit-{n}") for n in range(9)]
    for key in keys:
        send(key, page=page.pk)
        drain(key)
    before = {key: e.assignments.get(visitor_key=key).arm for key in keys}
    results(e, [(5000, 10), (5000, 10), (5000, 1000)])
    tasks.reweight()
    for key in keys:
        send(key, page=page.pk)
        drain(key)
    assert {key: e.assignments.get(visitor_key=key).arm for key in keys} == before


def test_fixed_split_experiments_are_not_reweighted():
    e = experiment("fixed", page=Page.objects.get(depth=1))
    results(e, [(5000, 10), (5000, 1000)])
    assert tasks.reweight() == 0
    assert weights(e) == [1.0, 1.0]


def test_a_bandit_learns_per_segment_and_splits_each_segments_new_visitors_by_its_weights():
    """Thompson sampling per segment: what converts best for French speakers (arm 1) is not
    what does for German speakers (arm 0); each segment's new visitors are split by its own
    weights, in the drain and on the request path alike, with the probability recorded."""
    from segments.stream.drain import forget_definitions
    from tests.builders import segment

    def language(code):
        return {"type": "context", "attribute": "language", "op": "eq", "value": code}

    segment("french", language("fr"), priority=10)
    segment("german", language("de"), priority=5)
    forget_definitions()
    e = bandit(bandit_floor=0.02)
    e.arms.filter(index=2).delete()
    goal = e.goals.get(role=Goal.Role.PRIMARY)
    cells = {
        "": [(4000, 400), (4000, 400)],
        "french": [(2000, 40), (2000, 360)],
        "german": [(2000, 360), (2000, 40)],
        "italian": [(20, 1), (20, 2)],  # too few visitors: everyone's weights
    }
    for slug, per_arm in cells.items():
        for arm, (n, conversions) in enumerate(per_arm):
            Statistic.objects.create(
                experiment=e, arm=arm, goal=goal, segment=slug, n=n, sum=conversions,
                sum_squares=conversions,
            )  # fmt: skip
    assert tasks.reweight() == 1
    e.refresh_from_db()
    assert set(e.segment_weights) == {"french", "german"}
    assert e.segment_weights["french"][1] > 0.9 and e.segment_weights["german"][0] > 0.9
    assert weights(e) == pytest.approx([0.5, 0.5], abs=0.2)
    history = WeightHistory.objects.get(experiment=e)
    assert set(history.state["segments"]) == {"french", "german", "italian"}

    running = runtime.running().by_id[str(e.pk)]
    assert [slug for slug, _a, _w in running.by_segment] == ["french", "german"]
    arms = {"fr": [], "de": []}
    for n in range(40):
        for code in arms:
            key = consented(f"per-segment-{code}-{n}")
            send(key, page=e.page.pk, language=code)
            drain(key)
            assignment = e.assignments.get(visitor_key=key)
            slug = {"fr": "french", "de": "german"}[code]
            assert assignment.arm == running.arm(key, None, frozenset({slug}))
            assert assignment.probability == pytest.approx(
                e.segment_weights[slug][assignment.arm], rel=1e-6
            )
            arms[code].append(assignment.arm)
    assert arms["fr"].count(1) >= 30 and arms["de"].count(0) >= 30
    # A visitor in both segments takes the split of the higher-priority one (French).
    both = runtime.running().by_id[str(e.pk)]._split(frozenset({"french", "german"}))
    assert both[1] == running.by_segment[0][2]


def test_other_processes_learn_of_new_weights_at_their_next_freshness_check():
    """The new weights move the experiment's updated_at, which the shared definitions check
    (segments.api.definitions_stamps) covers: another process, which gets no signal, reads
    the running experiments again within SEGMENTS_DEFINITIONS_CHECK_SECONDS."""
    from segments.api import definitions_stamps

    e = bandit()
    results(e, [(2000, 80), (2000, 100), (2000, 160)])
    before = definitions_stamps(refresh=True)[runtime.DEFINITIONS]
    tasks.reweight()
    assert weights(e) != pytest.approx([1 / 3] * 3)
    assert definitions_stamps(refresh=True)[runtime.DEFINITIONS] != before
