"""The arm function the request path and the drain share (experiments.runtime), on unsaved
rows: sticky values, versions, holdouts and GrowthBook's allocation."""

import pytest

from experiments import assignment, runtime
from experiments.models import Arm, Experiment

KEYS = [f"{n:032x}" for n in range(2000)]


def running(key="exp", weights=(1.0, 1.0), **fields) -> runtime.RunningExperiment:
    fields.setdefault("kind", Experiment.Kind.BLOCK)
    e = Experiment(pk=7, key=key, page_id=3, block_id="b", **fields)
    arms = [Arm(index=n, key=f"a{n}", weight=w) for n, w in enumerate(weights)]
    return runtime.build(e, arms, None)


def test_without_a_sticky_value_the_arm_is_growthbooks_with_the_versioned_seed():
    e = running(weights=(0.2, 0.8), assignment_version=3, coverage=0.9)
    for key in KEYS[:300]:
        expected = assignment.assign(key, seed="exp:3", weights=[0.2, 0.8], coverage=0.9)
        assert e.arm(key) == (None if expected == -1 else expected)


def test_a_sticky_value_of_the_current_version_wins_and_others_are_ignored():
    e = running(assignment_version=2)
    key = KEYS[0]
    fresh = e.arm(key)
    other = 1 - fresh
    assert e.arm(key, f"2:{other}") == other
    assert e.arm(key, "2:-1") == runtime.HOLDOUT_ARM
    for stale in (f"1:{other}", f"12:{other}", "2:9", "2:x", "", "2"):
        assert e.arm(key, stale) == fresh, stale


def test_the_per_experiment_holdout_takes_its_share_first():
    e = running(holdout_percent=30)
    held = [key for key in KEYS if e.arm(key) == runtime.HOLDOUT_ARM]
    assert 0.26 < len(held) / len(KEYS) < 0.34
    for key in held[:50]:
        assert assignment.hash("holdout:exp", key, 2) < 0.3
    assert e.probability(runtime.HOLDOUT_ARM) == pytest.approx(0.3)
    assert e.probability(0) == pytest.approx(0.35)


def test_the_global_holdout_follows_its_setting(settings):
    e = running(kind=Experiment.Kind.GLOBAL_HOLDOUT)
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.05
    held = [key for key in KEYS if e.arm(key) == 0]
    assert 0.03 < len(held) / len(KEYS) < 0.07
    assert all(assignment.hash("tailored:global-holdout", k, 2) < 0.05 for k in held)
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.0
    assert all(e.arm(key) == 1 for key in KEYS[:100])


def test_a_block_experiment_applies_on_its_page_to_its_segment_only():
    e = running()
    e.segment = "mobile"
    found = runtime.Running(experiments=(e,), by_block={"b": (e,)}, by_page={3: (e,)})
    key = KEYS[0]
    assert runtime.decider(found.block_chain(3, "b"), key, {}, {"mobile"}) == (e, e.arm(key))
    assert runtime.decider(found.block_chain(3, "b"), key, {}, {"desktop"}) is None
    assert found.block_chain(4, "b") == []  # a copy of the block on another page
    assert found.block_chain(3, "other") == []


def running_on(key, pk, **fields) -> runtime.RunningExperiment:
    e = running(key, **fields)
    e.pk, e.id = pk, str(pk)
    return e


def test_a_namespace_leaves_its_outsiders_out_of_the_holdout_too():
    e = running(namespace="ns", namespace_start=0.0, namespace_end=0.5, holdout_percent=30)
    outside = [k for k in KEYS if not assignment.in_namespace(k, ("ns", 0.0, 0.5))]
    inside = [k for k in KEYS if assignment.in_namespace(k, ("ns", 0.0, 0.5))]
    assert outside and inside
    assert all(e.arm(k) is None for k in outside)
    held = sum(e.arm(k) == runtime.HOLDOUT_ARM for k in inside) / len(inside)
    assert 0.25 < held < 0.35


def test_mutually_exclusive_experiments_on_one_block_each_decide_for_their_own_visitors():
    first = running_on("first", 1, namespace="ns", namespace_start=0.0, namespace_end=0.5)
    second = running_on("second", 2, namespace="ns", namespace_start=0.5, namespace_end=1.0)
    found = runtime.Running(
        experiments=(first, second), by_block={"b": (first, second)}, by_page={3: (first, second)}
    )
    deciders = {first: 0, second: 0}
    for key in KEYS[:400]:
        decided = runtime.decider(found.block_chain(3, "b"), key, {}, set())
        assert decided is not None  # the block passes to the second experiment
        experiment, arm = decided
        deciders[experiment] += 1
        mine = "first" if assignment.in_namespace(key, ("ns", 0.0, 0.5)) else "second"
        assert experiment.key == mine
        # What the drain counts is what was decided: that experiment and arm only.
        assert found.served(3, key, {}, set()) == {experiment: arm}
    assert deciders[first] and deciders[second]


def test_a_globally_held_out_visitor_is_served_by_the_global_holdout_alone(settings):
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.5
    block = running_on("block", 1)
    held = running_on("global", 2, kind=Experiment.Kind.GLOBAL_HOLDOUT)
    found = runtime.Running(
        experiments=(block, held), by_block={"b": (block,)}, by_page={3: (block,)}
    )
    found.global_holdout = held
    outcomes = set()
    for key in KEYS[:200]:
        served = found.served(3, key, {}, set())
        if held.arm(key) == 0:
            assert served == {held: 0}
            outcomes.add("held")
        else:
            assert served == {held: 1, block: block.arm(key)}
            outcomes.add("personalised")
    assert outcomes == {"held", "personalised"}


def test_a_whole_page_holdout_counts_only_where_it_decides_something():
    block = running_on("block", 1)
    whole = running_on("whole", 2, kind=Experiment.Kind.HOLDOUT)
    whole.block_id = ""
    found = runtime.Running(
        experiments=(block, whole), by_block={"b": (block,)}, by_page={3: (block, whole)}
    )
    key = KEYS[0]
    # The page's one personalised block is the block experiment's: the holdout decides nothing.
    found.points = {3: runtime.PagePoints(frozenset({"b"}))}
    assert found.served(3, key, {}, set()) == {block: block.arm(key)}
    # Another personalised block, or page variants: the holdout decides them.
    for points in (
        runtime.PagePoints(frozenset({"b", "c"})),
        runtime.PagePoints(frozenset({"b"}), (("9", frozenset({"fr"}), False, frozenset({"b"})),)),
    ):
        found.points = {3: points}
        assert found.served(3, key, {}, set()) == {block: block.arm(key), whole: whole.arm(key)}
    # Not read: counted, as it may decide something.
    found.points = {}
    assert whole in found.served(3, key, {}, set())


def test_a_block_experiment_counts_only_where_the_page_served_holds_its_block():
    """A page variant served under the page's id (chosen by the visitor's segments, or by a
    page experiment's arm) that lacks the block never showed the block experiment's arm."""
    block = running_on("block", 1)
    found = runtime.Running(experiments=(block,), by_block={"b": (block,)}, by_page={3: (block,)})
    without = ("9", frozenset({"fr"}), False, frozenset({"other"}))
    copied = ("10", frozenset({"de"}), False, frozenset({"b"}))  # made from the page: same id
    found.points = {3: runtime.PagePoints(frozenset({"b"}), (without, copied))}
    for key in KEYS[:50]:
        counted = {block: block.arm(key)}
        assert found.served(3, key, {}, {"fr"}) == {}  # served variant 9: no block "b"
        assert found.served(3, key, {}, {"fr", "de"}) == {}  # variant 9 comes first
        assert found.served(3, key, {}, {"de"}) == counted  # variant 10 holds it
        assert found.served(3, key, {}, set()) == counted  # the page itself
    # A block the page and its variants do not hold at the top level (placed from code,
    # nested): where it shows is unknown, so it counts as before.
    found.points = {3: runtime.PagePoints(frozenset({"c"}), (without,))}
    assert found.served(3, KEYS[0], {}, {"fr"}) == {block: block.arm(KEYS[0])}


def test_a_page_experiments_arm_decides_which_blocks_a_visitor_saw():
    page = running_on("page", 2, kind=Experiment.Kind.PAGE, weights=(1.0, 1.0))
    page.arm_keys = ("default", "9")
    block = running_on("block", 1)
    found = runtime.Running(
        experiments=(block, page), by_block={"b": (block,)}, by_page={3: (block, page)}
    )
    without = ("9", frozenset({"fr"}), False, frozenset())
    found.points = {3: runtime.PagePoints(frozenset({"b"}), (without,))}
    arms = set()
    for key in KEYS[:200]:
        arm = page.arm(key)
        arms.add(arm)
        # The variant arm serves page 9 (no block): the block experiment decided nothing.
        expected = {page: arm} if arm == 1 else {page: arm, block: block.arm(key)}
        assert found.served(3, key, {}, set()) == expected
        # The arm, not the segments, decides: a visitor in "fr" on the default arm sees "b".
        assert found.served(3, key, {}, {"fr"}) == expected
    assert arms == {0, 1}
    # No servable variant left: the page experiment decides nothing, the block does.
    found.points = {3: runtime.PagePoints(frozenset({"b"}))}
    assert found.served(3, KEYS[0], {}, set()) == {block: block.arm(KEYS[0])}


def test_the_split_is_each_arms_share_of_the_enrolled_visitors(settings):
    e = running(weights=(1.0, 3.0), holdout_percent=20, coverage=0.5)
    # Held out: 20%; enrolled in arms: 80% x 50% coverage = 40%, split 1:3.
    assert e.split() == pytest.approx({-1: 1 / 3, 0: 1 / 6, 1: 1 / 2})
    assert running(weights=(1.0, 1.0)).split() == pytest.approx({0: 0.5, 1: 0.5})
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.05
    held = running(kind=Experiment.Kind.GLOBAL_HOLDOUT, weights=(1.0, 1.0))
    assert held.split() == pytest.approx({0: 0.05, 1: 0.95})
    assert runtime.parse_split(runtime.split_key(e.split())) == pytest.approx(e.split())


def test_settings_mistakes_are_system_checks(settings):
    from experiments.checks import check_settings

    assert check_settings() == []
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 5
    settings.EXPERIMENTS_REWEIGHT_SECONDS = 0
    assert [m.id for m in check_settings()] == ["experiments.E001", "experiments.E002"]
