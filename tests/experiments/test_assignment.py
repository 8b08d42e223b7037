"""experiments.assignment against GrowthBook's own Python SDK (the ``growthbook`` package, a
test dependency) on thousands of random inputs, plus the properties the app relies on."""

import math
import random
import timeit

import pytest
from growthbook import Experiment, GrowthBook
from growthbook import core as gb
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import assignment
from experiments.assignment import (
    Allocation,
    AllocationBatch,
    assign,
    bucket_ranges,
    choose_variation,
    in_namespace,
)

# Characters from every width class: ASCII, Latin-1, CJK (one UTF-16 unit, three UTF-8 bytes),
# astral emoji (a surrogate pair), combining marks, and lone surrogates (which a Python str may
# hold and JavaScript strings do too).
_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz0123456789-_",
    "0123456789abcdef",
    "éüßñçøÅÆ",
    "中文字符测试日本語한국어",
    "😀🎉🚀𝔘𐍈",
    "\u0301\u200d\ufeff",
    "\ud800\udbff\udc00\udfff",
]


def random_text(rng: random.Random, max_len: int = 40) -> str:
    n = rng.randint(0, max_len)
    if rng.random() < 0.5:
        return "".join(rng.choice(_ALPHABETS[rng.randrange(2)]) for _ in range(n))
    return "".join(rng.choice(rng.choice(_ALPHABETS)) for _ in range(n))


def random_weights(rng: random.Random, n: int):
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:  # valid
        raw = [rng.random() + 0.01 for _ in range(n)]
        total = sum(raw)
        return [w / total for w in raw]
    if kind == 2:  # wrong length
        return [1 / (n + 1)] * (n + rng.choice([-1, 1]))
    if kind == 3:  # not summing to 1
        return [rng.random() for _ in range(n)]
    if kind == 4:  # within GrowthBook's tolerance of 1
        w = [1 / n] * n
        w[0] += rng.uniform(-0.0099, 0.0099)
        return w
    if kind == 5:  # a negative or non-finite entry
        w = [1 / n] * n
        w[rng.randrange(n)] = rng.choice([-0.1, math.nan, math.inf, -math.inf])
        return w
    if kind == 6:  # booleans and huge ints are not weights
        return [True] + [0] * (n - 1) if rng.random() < 0.5 else [10**400] + [0] * (n - 1)
    return [1 / n] * n


def random_coverage(rng: random.Random):
    return rng.choice(
        [
            rng.random(),
            rng.uniform(-2, 0),
            rng.uniform(1, 3),
            0,
            1,
            0.5,
            1e-9,
            math.inf,
            -math.inf,
            rng.randrange(10001) / 10000,
        ]
    )


def test_hash_matches_growthbook_on_random_inputs():
    rng = random.Random(13)
    for _ in range(6000):
        seed, value = random_text(rng), random_text(rng)
        version = rng.choice([1, 2, 2, 2, 0, 3, -1, 2.0, 1.0])
        assert assignment.hash(seed, value, version) == gb.gbhash(seed, value, version), (
            seed,
            value,
            version,
        )


def test_hash_known_values_and_range():
    # Version 1 values from GrowthBook's cross-SDK test cases (cases.json, "hash").
    assert assignment.hash("", "a", 1) == 0.22
    assert assignment.hash("", "b", 1) == 0.077
    assert assignment.hash("b", "a", 1) == 0.946
    assert assignment.hash("ef", "d", 1) == 0.652
    for seed, value in (("", "a"), ("", "b"), ("b", "a"), ("ef", "d")):
        assert assignment.hash(seed, value, 2) == gb.gbhash(seed, value, 2)
    assert assignment.hash("", "a", 99) is None
    rng = random.Random(1)
    for _ in range(2000):
        for version in (1, 2):
            h = assignment.hash(random_text(rng), random_text(rng, 200), version)
            assert 0 <= h < 1


def test_long_values_use_the_masked_loop_and_still_match():
    value = "x" * 5000 + "é" * 300
    for version in (1, 2):
        assert assignment.hash("seed", value, version) == gb.gbhash("seed", value, version)


def test_bucket_ranges_match_growthbook():
    rng = random.Random(7)
    for _ in range(6000):
        n = rng.randint(0, 6)
        coverage = random_coverage(rng)
        weights = random_weights(rng, max(n, 1))
        ours = bucket_ranges(n, coverage, weights)
        theirs = gb.getBucketRanges(n, coverage, weights)
        assert len(ours) == len(theirs)
        for (a, b), (c, d) in zip(ours, theirs, strict=True):
            assert (a == c or (math.isnan(a) and math.isnan(c))) and (
                b == d or (math.isnan(b) and math.isnan(d))
            ), (n, coverage, weights, ours, theirs)


def test_bucket_ranges_edge_cases():
    assert bucket_ranges(2) == [(0, 0.5), (0.5, 1)]
    assert bucket_ranges(2, coverage=-1) == [(0, 0), (0.5, 0.5)]
    assert bucket_ranges(2, coverage=7) == [(0, 0.5), (0.5, 1)]
    assert bucket_ranges(3, 1, [0.5, 0.5]) == bucket_ranges(3)  # wrong length
    assert bucket_ranges(2, 1, [0.7, 0.7]) == bucket_ranges(2)  # sum 1.4
    assert bucket_ranges(2, 1, [0.25, 0.745]) == [(0, 0.25), (0.25, 0.995)]  # within 0.01
    assert bucket_ranges(2, 1, (0.25, 0.75)) == [(0, 0.25), (0.25, 1)]  # a tuple is fine
    assert bucket_ranges(0) == []


def test_choose_variation_matches_growthbook():
    rng = random.Random(3)
    for _ in range(6000):
        n = rng.randint(1, 5)
        ranges = gb.getBucketRanges(n, random_coverage(rng), random_weights(rng, n))
        h = rng.choice([rng.random(), 0.0, 0.5, 0.9999, 1 / 3, 1.0, rng.randrange(10000) / 10000])
        assert choose_variation(h, ranges) == gb.chooseVariation(h, ranges)
    assert choose_variation(0.5, []) == -1
    assert choose_variation(1.0, [(0, 0.5), (0.5, 1)]) == -1  # half-open


def test_in_namespace_matches_growthbook():
    rng = random.Random(5)
    for _ in range(6000):
        start = rng.random()
        namespace = (random_text(rng, 12), start, rng.choice([start + rng.random() / 2, 1, 0]))
        value = random_text(rng)
        assert in_namespace(value, namespace) == gb.inNamespace(value, namespace)


def _growthbook_run(value, *, seed, weights, coverage, hash_version, namespace):
    experiment = Experiment(
        key=seed,
        seed=seed,
        variations=list(range(len(weights))),
        weights=list(weights),
        coverage=coverage,
        hashVersion=hash_version,
        namespace=namespace,
    )
    result = GrowthBook(attributes={"id": value}).run(experiment)
    return result.variationId if result.inExperiment else -1


def test_assign_single_and_batched_match_a_growthbook_run():
    """The whole decision (namespace, hash, coverage, weights, < 2 arms, empty id) against the
    SDK's ``GrowthBook.run``, one experiment at a time and 20 at a time through a batch."""
    rng = random.Random(11)
    for _ in range(100):
        configs = []
        for _ in range(20):
            n = rng.randint(1, 4)
            weights = random_weights(rng, n) or [1 / n] * n
            if len(weights) != n:
                weights = [1 / n] * n if rng.random() < 0.5 else weights
            configs.append(
                {
                    "seed": random_text(rng, 20) or "seed",
                    "weights": weights,
                    "coverage": random_coverage(rng),
                    "hash_version": rng.choice([1, 2, 2, 2, 3]),
                    "namespace": (
                        (random_text(rng, 8), rng.random() / 2, 0.5 + rng.random() / 2)
                        if rng.random() < 0.3
                        else None
                    ),
                }
            )
        batch = AllocationBatch([Allocation(**c) for c in configs])
        for _ in range(10):
            value = random_text(rng) if rng.random() < 0.3 else f"{rng.getrandbits(128):032x}"
            expected = [
                -1 if c["hash_version"] == 3 else _growthbook_run(value, **c) for c in configs
            ]
            assert [assign(value, **c) for c in configs] == expected
            assert batch.assign(value) == expected


def test_unknown_hash_version_and_empty_identifier_are_not_enrolled():
    assert assign("abc", seed="s", weights=[0.5, 0.5], hash_version=3) == -1
    assert assign("", seed="s", weights=[0.5, 0.5]) == -1
    assert assign("abc", seed="s", weights=[1.0]) == -1  # fewer than two arms
    assert AllocationBatch([Allocation(seed="s", weights=[0.5, 0.5], hash_version=0)]).assign(
        "abc"
    ) == [-1]


def test_assignment_is_roughly_proportional_to_weights():
    allocation = Allocation(seed="exp", weights=[0.2, 0.3, 0.5], coverage=0.8)
    counts = [0, 0, 0, 0]
    rng = random.Random(2)
    for _ in range(40000):
        counts[allocation.assign(f"{rng.getrandbits(128):032x}")] += 1
    shares = [c / 40000 for c in counts]
    # arm 0..2 get coverage * weight, the rest (index -1) is not enrolled
    for got, want in zip(shares, [0.16, 0.24, 0.40, 0.20], strict=True):
        assert abs(got - want) < 0.012


_ids = st.text(min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    value=_ids,
    seed=st.text(max_size=20),
    weights=st.lists(st.floats(0.01, 1), min_size=2, max_size=5),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
    version=st.sampled_from([1, 2]),
)
def test_ramping_coverage_up_never_moves_an_enrolled_visitor(
    value, seed, weights, low, high, version
):
    total = sum(weights)
    weights = [w / total for w in weights]
    low, high = min(low, high), max(low, high)
    before = assign(value, seed=seed, weights=weights, coverage=low, hash_version=version)
    after = assign(value, seed=seed, weights=weights, coverage=high, hash_version=version)
    if before != -1:
        assert after == before


def test_ramping_coverage_on_many_visitors():
    rng = random.Random(4)
    values = [f"{rng.getrandbits(128):032x}" for _ in range(5000)]
    weights = [0.1, 0.2, 0.3, 0.4]
    steps = [Allocation(seed="ramp", weights=weights, coverage=c) for c in (0.05, 0.2, 0.5, 1)]
    for value in values:
        arms = [a.assign(value) for a in steps]
        enrolled = [arm for arm in arms if arm != -1]
        assert len(set(enrolled)) <= 1
        # once enrolled, enrolled at every higher coverage
        first = next((i for i, arm in enumerate(arms) if arm != -1), len(arms))
        assert all(arm != -1 for arm in arms[first:])
    assert sum(steps[-1].assign(v) != -1 for v in values) == len(values)


def test_namespaces_with_disjoint_ranges_share_no_visitor():
    a = Allocation(seed="a", weights=[0.5, 0.5], namespace=("homepage", 0, 0.4))
    b = Allocation(seed="b", weights=[0.5, 0.5], namespace=("homepage", 0.4, 1))
    batch = AllocationBatch([a, b])
    rng = random.Random(9)
    both = enrolled_a = 0
    for _ in range(5000):
        arms = batch.assign(f"{rng.getrandbits(128):032x}")
        both += arms[0] != -1 and arms[1] != -1
        enrolled_a += arms[0] != -1
        assert arms[0] != -1 or arms[1] != -1  # together they cover the namespace
    assert both == 0
    assert 0.35 < enrolled_a / 5000 < 0.45


def test_speed_per_assignment(capsys):
    """Report how long one assignment takes (printed with -s). A loose ceiling only: the
    machine is shared; the bench reports the figure properly."""
    rng = random.Random(0)
    allocations = [
        Allocation(seed=f"experiment-{i}", weights=[0.5, 0.25, 0.25], coverage=0.9)
        for i in range(20)
    ]
    batch = AllocationBatch(allocations)
    value = f"{rng.getrandbits(128):032x}"
    runs = 2000
    single = min(
        timeit.repeat(lambda: [a.assign(value) for a in allocations], number=runs, repeat=3)
    )
    batched = min(timeit.repeat(lambda: batch.assign(value), number=runs, repeat=3))
    per_single = single / runs / 20 * 1e6
    per_batched = batched / runs / 20 * 1e6
    with capsys.disabled():
        print(
            f"\nassignment: {per_single:.2f} µs each one by one, "
            f"{per_batched:.2f} µs each in a batch of 20"
        )
    assert per_batched < per_single
    assert per_batched < 20  # generous: ~1.5 µs on the development machine


@pytest.mark.parametrize("version", [1, 2])
def test_allocation_bucket_is_the_hash(version):
    rng = random.Random(version)
    for _ in range(500):
        seed, value = random_text(rng), random_text(rng) or "x"
        a = Allocation(seed=seed, weights=[0.5, 0.5], hash_version=version)
        assert a.bucket(value) == gb.gbhash(seed, value, version)
